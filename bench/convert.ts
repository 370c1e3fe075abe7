import type { BenchBuilder } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { castToF16 } from "../src/kernels/convert.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * The f16 working copy of the parameter arena (once per forward in mixed precision): memory-bound, GB/s.
 * Sizes: the shakespeare_char model's 10.7M parameters (large), 64k (CI).
 */
export const build: BenchBuilder = async (gpu, large) => {
  if (!gpu.features.f16) return [];
  const n = large ? 10_752_000 : 65_536;
  const inp = createStorage(gpu, "inp", n * 4, new Rng(1).normalArray(n).map((v) => v * 0.02));
  const out = createStorage(gpu, "out", n * 2);
  return [{
    name: "cast_f16",
    shape: `n=${n}`,
    dispatches: [await castToF16(gpu, { out, inp }, n)],
    bytes: 6 * n,
  }];
};
