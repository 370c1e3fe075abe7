import type { BenchBuilder } from "./harness.ts";
import { createStorage, uploadF16 } from "../src/gpu/buffers.ts";
import { geluBackward, geluForward } from "../src/kernels/gelu.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * GELU forward and backward over B*T*4C elements: memory-bound, reported in GB/s. Each runs in f32 and
 * with the mixed-precision model's storage types (forward inp and out f16; backward inp and dinp f16,
 * dout f32), counting 2 bytes per f16 value.
 */
export const build: BenchBuilder = async (gpu, large) => {
  const n = large ? 64 * 256 * 1536 : 4 * 64 * 256;
  const shape = `n=${n}`;
  const inp = createStorage(gpu, "inp", n * 4, new Rng(1).uniformArray(n, -4, 4));
  const dout = createStorage(gpu, "dout", n * 4, new Rng(2).uniformArray(n));
  const out = createStorage(gpu, "out", n * 4), dinp = createStorage(gpu, "dinp", n * 4);
  const inp16 = uploadF16(gpu, "inp16", new Rng(1).uniformArray(n, -4, 4));
  const out16 = createStorage(gpu, "out16", n * 2), dinp16 = createStorage(gpu, "dinp16", n * 2);
  return [
    { name: "gelu_forward", shape, dispatches: [await geluForward(gpu, { out, inp }, n)], bytes: 8 * n },
    {
      name: "gelu_backward",
      shape,
      dispatches: [await geluBackward(gpu, { dinp, inp, dout }, n)],
      bytes: 12 * n,
    },
    {
      name: "gelu_forward",
      shape: `${shape} inp=f16 out=f16`,
      dispatches: [await geluForward(gpu, { out: out16, inp: inp16 }, n, { inp: "f16", out: "f16" })],
      bytes: 4 * n,
    },
    {
      name: "gelu_backward",
      shape: `${shape} inp=f16 dout=f32 dinp=f16`,
      dispatches: [
        await geluBackward(gpu, { dinp: dinp16, inp: inp16, dout }, n, {
          inp: "f16",
          dout: "f32",
          dinp: "f16",
        }),
      ],
      bytes: 8 * n,
    },
  ];
};
