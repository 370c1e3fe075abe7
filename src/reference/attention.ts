/**
 * CPU reference for causal multi-head self-attention (nanoGPT CausalSelfAttention after c_attn), float64.
 *
 * qkv [B, T, 3C]: q = columns [0, C), k = [C, 2C), v = [2C, 3C); head h uses h*HS .. h*HS+HS-1 of each,
 * HS = C / NH. Scores s_tj = q_t . k_j / sqrt(HS) for j <= t; out [B, T, C] (heads merged the same way);
 * lse [B, NH, T] = log sum_j<=t exp(s_tj). Plain dense softmax with max subtraction: no tiling, no online
 * rescaling, so it checks the GPU kernels' algorithm rather than repeating it.
 *
 * @module
 */

/** Forward: out [B, T, C] and lse [B, NH, T] (natural log). */
export function attentionForward(
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  NH: number,
): { out: Float64Array; lse: Float64Array } {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * 3 * C + h * HS;
        let m = -Infinity;
        for (let j = 0; j <= t; j++) {
          const ko = (b * T + j) * 3 * C + C + h * HS;
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[qo + d] * qkv[ko + d];
          s[j] = dot * scale;
          if (s[j] > m) m = s[j];
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += Math.exp(s[j] - m);
        lse[(b * NH + h) * T + t] = m + Math.log(sum);
        const oo = (b * T + t) * C + h * HS;
        for (let j = 0; j <= t; j++) {
          const p = Math.exp(s[j] - m) / sum;
          const vo = (b * T + j) * 3 * C + 2 * C + h * HS;
          for (let d = 0; d < HS; d++) out[oo + d] += p * qkv[vo + d];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Backward: dqkv [B, T, 3C] (every element written) from dout [B, T, C] and qkv. Builds each head's
 * probability matrix P and dP = dout V^T explicitly, then dS = P * (dP - rowsum(P * dP)),
 * dq = scale dS K, dk = scale dS^T Q, dv = P^T dout.
 */
export function attentionBackward(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  NH: number,
): Float64Array {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const dqkv = new Float64Array(B * T * 3 * C);
  const P = new Float64Array(T * T);
  const dS = new Float64Array(T * T);
  const q = (b: number, t: number, h: number) => (b * T + t) * 3 * C + h * HS;
  const k = (b: number, t: number, h: number) => q(b, t, h) + C;
  const v = (b: number, t: number, h: number) => q(b, t, h) + 2 * C;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      P.fill(0);
      dS.fill(0);
      for (let t = 0; t < T; t++) {
        let m = -Infinity;
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[q(b, t, h) + d] * qkv[k(b, j, h) + d];
          P[t * T + j] = dot * scale;
          m = Math.max(m, P[t * T + j]);
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += P[t * T + j] = Math.exp(P[t * T + j] - m);
        for (let j = 0; j <= t; j++) P[t * T + j] /= sum;
        // dP_tj = dout_t . v_j, then dS_tj = P_tj (dP_tj - sum_j' P_tj' dP_tj').
        const go = (b * T + t) * C + h * HS;
        let rowDot = 0;
        for (let j = 0; j <= t; j++) {
          let dp = 0;
          for (let d = 0; d < HS; d++) dp += dout[go + d] * qkv[v(b, j, h) + d];
          dS[t * T + j] = dp;
          rowDot += P[t * T + j] * dp;
        }
        for (let j = 0; j <= t; j++) dS[t * T + j] = P[t * T + j] * (dS[t * T + j] - rowDot);
      }
      for (let t = 0; t < T; t++) {
        const go = (b * T + t) * C + h * HS;
        for (let j = 0; j <= t; j++) {
          const p = P[t * T + j], ds = dS[t * T + j] * scale;
          for (let d = 0; d < HS; d++) {
            dqkv[q(b, t, h) + d] += ds * qkv[k(b, j, h) + d];
            dqkv[k(b, j, h) + d] += ds * qkv[q(b, t, h) + d];
            dqkv[v(b, j, h) + d] += p * dout[go + d];
          }
        }
      }
    }
  }
  return dqkv;
}
