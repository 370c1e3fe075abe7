import type { BenchBuilder } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { gather } from "../src/kernels/gather.ts";
import { Rng } from "../src/util/rng.ts";

/** Teacher-forcing gather: B windows of T+1 corpus tokens into inputs and targets (GB/s). */
export const build: BenchBuilder = async (gpu, large) => {
  const [B, T] = large ? [64, 256] : [16, 64];
  const n = 300_000, rng = new Rng(1);
  const u32 = (label: string, a: Uint32Array) => createStorage(gpu, label, a.byteLength, a);
  const b = {
    tokens: createStorage(gpu, "tokens", B * T * 4),
    targets: createStorage(gpu, "targets", B * T * 4),
    rng: createStorage(gpu, "rng", 16),
    corpus: u32("corpus", Uint32Array.from({ length: n }, () => rng.int(65))),
    offsets: u32("offsets", Uint32Array.from({ length: B }, () => rng.int(n - T - 1))),
    lengths: u32("lengths", new Uint32Array(B).fill(T + 1)),
    seeds: u32("seeds", new Uint32Array([7])),
  };
  const d = await gather(gpu, b, { B, T, micro: 0 });
  // Reads 2 corpus tokens and writes 2 per position.
  return [{ name: "gather", shape: `B=${B} T=${T}`, dispatches: [d], bytes: 16 * B * T }];
};
