import { type BenchBuilder, comparison, timeCase } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { adamw, createLossScaler, gradNorm, gradNormScratchBytes } from "../src/kernels/optimizer.ts";
import { Rng } from "../src/util/rng.ts";

/** n floats in [0.001, 1): a random block of 64Ki values tiled (filling 124M values one by one is slow). */
function tiled(n: number): Float32Array {
  const block = new Rng(1).uniformArray(Math.min(n, 65536), 0.001, 1);
  const a = new Float32Array(n);
  a.set(block);
  for (let filled = block.length; filled < n; filled *= 2) {
    a.copyWithin(filled, 0, Math.min(filled, n - filled));
  }
  return a;
}

function buffers(gpu: Gpu, n: number) {
  const data = tiled(n);
  const mk = (label: string) => createStorage(gpu, label, 4 * n, data);
  return {
    params: mk("params"),
    grads: mk("grads"),
    m: mk("m"),
    v: mk("v"),
    stats: createStorage(gpu, "stats", 16, new Float32Array([0, 1, 0, 1])),
    scratch: createStorage(gpu, "scratch", gradNormScratchBytes(n)),
  };
}

/**
 * Optimizer over whole arenas, memory-bound, in GB/s: the global gradient norm (reads g: 4 bytes/element),
 * AdamW (reads p, g, m, v, writes p, m, v: 28 bytes/element) and both as one step (32 bytes/element); the
 * norm with dynamic loss scaling (mixed precision: unscale and scaler update in the finishing workgroup).
 * Large sizes: the shakespeare_char GPT (10.8M parameters) and GPT-2 small (124M). On llvmpipe, whose
 * defaults differ, also the other adapters' forms: scalar AdamW (`adamw_scalar`), the norm's partial sums
 * in workgroups of 256 (`grad_norm_wg256`).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const sizes = large ? [10_800_000, 124_439_808] : [1_000_000];
  const cases = [];
  for (const n of sizes) {
    const b = buffers(gpu, n);
    const shape = `n=${n}`;
    const norm = await gradNorm(gpu, b, { n, maxNorm: 1 });
    const scaled = await gradNorm(gpu, { ...b, scaler: createLossScaler(gpu) }, { n, maxNorm: 1 });
    const step = await adamw(gpu, b, adamwStep(n));
    cases.push(
      { name: "grad_norm", shape, dispatches: norm, bytes: 4 * n },
      { name: "grad_norm_scaled", shape, dispatches: scaled, bytes: 4 * n },
      { name: "adamw", shape, dispatches: [step], bytes: 28 * n },
      { name: "grad_norm+adamw", shape, dispatches: [...norm, step], bytes: 32 * n },
    );
    if (gpu.llvmpipe) {
      const scalar = await adamw(gpu, b, { ...adamwStep(n), variant: "scalar" });
      const wide = await gradNorm(gpu, b, { n, maxNorm: 1, threads: 256 });
      cases.push(
        { name: "adamw_scalar", shape, dispatches: [scalar], bytes: 28 * n },
        { name: "grad_norm_wg256", shape, dispatches: wide, bytes: 4 * n },
      );
    }
  }
  return cases;
};

/** One AdamW step's settings over `n` floats, decay on the first 99%. */
function adamwStep(n: number) {
  const decayEnd = 4 * Math.floor(0.99 * n / 4);
  return { n, decayEnd, lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step: 10 };
}

/**
 * `deno run --allow-read=. --allow-env bench/optimizer.ts [--iters N]`: AdamW's vec4 variant against the
 * scalar one, and the norm's partial sums in workgroups of 8 against 256 (the baselines), at the default and
 * peer models' parameter counts and 1M, timed in turn in one run; one Markdown table with the ratios.
 */
async function compareVariants(): Promise<void> {
  const { gpu, iters } = await comparison(20);
  console.log(
    "| n | AdamW scalar ms | vec4 ms | vec4 / scalar | norm, 256 threads ms | 8 threads ms | 8 / 256 |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const n of [110_592, 412_672, 1_000_000]) {
    const b = buffers(gpu, n);
    const time = async (variant: "scalar" | "vec4") =>
      (await timeCase(gpu, {
        name: `adamw_${variant}`,
        shape: `n=${n}`,
        dispatches: [await adamw(gpu, b, { ...adamwStep(n), variant })],
      }, iters)).ms;
    const norm = async (threads: 8 | 256) =>
      (await timeCase(gpu, {
        name: `grad_norm_${threads}`,
        shape: `n=${n}`,
        dispatches: await gradNorm(gpu, b, { n, maxNorm: 1, threads }),
      }, iters)).ms;
    const [a, v, w, t] = [await time("scalar"), await time("vec4"), await norm(256), await norm(8)];
    console.log(
      `| ${n} | ${a.toFixed(3)} | ${v.toFixed(3)} | ${(a / v).toFixed(2)} | ${w.toFixed(3)} | ${
        t.toFixed(3)
      } | ${(w / t).toFixed(2)} |`,
    );
  }
}

if (import.meta.main) await compareVariants();
