import type { BenchBuilder, BenchCase } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import {
  matmulBackwardBias,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulBackwardWeightScratchBytes,
  matmulBackwardWeightSplit,
  matmulForward,
} from "../src/kernels/matmul.ts";
import { Rng } from "../src/util/rng.ts";

/** A buffer of `n` floats filled with a repeated random block (cheap to make even at 8192^2). */
function randomBuffer(gpu: Gpu, label: string, n: number, seed: number): GPUBuffer {
  const buf = createStorage(gpu, label, n * 4);
  const block = new Rng(seed).uniformArray(Math.min(n, 1 << 20));
  for (let off = 0; off < n; off += block.length) {
    gpu.device.queue.writeBuffer(buf, off * 4, block as BufferSource, 0, Math.min(block.length, n - off));
  }
  return buf;
}

type Form =
  | "forward"
  | "forward_bias"
  | "backward_input"
  | "backward_weight"
  | "backward_weight_split"
  | "backward_bias";

async function matmulCase(gpu: Gpu, form: Form, M: number, K: number, N: number): Promise<BenchCase> {
  const shape = form === "backward_bias" ? `M=${M} N=${N}` : `M=${M} K=${K} N=${N}`;
  const name = `matmul_${form}`;
  const flops = 2 * M * K * N;
  const s = { M, K, N };
  if (form === "forward" || form === "forward_bias") {
    const inp = randomBuffer(gpu, "inp", M * K, 1), weight = randomBuffer(gpu, "weight", N * K, 2);
    const out = createStorage(gpu, "out", M * N * 4);
    const bias = form === "forward_bias" ? { bias: randomBuffer(gpu, "bias", N, 3) } : {};
    return { name, shape, flops, dispatches: [await matmulForward(gpu, { out, inp, weight, ...bias }, s)] };
  }
  const dout = randomBuffer(gpu, "dout", M * N, 4);
  if (form === "backward_input") {
    const weight = randomBuffer(gpu, "weight", N * K, 2), dinp = createStorage(gpu, "dinp", M * K * 4);
    return { name, shape, flops, dispatches: [await matmulBackwardInput(gpu, { dinp, dout, weight }, s)] };
  }
  if (form === "backward_weight") {
    const inp = randomBuffer(gpu, "inp", M * K, 1), dweight = createStorage(gpu, "dweight", N * K * 4);
    return { name, shape, flops, dispatches: [await matmulBackwardWeight(gpu, { dweight, dout, inp }, s)] };
  }
  if (form === "backward_weight_split") {
    const inp = randomBuffer(gpu, "inp", M * K, 1), dweight = createStorage(gpu, "dweight", N * K * 4);
    const scratch = createStorage(gpu, "scratch", Math.max(4, matmulBackwardWeightScratchBytes(s)));
    const dispatches = await matmulBackwardWeightSplit(gpu, { dweight, dout, inp, scratch }, s);
    return { name: `${name}${dispatches.length > 1 ? "" : "(unsplit)"}`, shape, flops, dispatches };
  }
  const dbias = createStorage(gpu, "dbias", N * 4);
  return {
    name,
    shape,
    bytes: 4 * (M * N + 2 * N),
    dispatches: [await matmulBackwardBias(gpu, { dbias, dout }, { M, N })],
  };
}

/**
 * Matmul forward and backward forms, in GFLOP/s (bias backward in GB/s). CI: 256^3 and a small model
 * shape. Large: square 4096^3 and 8192^3 forward, and the shakespeare_char model shapes (B*T = 16384,
 * C = 384): qkv (N = 3C), MLP up (N = 4C) and down (K = 4C) projections, the tied 65-token head; the
 * weight gradient both as one dispatch and split along M ({@linkcode matmulBackwardWeightSplit}).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const cases: [Form, number, number, number][] = large
    ? [
      ["forward", 4096, 4096, 4096],
      ["forward", 8192, 8192, 8192],
      ["forward", 16384, 384, 1152],
      ["forward_bias", 16384, 384, 1152],
      ["forward", 16384, 1536, 384],
      ["forward", 16384, 384, 65],
      ["backward_input", 16384, 384, 1536],
      ["backward_input", 16384, 384, 1152],
      ["backward_weight", 16384, 384, 1536],
      ["backward_weight", 16384, 384, 1152],
      ["backward_weight", 16384, 384, 384],
      ["backward_weight", 16384, 384, 65],
      ["backward_weight_split", 16384, 384, 1536],
      ["backward_weight_split", 16384, 384, 1152],
      ["backward_weight_split", 16384, 1536, 384],
      ["backward_weight_split", 16384, 384, 384],
      ["backward_weight_split", 16384, 384, 65],
      ["backward_bias", 16384, 0, 1536],
    ]
    : [
      ["forward", 256, 256, 256],
      ["forward_bias", 256, 256, 256],
      ["backward_input", 256, 256, 256],
      ["backward_weight", 256, 256, 256],
      ["forward", 256, 64, 192],
      ["backward_input", 256, 64, 192],
      ["backward_weight", 256, 64, 192],
      ["backward_weight", 1024, 64, 192],
      ["backward_weight_split", 1024, 64, 192],
      ["backward_bias", 1024, 0, 192],
    ];
  const out: BenchCase[] = [];
  for (const [form, M, K, N] of cases) out.push(await matmulCase(gpu, form, M, K, N));
  return out;
};
