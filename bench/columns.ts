import type { BenchBuilder } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { copyColumns } from "../src/kernels/columns.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * The tied head's vocabulary slice copy (a token embedding split across buffers): one slice's logits
 * [R, W] into their columns of [R, V]; memory-bound, GB/s. Sizes: GPT-2's vocabulary cut in two at B*T =
 * 1024 rows (large), 64 rows of a 1000-token vocabulary (CI).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const [R, V, W] = large ? [1024, 50257, 25129] : [64, 1000, 600];
  const src = createStorage(gpu, "slice", R * W * 4, new Rng(1).normalArray(R * W));
  const dst = createStorage(gpu, "logits", R * V * 4);
  const shape = { rows: R, cols: W, src: { width: W, col: 0 }, dst: { width: V, col: V - W } };
  return [{
    name: "copy_columns",
    shape: `R=${R} V=${V} W=${W}`,
    dispatches: [await copyColumns(gpu, { dst, src }, shape)],
    bytes: 8 * R * W,
  }];
};
