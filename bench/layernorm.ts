import { type BenchBuilder, type BenchCase, comparison, timeCase } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import {
  layernormBackward,
  layernormForward,
  layernormScratchBytes,
  type LayernormVariant,
} from "../src/kernels/layernorm.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * LayerNorm forward and backward (with bias; backward accumulating dinp as the model does) over N rows
 * of C channels: memory-bound, reported in GB/s of the minimum traffic (the scratch partials excluded).
 * The forward also runs with its out stored as f16 (the mixed-precision model's choice), 2 bytes a value.
 * On a software adapter at CI size, also both forms at the default `train` model's rows (`_teams`, `_cpu`).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const N = large ? 16384 : 512, C = 384;
  const shape = `N=${N} C=${C}`;
  const rng = new Rng(1);
  const inp = createStorage(gpu, "inp", N * C * 4, rng.normalArray(N * C));
  const dout = createStorage(gpu, "dout", N * C * 4, rng.normalArray(N * C));
  const weight = createStorage(gpu, "weight", C * 4, rng.uniformArray(C, 0.5, 1.5));
  const bias = createStorage(gpu, "bias", C * 4, rng.uniformArray(C));
  const out = createStorage(gpu, "out", N * C * 4), dinp = createStorage(gpu, "dinp", N * C * 4);
  const mean = createStorage(gpu, "mean", N * 4), rstd = createStorage(gpu, "rstd", N * 4);
  const dweight = createStorage(gpu, "dweight", C * 4), dbias = createStorage(gpu, "dbias", C * 4);
  const scratch = createStorage(gpu, "scratch", layernormScratchBytes({ N, C }));
  const fwd = await layernormForward(gpu, { out, mean, rstd, inp, weight, bias }, { N, C });
  const bwd = await layernormBackward(gpu, { dinp, dweight, dbias, dout, inp, weight, mean, rstd, scratch }, {
    N,
    C,
    accumulate: true,
  });
  // nanoGPT's bias=False variant (weight only), as shakespeare_char trains it.
  const fwdNoBias = await layernormForward(gpu, { out, mean, rstd, inp, weight }, { N, C });
  const bwdNoBias = await layernormBackward(gpu, { dinp, dweight, dout, inp, weight, mean, rstd, scratch }, {
    N,
    C,
    accumulate: true,
  });
  const out16 = createStorage(gpu, "out16", N * C * 2);
  const f16 = { N, C, types: { out: "f16" as const } };
  const fwd16 = await layernormForward(gpu, { out: out16, mean, rstd, inp, weight, bias }, f16);
  const fwdNoBias16 = await layernormForward(gpu, { out: out16, mean, rstd, inp, weight }, f16);
  const shape16 = `${shape} out=f16`;
  const forms: BenchCase[] = [];
  if (gpu.software && !large) {
    for (const form of ["cpu", "teams"] as const) forms.push(...await formCases(gpu, 1024, 64, form));
  }
  return [
    ...forms,
    // inp read, out written, mean and rstd written, weight and bias read.
    { name: "layernorm_forward", shape, dispatches: [fwd], bytes: 4 * (2 * N * C + 2 * N + 2 * C) },
    {
      name: "layernorm_forward",
      shape: shape16,
      dispatches: [fwd16],
      bytes: 4 * (N * C + 2 * N + 2 * C) + 2 * N * C,
    },
    // dout and inp read, dinp read and written, mean and rstd read, weight read, dweight and dbias updated.
    { name: "layernorm_backward", shape, dispatches: bwd, bytes: 4 * (4 * N * C + 2 * N + 5 * C) },
    { name: "layernorm_forward_nobias", shape, dispatches: [fwdNoBias], bytes: 4 * (2 * N * C + 2 * N + C) },
    {
      name: "layernorm_forward_nobias",
      shape: shape16,
      dispatches: [fwdNoBias16],
      bytes: 4 * (N * C + 2 * N + C) + 2 * N * C,
    },
    {
      name: "layernorm_backward_nobias",
      shape,
      dispatches: bwdNoBias,
      bytes: 4 * (4 * N * C + 2 * N + 3 * C),
    },
  ];
};

/** Forward and backward without bias (the default model's) in one form, named with it. */
async function formCases(gpu: Gpu, N: number, C: number, form: LayernormVariant): Promise<BenchCase[]> {
  const rng = new Rng(2);
  const inp = createStorage(gpu, "inp", N * C * 4, rng.normalArray(N * C));
  const dout = createStorage(gpu, "dout", N * C * 4, rng.normalArray(N * C));
  const weight = createStorage(gpu, "weight", C * 4, rng.uniformArray(C, 0.5, 1.5));
  const out = createStorage(gpu, "out", N * C * 4), dinp = createStorage(gpu, "dinp", N * C * 4);
  const mean = createStorage(gpu, "mean", N * 4), rstd = createStorage(gpu, "rstd", N * 4);
  const dweight = createStorage(gpu, "dweight", C * 4);
  const scratch = createStorage(gpu, "scratch", layernormScratchBytes({ N, C }));
  const fwd = await layernormForward(gpu, { out, mean, rstd, inp, weight }, { N, C }, { variant: form });
  const bwd = await layernormBackward(
    gpu,
    { dinp, dweight, dout, inp, weight, mean, rstd, scratch },
    { N, C, accumulate: true },
    { variant: form },
  );
  const shape = `N=${N} C=${C}`;
  return [
    {
      name: `layernorm_forward_nobias_${form}`,
      shape,
      dispatches: [fwd],
      bytes: 4 * (2 * N * C + 2 * N + C),
    },
    {
      name: `layernorm_backward_nobias_${form}`,
      shape,
      dispatches: bwd,
      bytes: 4 * (4 * N * C + 2 * N + 3 * C),
    },
  ];
}

/**
 * `deno run --allow-read=. --allow-env bench/layernorm.ts [--iters N]`: the cpu form against the teams form
 * (the baseline) on this adapter at the default, peer and shakespeare_char models' row widths, all timed in
 * the same run, in turn per shape; one Markdown table with the ratios.
 */
async function compareForms(): Promise<void> {
  const { gpu, iters } = await comparison(10);
  console.log("| kernels | shape | teams ms | cpu ms | cpu / teams |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const [N, C] of [[1024, 64], [512, 128], [1024, 384]]) {
    const [teams, cpu] = [await formCases(gpu, N, C, "teams"), await formCases(gpu, N, C, "cpu")];
    for (let k = 0; k < teams.length; k++) {
      const a = await timeCase(gpu, teams[k], iters), b = await timeCase(gpu, cpu[k], iters);
      const name = teams[k].name.replace(/_teams$/, "");
      console.log(
        `| ${name} | ${a.shape} | ${a.ms.toFixed(3)} | ${b.ms.toFixed(3)} | ${(a.ms / b.ms).toFixed(2)} |`,
      );
    }
  }
}

if (import.meta.main) await compareForms();
