/**
 * The whole training step as one benchmark case: gather -> forward -> fused loss -> backward -> grad norm
 * -> clip -> AdamW, the trainer's own step object (src/train/step.ts: one compute pass per step, the
 * gradient arena and loss accumulator cleared before it). Reports ms/step and tokens/s; at `--large` the
 * shape is nanoGPT's shakespeare_char without dropout.
 *
 * @module
 */
import type { BenchBuilder } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { initParams } from "../src/model/init.ts";
import { type OptimizerSettings, TrainStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";

/** A model shape and the (B, T) of one step. */
export interface StepShape {
  /** The model (dropout 0 in both presets). */
  readonly config: GPTConfig;
  /** Sequences per step. */
  readonly B: number;
  /** Positions per sequence. */
  readonly T: number;
  /** Storage precision (default float32); float16 adds the loss scaler to the grad norm. */
  readonly dtype?: Precision;
  /** Split-K weight gradients where a shape splits (default: the model's, off on software adapters). */
  readonly splitK?: boolean;
  /** Attention's backward keeps dS (GPTShape.storedDs; default: the model's, by memory). */
  readonly storedDs?: boolean;
  /** Rows of logits the head computes at a time (GPTShape.headRows; default: the model's, by memory). */
  readonly headRows?: number;
}

/** CI size: a step of a few ms on lavapipe with every kernel of the large step (head size 32). */
export const CI_STEP: StepShape = {
  config: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, vocab_size: 65, bias: false, dropout: 0 },
  B: 4,
  T: 64,
};

/** nanoGPT's shakespeare_char model and batch (6 layers, 6 heads, C 384, T 256, B 64) without dropout. */
export const SHAKESPEARE_STEP: StepShape = {
  config: { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, vocab_size: 65, bias: false, dropout: 0 },
  B: 64,
  T: 256,
};

/** "L=6 NH=6 C=384 T=256 B=64 V=65" (plus "bias" / "dropout=p" when set). */
export function describeStep(s: StepShape): string {
  const c = s.config;
  let d = `L=${c.n_layer} NH=${c.n_head} C=${c.n_embd} T=${s.T} B=${s.B} V=${c.vocab_size}`;
  if (c.bias) d += " bias";
  if (c.dropout > 0) d += ` dropout=${c.dropout}`;
  if (s.dtype === "float16") d += " float16";
  if (s.splitK === false) d += " nosplit";
  if (s.storedDs === false) d += " recompute-ds";
  if (s.headRows !== undefined && s.headRows < s.B * s.T) d += ` head-rows=${s.headRows}`;
  return d;
}

/**
 * Model FLOPs of one step (forward + backward): the matmuls (2·M·K·N each; the backward does two per
 * forward one) and causal attention counted as FlashAttention reports it (forward F = 2·B·NH·T²·HS over
 * the lower triangle, backward 2.5·F; the backward's recomputation is not counted). Elementwise ops,
 * layernorm, softmax and the optimizer are left out (they are memory-bound: see the profile's bytes).
 */
export function stepFlops(s: StepShape): number {
  const { n_layer: L, n_embd: C, vocab_size: V } = s.config;
  const N = s.B * s.T;
  const perLayerMatmul = 3 * 2 * N * (C * 3 * C + C * C + C * 4 * C + 4 * C * C);
  const perLayerAttention = 3.5 * 2 * s.B * s.T * s.T * C;
  return L * (perLayerMatmul + perLayerAttention) + 3 * 2 * N * C * V;
}

/** shakespeare_char's optimizer (nanoGPT): lr 1e-3, betas 0.9/0.99, weight decay 0.1, clip 1. */
export const SHAKESPEARE_OPTIMIZER: Required<OptimizerSettings> = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1,
};

/**
 * The trainer's training step (src/train/step.ts, grad_accum 1, teacher forcing) on a random corpus,
 * nanoGPT's initialisation and {@linkcode SHAKESPEARE_OPTIMIZER}, with one batch of random windows
 * written: replaying the step trains on the same windows, which is fine for timing. `seed` fixes weights,
 * corpus and windows.
 */
export async function buildTrainingStep(gpu: Gpu, shape: StepShape, seed = 1): Promise<TrainStep> {
  const { config, B, T } = shape;
  const V = config.vocab_size;
  const rng = new Rng(seed);
  const corpusTokens = Math.max(1 << 16, 4 * B * (T + 1));
  const corpus = new Uint32Array(corpusTokens).map(() => rng.int(V));
  const offsets = new Uint32Array(B).map(() => rng.int(corpusTokens - T - 1));
  const step = await TrainStep.create(gpu, config, {
    B,
    T,
    corpus: { tokens: corpus },
    optimizer: SHAKESPEARE_OPTIMIZER,
    model: { dtype: shape.dtype, splitK: shape.splitK, storedDs: shape.storedDs, headRows: shape.headRows },
  });
  step.load({ params: initParams(config, step.model.params.layout, seed) });
  const batch = { offsets, lengths: new Uint32Array(B).fill(T + 1), seeds: new Uint32Array([seed]) };
  step.prepare({ step: 0, lr: SHAKESPEARE_OPTIMIZER.lr, batch });
  return step;
}

/**
 * The training step (forward + backward + AdamW in one pass, grads cleared before it), in ms/step,
 * tokens/s and model GFLOP/s, in float32 and (where the adapter has shader-f16) float16 mixed precision
 * as `train_step_f16`; at `large` on a hardware GPU also without split-K weight gradients
 * (`train_step_nosplit`) and with attention's dS recomputed instead of stored (`train_step_recompute_ds`);
 * and with a vocabulary of
 * 2048 (CI) or 8192 (large) tokens, the head whole (`train_step_vocab2048`) and in 4 chunks of rows
 * (`_chunks`).
 * CI: {@linkcode CI_STEP}; large: {@linkcode SHAKESPEARE_STEP}.
 */
export const build: BenchBuilder = async (gpu, large) => {
  const base = large ? SHAKESPEARE_STEP : CI_STEP;
  const variants: { name: string; shape: StepShape }[] = [{ name: "train_step", shape: base }];
  if (gpu.features.f16) variants.push({ name: "train_step_f16", shape: { ...base, dtype: "float16" } });
  // Split-K weight gradients are on by default on a hardware GPU: measure the step without them too.
  if (large && !gpu.software) {
    variants.push({ name: "train_step_nosplit", shape: { ...base, splitK: false } });
    variants.push({ name: "train_step_recompute_ds", shape: { ...base, storedDs: false } });
  }
  // A larger vocabulary with the head whole and in 4 chunks of rows (GPTShape.headRows): the chunks' cost.
  if (!large || !gpu.software) {
    const V = large ? 8192 : 2048, rows = (base.B * base.T) / 4;
    const vocab = { ...base, config: { ...base.config, vocab_size: V } };
    variants.push({ name: `train_step_vocab${V}`, shape: { ...vocab, headRows: base.B * base.T } });
    variants.push({ name: `train_step_vocab${V}_chunks`, shape: { ...vocab, headRows: rows } });
  }
  const cases = [];
  for (const v of variants) {
    const step = await buildTrainingStep(gpu, v.shape);
    cases.push({
      name: v.name,
      shape: describeStep(v.shape),
      dispatches: [...step.dispatches],
      clears: step.clears,
      flops: stepFlops(v.shape),
      tokens: step.tokens,
    });
  }
  return cases;
};
