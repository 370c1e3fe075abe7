/**
 * A small seeded PRNG (SplitMix32 state step + a Mulberry-style output mix) for reproducible tests,
 * initialisation and data order. Its whole state is one u32, so it checkpoints trivially.
 *
 * @module
 */

/** A reproducible random stream. */
export class Rng {
  /** The current 32-bit state; save it to resume the stream exactly. */
  state: number;

  /** Starts a stream from `seed` (any integer). */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next uniform u32. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A Float32Array of `n` values, uniform in [lo, hi). */
  uniformArray(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.uniform();
    return a;
  }

  /** A Float32Array of `n` normals times `std`. */
  normalArray(n: number, std = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = std * this.normal();
    return a;
  }
}
