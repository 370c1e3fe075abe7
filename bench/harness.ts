/**
 * Benchmark harness: times a list of dispatches on the GPU with timestamp queries (wall clock around
 * `onSubmittedWorkDone` when the adapter lacks them) and prints one JSON line per case:
 * {"bench", "shape", "ms", "gflops"?, "gbps"?, "tokens_per_s"?, "timer"}.
 */
import { createStorage } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../src/gpu/kernel.ts";
import type { StorageType } from "../src/gpu/source.ts";
import { Rng } from "../src/util/rng.ts";

/** One benchmark case, built for the given device and size class. */
export interface BenchCase {
  /** Kernel or op name, e.g. "matmul_forward". */
  name: string;
  /** Human-readable shape, e.g. "M=512 K=512 N=512". */
  shape: string;
  /** The dispatches making one iteration. */
  dispatches: Dispatch[];
  /** Floating-point operations per iteration (for GFLOP/s). */
  flops?: number;
  /** Minimum bytes moved per iteration (for GB/s). */
  bytes?: number;
  /** Tokens processed per iteration (for tokens/s: a training step's B*T). */
  tokens?: number;
  /**
   * Buffers cleared before each iteration (a training step clears its gradients). With clears, each
   * iteration is its own compute pass after its clears, all in one command buffer, timed from the first
   * pass's start to the last one's end (so all clears but the first are timed).
   */
  clears?: readonly GPUBuffer[];
}

/** A benchmark module: builds its cases; `large` selects real-GPU sizes instead of CI sizes. */
export type BenchBuilder = (gpu: Gpu, large: boolean) => Promise<BenchCase[]>;

/** Result line printed as JSON. */
export interface BenchResult {
  bench: string;
  shape: string;
  ms: number;
  gflops?: number;
  gbps?: number;
  tokens_per_s?: number;
  timer: "timestamp" | "wall";
}

/**
 * Runs `c` `iters` times inside one compute pass per trial (one pass per iteration when `c.clears` is set);
 * returns the median ms per iteration.
 */
export async function timeCase(gpu: Gpu, c: BenchCase, iters: number, trials = 5): Promise<BenchResult> {
  const d = gpu.device;
  const useTs = gpu.features.timestamps;
  const qs = useTs ? d.createQuerySet({ type: "timestamp", count: 2 }) : null;
  const resolve = useTs
    ? d.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
    : null;
  const read = useTs
    ? d.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
    : null;
  const run = async (n: number): Promise<number> => {
    const enc = d.createCommandEncoder({ label: c.name });
    const passes = c.clears ? n : 1;
    for (let p = 0; p < passes; p++) {
      for (const b of c.clears ?? []) enc.clearBuffer(b);
      // Timestamps: the first pass's start and the last pass's end.
      const first = p === 0, last = p === passes - 1;
      const pass = enc.beginComputePass(
        qs && (first || last)
          ? {
            timestampWrites: {
              querySet: qs,
              ...(first ? { beginningOfPassWriteIndex: 0 } : {}),
              ...(last ? { endOfPassWriteIndex: 1 } : {}),
            },
          }
          : {},
      );
      for (let i = 0; i < n / passes; i++) encodeDispatches(pass, c.dispatches);
      pass.end();
    }
    if (qs) {
      enc.resolveQuerySet(qs, 0, 2, resolve!, 0);
      enc.copyBufferToBuffer(resolve!, 0, read!, 0, 16);
    }
    const t0 = performance.now();
    d.queue.submit([enc.finish()]);
    if (qs) {
      await read!.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(read!.getMappedRange().slice(0));
      read!.unmap();
      return Number(t[1] - t[0]) / 1e6;
    }
    await d.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await run(1); // warm-up: pipeline first use, lazy allocations
  gpu.check();
  const times: number[] = [];
  for (let t = 0; t < trials; t++) times.push((await run(iters)) / iters);
  gpu.check();
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const r: BenchResult = {
    bench: c.name,
    shape: c.shape,
    ms: round(ms, 4),
    timer: qs ? "timestamp" : "wall",
  };
  if (c.flops) r.gflops = round(c.flops / ms / 1e6, 3);
  if (c.bytes) r.gbps = round(c.bytes / ms / 1e6, 3);
  if (c.tokens) r.tokens_per_s = Math.round(c.tokens / ms * 1e3);
  qs?.destroy();
  resolve?.destroy();
  read?.destroy();
  return r;
}

function round(x: number, digits: number): number {
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}

/**
 * A storage buffer of `n` random values of `type` (f16: 2 bytes each), filled with one repeated block of
 * at most 2^20 values from Rng(seed), uniform in [-1, 1) or standard normal: cheap to make at any size.
 * The last odd f16 value (a half 4-byte word) stays zero.
 */
export function randomStorage(
  gpu: Gpu,
  label: string,
  n: number,
  seed: number,
  type: StorageType = "f32",
  dist: "uniform" | "normal" = "uniform",
): GPUBuffer {
  const bytes = type === "f16" ? 2 : 4;
  const buf = createStorage(gpu, label, n * bytes);
  const rng = new Rng(seed), len = Math.min(n, 1 << 20) & ~1; // even: writes are whole 4-byte words
  const values = dist === "normal" ? rng.normalArray(len) : rng.uniformArray(len);
  const block = type === "f16" ? Float16Array.from(values) : values;
  for (let off = 0; off < n; off += block.length) {
    const count = Math.min(block.length, n - off) & ~1;
    if (count > 0) gpu.device.queue.writeBuffer(buf, off * bytes, block as BufferSource, 0, count);
  }
  return buf;
}

/** Results as one Markdown table: kernel, shape, ms, GFLOP/s, GB/s, tokens/s (blank where not measured). */
export function resultsTable(results: readonly BenchResult[]): string {
  const num = (v: number | undefined, digits: number) => v === undefined ? "" : v.toFixed(digits);
  const rows = results.map((r) =>
    `| ${r.bench} | ${r.shape} | ${num(r.ms, 3)} | ${num(r.gflops, 2)} | ${num(r.gbps, 2)} | ${
      num(r.tokens_per_s, 0)
    } |`
  );
  return [
    "| kernel | shape | ms | GFLOP/s | GB/s | tokens/s |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
    ...rows,
  ]
    .join("\n");
}

/**
 * The start of a variant comparison script (`deno run ... bench/<kernel>.ts [--iters N]`): its `--iters`
 * (default `fallback`; anything but a positive integer exits 2 with one line) and the adapter, whose
 * description it prints above the table.
 */
export async function comparison(fallback: number): Promise<{ gpu: Gpu; iters: number }> {
  const i = Deno.args.indexOf("--iters");
  const iters = i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  if (!Number.isInteger(iters) || iters < 1) {
    console.error(`--iters must be a positive integer (got '${Deno.args[i + 1] ?? ""}')`);
    Deno.exit(2);
  }
  const gpu = await createGpu();
  console.log(`${gpu.description}\n`);
  return { gpu, iters };
}
