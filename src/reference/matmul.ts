/**
 * CPU reference for the Linear-layer matmuls, float64 accumulation. Weight is stored [N, K]
 * (nanoGPT's [out_features, in_features]); all arrays row-major.
 *
 * @module
 */

/**
 * out[M, N] = inp[M, K] · weight[N, K]ᵀ + bias[N] (no bias term when `bias` is null).
 */
export function matmulForward(
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  M: number,
  K: number,
  N: number,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    const a = m * K;
    for (let n = 0; n < N; n++) {
      const w = n * K;
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += inp[a + k] * weight[w + k];
      out[m * N + n] = s;
    }
  }
  return out;
}

/**
 * Gradients of {@linkcode matmulForward} given dout [M, N]: dinp [M, K] = dout · weight,
 * dweight [N, K] = doutᵀ · inp, dbias [N] = column sums of dout. These are the contributions of this
 * call alone (the GPU kernels add dweight and dbias into existing gradients).
 */
export function matmulBackward(
  dout: ArrayLike<number>,
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  M: number,
  K: number,
  N: number,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dinp = new Float64Array(M * K);
  const dweight = new Float64Array(N * K);
  const dbias = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const g = dout[m * N + n];
      dbias[n] += g;
      const a = m * K, w = n * K;
      for (let k = 0; k < K; k++) {
        dinp[a + k] += g * weight[w + k];
        dweight[w + k] += g * inp[a + k];
      }
    }
  }
  return { dinp, dweight, dbias };
}
