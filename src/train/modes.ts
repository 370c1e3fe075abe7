/**
 * Training modes: how the model's inputs are formed before each micro-step's training forward pass.
 * Everything a mode adds is recorded into the step's ONE compute pass, between the gather and the
 * training forward; the CPU only rewrites a uniform (ε) between steps.
 *
 * Per micro-step m (the dispatch outline; targets are always the gold next tokens from gather):
 *
 *   teacher-forcing     gather(m) -> forwardTrain -> backward
 *   free-running        gather(m) -> rollout_begin -> (T-1) x [KV-cache decode step over the shared
 *                       parameters -> argmax | sample -> commit] -> rollout_end -> forwardTrain -> backward
 *                       Inputs 0..P-1 stay gold (P = prefix); input t >= P is the model's own token,
 *                       generated autoregressively from its own earlier tokens (no dropout in the rollout).
 *   scheduled-sampling  gather(m) -> forwardEval (pass 1, gold inputs, no dropout) -> argmax | sample per
 *                       position -> ss_mix -> forwardTrain (pass 2) -> backward
 *                       (Mihaylova & Martins 2019): input t >= 1 stays gold with probability ε(step), else
 *                       it is pass 1's prediction for position t (made at t - 1). No gradient flows
 *                       through pass 1. At ε = 1 the step is exactly teacher forcing (bit for bit).
 *
 * ε(step) (0-based step i; Bengio et al. 2015, floored at ss_min):
 *   linear           ε_i = max(ss_min, k - c·i)          k in [0, 1] (default 1), c >= 0 (default (k - ss_min) / steps)
 *   exponential      ε_i = max(ss_min, k^i)              k in (0, 1] (default 0.01^(1/steps))
 *   inverse-sigmoid  ε_i = max(ss_min, k / (k + exp(i/k)))   k >= 1 (default: k ln k = steps / 2, so ε ≈ 1/2 at mid-run)
 *
 * @module
 */
import { type Arena, createStorage } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { commit } from "../kernels/decode.ts";
import { gradCosine, gradCosineScratchBytes } from "../kernels/gradstats.ts";
import { rolloutBegin, rolloutEnd, scheduledMix } from "../kernels/modes.ts";
import { argmax, sample } from "../kernels/sample.ts";
import type { GPTConfig } from "../model/config.ts";
import { createDecodeNetwork } from "../model/decode.ts";
import type { GPT } from "../model/gpt.ts";
import {
  checkPrefix,
  type DecodeRule,
  SS_SCHEDULES,
  type SsSchedule,
  TRAIN_MODES,
  type TrainConfig,
  type TrainMode,
  validateModeConfig,
} from "./config.ts";

// The modes' names and the validation of their settings live with the config (config.ts); exported here too.
export {
  checkPrefix,
  type DecodeRule,
  SS_SCHEDULES,
  type SsSchedule,
  TRAIN_MODES,
  type TrainMode,
  validateModeConfig,
};

/** A fully specified ε schedule. */
export interface EpsilonSchedule {
  /** The curve. */
  schedule: SsSchedule;
  /** linear: offset; exponential: base; inverse-sigmoid: k >= 1. */
  k: number;
  /** linear: slope per step (unused by the others). */
  c: number;
  /** Floor. */
  min: number;
}

/** Hash streams of the modes' randomness (far from the dropout streams 0..2L and from sampling's 0). */
export const STREAMS: Readonly<{ rollout: number; rolloutSample: number; ssSample: number; ssMix: number }> =
  {
    /** rollout_begin derives the rollout's sampling seed with this stream. */
    rollout: 0x7e570001,
    /** The rollout's sample kernel. */
    rolloutSample: 0x7e570002,
    /** Scheduled sampling's per-position sample kernel (reads the micro-step seed). */
    ssSample: 0x7e570003,
    /** Scheduled sampling's keep-or-replace coins. */
    ssMix: 0x7e570004,
  };

/** ε at 0-based step `i` (see the module doc). */
export function epsilon(i: number, s: EpsilonSchedule): number {
  let e: number;
  if (s.schedule === "linear") e = s.k - s.c * i;
  else if (s.schedule === "exponential") e = Math.pow(s.k, i);
  else e = s.k / (s.k + Math.exp(i / s.k));
  return Math.min(1, Math.max(s.min, e));
}

/** The k of the inverse-sigmoid schedule with k ln k = steps / 2 (ε = 1/2 at mid-run), at least 1. */
export function inverseSigmoidK(steps: number): number {
  const goal = steps / 2;
  if (goal <= 0) return 1;
  let k = Math.max(1.5, goal / Math.log(goal + 2));
  for (let it = 0; it < 60; it++) k -= (k * Math.log(k) - goal) / (Math.log(k) + 1); // Newton
  return Math.max(1, k);
}

/** The ε schedule a config asks for, with the documented defaults filled in. */
export function epsilonSchedule(cfg: TrainConfig): EpsilonSchedule {
  const min = cfg.ss_min;
  const steps = Math.max(1, cfg.steps);
  if (cfg.ss_schedule === "linear") {
    const k = cfg.ss_k ?? 1;
    return { schedule: "linear", k, c: cfg.ss_c ?? Math.max(0, k - min) / steps, min };
  }
  if (cfg.ss_schedule === "exponential") {
    return { schedule: "exponential", k: cfg.ss_k ?? Math.pow(0.01, 1 / steps), c: 0, min };
  }
  return { schedule: "inverse-sigmoid", k: cfg.ss_k ?? inverseSigmoidK(steps), c: 0, min };
}

/** The gold prefix length P a config asks for: `prefix`, else max(1, floor(block_size / 4)). */
export function prefixOf(cfg: { prefix?: number; block_size: number }): number {
  return cfg.prefix ?? Math.max(1, Math.floor(cfg.block_size / 4));
}

/**
 * A B-row free-running rollout over a parameter arena (nanoGPT layout), Generator-like: one KV-cache
 * decode step (model/decode.ts's network, then the pick and the commit) recorded once and replayed T-1
 * times inside the caller's compute pass, the position on the GPU. `dispatches` = rollout_begin (copy tokens into the decoder rows, reset the position and the
 * sampling seed), the T-1 decode steps (positions 0..T-2; commit keeps tokens < prefix gold and stores
 * the model's choice from `prefix` on), rollout_end (copy the rows back into `tokens` from `prefix` on).
 */
export interface Rollout {
  /** The recorded rollout for one batch of `tokens`. */
  readonly dispatches: Dispatch[];
  /** Decoder rows [B, block_size] u32 (holds the rollout after the dispatches ran). */
  readonly seq: GPUBuffer;
  /** Sets the gold prefix length (takes effect at the next submission). */
  setPrefix(prefix: number): void;
}

/** Buffers a rollout reads and writes. */
export interface RolloutBindings {
  /** u32 [B, T]: gold inputs in, rollout out. */
  tokens: GPUBuffer;
  /** u32 [B, T]: gold next tokens (padding marked with ignoreId). */
  targets: GPUBuffer;
  /** u32 [1+]: element 0 seeds the rollout's sampling. */
  seed: GPUBuffer;
}

/**
 * Builds a {@linkcode Rollout} of `B` rows and `T` <= block_size positions over `params`; its predictions
 * are ids below `tokens` (default vocab_size; fewer for a padded vocabulary).
 */
export async function createRollout(
  gpu: Gpu,
  config: GPTConfig,
  params: Arena,
  io: RolloutBindings,
  s: { B: number; T: number; prefix: number; decode: DecodeRule; ignoreId?: number; tokens?: number },
): Promise<Rollout> {
  const stride = config.vocab_size, V = s.tokens ?? stride, maxT = config.block_size;
  const { B, T } = s;
  if (T < 2 || T > maxT) throw new Error(`rollout: T = ${T} must be in [2, block_size = ${maxT}]`);
  checkPrefix(s.prefix, T);
  const f32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
  const seq = f32("roll.seq", B * maxT), state = f32("roll.state", 4), rollRng = f32("roll.rng", 4);
  const sampled = f32("roll.sampled", B);
  const { dispatches: net, logits } = await createDecodeNetwork(gpu, config, params, { seq, state }, {
    B,
    label: "roll",
  });
  const pick = s.decode === "argmax"
    ? await argmax(gpu, { out: sampled, logits }, { N: B, V, stride })
    : await sample(gpu, { out: sampled, logits, rng: rollRng }, {
      N: B,
      V,
      stride,
      temperature: 1,
      topK: 0,
      stream: STREAMS.rolloutSample,
    });
  const commitD = await commit(gpu, { seq, state, rng: rollRng, sampled }, { B, maxT, forcedLen: s.prefix });
  const step: Dispatch[] = [...net, pick, commitD];
  const begin = await rolloutBegin(gpu, { seq, rollState: state, rollRng, tokens: io.tokens, rng: io.seed }, {
    B,
    T,
    maxT,
    stream: STREAMS.rollout,
  });
  const end = await rolloutEnd(gpu, { tokens: io.tokens, seq, targets: io.targets }, {
    B,
    T,
    maxT,
    prefix: s.prefix,
    ignoreId: s.ignoreId,
  });
  const dispatches: Dispatch[] = [begin];
  for (let p = 0; p < T - 1; p++) dispatches.push(...step);
  dispatches.push(end);
  return {
    dispatches,
    seq,
    setPrefix(prefix: number) {
      checkPrefix(prefix, T);
      commitD.update({ forced_len: prefix });
      end.update({ prefix });
    },
  };
}

/** What a training mode adds to each micro-step, and its per-step update. */
export interface ModeStep {
  /** The mode. */
  readonly mode: TrainMode;
  /** Dispatches recorded after gather(m) and before forwardTrain, the same for every micro-step. */
  readonly dispatches: Dispatch[];
  /** Called before each step's submission with the 0-based step (scheduled sampling: writes ε). */
  update(step: number): void;
  /** ε at a step (1 for teacher forcing, 0 for free-running). */
  epsilonAt(step: number): number;
}

/**
 * Builds the per-micro-step dispatches of `cfg.mode` for `model` (shared parameters and batch buffers).
 * `ignoreId`: the padding target; `tokens`: the ids predictions are drawn from (default vocab_size).
 */
export async function buildModeStep(
  gpu: Gpu,
  cfg: TrainConfig,
  model: GPT,
  o: { ignoreId?: number; tokens?: number } = {},
): Promise<ModeStep> {
  const { ignoreId, tokens } = o;
  const mode = cfg.mode;
  if (mode === "teacher-forcing") {
    return { mode, dispatches: [], update: () => {}, epsilonAt: () => 1 };
  }
  const B = model.B, T = model.T, N = B * T, stride = model.config.vocab_size, V = tokens ?? stride;
  if (mode === "free-running") {
    const r = await createRollout(gpu, model.config, model.params, model, {
      B,
      T,
      prefix: prefixOf({ prefix: cfg.prefix, block_size: T }),
      decode: cfg.fr_decode,
      ignoreId,
      tokens,
    });
    return { mode, dispatches: r.dispatches, update: () => {}, epsilonAt: () => 0 };
  }
  const sched = epsilonSchedule(cfg);
  const pred = createStorage(gpu, "ss.pred", N * 4);
  // Pass 1's prediction per position, chunk by chunk of the head's rows (one chunk unless the vocabulary is
  // large: model/memory.ts headRowsDefault); a chunk's draws are the whole batch's (sample's row0).
  const pick: Dispatch[] = [];
  for (const { r0, rows, logits } of model.headChunks) {
    pick.push(...logits);
    const b = {
      out: { buffer: pred, offset: r0 * 4, size: rows * 4 },
      logits: { buffer: model.logits, offset: 0, size: rows * stride * 4 },
    };
    pick.push(
      cfg.ss_decode === "argmax"
        ? await argmax(gpu, b, { N: rows, V, stride })
        : await sample(gpu, { ...b, rng: model.seed }, {
          N: rows,
          V,
          stride,
          temperature: 1,
          topK: 0,
          stream: STREAMS.ssSample,
          row0: r0,
        }),
    );
  }
  const mix = await scheduledMix(
    gpu,
    { tokens: model.tokens, targets: model.targets, pred, rng: model.seed },
    {
      B,
      T,
      eps: epsilon(0, sched),
      stream: STREAMS.ssMix,
      ignoreId,
    },
  );
  return {
    mode,
    dispatches: [...model.forwardEval, ...pick, mix],
    update: (step) => mix.update({ eps: epsilon(step, sched) }),
    epsilonAt: (step) => epsilon(step, sched),
  };
}

/**
 * Optional per-step gradient probe: after the backward (and the norm), sums g·p, g·g and p·p of this step's
 * gradient g and the previous step's p into `gstats` [3] and keeps g for the next step.
 */
export interface GradProbe {
  /** Dispatches to record after the gradient is complete and before the optimizer. */
  readonly dispatches: Dispatch[];
  /** [g·p, g·g, p·p], f32 [4] (the fourth float unused). */
  readonly gstats: GPUBuffer;
}

/** Builds a {@linkcode GradProbe} over the gradient arena (one partial dispatch per buffer of it). */
export async function createGradProbe(gpu: Gpu, grads: Arena): Promise<GradProbe> {
  const n = grads.layout.buffers.map((b) => b.floats), many = n.length > 1;
  const prev = n.map((f, k) =>
    createStorage(gpu, many ? `probe.prev_grads.${k}` : "probe.prev_grads", f * 4)
  );
  const scratch = createStorage(gpu, "probe.scratch", gradCosineScratchBytes(n));
  const gstats = createStorage(gpu, "probe.gstats", 16);
  const bound = grads.buffers.map((buffer, k) => ({ buffer, offset: 0, size: n[k] * 4 }));
  return { dispatches: await gradCosine(gpu, { prev, grads: bound, scratch, gstats }, { n }), gstats };
}
