/**
 * CPU reference for LayerNorm over the last dim (torch.nn.LayerNorm semantics, biased variance),
 * float64 arithmetic.
 *
 * @module
 */

/**
 * out[n, c] = (inp[n, c] - mean[n]) * rstd[n] * weight[c] + bias[c] (no bias when `bias` is null), with
 * mean and the biased variance over the C channels of each of the N rows and rstd = 1/sqrt(var + eps).
 * Shapes: inp [N, C], weight and bias [C]. Returns out [N, C], mean [N], rstd [N].
 */
export function layernormForward(
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  N: number,
  C: number,
  eps = 1e-5,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(N * C), mean = new Float64Array(N), rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const base = n * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += inp[base + c];
    const m = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[base + c] - m;
      q += d * d;
    }
    const r = 1 / Math.sqrt(q / C + eps);
    mean[n] = m;
    rstd[n] = r;
    for (let c = 0; c < C; c++) {
      out[base + c] = (inp[base + c] - m) * r * weight[c] + (bias ? bias[c] : 0);
    }
  }
  return { out, mean, rstd };
}

/**
 * Gradients of LayerNorm given dout [N, C], the input, weight [C] and the forward's mean and rstd [N]:
 * with xhat = (inp - mean) * rstd and g = weight * dout,
 * dinp = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), dweight = sum_n dout * xhat,
 * dbias = sum_n dout (meaningful only when the forward had a bias). All freshly computed (not added).
 */
export function layernormBackward(
  dout: ArrayLike<number>,
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  N: number,
  C: number,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dinp = new Float64Array(N * C), dweight = new Float64Array(C), dbias = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const base = n * C, m = mean[n], r = rstd[n];
    let a = 0, b = 0;
    for (let c = 0; c < C; c++) {
      const g = weight[c] * dout[base + c];
      a += g;
      b += g * (inp[base + c] - m) * r;
    }
    a /= C;
    b /= C;
    for (let c = 0; c < C; c++) {
      const d = dout[base + c];
      const xhat = (inp[base + c] - m) * r;
      dinp[base + c] = r * (weight[c] * d - a - xhat * b);
      dweight[c] += d * xhat;
      dbias[c] += d;
    }
  }
  return { dinp, dweight, dbias };
}
