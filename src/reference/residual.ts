/**
 * CPU reference for the residual add and dropout, float64. The dropout mask is the exact twin of the
 * shader's: keep(i) = uniform01(hash3(seed, stream, i)) >= p, kept values scaled by 1/(1-p).
 *
 * @module
 */
import { hash3, uniform01 } from "../util/hash.ts";

/** out = a + b, elementwise. */
export function residualForward(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** acc += inp, elementwise, in place; returns `acc`. */
export function addInPlace<T extends { [i: number]: number; readonly length: number }>(
  acc: T,
  inp: ArrayLike<number>,
): T {
  for (let i = 0; i < acc.length; i++) acc[i] += inp[i];
  return acc;
}

/** Whether element `index` survives dropout with probability p for (seed, stream). */
export function dropoutKeep(p: number, seed: number, stream: number, index: number): boolean {
  return uniform01(hash3(seed >>> 0, stream >>> 0, index >>> 0)) >= p;
}

function dropout(x: ArrayLike<number>, p: number, seed: number, stream: number): Float64Array {
  const out = new Float64Array(x.length);
  const scale = 1 / (1 - p);
  for (let i = 0; i < x.length; i++) out[i] = dropoutKeep(p, seed, stream, i) ? x[i] * scale : 0;
  return out;
}

/** out[i] = keep(i) ? inp[i] / (1 - p) : 0, the mask from (seed, stream, i). */
export function dropoutForward(
  inp: ArrayLike<number>,
  p: number,
  seed: number,
  stream: number,
): Float64Array {
  return dropout(inp, p, seed, stream);
}

/** dinp[i] = keep(i) ? dout[i] / (1 - p) : 0: the forward's mask regenerated, as its gradient. */
export function dropoutBackward(
  dout: ArrayLike<number>,
  p: number,
  seed: number,
  stream: number,
): Float64Array {
  return dropout(dout, p, seed, stream);
}

/** out = a + dropoutForward(b, p, seed, stream). */
export function residualDropoutForward(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  p: number,
  seed: number,
  stream: number,
): Float64Array {
  return residualForward(a, dropout(b, p, seed, stream));
}
