/**
 * CPU reference for KV-cache decoding, float64: the embedding of one position and single-query attention
 * over a cache. Plain dense softmax with max subtraction (no tiles, no online rescaling), so it checks the
 * GPU kernels' algorithm rather than repeating it.
 *
 * @module
 */

/**
 * x [B, C] with x[b, c] = wte[seq[b*maxT + pos], c] + wpe[pos, c]; a token id >= V gives a zero token
 * embedding. seq [B, maxT], wte [V, C], wpe [>= maxT, C].
 */
export function decodeEmbed(
  seq: ArrayLike<number>,
  wte: ArrayLike<number>,
  wpe: ArrayLike<number>,
  pos: number,
  B: number,
  maxT: number,
  C: number,
  V: number,
): Float64Array {
  const x = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    const tok = seq[b * maxT + pos];
    for (let c = 0; c < C; c++) x[b * C + c] = (tok < V ? wte[tok * C + c] : 0) + wpe[pos * C + c];
  }
  return x;
}

/**
 * y [B, C] with y[b, h*HS + d] = sum_{j <= pos} softmax_j(q_bh . k_j / sqrt(HS)) vcache[b, h, j, d], where
 * q_bh = q[b, h*HS .. h*HS + HS) and k_j = kcache[b, h, j, :]. q [B, C] (C = NH*HS; the q part of a qkv
 * row), kcache / vcache [B, NH, maxT, HS]; only positions 0..pos are read.
 */
export function attentionDecode(
  q: ArrayLike<number>,
  kcache: ArrayLike<number>,
  vcache: ArrayLike<number>,
  pos: number,
  B: number,
  NH: number,
  maxT: number,
  HS: number,
): Float64Array {
  const C = NH * HS;
  const scale = 1 / Math.sqrt(HS);
  const y = new Float64Array(B * C);
  const s = new Float64Array(pos + 1);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const qo = b * C + h * HS;
      const base = (b * NH + h) * maxT * HS;
      let m = -Infinity;
      for (let j = 0; j <= pos; j++) {
        let dot = 0;
        for (let d = 0; d < HS; d++) dot += q[qo + d] * kcache[base + j * HS + d];
        s[j] = dot * scale;
        if (s[j] > m) m = s[j];
      }
      let sum = 0;
      for (let j = 0; j <= pos; j++) sum += Math.exp(s[j] - m);
      for (let j = 0; j <= pos; j++) {
        const p = Math.exp(s[j] - m) / sum;
        for (let d = 0; d < HS; d++) y[qo + d] += p * vcache[base + j * HS + d];
      }
    }
  }
  return y;
}
