/**
 * `deno task bench --profile [--large] [--iters N]`: per-kernel GPU time of one whole training step, from
 * timestamp queries, largest first, so the next optimisation target is always visible.
 *
 * Two measurements of the same recorded step (the trainer's step object, src/train/step.ts, built by
 * bench/step.ts):
 * - per-pass mode: every dispatch in its own compute pass with `timestampWrites`, all in one command
 *   buffer, grouped by kernel name. One pass per dispatch adds overhead (tens of us each on wgpu) and
 *   removes any overlap between neighbouring dispatches, so the per-pass sum exceeds the real step time;
 *   use it for the ranking and the shares, not as the step time.
 * - one-pass mode: the whole step as ONE compute pass (what the trainer submits): the real figure.
 * Also: the clears before the step (gradient arena, loss accumulator), the wall-clock time per step with
 * one submit per step back to back (CPU encoding included), the dispatch count, model FLOPs (matmuls and
 * attention) and the bytes each dispatch binds.
 *
 * Output: JSON lines on stdout (one "step" line, then one "kernel" line per kernel name, largest first),
 * a human-readable table on stderr.
 *
 * @module
 */
import type { Gpu } from "../src/gpu/device.ts";
import type { Precision } from "../src/model/config.ts";
import { builtKernels, encodeDispatches, type Resource, resourceBytes } from "../src/gpu/kernel.ts";
import type { TrainStep } from "../src/train/step.ts";
import { buildTrainingStep, CI_STEP, describeStep, SHAKESPEARE_STEP, type StepShape } from "./step.ts";

/** A training step plus, per dispatch, the storage bytes and the floats of each named binding it binds. */
export interface RecordedStep {
  /** The step. */
  readonly step: TrainStep;
  /** Its shape. */
  readonly shape: StepShape;
  /** Per dispatch (same order as `step.dispatches`): binding name -> bound bytes (storage only). */
  readonly bound: readonly Readonly<Record<string, number>>[];
}

/** One kernel name's share of the step, per-pass mode. */
export interface KernelTime {
  /** Kernel name (several dispatches of one name are summed). */
  kernel: string;
  /** Dispatches of this kernel per step. */
  count: number;
  /** GPU ms per step, summed over its dispatches (median over trials, per dispatch). */
  ms: number;
  /** Fraction of the per-pass sum. */
  share: number;
  /** Mean us per dispatch. */
  us_per_dispatch: number;
  /** Model FLOPs per step (matmuls and attention only; 0 for the rest). */
  flops: number;
  /** Bytes of storage bound per step (each bound range counted once: a lower bound of the traffic). */
  bytes: number;
  /** flops / time, when flops > 0. */
  gflops?: number;
  /** bytes / time. */
  gbps?: number;
}

/** The profile of one step. */
export interface StepProfile {
  /** describeStep of the shape. */
  shape: string;
  /** The adapter. */
  adapter: string;
  /** Dispatches per step. */
  dispatches: number;
  /** Per kernel name, largest time first. */
  kernels: KernelTime[];
  /** The whole step as one compute pass (median over trials): the real GPU time of a step. */
  one_pass_ms: number;
  /** Sum of the per-dispatch times in per-pass mode. */
  per_pass_sum_ms: number;
  /** Clearing the gradient arena and the loss accumulator before the pass. */
  clear_ms: number;
  /** Wall-clock ms per step over back-to-back one-submit steps (CPU encoding and submission included). */
  wall_ms: number;
  /** Tokens per step. */
  tokens: number;
  /** tokens / one_pass_ms. */
  tokens_per_s: number;
  /** Model FLOPs per step (matmuls + attention, FlashAttention's count). */
  flops: number;
  /** flops / one_pass_ms. */
  gflops: number;
  /** Storage bytes bound per step, summed over dispatches. */
  bytes: number;
  /** Trainable parameters. */
  params: number;
  /** Trials (medians are taken over them). */
  trials: number;
}

/** What the per-pass figures mean, printed with them. */
export const PER_PASS_NOTE =
  "per-pass mode: each dispatch in its own compute pass with timestamps; this adds per-pass overhead, " +
  "removes overlap and leaves out the gaps between dispatches, so its sum is not the step time; " +
  "use it to rank kernels; the real figure is one_pass_ms (the whole step as one pass)";

/**
 * Builds the training step for `shape` while recording what every bind group binds (by wrapping
 * `device.createBindGroup` for the duration of the build), so each dispatch's bytes and matmul sizes are
 * known without touching the kernels.
 */
export async function recordStep(gpu: Gpu, shape: StepShape): Promise<RecordedStep> {
  const device = gpu.device;
  const groups = new Map<GPUBindGroup, Map<number, number>>();
  const original = device.createBindGroup;
  const ownBefore = Object.hasOwn(device, "createBindGroup");
  (device as { createBindGroup: GPUDevice["createBindGroup"] }).createBindGroup = function (
    this: GPUDevice,
    desc: GPUBindGroupDescriptor,
  ): GPUBindGroup {
    const group = original.call(this, desc);
    const sizes = new Map<number, number>();
    for (const e of desc.entries) {
      const r = e.resource as Resource;
      const buffer = r instanceof GPUBuffer ? r : r.buffer;
      if (!(buffer instanceof GPUBuffer) || buffer.usage & GPUBufferUsage.UNIFORM) continue;
      sizes.set(e.binding, resourceBytes(r));
    }
    groups.set(group, sizes);
    return group;
  };
  let step: TrainStep;
  try {
    step = await buildTrainingStep(gpu, shape);
  } finally {
    if (ownBefore) (device as { createBindGroup: GPUDevice["createBindGroup"] }).createBindGroup = original;
    else delete (device as { createBindGroup?: unknown }).createBindGroup;
  }
  const names = new Map<string, Map<number, string>>();
  for (const k of await builtKernels(gpu)) {
    if (!names.has(k.name)) names.set(k.name, new Map(k.bindings.map((b) => [b.binding, b.name])));
  }
  const bound = step.dispatches.map((d) => {
    const sizes = groups.get(d.bindGroup);
    const byName = names.get(d.kernel);
    if (!sizes || !byName) throw new Error(`profile: bindings of '${d.kernel}' were not recorded`);
    const out: Record<string, number> = {};
    for (const [binding, bytes] of sizes) out[byName.get(binding) ?? `binding${binding}`] = bytes;
    return out;
  });
  return { step, shape, bound };
}

/**
 * Model FLOPs of one dispatch: matmuls 2·M·K·N = 2·sqrt(|A|·|B|·|C|) from the three bound matrices (any
 * of the three training forms), causal attention as FlashAttention counts it (forward F = 2·B·NH·T²·HS,
 * backward 2.5·F: 1.5·F in dk/dv, 1·F in dq, whether dq recomputes dS or reads it stored: `_ds`, with or
 * without dropout on the probabilities: `_dropout`, in either variant: `_cpu`), 0 for everything else.
 * Sums to {@linkcode stepFlops}.
 */
export function dispatchFlops(kernel: string, bound: Readonly<Record<string, number>>, s: StepShape): number {
  if (kernel.startsWith("matmul_")) {
    const mats = ["out", "dinp", "dweight", "inp", "weight", "dout"].filter((n) => n in bound);
    if (mats.length !== 3) return 0; // bias gradient, split reduction: no multiply-adds
    return 2 * Math.sqrt(mats.reduce((p, n) => p * (bound[n] / 4), 1));
  }
  const F = 2 * s.B * s.T * s.T * s.config.n_embd;
  const k = kernel.replace(/_ds$/, "").replace(/_dropout$/, "").replace(/_cpu$/, "");
  if (k === "attention_forward") return F;
  if (k === "attention_backward_dkdv") return 1.5 * F;
  if (k === "attention_backward_dq") return F;
  return 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function round(x: number, digits: number): number {
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}

/** Submits `enc`, resolving `count` timestamps of `qs`; returns them in ms relative to the first. */
async function submitTimed(gpu: Gpu, enc: GPUCommandEncoder, qs: GPUQuerySet, count: number) {
  const d = gpu.device;
  const resolve = d.createBuffer({
    size: 8 * count,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = d.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  enc.resolveQuerySet(qs, 0, count, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, 8 * count);
  d.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const t = new BigInt64Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  resolve.destroy();
  gpu.check();
  return Array.from(t, (x) => Number(x - t[0]) / 1e6);
}

/**
 * Profiles a recorded step: `trials` runs of each mode after one warm-up (medians), then `wallSteps`
 * back-to-back steps for the wall clock. Needs the `timestamp-query` feature.
 */
export async function profileStep(
  gpu: Gpu,
  rec: RecordedStep,
  opts: { trials?: number; wallSteps?: number } = {},
): Promise<StepProfile> {
  if (!gpu.features.timestamps) {
    throw new Error("profile: the adapter has no 'timestamp-query' feature; per-kernel times need it");
  }
  const trials = Math.max(1, opts.trials ?? 5), wallSteps = Math.max(1, opts.wallSteps ?? 10);
  const { step } = rec;
  const ds = step.dispatches, n = ds.length;
  const d = gpu.device;
  const maxQueries = 4096; // WebGPU's limit per query set
  if (2 * n > maxQueries) throw new Error(`profile: ${n} dispatches exceed ${maxQueries / 2} per query set`);
  const perPassQs = d.createQuerySet({ type: "timestamp", count: 2 * n });
  const onePassQs = d.createQuerySet({ type: "timestamp", count: 4 });

  const perPass = async (): Promise<number[]> => {
    const enc = d.createCommandEncoder({ label: "profile per-pass" });
    for (const b of step.clears) enc.clearBuffer(b);
    ds.forEach((x, i) => {
      const pass = enc.beginComputePass({
        label: x.kernel,
        timestampWrites: {
          querySet: perPassQs,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
      encodeDispatches(pass, [x]);
      pass.end();
    });
    const t = await submitTimed(gpu, enc, perPassQs, 2 * n);
    return ds.map((_, i) => t[2 * i + 1] - t[2 * i]);
  };
  const onePass = async (): Promise<{ step: number; clear: number }> => {
    const enc = d.createCommandEncoder({ label: "profile one-pass" });
    // An empty pass stamps the time before the clears, so they are timed too.
    enc.beginComputePass({
      timestampWrites: { querySet: onePassQs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    }).end();
    for (const b of step.clears) enc.clearBuffer(b);
    const pass = enc.beginComputePass({
      label: "step",
      timestampWrites: { querySet: onePassQs, beginningOfPassWriteIndex: 2, endOfPassWriteIndex: 3 },
    });
    encodeDispatches(pass, ds);
    pass.end();
    const t = await submitTimed(gpu, enc, onePassQs, 4);
    return { step: t[3] - t[2], clear: t[2] - t[1] };
  };

  await onePass(); // warm-up: first use of every pipeline, lazy allocations
  const perDispatch: number[][] = ds.map(() => []);
  const steps: number[] = [], clears: number[] = [];
  for (let t = 0; t < trials; t++) {
    (await perPass()).forEach((ms, i) => perDispatch[i].push(ms));
    const o = await onePass();
    steps.push(o.step);
    clears.push(o.clear);
  }
  perPassQs.destroy();
  onePassQs.destroy();

  // Wall clock: one submit per step, back to back, as a training loop without readbacks.
  const w0 = performance.now();
  for (let i = 0; i < wallSteps; i++) {
    const enc = d.createCommandEncoder({ label: "profile wall" });
    for (const b of step.clears) enc.clearBuffer(b);
    const pass = enc.beginComputePass({ label: "step" });
    encodeDispatches(pass, ds);
    pass.end();
    d.queue.submit([enc.finish()]);
  }
  await d.queue.onSubmittedWorkDone();
  const wallMs = (performance.now() - w0) / wallSteps;
  gpu.check();

  const groups = new Map<string, { count: number; ms: number; flops: number; bytes: number }>();
  ds.forEach((x, i) => {
    const g = groups.get(x.kernel) ?? { count: 0, ms: 0, flops: 0, bytes: 0 };
    g.count++;
    g.ms += median(perDispatch[i]);
    g.flops += dispatchFlops(x.kernel, rec.bound[i], rec.shape);
    g.bytes += Object.values(rec.bound[i]).reduce((a, b) => a + b, 0);
    groups.set(x.kernel, g);
  });
  const sum = [...groups.values()].reduce((a, g) => a + g.ms, 0);
  const kernels: KernelTime[] = [...groups.entries()].map(([kernel, g]) => {
    const k: KernelTime = {
      kernel,
      count: g.count,
      ms: round(g.ms, 4),
      share: round(sum > 0 ? g.ms / sum : 0, 4),
      us_per_dispatch: round(1000 * g.ms / g.count, 2),
      flops: Math.round(g.flops),
      bytes: g.bytes,
    };
    if (g.ms > 0 && g.flops > 0) k.gflops = round(g.flops / g.ms / 1e6, 2);
    if (g.ms > 0) k.gbps = round(g.bytes / g.ms / 1e6, 2);
    return k;
  }).sort((a, b) => b.ms - a.ms);
  const oneMs = median(steps);
  const flops = kernels.reduce((a, k) => a + k.flops, 0);
  return {
    shape: describeStep(rec.shape),
    adapter: gpu.description,
    dispatches: n,
    kernels,
    one_pass_ms: round(oneMs, 4),
    per_pass_sum_ms: round(sum, 4),
    clear_ms: round(median(clears), 4),
    wall_ms: round(wallMs, 4),
    tokens: step.tokens,
    tokens_per_s: Math.round(step.tokens / oneMs * 1e3),
    flops,
    gflops: round(flops / oneMs / 1e6, 2),
    bytes: kernels.reduce((a, k) => a + k.bytes, 0),
    params: step.params,
    trials,
  };
}

/** The profile as JSON lines: the "step" line, then one "kernel" line per kernel name, largest first. */
export function profileLines(p: StepProfile): string[] {
  const { kernels, ...summary } = p;
  return [
    JSON.stringify({ profile: "step", ...summary, note: PER_PASS_NOTE }),
    ...kernels.map((k) => JSON.stringify({ profile: "kernel", shape: p.shape, ...k })),
  ];
}

const fmt = (x: number | undefined, digits: number) => x === undefined ? "-" : x.toFixed(digits);

/** A human-readable table of the profile. */
export function formatProfile(p: StepProfile): string {
  const w = Math.max(24, ...p.kernels.map((k) => k.kernel.length));
  const row = (cols: string[]) =>
    cols[0].padEnd(w) + cols.slice(1).map((c, i) => c.padStart([5, 10, 7, 10, 10, 9][i])).join("");
  const lines = [
    `# profile: ${p.shape} on ${p.adapter}`,
    `# ${p.dispatches} dispatches/step, ${(p.params / 1e6).toFixed(2)}M parameters, ` +
    `model FLOPs ${(p.flops / 1e9).toFixed(2)} GFLOP/step, bound storage ${
      (p.bytes / 1e6).toFixed(1)
    } MB/step, ` +
    `${p.trials} trials (medians)`,
    `# ${PER_PASS_NOTE}`,
    row(["kernel", "n", "ms/step", "share", "us/disp", "GFLOP/s", "GB/s"]),
    ...p.kernels.map((k) =>
      row([
        k.kernel,
        String(k.count),
        fmt(k.ms, 3),
        `${(100 * k.share).toFixed(1)}%`,
        fmt(k.us_per_dispatch, 1),
        fmt(k.gflops, 1),
        fmt(k.gbps, 1),
      ])
    ),
    row(["sum, per-pass mode", String(p.dispatches), fmt(p.per_pass_sum_ms, 3), "100%", "", "", ""]),
    row(["WHOLE STEP, ONE PASS", String(p.dispatches), fmt(p.one_pass_ms, 3), "", "", fmt(p.gflops, 1), ""]),
    row(["clears before the pass", "", fmt(p.clear_ms, 3), "", "", "", ""]),
    row(["wall clock per step", "", fmt(p.wall_ms, 3), "", "", "", ""]),
    `# one pass: ${p.one_pass_ms.toFixed(3)} ms/step, ${p.tokens_per_s} tokens/s; ` +
    `one pass - per-pass sum = ${(p.one_pass_ms - p.per_pass_sum_ms).toFixed(3)} ms ` +
    `(${((p.one_pass_ms - p.per_pass_sum_ms) / p.dispatches * 1000).toFixed(1)} us/dispatch: in-pass gaps ` +
    `if positive, per-pass overhead if negative)`,
  ];
  return lines.join("\n");
}

/** One kernel name's storage traffic in a recorded step (no timing). */
export interface KernelBytes {
  /** Kernel name. */
  kernel: string;
  /** Dispatches of this kernel per step. */
  count: number;
  /** Bytes of storage bound per step (each bound range once: a lower bound of the traffic). */
  bytes: number;
}

/** Per-kernel bound bytes and dispatch counts of a recorded step, largest first; no GPU time needed. */
export function stepBytes(rec: RecordedStep): KernelBytes[] {
  const by = new Map<string, KernelBytes>();
  rec.step.dispatches.forEach((d, i) => {
    const k = by.get(d.kernel) ?? { kernel: d.kernel, count: 0, bytes: 0 };
    k.count++;
    k.bytes += Object.values(rec.bound[i]).reduce((a, b) => a + b, 0);
    by.set(d.kernel, k);
  });
  return [...by.values()].sort((a, b) => b.bytes - a.bytes);
}

/** Options of {@linkcode runProfile}. */
export interface ProfileOptions {
  /** The shakespeare_char step instead of the CI step. */
  large: boolean;
  /** Trials per mode (default 3 CI, 10 large). */
  trials?: number;
  /** Storage precision of the step (default float32). */
  dtype?: Precision;
  /** Only record the step and report bound bytes and dispatch counts per kernel (no timing). */
  bytesOnly?: boolean;
}

/**
 * Profiles the CI step (or the shakespeare_char step when `large`), printing JSON lines to stdout and the
 * table to stderr. With `bytesOnly`, prints per-kernel bound bytes and dispatch counts instead (a "bytes"
 * JSON line per kernel and a "step_bytes" total): what the step moves at least, without running it.
 */
export async function runProfile(gpu: Gpu, o: ProfileOptions): Promise<StepProfile | KernelBytes[]> {
  const shape = { ...(o.large ? SHAKESPEARE_STEP : CI_STEP), dtype: o.dtype };
  const rec = await recordStep(gpu, shape);
  if (o.bytesOnly) {
    const ks = stepBytes(rec);
    const total = ks.reduce((a, k) => a + k.bytes, 0);
    console.log(JSON.stringify({
      profile: "step_bytes",
      shape: describeStep(shape),
      dispatches: rec.step.dispatches.length,
      bytes: total,
    }));
    for (const k of ks) {
      console.log(JSON.stringify({ profile: "bytes", ...k, share: round(k.bytes / total, 4) }));
    }
    console.error(
      `${describeStep(shape)}: ${rec.step.dispatches.length} dispatches, ${
        (total / 2 ** 20).toFixed(1)
      } MiB bound`,
    );
    for (const k of ks) {
      console.error(
        `  ${k.kernel.padEnd(40)} x${String(k.count).padStart(3)}  ${
          (k.bytes / 2 ** 20).toFixed(1).padStart(8)
        } MiB  ${(100 * k.bytes / total).toFixed(1).padStart(5)}%`,
      );
    }
    return ks;
  }
  const p = await profileStep(gpu, rec, {
    trials: o.trials ?? (o.large ? 10 : 3),
    wallSteps: o.large ? 50 : 5,
  });
  for (const l of profileLines(p)) console.log(l);
  console.error(formatProfile(p));
  return p;
}
