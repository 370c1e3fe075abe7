/**
 * `deno task bench --all [--large] [--iters N] [--out FILE] [names...]`: the whole benchmark run of one
 * adapter as one JSON file ({@linkcode AllResults}): the adapter's info, features and limits
 * (bench/adapter.ts), every benchmark module's lines (or the named modules'), and the profile of the
 * training step in float32 and, where the adapter has `shader-f16`, float16. With `--large` that is
 * matmul at 4096³, 8192³ and the shakespeare_char shapes, the shakespeare_char step and its profiles,
 * attention at T 1024: the run for a hardware GPU. The default file is
 * `bench/results/<adapter>.json`. The file is rewritten after each part, so a run that is stopped keeps
 * what it measured; a part that fails is recorded under `errors` and the run goes on. Each part's GPU
 * buffers are destroyed when it ends, so the run needs the memory of its largest part, not of all.
 *
 * @module
 */
import type { Gpu } from "../src/gpu/device.ts";
import type { Precision } from "../src/model/config.ts";
import { writeFileAtomic } from "../src/io/atomic.ts";
import { type AdapterReport, adapterReport } from "./adapter.ts";
import { type BenchBuilder, type BenchResult, timeCase } from "./harness.ts";
import { runProfile, type StepProfile } from "./profile.ts";

/** The file `--all` writes. */
export interface AllResults {
  /** The adapter: description, info, optional features and limits (null when it cannot be queried). */
  adapter: AdapterReport | null;
  /** A software adapter (lavapipe, SwiftShader): its figures are not a GPU's. */
  software: boolean;
  /** Real-GPU sizes (`--large`) or CI sizes. */
  large: boolean;
  /** Timed iterations per trial of each benchmark case. */
  iters: number;
  /** ISO time the run started. */
  date: string;
  /** Deno's version. */
  deno: string;
  /** The command-line arguments of the run. */
  args: string[];
  /** One line per benchmark case ({"bench", "shape", "ms", "gflops"?, "gbps"?, "tokens_per_s"?}). */
  benchmarks: BenchResult[];
  /** The training step's profile per storage precision (bench/profile.ts). */
  profiles: Partial<Record<Precision, StepProfile>>;
  /** Parts that failed: a benchmark module or a profile, and the error's first line. */
  errors: { part: string; error: string }[];
}

/** Options of {@linkcode benchAll}. */
export interface AllOptions {
  /** Real-GPU sizes. */
  large: boolean;
  /** Timed iterations per trial of each case. */
  iters: number;
  /** The benchmark modules to run, in order. */
  modules: Readonly<Record<string, BenchBuilder>>;
  /** Where to write the results (rewritten after each part). */
  out: string;
  /** Recorded in the file. */
  args?: string[];
  /** Profile trials (default: runProfile's). */
  trials?: number;
}

/** `bench/results/<adapter>.json`, the adapter's description reduced to lower-case words joined by `-`. */
export function defaultOut(description: string): string {
  const slug = description.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "adapter";
  return `bench/results/${slug}.json`;
}

/** Runs every part, printing benchmark and profile lines as they come; returns what it wrote to `o.out`. */
export async function benchAll(gpu: Gpu, o: AllOptions): Promise<AllResults> {
  const r: AllResults = {
    adapter: await adapterReport(),
    software: gpu.software,
    large: o.large,
    iters: o.iters,
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    args: o.args ?? [],
    benchmarks: [],
    profiles: {},
    errors: [],
  };
  const dir = o.out.includes("/") ? o.out.slice(0, o.out.lastIndexOf("/")) : "";
  if (dir) await Deno.mkdir(dir, { recursive: true });
  const save = () => writeFileAtomic(o.out, JSON.stringify(r, null, 2) + "\n");
  await save();
  const attempt = async (part: string, f: () => Promise<void>) => {
    try {
      await releasing(gpu, f);
    } catch (e) {
      const error = (e as Error).message.split("\n")[0];
      console.error(`bench --all: ${part} failed: ${error}`);
      r.errors.push({ part, error });
    }
    await save();
  };
  for (const [name, build] of Object.entries(o.modules)) {
    await attempt(name, async () => {
      for (const c of await build(gpu, o.large)) {
        const line = await timeCase(gpu, c, o.iters);
        console.log(JSON.stringify(line));
        r.benchmarks.push(line);
      }
    });
  }
  const dtypes: Precision[] = gpu.features.f16 ? ["float32", "float16"] : ["float32"];
  for (const dtype of dtypes) {
    await attempt(`profile ${dtype}`, async () => {
      r.profiles[dtype] = await runProfile(gpu, { large: o.large, dtype, trials: o.trials }) as StepProfile;
    });
  }
  return r;
}

/** Runs `f`, then destroys every GPU buffer created while it ran. */
async function releasing(gpu: Gpu, f: () => Promise<void>): Promise<void> {
  const device = gpu.device as { createBuffer: GPUDevice["createBuffer"] };
  const original = device.createBuffer, own = Object.hasOwn(device, "createBuffer");
  const made: GPUBuffer[] = [];
  device.createBuffer = function (this: GPUDevice, d: GPUBufferDescriptor): GPUBuffer {
    const b = original.call(this, d);
    made.push(b);
    return b;
  };
  try {
    await f();
  } finally {
    if (own) device.createBuffer = original;
    else delete (device as { createBuffer?: unknown }).createBuffer;
    await gpu.device.queue.onSubmittedWorkDone();
    for (const b of made) b.destroy();
  }
}
