/**
 * CPU reference of the teacher-forcing gather (shaders/gather.wgsl).
 *
 * @module
 */

/** Inputs and targets of one micro-step: windows `offsets[b]` with `lengths[b]` usable tokens. */
export function gather(
  corpus: ArrayLike<number>,
  offsets: ArrayLike<number>,
  lengths: ArrayLike<number>,
  B: number,
  T: number,
  padId: number,
  ignoreId: number,
): { tokens: Uint32Array; targets: Uint32Array } {
  const tokens = new Uint32Array(B * T), targets = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      tokens[b * T + t] = t < lengths[b] ? corpus[offsets[b] + t] : padId;
      targets[b * T + t] = t + 1 < lengths[b] ? corpus[offsets[b] + t + 1] : ignoreId;
    }
  }
  return { tokens, targets };
}
