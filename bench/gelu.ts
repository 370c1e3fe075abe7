import type { BenchBuilder } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { geluBackward, geluForward } from "../src/kernels/gelu.ts";
import { Rng } from "../src/util/rng.ts";

/** GELU forward and backward over B*T*4C elements: memory-bound, reported in GB/s. */
export const build: BenchBuilder = async (gpu, large) => {
  const n = large ? 64 * 256 * 1536 : 4 * 64 * 256;
  const shape = `n=${n}`;
  const inp = createStorage(gpu, "inp", n * 4, new Rng(1).uniformArray(n, -4, 4));
  const dout = createStorage(gpu, "dout", n * 4, new Rng(2).uniformArray(n));
  const out = createStorage(gpu, "out", n * 4), dinp = createStorage(gpu, "dinp", n * 4);
  return [
    { name: "gelu_forward", shape, dispatches: [await geluForward(gpu, { out, inp }, n)], bytes: 8 * n },
    {
      name: "gelu_backward",
      shape,
      dispatches: [await geluBackward(gpu, { dinp, inp, dout }, n)],
      bytes: 12 * n,
    },
  ];
};
