/**
 * CPU reference for softmax cross-entropy, float64 arithmetic.
 *
 * @module
 */

/**
 * Per-row loss and gradient of softmax cross-entropy over logits [N, V] with targets [N]:
 * losses[n] = -log softmax(logits[n])[targets[n]] (max-subtracted, stable for huge logits) and
 * dlogits[n, v] = (softmax(logits[n])[v] - (v == targets[n])) * scale. Rows whose target equals
 * `ignoreIndex` (default: none) get loss 0 and a zero gradient row.
 */
export function crossEntropy(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  scale: number,
  ignoreIndex?: number,
): { losses: Float64Array; dlogits: Float64Array } {
  const losses = new Float64Array(N);
  const dlogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (ignoreIndex !== undefined && t === ignoreIndex) continue;
    if (!(Number.isInteger(t) && t >= 0 && t < V)) {
      throw new Error(`crossEntropy: target ${t} outside [0, ${V})`);
    }
    const base = n * V;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[base + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[base + v] - m);
    losses[n] = (m - logits[base + t]) + Math.log(s);
    for (let v = 0; v < V; v++) {
      const p = Math.exp(logits[base + v] - m) / s;
      dlogits[base + v] = (p - (v === t ? 1 : 0)) * scale;
    }
  }
  return { losses, dlogits };
}
