/**
 * Bit-exact CPU twin of shaders/hash.wgsl (used by the trainer for dropout seeds and by the float64
 * reference for the masks it regenerates): counter-based random numbers from (seed, stream, index).
 *
 * @module
 */

/** PCG-RXS-M-XS permutation of a u32. */
export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** hash3(seed, stream, index) = pcg(index ^ pcg(stream ^ pcg(seed))). */
export function hash3(seed: number, stream: number, index: number): number {
  return pcgHash((index ^ pcgHash((stream ^ pcgHash(seed)) >>> 0)) >>> 0);
}

/** Uniform in [0, 1) from the top 24 bits of a hash, exactly as the shader computes it. */
export function uniform01(h: number): number {
  return (h >>> 8) / 16777216;
}
