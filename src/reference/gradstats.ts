/**
 * CPU reference of shaders/gradstats.wgsl: successive-gradient dot product and squared norms (float64).
 *
 * @module
 */

/** [sum g*p, sum g*g, sum p*p] over two equally long vectors. */
export function gradCosineStats(grads: ArrayLike<number>, prev: ArrayLike<number>): Float64Array {
  if (grads.length !== prev.length) throw new Error("gradCosineStats: lengths differ");
  let gp = 0, gg = 0, pp = 0;
  for (let i = 0; i < grads.length; i++) {
    gp += grads[i] * prev[i];
    gg += grads[i] * grads[i];
    pp += prev[i] * prev[i];
  }
  return Float64Array.of(gp, gg, pp);
}

/** Cosine similarity from {@linkcode gradCosineStats}' three sums (NaN when either norm is zero). */
export function cosineOf(s: ArrayLike<number>): number {
  const d = Math.sqrt(s[1] * s[2]);
  return d > 0 ? s[0] / d : NaN;
}
