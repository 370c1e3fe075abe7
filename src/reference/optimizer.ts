/**
 * CPU reference for the optimizer: global gradient norm, the clip scale of torch's clip_grad_norm_, and
 * torch.optim.AdamW (decoupled weight decay), float64 arithmetic per element.
 *
 * @module
 */
import type { AdamWStep } from "../kernels/optimizer.ts";

/** sqrt(sum g^2), accumulated in float64. */
export function globalNorm(grads: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < grads.length; i++) s += grads[i] * grads[i];
  return Math.sqrt(s);
}

/**
 * The factor gradients are multiplied by: maxNorm / (norm + 1e-6) when clipping is on (maxNorm > 0) and
 * the norm exceeds it, else 1. A non-finite norm gives 1 (the norm itself reports the problem).
 */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/** AdamW hyperparameters for one step: the kernel's (all of the arrays) and the gradient multiplier. */
export interface AdamWHyper extends Omit<AdamWStep, "n"> {
  /** Gradients are multiplied by this first (the clip scale). */
  gradScale: number;
}

/**
 * One AdamW step in place: for each i, with g = grads[i] * gradScale,
 * p *= 1 - lr * wd (i < decayEnd); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Float64 per element, stored back to f32.
 */
export function adamwStep(
  params: Float32Array,
  grads: ArrayLike<number>,
  m: Float32Array,
  v: Float32Array,
  h: AdamWHyper,
): void {
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i] * h.gradScale;
    let p = params[i];
    if (i < h.decayEnd) p *= 1 - h.lr * h.weightDecay;
    const mi = h.beta1 * m[i] + (1 - h.beta1) * g;
    const vi = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - h.lr * (mi / bc1) / (Math.sqrt(vi / bc2) + h.eps);
  }
}
