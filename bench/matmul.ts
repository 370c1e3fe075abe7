import { type BenchBuilder, type BenchCase, comparison, randomStorage, timeCase } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import {
  matmulBackwardBias,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulBackwardWeightScratchBytes,
  matmulBackwardWeightSplit,
  matmulForward,
  type MatmulOptions,
  type MatmulVariant,
} from "../src/kernels/matmul.ts";

/** Storage and arithmetic of a case: f32; f16 storage with f32 math; f16 storage with f16 math per tile. */
type Precision = "f32" | "f16" | "f16math";

type Form =
  | "forward"
  | "forward_bias"
  | "forward_gelu"
  | "forward_gelu_bias"
  | "forward_residual"
  | "forward_residual_bias"
  | "forward_residual_dropout"
  | "forward_residual_dropout_bias"
  | "backward_input_gelu"
  | "backward_input"
  | "backward_weight"
  | "backward_weight_split"
  | "backward_bias";

async function matmulCase(
  gpu: Gpu,
  form: Form,
  M: number,
  K: number,
  N: number,
  p: Precision = "f32",
  tile?: 64,
  variant?: MatmulVariant,
): Promise<BenchCase> {
  const shape = form === "backward_bias" ? `M=${M} N=${N}` : `M=${M} K=${K} N=${N}`;
  const name = `matmul_${form}${p === "f32" ? "" : `_${p}`}${tile ? `_t${tile}` : ""}${
    variant ? `_${variant}` : ""
  }`;
  const flops = 2 * M * K * N;
  const s = { M, K, N };
  // f16 cases: every operand and the written output (out, dinp) stored as f16, as the model's f16 path.
  const h = p !== "f32";
  const o: MatmulOptions = {
    ...(tile ? { tile } : {}),
    ...(variant ? { variant } : {}),
    ...(h
      ? {
        types: { inp: "f16", weight: "f16", dout: "f16", out: "f16" } as const,
        math: p === "f16math" ? "f16" as const : "f32" as const,
      }
      : {}),
  };
  const bytes = h ? 2 : 4, st = h ? "f16" as const : "f32" as const;
  if (form.startsWith("forward")) {
    const inp = randomStorage(gpu, "inp", M * K, 1, st),
      weight = randomStorage(gpu, "weight", N * K, 2, st);
    const bias = form.endsWith("_bias") ? { bias: randomStorage(gpu, "bias", N, 3) } : {};
    const act = form.includes("gelu") ? { act: createStorage(gpu, "act", M * N * bytes) } : {};
    // The fused residual reads and writes the f32 residual stream, whatever the operands' type.
    const residual = form.includes("residual");
    const resid = residual ? { resid: randomStorage(gpu, "resid", M * N, 6) } : {};
    const drop = form.includes("dropout");
    const rng = drop ? { rng: createStorage(gpu, "rng", 16, new Uint32Array([42, 0, 0, 0])) } : {};
    const out = createStorage(gpu, "out", M * N * (residual ? 4 : bytes));
    const oo = residual && h ? { ...o, types: { ...o.types, out: "f32" as const } } : o;
    return {
      name,
      shape,
      flops,
      dispatches: [
        await matmulForward(gpu, { out, inp, weight, ...bias, ...act, ...resid, ...rng }, {
          ...s,
          ...(drop ? { dropout: { p: 0.2, stream: 1 } } : {}),
        }, oo),
      ],
    };
  }
  const dout = randomStorage(gpu, "dout", M * N, 4, st);
  if (form === "backward_input" || form === "backward_input_gelu") {
    const weight = randomStorage(gpu, "weight", N * K, 2, st),
      dinp = createStorage(gpu, "dinp", M * K * bytes);
    const pre = form === "backward_input_gelu" ? { pre: randomStorage(gpu, "pre", M * K, 5, st) } : {};
    return {
      name,
      shape,
      flops,
      dispatches: [await matmulBackwardInput(gpu, { dinp, dout, weight, ...pre }, s, o)],
    };
  }
  if (form === "backward_weight") {
    const inp = randomStorage(gpu, "inp", M * K, 1, st),
      dweight = createStorage(gpu, "dweight", N * K * 4);
    return {
      name,
      shape,
      flops,
      dispatches: [await matmulBackwardWeight(gpu, { dweight, dout, inp }, s, o)],
    };
  }
  if (form === "backward_weight_split") {
    const inp = randomStorage(gpu, "inp", M * K, 1, st),
      dweight = createStorage(gpu, "dweight", N * K * 4);
    const scratch = createStorage(gpu, "scratch", Math.max(4, matmulBackwardWeightScratchBytes(s)));
    const dispatches = await matmulBackwardWeightSplit(gpu, { dweight, dout, inp, scratch }, s, o);
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
 * Square products and the default model's shapes (B*T = 1024, C = 64, 4C = 256, 3C = 192, the 48-token
 * head of the built-in language and a 65-token one), timed in both variants on a CPU adapter (`_cpu`,
 * `_tiled`; bench/results/cpu_matmul.md).
 */
const CPU_CASES: [Form, number, number, number][] = [
  ["forward", 1024, 64, 64],
  ["backward_input", 1024, 64, 64],
  ["backward_weight", 1024, 64, 64],
  ["forward", 1024, 64, 48],
  ["backward_weight", 1024, 64, 48],
  ["forward", 512, 512, 512],
  ["forward", 1024, 1024, 1024],
  ["forward_bias", 1024, 64, 192],
  ["forward_gelu_bias", 1024, 64, 256],
  ["forward_residual_bias", 1024, 256, 64],
  ["forward_residual_dropout", 1024, 256, 64],
  ["forward_residual_dropout_bias", 1024, 256, 64],
  ["forward", 1024, 64, 65],
  ["backward_input", 1024, 64, 192],
  ["backward_input_gelu", 1024, 256, 64],
  ["backward_input", 1024, 64, 65],
  ["backward_input", 1024, 64, 256],
  ["backward_weight", 1024, 64, 192],
  ["backward_weight", 1024, 64, 256],
  ["forward_bias", 512, 128, 384],
  ["forward_gelu_bias", 512, 128, 512],
  ["backward_input_gelu", 512, 512, 128],
  ["backward_weight", 512, 128, 512],
  ["backward_weight", 1024, 256, 64],
  ["backward_weight", 1024, 64, 65],
];

/**
 * Matmul forward and backward forms, in GFLOP/s (bias backward in GB/s). CI: 256^3 and a small model
 * shape. Large: square 4096^3 and 8192^3 forward, and the shakespeare_char model shapes (B*T = 16384,
 * C = 384): qkv (N = 3C), MLP up (N = 4C, also with its fused GELU) and down (K = 4C, also adding into
 * the residual stream with and without dropout, and its input gradient with the fused GELU backward)
 * projections, the tied
 * 65-token head; the
 * weight gradient both as one dispatch and split along M ({@linkcode matmulBackwardWeightSplit}). Where the
 * adapter has shader-f16, the same products with f16 operands (`_f16`: f32 arithmetic; `_f16math`: f16
 * sums per 16-term tile) at 4096^3, 8192^3 and three model shapes (CI: 256^3 and one model shape). The
 * split weight gradients also with 64x64 tiles (`_t64`; the split's default is 128x128).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const cases: [Form, number, number, number][] = large
    ? [
      ["forward", 4096, 4096, 4096],
      ["forward", 8192, 8192, 8192],
      ["forward", 4096, 4097, 4096], // K odd: element-by-element loads (the "no cliff" check)
      ["forward", 4096, 4096, 4097], // N odd: element-by-element stores
      ["forward", 16384, 384, 1152],
      ["forward_bias", 16384, 384, 1152],
      ["forward", 16384, 1536, 384],
      ["forward_gelu", 16384, 384, 1536],
      ["forward_residual", 16384, 1536, 384],
      ["forward_residual_dropout", 16384, 1536, 384],
      ["forward", 16384, 384, 65],
      ["backward_input", 16384, 384, 1536],
      ["backward_input", 16384, 384, 1152],
      ["backward_input_gelu", 16384, 1536, 384],
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
      ["forward_gelu", 256, 64, 256],
      ["forward_gelu_bias", 256, 64, 256],
      ["forward_residual", 256, 256, 64],
      ["forward_residual_bias", 256, 256, 64],
      ["forward_residual_dropout", 256, 256, 64],
      ["forward_residual_dropout_bias", 256, 256, 64],
      ["backward_input", 256, 64, 192],
      ["backward_input_gelu", 256, 256, 64],
      ["backward_weight", 256, 64, 192],
      ["backward_weight", 1024, 64, 192],
      ["backward_weight_split", 1024, 64, 192],
      ["backward_bias", 1024, 0, 192],
    ];
  const out: BenchCase[] = [];
  for (const [form, M, K, N] of cases) out.push(await matmulCase(gpu, form, M, K, N));
  // A CPU adapter: its own variant (the default there) beside the GPU tiles, at the sizes it can run.
  if (gpu.software && !large) {
    for (const [form, M, K, N] of CPU_CASES) {
      for (const v of ["cpu", "tiled"] as const) {
        out.push(await matmulCase(gpu, form, M, K, N, "f32", undefined, v));
      }
    }
  }
  for (const [form, M, K, N] of cases) {
    if (form === "backward_weight_split") out.push(await matmulCase(gpu, form, M, K, N, "f32", 64));
  }
  if (!gpu.features.f16) return out;
  const halfCases: [Form, number, number, number][] = large
    ? [
      ["forward", 4096, 4096, 4096],
      ["forward", 8192, 8192, 8192],
      ["forward", 16384, 384, 1536],
      ["backward_input", 16384, 384, 1536],
      ["backward_weight_split", 16384, 384, 1152],
    ]
    : [["forward", 256, 256, 256], ["backward_weight_split", 1024, 64, 192]];
  for (const p of ["f16", "f16math"] as const) {
    for (const [form, M, K, N] of halfCases) out.push(await matmulCase(gpu, form, M, K, N, p));
  }
  return out;
};

/**
 * `deno run --allow-read=. --allow-env bench/matmul.ts [--iters N]`: the CPU variants against the GPU tiles
 * (the baseline) on this adapter, one table with their ratios, all timed in the same run, in turn per shape.
 */
async function compareVariants(): Promise<void> {
  const { gpu, iters } = await comparison(3);
  console.log(
    "| kernel | shape | tiled ms | cpu ms | cpu-wide ms | cpu GFLOP/s | cpu-wide GFLOP/s | cpu / tiled | " +
      "cpu-wide / cpu |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [form, M, K, N] of CPU_CASES) {
    const time = async (v: MatmulVariant) =>
      await timeCase(gpu, await matmulCase(gpu, form, M, K, N, "f32", undefined, v), iters);
    const [tiled, cpu, wide] = [await time("tiled"), await time("cpu"), await time("cpu-wide")];
    console.log(
      `| matmul_${form} | ${cpu.shape} | ${tiled.ms.toFixed(3)} | ${cpu.ms.toFixed(3)} | ${
        wide.ms.toFixed(3)
      } | ${cpu.gflops?.toFixed(2)} | ${wide.gflops?.toFixed(2)} | ${(tiled.ms / cpu.ms).toFixed(2)} | ${
        (cpu.ms / wide.ms).toFixed(2)
      } |`,
    );
  }
}

if (import.meta.main) await compareVariants();
