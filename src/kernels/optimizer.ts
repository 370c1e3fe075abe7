/**
 * Optimizer dispatchers over whole arenas: the global gradient norm with its clipping scale (two dispatches,
 * a deterministic two-stage reduction; one more per extra buffer of an arena spread over several) and AdamW
 * (one dispatch per buffer), as in shaders/optimizer.wgsl.
 *
 * Per training step, in the step's one compute pass and after the backward pass:
 * `...await gradNorm(...)` then `await adamw(...)`, with `adamw`'s dispatch rewritten every step by
 * `dispatch.update(adamwUniforms({ lr, beta1, beta2, step }))` before the submission. The stats buffer
 * (4 floats: norm, gradient multiplier, skipped flag, loss scale used) stays on the GPU; AdamW reads the
 * multiplier and the flag from it, and the trainer may copy it out asynchronously for logging.
 *
 * Mixed precision (dynamic loss scaling, as torch.cuda.amp.GradScaler): pass `scaler` to
 * {@linkcode gradNorm}; see {@linkcode createLossScaler}.
 *
 * @module
 */
import source from "../../shaders/optimizer.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { GpuError } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource, resourceBytes } from "../gpu/kernel.ts";

const WG = 256;
/** At most this many partial sums; each stage-1 thread then loops over n / (MAX_PARTS * WG) elements. */
const MAX_PARTS = 1024;
/** Floats of the stats buffer: [norm, gradient multiplier, skipped, loss scale]. */
export const STATS_FLOATS = 4;

/** Dynamic loss scaling defaults, as torch.cuda.amp.GradScaler: initial scale 2^16, doubled after 2000 good steps. */
export const LOSS_SCALE_INIT = 65536, LOSS_SCALE_GROWTH_INTERVAL = 2000;

/** One buffer's stage-1 reduction: its floats, its partial sums and the scratch index of the first. */
export interface PartialSums {
  /** Floats of the buffer. */
  n: number;
  /** Stage-1 workgroups (= partial sums), fixed by n alone. */
  parts: number;
  /** Index of its first partial sum among all the buffers' (the earlier buffers' come first). */
  part0: number;
}

/**
 * The stage-1 partial sums of a two-stage reduction over one buffer of `n` floats, or over buffers of
 * `n[k]` floats each (an arena spread over several), laid out one buffer after another in the scratch.
 * Shared with src/kernels/gradstats.ts, whose shader reduces the same way.
 */
export function partialSums(n: number | readonly number[]): PartialSums[] {
  let part0 = 0;
  return (typeof n === "number" ? [n] : n).map((x) => {
    const parts = Math.max(1, Math.min(MAX_PARTS, Math.ceil(x / (4 * WG))));
    part0 += parts;
    return { n: x, parts, part0: part0 - parts };
  });
}

/** The number of partial sums of all `sums` together. */
export function totalParts(sums: readonly PartialSums[]): number {
  return sums.reduce((s, p) => s + p.parts, 0);
}

/** Uniform members the norm entry points do not read, zeroed (one Dims struct serves the whole file). */
const ADAMW_ZERO = {
  decay_end: 0,
  lr: 0,
  beta1: 0,
  beta2: 0,
  one_minus_beta1: 0,
  one_minus_beta2: 0,
  eps: 0,
  weight_decay: 0,
  bc1: 0,
  bc2: 0,
};

function checkSize(kernel: string, what: string, r: Resource, bytes: number): void {
  const have = resourceBytes(r);
  if (have < bytes) throw new GpuError(kernel, `'${what}' holds ${have} bytes, needs ${bytes}`);
}

function checkN(kernel: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new GpuError(kernel, `n = ${n} is not a u32`);
}

/**
 * Bytes of the scratch buffer {@linkcode gradNorm} needs for an arena of `n` floats, or of buffers of `n[k]`
 * floats each (one f32 partial sum per stage-1 workgroup, at most 1024 of them a buffer: 4 KiB).
 */
export function gradNormScratchBytes(n: number | readonly number[]): number {
  return 4 * totalParts(partialSums(n));
}

/**
 * Global L2 norm of `grads[0..n)` and the clipping scale, in two dispatches (run them in this order, in the
 * same pass): partial sums of squares into `scratch` (at least {@linkcode gradNormScratchBytes}(n) bytes),
 * then one workgroup writing `stats` (at least 4 floats): `[norm, multiplier, skipped, loss scale]` with
 * `multiplier = (maxNorm > 0 && norm > maxNorm) ? maxNorm / (norm + 1e-6) : 1`, skipped 0 and loss scale 1.
 * The order of the sums is fixed by n, so the result is bitwise reproducible. A non-finite norm is stored as
 * is and its multiplier is 1. `maxNorm` 0 disables clipping (the norm is still computed).
 *
 * An arena spread over several buffers: `grads` lists them and `n` their float counts; one partial-sum
 * dispatch per buffer, then the one finish over all their partial sums (the norm of the whole arena).
 *
 * With `scaler` (2 floats: loss scale S, good steps; {@linkcode createLossScaler}), the gradients are taken to
 * be S times the true ones: the norm is unscaled, `multiplier = clip / S`, and S is updated for the next
 * step: halved with the step skipped (skipped = 1, AdamW does nothing) when the norm is not finite, doubled
 * after `growthInterval` finite steps in a row.
 *
 * `threads`: threads per workgroup of the partial sums, 256 by default, 8 on Mesa's llvmpipe, where each
 * level of a workgroup's reduction tree is a barrier switching through all its SIMD groups (measured 4-5
 * times faster at 0.1M-1M floats: bench/results/cpu_elementwise.md). The same partial-sum layout either way;
 * the order of the sums within each partial differs.
 */
export async function gradNorm(
  gpu: Gpu,
  b: { stats: Resource; grads: Resource | readonly Resource[]; scratch: Resource; scaler?: Resource },
  s: { n: number | readonly number[]; maxNorm: number; growthInterval?: number; threads?: 8 | 256 },
): Promise<Dispatch[]> {
  const sums = partialSums(s.n), grads = Array.isArray(b.grads) ? b.grads : [b.grads as Resource];
  if (grads.length !== sums.length) {
    throw new GpuError("grad_norm", `${grads.length} gradient buffers but ${sums.length} sizes`);
  }
  if (!(s.maxNorm >= 0)) throw new GpuError("grad_norm", `maxNorm = ${s.maxNorm} must be >= 0`);
  const growth = s.growthInterval ?? LOSS_SCALE_GROWTH_INTERVAL;
  if (!Number.isInteger(growth) || growth < 1) {
    throw new GpuError("grad_norm", `growthInterval = ${growth} must be a positive integer`);
  }
  sums.forEach(({ n }, k) => {
    checkN("grad_norm", n);
    checkSize("grad_norm", "grads", grads[k], 4 * n);
  });
  checkSize("grad_norm", "scratch", b.scratch, gradNormScratchBytes(s.n));
  checkSize("grad_norm", "stats", b.stats, 4 * STATS_FLOATS);
  if (b.scaler) checkSize("grad_norm", "scaler", b.scaler, 8);
  const threads = s.threads ?? (gpu.llvmpipe ? 8 : WG);
  if (threads !== 8 && threads !== WG) {
    throw new GpuError("grad_norm", `threads must be 8 or 256 (got ${threads})`);
  }
  const norm = { max_norm: s.maxNorm, ...ADAMW_ZERO, growth_interval: growth };
  const finishEntry = b.scaler ? "grad_norm_finish_scaled" : "grad_norm_finish";
  const partialName = threads === WG ? "grad_norm_partial" : `grad_norm_partial_wg${threads}`;
  const [partial, finish] = await Promise.all([
    getKernel(gpu, {
      name: partialName,
      source,
      entryPoint: "grad_norm_partial",
      constants: { WG: threads },
    }),
    getKernel(gpu, { name: finishEntry, source, entryPoint: finishEntry, constants: { WG } }),
  ]);
  const out = sums.map((p, k) =>
    partial.dispatch({ scratch: b.scratch, grads: grads[k] }, { ...p, ...norm }, [p.parts])
  );
  const finishBindings: Record<string, Resource> = { stats: b.stats, scratch: b.scratch };
  if (b.scaler) finishBindings.scaler = b.scaler;
  const n = sums.reduce((a, p) => a + p.n, 0);
  out.push(finish.dispatch(finishBindings, { n, parts: totalParts(sums), part0: 0, ...norm }, [1]));
  return out;
}

/**
 * A loss scaler buffer for mixed-precision training: 2 f32 values, [loss scale S, finite steps since S last
 * changed], starting at [`init`, 0] (default 2^16). The loss gradient is multiplied by S
 * (crossEntropyForwardBackward's `lossScale`), {@linkcode gradNorm} with `scaler` unscales and updates it.
 */
export function createLossScaler(gpu: Gpu, init: number = LOSS_SCALE_INIT): GPUBuffer {
  if (!(init > 0 && Number.isFinite(init))) {
    throw new GpuError("loss_scaler", `initial scale ${init} must be > 0`);
  }
  const buffer = gpu.device.createBuffer({
    label: "loss_scaler",
    size: 8,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  gpu.device.queue.writeBuffer(buffer, 0, new Float32Array([init, 0]));
  return buffer;
}

/**
 * The per-step AdamW uniforms for {@linkcode Dispatch.update}: `lr` and the bias corrections
 * `bc1 = 1 - beta1^step`, `bc2 = 1 - beta2^step` (float64 here, f32 on the GPU). `step` is 1-based.
 */
export function adamwUniforms(h: { lr: number; beta1: number; beta2: number; step: number }): Record<
  string,
  number
> {
  if (!Number.isInteger(h.step) || h.step < 1) throw new GpuError("adamw", `step = ${h.step} must be >= 1`);
  return { lr: h.lr, bc1: 1 - h.beta1 ** h.step, bc2: 1 - h.beta2 ** h.step };
}

/** AdamW's settings for one step over the first `n` floats of an arena. */
export interface AdamWStep {
  /** Floats updated. */
  n: number;
  /** Weight decay applies to elements [0, decayEnd). */
  decayEnd: number;
  /** Learning rate. */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to sqrt of the bias-corrected second moment. */
  eps: number;
  /** Decoupled weight decay coefficient. */
  weightDecay: number;
  /** 1-based step number t (bias corrections 1 - beta^t). */
  step: number;
  /**
   * 4 consecutive elements per thread through vec4 views ("vec4"; needs `n` and `decayEnd` multiples of
   * 4, as the arenas' are) or one ("scalar"). Default: "vec4" on Mesa's llvmpipe where it applies (about 2.5
   * times faster there: bench/results/cpu_elementwise.md), else "scalar".
   */
  variant?: "scalar" | "vec4";
}

/**
 * One AdamW step (torch.optim.AdamW: decoupled weight decay, bias-corrected moments) over arenas of `n`
 * floats, in place on `params`, `m`, `v`; reads `grads` (not zeroed) times `stats[1]` (the multiplier
 * written by {@linkcode gradNorm}: clip scale, over the loss scale when there is one), and does nothing when
 * `stats[2]` is not 0 (a step skipped by loss scaling). Weight decay applies to elements [0, decayEnd) only.
 * `step` (1-based) and `lr` are the first step's; rewrite them per step with
 * `dispatch.update(adamwUniforms(...))`. `eps` must be > 0 so that all-zero padding stays zero.
 */
export async function adamw(
  gpu: Gpu,
  b: { params: Resource; m: Resource; v: Resource; grads: Resource; stats: Resource },
  s: AdamWStep,
): Promise<Dispatch> {
  checkN("adamw", s.n);
  if (!Number.isInteger(s.decayEnd) || s.decayEnd < 0 || s.decayEnd > s.n) {
    throw new GpuError("adamw", `decayEnd = ${s.decayEnd} outside [0, ${s.n}]`);
  }
  if (!(s.eps > 0)) throw new GpuError("adamw", `eps = ${s.eps} must be > 0 (zero padding would become NaN)`);
  for (const [k, r] of Object.entries({ params: b.params, m: b.m, v: b.v, grads: b.grads })) {
    checkSize("adamw", k, r, 4 * s.n);
  }
  checkSize("adamw", "stats", b.stats, 4 * STATS_FLOATS);
  const aligned = s.n % 4 === 0 && s.decayEnd % 4 === 0;
  const variant = s.variant ?? (gpu.llvmpipe && aligned ? "vec4" : "scalar");
  if (variant !== "scalar" && variant !== "vec4") {
    throw new GpuError("adamw", `variant must be scalar or vec4 (got ${variant})`);
  }
  if (variant === "vec4" && !aligned) {
    throw new GpuError(
      "adamw",
      `the vec4 variant needs n (${s.n}) and decayEnd (${s.decayEnd}) multiples of 4`,
    );
  }
  const entry = variant === "vec4" ? "adamw4" : "adamw";
  const name = variant === "vec4" ? "adamw_vec4" : "adamw";
  const k = await getKernel(gpu, { name, source, entryPoint: entry, constants: { WG } });
  const uniforms = {
    n: s.n,
    parts: 0,
    part0: 0,
    decay_end: s.decayEnd,
    max_norm: 0,
    beta1: s.beta1,
    beta2: s.beta2,
    one_minus_beta1: 1 - s.beta1,
    one_minus_beta2: 1 - s.beta2,
    eps: s.eps,
    weight_decay: s.weightDecay,
    growth_interval: 0,
    ...adamwUniforms(s),
  };
  const { params, m, v, grads, stats } = b;
  if (variant === "vec4") {
    return k.dispatch({ params4: params, m4: m, v4: v, grads4: grads, stats }, uniforms, grid(s.n / 4, WG));
  }
  return k.dispatch({ params, m, v, grads, stats }, uniforms, grid(s.n, WG));
}
