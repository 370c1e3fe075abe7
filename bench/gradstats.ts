import type { BenchBuilder } from "./harness.ts";
import { createStorage, upload } from "../src/gpu/buffers.ts";
import { gradCosine, gradCosineScratchBytes } from "../src/kernels/gradstats.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * Successive-gradient cosine over a whole gradient arena (both stages): reads grads and prev, writes prev.
 * CI: n = 106,496 (the default lavapipe model); large: n = 10.8M (shakespeare_char, 6 layers, C 384).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const n = large ? 10_788_864 : 106_496;
  const rng = new Rng(4);
  const init = (label: string) =>
    large ? createStorage(gpu, label, n * 4) : upload(gpu, label, rng.normalArray(n));
  const grads = init("grads"), prev = init("prev");
  const scratch = createStorage(gpu, "scratch", gradCosineScratchBytes(n));
  const gstats = createStorage(gpu, "gstats", 16);
  return [{
    name: "grad_cosine",
    shape: `n=${n}`,
    dispatches: await gradCosine(gpu, { prev, grads, scratch, gstats }, { n }),
    flops: 6 * n,
    bytes: 12 * n,
  }];
};
