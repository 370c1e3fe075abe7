/**
 * Learning-rate schedule: nanoGPT's linear warmup, then cosine decay to min_lr, then flat.
 *
 * @module
 */

/** Schedule parameters (nanoGPT names in comments). */
export interface LrSchedule {
  /** Peak learning rate (learning_rate). */
  lr: number;
  /** Floor reached at decaySteps (min_lr). */
  minLr: number;
  /** Linear warmup steps (warmup_iters). */
  warmup: number;
  /** Step at which the cosine reaches minLr (lr_decay_iters). */
  decaySteps: number;
}

/** Learning rate at 0-based step `it`, exactly as nanoGPT's get_lr. */
export function learningRate(it: number, s: LrSchedule): number {
  if (it < s.warmup) return s.lr * (it + 1) / (s.warmup + 1);
  if (it > s.decaySteps) return s.minLr;
  if (s.decaySteps <= s.warmup) return s.minLr;
  const ratio = (it - s.warmup) / (s.decaySteps - s.warmup);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return s.minLr + coeff * (s.lr - s.minLr);
}
