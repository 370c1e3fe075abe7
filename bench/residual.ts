import type { BenchBuilder } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import {
  addInPlace,
  dropoutBackward,
  dropoutForward,
  residualDropoutForward,
  residualForward,
} from "../src/kernels/residual.ts";
import { Rng } from "../src/util/rng.ts";

/** Residual add, gradient accumulation and dropout over B*T*C elements: memory-bound, in GB/s. */
export const build: BenchBuilder = async (gpu, large) => {
  const n = large ? 16384 * 384 : 256 * 384;
  const shape = `n=${n}`;
  const a = createStorage(gpu, "a", n * 4, new Rng(1).uniformArray(n));
  const b = createStorage(gpu, "b", n * 4, new Rng(2).uniformArray(n));
  const out = createStorage(gpu, "out", n * 4), acc = createStorage(gpu, "acc", n * 4);
  const rng = createStorage(gpu, "rng", 16, Uint32Array.of(1234, 0, 0, 0));
  const s = { n, p: 0.2, stream: 1 };
  return [
    {
      name: "residual_forward",
      shape,
      dispatches: [await residualForward(gpu, { out, a, b }, n)],
      bytes: 12 * n,
    },
    { name: "add_in_place", shape, dispatches: [await addInPlace(gpu, { acc, inp: a }, n)], bytes: 12 * n },
    {
      name: "dropout_forward",
      shape,
      dispatches: [await dropoutForward(gpu, { out, inp: a, rng }, s)],
      bytes: 8 * n,
    },
    {
      name: "dropout_backward",
      shape,
      dispatches: [await dropoutBackward(gpu, { dinp: out, dout: a, rng }, s)],
      bytes: 8 * n,
    },
    {
      name: "residual_dropout_forward",
      shape,
      dispatches: [await residualDropoutForward(gpu, { out, a, b, rng }, s)],
      bytes: 12 * n,
    },
  ];
};
