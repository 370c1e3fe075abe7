/**
 * CPU reference for the encoder (token + position embedding), float64 arithmetic.
 *
 * Shapes: tokens [B,T]; wte [V,C]; wpe [>=T,C]; out, dout [B,T,C]. A token id that is not an integer in
 * [0, V) contributes a zero token embedding in the forward and nothing to dwte in the backward, as the
 * GPU kernel does.
 *
 * @module
 */

function inVocab(tok: number, V: number): boolean {
  return Number.isInteger(tok) && tok >= 0 && tok < V;
}

/**
 * out[b,t,c] = wte[tokens[b,t],c] + wpe[t,c]. V is taken as floor(wte.length / C); a token >= V gives
 * out = wpe.
 */
export function encoderForward(
  tokens: ArrayLike<number>,
  wte: ArrayLike<number>,
  wpe: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
): Float64Array {
  const V = Math.floor(wte.length / C);
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const n = b * T + t;
      const tok = tokens[n];
      const ok = inVocab(tok, V);
      for (let c = 0; c < C; c++) out[n * C + c] = (ok ? wte[tok * C + c] : 0) + wpe[t * C + c];
    }
  }
  return out;
}

/**
 * The gradients (not accumulated: add them to whatever the GPU buffers held):
 * dwte[v,c] = sum over positions with tokens == v of dout[pos,c] (V x C); dwpe[t,c] = sum_b dout[b,t,c]
 * (T x C). Tokens outside [0, V) add nothing to dwte.
 */
export function encoderBackward(
  dout: ArrayLike<number>,
  tokens: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  V: number,
): { dwte: Float64Array; dwpe: Float64Array } {
  const dwte = new Float64Array(V * C);
  const dwpe = new Float64Array(T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const n = b * T + t;
      const tok = tokens[n];
      const ok = inVocab(tok, V);
      for (let c = 0; c < C; c++) {
        const g = dout[n * C + c];
        dwpe[t * C + c] += g;
        if (ok) dwte[tok * C + c] += g;
      }
    }
  }
  return { dwte, dwpe };
}
