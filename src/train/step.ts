/**
 * The ONE training step: a GPT, its AdamW moments and the dispatch order of one optimizer step. The
 * trainer, the step benchmark, the per-kernel profile and the PyTorch cross-check all run this object.
 *
 * One optimizer step of M micro-steps of B windows of T positions (N = B·T):
 *
 *   clears:            gradient arena, loss accumulator
 *   one compute pass:  for each micro-step m < M:
 *                        gather(m) -> [training mode's dispatches: src/train/modes.ts] -> forwardTrain
 *                        -> fused loss -> backward (parameter gradients +=, each scaled by 1/(N·M))
 *                      global grad norm (2 dispatches) -> clip -> [gradient probe] -> AdamW over the arena
 *
 * An arena spread over several buffers (a model beyond the adapter's binding limit) takes one more norm
 * dispatch and one more AdamW dispatch per extra buffer.
 *
 * Inputs the CPU writes before each submission (never waiting on the GPU): window offsets and lengths
 * u32 [M, B], dropout seeds u32 [M], AdamW's learning rate and bias corrections, the mode's ε.
 *
 * @module
 */
import { Arena, createStorage, snapshotF32, writeArray } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/kernel.ts";
import { gather, NO_TOKEN } from "../kernels/gather.ts";
import { adamw, adamwUniforms, gradNorm, gradNormScratchBytes, STATS_FLOATS } from "../kernels/optimizer.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT, type GPTShape } from "../model/gpt.ts";
import { hash3 } from "../util/hash.ts";
import type { Rng } from "../util/rng.ts";
import type { TrainConfig } from "./config.ts";
import { drawWindows, type Split } from "./data.ts";
import { buildModeStep, createGradProbe, type GradProbe, type ModeStep } from "./modes.ts";

/** AdamW (torch.optim.AdamW, decay on >= 2-D tensors only) after global-norm clipping. */
export interface OptimizerSettings {
  /** Learning rate the step starts with ({@linkcode TrainStep.prepare} sets each step's). */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Denominator guard (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay of the decayed group (0: none). */
  weightDecay: number;
  /** Clip the global gradient norm to this (0: no clipping; the norm is still computed). */
  gradClip: number;
}

/** Options of {@linkcode TrainStep.create}. */
export interface TrainStepOptions {
  /** Sequences per micro-step. */
  B: number;
  /** Positions per sequence (<= block_size). */
  T: number;
  /** Micro-steps per optimizer step, all in the one pass (gradient accumulation; default 1). */
  microSteps?: number;
  /** The token ids windows are gathered from (uploaded once; `lines` mode's example bounds kept). */
  corpus: Split;
  /** Padding token: the filler input of short windows and an ignored target (default: none). */
  padId?: number;
  /**
   * Ids the tokenizer can decode (default vocab_size): fewer for a padded vocabulary (nanoGPT's 50304 rows
   * for GPT-2's 50257 tokens), whose extra rows the training modes never sample.
   */
  tokens?: number;
  /** The optimizer. */
  optimizer: OptimizerSettings;
  /** The run settings that choose the training mode and its knobs (default: teacher forcing). */
  modeSettings?: TrainConfig;
  /** Record the gradient probe (g·p, g·g, p·p of successive steps' gradients) before AdamW. */
  gradProbe?: boolean;
  /** Model options passed on to GPT.create (storage precision and kernel choices). */
  model?: Pick<GPTShape, "dtype" | "splitK" | "storedDs" | "headRows" | "halfMath">;
}

/** One optimizer step's windows and dropout seeds. */
export interface StepBatch {
  /** Window starts in the corpus, u32 [M, B]. */
  offsets: Uint32Array;
  /** Usable tokens per window (T+1 in a stream; a shorter example is padded), u32 [M, B]. */
  lengths: Uint32Array;
  /** Dropout seed of each micro-step, u32 [M]. */
  seeds: Uint32Array;
}

/** What a checkpoint holds of the step: weights and moments (parameter-arena images), the loss scaler. */
export interface StepSnapshot {
  /** Parameters. */
  params: Float32Array;
  /** AdamW first moments. */
  m: Float32Array;
  /** AdamW second moments. */
  v: Float32Array;
  /** float16 runs: the dynamic loss scale and its count of finite steps since it last changed. */
  lossScaler?: { scale: number; good: number };
}

/**
 * The statistics {@linkcode TrainStep.copyStats} copies out, as 9 floats (36 bytes):
 * [loss sum, scored count, grad norm, gradient multiplier, skipped, loss scale, g·p, g·g, p·p].
 */
export const STEP_STATS_BYTES = 36;

/** Per-step seed of micro-step `m`'s dropout masks: a pure function of (seed, step, m), so resumes match. */
export function dropoutSeed(seed: number, step: number, m: number): number {
  return hash3(seed, step, m);
}

/**
 * `rows` x B windows of `split`, drawn one window at a time from `rng` (so rows of B and B·rows windows of
 * one are the same windows): offsets and lengths u32 [rows, B].
 */
export function drawWindowRows(
  split: Split,
  rng: Rng,
  s: { rows: number; B: number; T: number },
): { offsets: Uint32Array; lengths: Uint32Array } {
  const offsets = new Uint32Array(s.rows * s.B), lengths = new Uint32Array(s.rows * s.B);
  for (let r = 0; r < s.rows; r++) {
    const w = drawWindows(split, rng, s.B, s.T);
    offsets.set(w.offsets, r * s.B);
    lengths.set(w.lengths, r * s.B);
  }
  return { offsets, lengths };
}

/** The buffers and dispatches a {@linkcode TrainStep} is made of. */
interface StepParts {
  gpu: Gpu;
  model: GPT;
  m: Arena;
  v: Arena;
  corpus: Split;
  batch: { offsets: GPUBuffer; lengths: GPUBuffer; seeds: GPUBuffer };
  stats: GPUBuffer;
  optimizer: Dispatch[];
  optimizerSettings: OptimizerSettings;
  mode: ModeStep | null;
  probe: GradProbe | null;
  dispatches: Dispatch[];
  microSteps: number;
}

/** A model with its optimizer and the recorded dispatches of one optimizer step (see the module doc). */
export class TrainStep {
  /** The model: parameters, gradients, batch buffers and recorded passes (forwardEval for evaluation). */
  readonly model: GPT;
  /** AdamW first moments, same layout as the parameters. */
  readonly m: Arena;
  /** AdamW second moments. */
  readonly v: Arena;
  /** The step's one compute pass, in order (see the module doc). */
  readonly dispatches: readonly Dispatch[];
  /** Buffers cleared before the pass: the gradient arena's (the backward accumulates) and the loss sums. */
  readonly clears: readonly GPUBuffer[];
  /** Optimizer statistics f32 [4]: grad norm, gradient multiplier, skipped (float16 overflow), loss scale. */
  readonly stats: GPUBuffer;
  /** The gradient probe when asked for. */
  readonly probe: GradProbe | null;
  /** Micro-steps per optimizer step (M). */
  readonly microSteps: number;
  /** Tokens one optimizer step trains on (B·T·M). */
  readonly tokens: number;
  /** Trainable parameters (the arena without its alignment padding). */
  readonly params: number;
  readonly #gpu: Gpu;
  readonly #corpus: Split;
  readonly #batch: StepParts["batch"];
  readonly #optimizer: Dispatch[];
  readonly #settings: OptimizerSettings;
  readonly #mode: ModeStep | null;

  private constructor(p: StepParts) {
    this.model = p.model;
    this.m = p.m;
    this.v = p.v;
    this.dispatches = p.dispatches;
    this.clears = [...p.model.grads.buffers, p.model.lossAcc];
    this.stats = p.stats;
    this.probe = p.probe;
    this.microSteps = p.microSteps;
    this.tokens = p.model.B * p.model.T * p.microSteps;
    this.params = p.model.params.layout.entries.reduce((s, e) => s + e.size, 0);
    this.#gpu = p.gpu;
    this.#corpus = p.corpus;
    this.#batch = p.batch;
    this.#optimizer = p.optimizer;
    this.#settings = p.optimizerSettings;
    this.#mode = p.mode;
  }

  /**
   * Builds the step for `config`: the model (weights zero until {@linkcode TrainStep.load}), zeroed moments, the
   * corpus on the GPU, and the recorded pass. Each micro-step's loss carries 1/(N·M), so the accumulated
   * gradient is that of the mean loss over all B·T·M positions.
   */
  static async create(gpu: Gpu, config: GPTConfig, o: TrainStepOptions): Promise<TrainStep> {
    const { B, T } = o, M = o.microSteps ?? 1;
    const model = await GPT.create(gpu, config, {
      ...o.model,
      B,
      T,
      meanFactor: 1 / (B * T * M),
      ignoreIndex: o.padId,
      training: true,
    });
    const layout = model.params.layout, n = layout.buffers.map((b) => b.floats);
    const m = new Arena(gpu, "adam_m", layout), v = new Arena(gpu, "adam_v", layout);
    const u32 = (label: string, count: number) => createStorage(gpu, label, count * 4);
    const corpus = createStorage(gpu, "corpus.train", o.corpus.tokens.byteLength, o.corpus.tokens);
    const batch = { offsets: u32("offsets", M * B), lengths: u32("lengths", M * B), seeds: u32("seeds", M) };
    const padId = o.padId ?? NO_TOKEN;
    const gathers: Dispatch[] = [];
    for (let micro = 0; micro < M; micro++) {
      const io = { ...model.gatherOutputs, corpus, ...batch };
      gathers.push(await gather(gpu, io, { B, T, micro, padId, ignoreId: padId }));
    }

    const stats = createStorage(gpu, "grad_stats", 4 * STATS_FLOATS);
    const scratch = createStorage(gpu, "grad_norm_scratch", gradNormScratchBytes(n));
    const scaler = model.lossScaler ? { scaler: model.lossScaler } : {};
    const norm = await gradNorm(gpu, { stats, grads: model.grads.buffers, scratch, ...scaler }, {
      n,
      maxNorm: o.optimizer.gradClip,
    });
    const h = o.optimizer;
    // One AdamW dispatch per buffer; each decays the part of [0, decayEnd) of the image it holds.
    const optimizer = await Promise.all(layout.buffers.map((b, k) =>
      adamw(gpu, {
        params: model.params.buffers[k],
        m: m.buffers[k],
        v: v.buffers[k],
        grads: model.grads.buffers[k],
        stats,
      }, {
        n: b.floats,
        decayEnd: h.weightDecay > 0 ? Math.min(Math.max(model.decayEnd - b.start, 0), b.floats) : 0,
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps ?? 1e-8,
        weightDecay: h.weightDecay,
        step: 1,
      })
    ));
    // The training mode's dispatches go between gather(m) and the training forward.
    const mode = o.modeSettings
      ? await buildModeStep(gpu, o.modeSettings, model, { ignoreId: padId, tokens: o.tokens })
      : null;
    const probe = o.gradProbe ? await createGradProbe(gpu, model.grads) : null;
    const dispatches: Dispatch[] = [];
    for (let micro = 0; micro < M; micro++) {
      dispatches.push(gathers[micro], ...(mode?.dispatches ?? []), ...model.forwardTrain, ...model.backward);
    }
    dispatches.push(...norm, ...(probe?.dispatches ?? []), ...optimizer);
    return new TrainStep({
      gpu,
      model,
      m,
      v,
      corpus: o.corpus,
      batch,
      stats,
      optimizer,
      optimizerSettings: h,
      mode,
      probe,
      dispatches,
      microSteps: M,
    });
  }

  /** Writes the weights (a parameter-arena image) and, when given, the moments and the loss scaler state. */
  load(s: { params: Float32Array } & Partial<Omit<StepSnapshot, "params">>): void {
    const gpu = this.#gpu;
    const scaler = this.model.lossScaler;
    if (scaler && s.lossScaler) {
      writeArray(gpu, scaler, new Float32Array([s.lossScaler.scale, s.lossScaler.good]));
    }
    this.model.params.write(gpu, s.params);
    if (s.m) this.m.write(gpu, s.m);
    if (s.v) this.v.write(gpu, s.v);
  }

  /**
   * Draws one step's windows from the corpus with `rng` (M·B windows in micro-step order) and the dropout
   * seeds of step `step` of a run seeded `seed`.
   */
  drawBatch(rng: Rng, at: { seed: number; step: number }): StepBatch {
    const { B, T } = this.model, M = this.microSteps;
    const { offsets, lengths } = drawWindowRows(this.#corpus, rng, { rows: M, B, T });
    const seeds = Uint32Array.from({ length: M }, (_, m) => dropoutSeed(at.seed, at.step, m));
    return { offsets, lengths, seeds };
  }

  /**
   * Writes step `step`'s inputs (0-based) before its submission: the batch when given (else the last one
   * stays), AdamW's learning rate and bias corrections (t = step + 1), the training mode's ε.
   */
  prepare(p: { step: number; lr: number; batch?: StepBatch }): void {
    const gpu = this.#gpu;
    if (p.batch) {
      writeArray(gpu, this.#batch.offsets, p.batch.offsets);
      writeArray(gpu, this.#batch.lengths, p.batch.lengths);
      writeArray(gpu, this.#batch.seeds, p.batch.seeds);
    }
    const { beta1, beta2 } = this.#settings;
    const uniforms = adamwUniforms({ lr: p.lr, beta1, beta2, step: p.step + 1 });
    for (const d of this.#optimizer) d.update(uniforms);
    this.#mode?.update(p.step);
  }

  /** A command encoder (labelled `label`) holding the clears and the step's one compute pass. */
  encode(label: string): GPUCommandEncoder {
    const enc = this.#gpu.device.createCommandEncoder({ label });
    for (const b of this.clears) enc.clearBuffer(b);
    const pass = enc.beginComputePass({ label });
    encodeDispatches(pass, this.dispatches);
    pass.end();
    return enc;
  }

  /** Records copies of the step's statistics into `dst` (laid out as {@linkcode STEP_STATS_BYTES} says). */
  copyStats(enc: GPUCommandEncoder, dst: GPUBuffer): void {
    enc.copyBufferToBuffer(this.model.lossAcc, 0, dst, 0, 8);
    enc.copyBufferToBuffer(this.stats, 0, dst, 8, 16);
    if (this.probe) enc.copyBufferToBuffer(this.probe.gstats, 0, dst, 24, 12);
  }

  /**
   * Weights, moments and loss scaler as of the GPU work submitted so far: the copies are queued now, so
   * later steps cannot change what they read.
   */
  async snapshot(): Promise<StepSnapshot> {
    const gpu = this.#gpu, scaler = this.model.lossScaler;
    const [params, m, v, ls] = await Promise.all([
      this.model.params.snapshot(gpu),
      this.m.snapshot(gpu),
      this.v.snapshot(gpu),
      scaler ? snapshotF32(gpu, scaler) : null,
    ]);
    return { params, m, v, ...(ls ? { lossScaler: { scale: ls[0], good: ls[1] } } : {}) };
  }
}
