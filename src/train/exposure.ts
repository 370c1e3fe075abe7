/**
 * `deno task eval --exposure`: exposure bias made visible (He et al. 2019/2021; Arora et al. 2022).
 *
 * For W windows of T + 1 tokens of the data (T = block_size, evenly spaced through the text), two
 * passes per window:
 *   teacher-forced  inputs are the gold tokens x_0..x_{T-1};
 *   free-running    inputs 0..P-1 are gold (the prefix), inputs P..T-1 are the model's own continuation
 *                   (argmax or a temperature-1 sample of its next-token distribution, generated on the GPU
 *                   with the KV-cache rollout of src/train/modes.ts).
 * At every position t both passes score the same gold next token x_{t+1}:
 *   teacher_forced[t] = mean over windows of -log p_tf(x_{t+1} | x_0..x_t)
 *   free_running[t]   = mean over windows of -log p_fr(x_{t+1} | x_0..x_{P-1}, y_P..y_t)
 *   divergence[t]     = mean over windows of KL(p_tf || p_fr) = sum_v p_tf(v) (log p_tf(v) - log p_fr(v)),
 *                       the extra nats a model pays at position t for conditioning on its own history
 *                       instead of the gold one, measured against the teacher-forced distribution.
 * For t < P the two inputs agree, so free_running[t] = teacher_forced[t] and divergence[t] = 0. The means
 * are over the free positions t = P..T-1. Log-softmax, losses and KL are computed in float64 on the CPU
 * from the GPU logits.
 *
 * @module
 */
import { type Arena, readF32, readU32, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/kernel.ts";
import { linePlotSvg } from "../io/svg.ts";
import { loadModel, weightsToArena } from "../model/checkpoint.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT } from "../model/gpt.ts";
import { paramLayout } from "../model/params.ts";
import { hash3 } from "../reference/hash.ts";
import { readText } from "./data.ts";
import { checkPrefix, createRollout, type DecodeRule } from "./modes.ts";
import { InputError } from "../util/errors.ts";

/** Options of {@linkcode measureExposure}. */
export interface ExposureOptions {
  /** Gold prefix P, in [1, block_size); default max(1, floor(block_size / 4)). */
  prefix?: number;
  /** How the model continues: argmax (default) or sample (temperature 1). */
  decode?: DecodeRule;
  /** Windows of the data to measure (default 64; fewer if the data is short). */
  windows?: number;
  /** Windows per GPU batch (default 16, fewer when their logits would exceed one binding). */
  batchSize?: number;
  /** Seed of the sampling (default 1337). */
  seed?: number;
  /** A device to use (default: a new one). */
  gpu?: Gpu;
  /** Also return every window's free-running inputs (tests). */
  keepRollouts?: boolean;
}

/** The last stdout line of `deno task eval --exposure` (losses in nats). */
export interface ExposureResult {
  /** Gold prefix P. */
  prefix: number;
  /** Positions per window (block_size). */
  positions: number;
  /** Windows measured. */
  windows: number;
  /** How the free-running continuation was chosen. */
  decode: DecodeRule;
  /** Per position t: mean loss of the gold token t+1 given the gold inputs 0..t. */
  teacher_forced: number[];
  /** Per position t: mean loss of the gold token t+1 given P gold inputs and the model's own after them. */
  free_running: number[];
  /** Per position t: mean KL(p_teacher_forced || p_free_running) of the next-token distributions. */
  divergence: number[];
  /** Mean of teacher_forced over t = P..T-1. */
  teacher_forced_mean: number;
  /** Mean of free_running over t = P..T-1. */
  free_running_mean: number;
  /** Mean of divergence over t = P..T-1. */
  divergence_mean: number;
  /** What `divergence` is. */
  divergence_definition: string;
  /** With keepRollouts: each window's free-running inputs (T token ids). */
  rollouts?: number[][];
}

/**
 * Measures exposure bias of a model whose parameters are `params` (a GPU arena in the nanoGPT layout,
 * copied, or a host array in that layout) on token ids `ids`.
 */
export async function measureExposure(
  config: GPTConfig,
  params: Arena | Float32Array,
  ids: Uint32Array,
  opts: ExposureOptions = {},
): Promise<ExposureResult> {
  const T = config.block_size, V = config.vocab_size;
  if (T < 2) throw new InputError(`exposure: block_size ${T} leaves no room for a free-running continuation`);
  const P = opts.prefix ?? Math.max(1, Math.floor(T / 4));
  checkPrefix(P, T);
  const decode = opts.decode ?? "argmax";
  if (decode !== "argmax" && decode !== "sample") {
    throw new InputError(`--fr-decode must be argmax or sample (got ${decode})`);
  }
  if (ids.length < T + 1) {
    throw new InputError(`data: ${ids.length} tokens, fewer than block_size+1 = ${T + 1} for one window`);
  }
  const wantW = opts.windows ?? 64;
  if (!Number.isInteger(wantW) || wantW < 1) {
    throw new InputError(`--windows must be a positive integer (got ${wantW})`);
  }
  const maxW = Math.floor((ids.length - 1) / T);
  const W = Math.min(wantW, maxW);
  const offsets = Array.from(
    { length: W },
    (_, k) => W === 1 ? 0 : Math.floor(k * (ids.length - T - 1) / (W - 1)),
  );
  if (opts.batchSize !== undefined && !(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) {
    throw new InputError(`--batch-size must be a positive integer (got ${opts.batchSize})`);
  }
  const seed = opts.seed ?? 1337;

  const gpu = opts.gpu ?? await createGpu();
  // Every row's logits come back whole, so by default a batch holds as many windows (up to 16) as one
  // binding of logits [B*T, V] allows: a large vocabulary gets smaller batches rather than a refusal.
  const bindable = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const B = Math.min(opts.batchSize ?? Math.max(1, Math.min(16, Math.floor(bindable / (T * V * 4)))), W);
  // Forward only (no dS buffer); every row's logits are read back (no head chunks).
  const model = await GPT.create(gpu, config, { B, T, storedDs: false, headRows: B * T });
  const dev = gpu.device;
  if (params instanceof Float32Array) writeArray(gpu, model.params.buffer, params);
  else {
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(params.buffer, 0, model.params.buffer, 0, model.params.layout.totalFloats * 4);
    dev.queue.submit([enc.finish()]);
  }
  const rollout = await createRollout(gpu, config, model.params, model, { B, T, prefix: P, decode });

  const tf = new Float64Array(T), fr = new Float64Array(T), kl = new Float64Array(T);
  const rollouts: number[][] = [];
  for (let first = 0; first < W; first += B) {
    const rows = Math.min(B, W - first);
    const tok = new Uint32Array(B * T), tgt = new Uint32Array(B * T);
    for (let b = 0; b < B; b++) {
      const o = offsets[first + Math.min(b, rows - 1)]; // spare rows repeat the last window, unscored
      tok.set(ids.subarray(o, o + T), b * T);
      tgt.set(ids.subarray(o + 1, o + T + 1), b * T);
    }
    const run = async (withRollout: boolean) => {
      writeArray(gpu, model.tokens, tok);
      writeArray(gpu, model.targets, tgt);
      writeArray(gpu, model.rng, Uint32Array.of(hash3(seed, first, 0), 0, 0, 0));
      const enc = dev.createCommandEncoder({ label: "exposure" });
      const pass = enc.beginComputePass({ label: "exposure" });
      encodeDispatches(pass, withRollout ? [...rollout.dispatches, ...model.forwardEval] : model.forwardEval);
      pass.end();
      dev.queue.submit([enc.finish()]);
      return await readF32(gpu, model.logits);
    };
    const lt = await run(false);
    const lf = await run(true);
    const inputs = await readU32(gpu, model.tokens);
    for (let b = 0; b < rows; b++) {
      if (opts.keepRollouts) rollouts.push(Array.from(inputs.subarray(b * T, (b + 1) * T)));
      for (let t = 0; t < T; t++) {
        const r = (b * T + t) * V;
        const a = logSoftmax(lt, r, V), f = logSoftmax(lf, r, V);
        const y = tgt[b * T + t];
        tf[t] -= a[y];
        fr[t] -= f[y];
        let d = 0;
        for (let v = 0; v < V; v++) d += Math.exp(a[v]) * (a[v] - f[v]);
        kl[t] += Math.max(0, d);
      }
    }
  }
  gpu.check();
  const per = (x: Float64Array) => Array.from(x, (v) => v / W);
  const mean = (x: number[]) => x.slice(P).reduce((s, v) => s + v, 0) / (T - P);
  const r: ExposureResult = {
    prefix: P,
    positions: T,
    windows: W,
    decode,
    teacher_forced: per(tf),
    free_running: per(fr),
    divergence: per(kl),
    teacher_forced_mean: 0,
    free_running_mean: 0,
    divergence_mean: 0,
    divergence_definition: "KL(p_teacher_forced || p_free_running) of the next-token distributions, nats",
  };
  r.teacher_forced_mean = mean(r.teacher_forced);
  r.free_running_mean = mean(r.free_running);
  r.divergence_mean = mean(r.divergence);
  if (opts.keepRollouts) r.rollouts = rollouts;
  return r;
}

/** log softmax of logits[o .. o + V) in float64. */
function logSoftmax(logits: Float32Array, o: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[o + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[o + v] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = logits[o + v] - lse;
  return out;
}

/** Measures the checkpoint at `path` on the text file `data` (see {@linkcode measureExposure}). */
export async function exposureCheckpoint(
  path: string,
  data: string,
  opts: ExposureOptions = {},
): Promise<ExposureResult> {
  const ck = await loadModel(path);
  if (opts.prefix !== undefined) checkPrefix(opts.prefix, ck.config.block_size);
  const text = await readText(data, "data");
  let ids: Uint32Array;
  try {
    ids = ck.tokenizer.encode(text);
  } catch (e) {
    throw new InputError(`data: ${(e as Error).message}`);
  }
  const host = weightsToArena(ck.weights, paramLayout(ck.config).layout);
  return await measureExposure(ck.config, host, ids, opts);
}

/** The exposure curves as an SVG line plot: per-position losses of both passes and their divergence. */
export function exposurePlotSvg(r: ExposureResult, title = "Exposure bias"): string {
  const pts = (a: number[]) => a.map((y, t): [number, number] => [t, y]);
  return linePlotSvg({
    title: `${title} (gold prefix ${r.prefix}, ${r.windows} windows, ${r.decode})`,
    xLabel: "position t (input index; scores the gold token t+1)",
    yLabel: "nats",
    series: [
      { name: "teacher-forced loss", points: pts(r.teacher_forced) },
      { name: "free-running loss", points: pts(r.free_running) },
      { name: "KL(tf || fr)", points: pts(r.divergence), dashed: true },
    ],
  });
}
