/**
 * The gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, "An Empirical Model of
 * Large-Batch Training", appendix A) of a training mode at fixed weights.
 *
 * G is the true gradient of the mode's training loss, Σ the covariance of one window's gradient (batch
 * sizes count windows of block_size tokens, the unit the trainer draws). A batch of B windows has
 * E|G_B|² = |G|² + tr(Σ)/B, so from the squared norms at two batch sizes B_small < B_big:
 *
 *   |G|²   ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)
 *   tr(Σ)  ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
 *
 * each averaged over draws before the ratio is taken. Here a draw is k = B_big / B_small small batches of
 * fresh training windows: |G_small|² is the mean of their k squared norms and |G_big|² the squared norm of
 * their mean, which is the gradient of the B_big windows together (the estimator of the paper's appendix,
 * where the small batch is one device's and the big one the all-reduced).
 *
 * Each small batch runs exactly what a training step runs before its optimizer (src/train/trainer.ts):
 * gather, the mode's input dispatches (free running's rollout, scheduled sampling's first pass and mix at
 * the given step's ε; src/train/modes.ts), the training forward (dropout as configured) and backward, so
 * the gradient is that of the mode's own training loss. There is no optimizer at all: the weights never
 * move, and AdamW's moments play no part. The gradient comes back whole and its norms are summed in
 * float64 on the CPU. The model runs in float32 whatever the run's precision.
 *
 * @module
 */
import { configError, setting } from "./config.ts";
import { createStorage, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/kernel.ts";
import { gather, NO_TOKEN } from "../kernels/gather.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT } from "../model/gpt.ts";
import { hash3 } from "../util/hash.ts";
import { Rng } from "../util/rng.ts";
import type { TrainConfig } from "./config.ts";
import { drawWindows, type Split } from "./data.ts";
import { buildModeStep } from "./modes.ts";
import { InputError } from "../util/errors.ts";

/** Squared-norm estimates of the gradient and of its per-window covariance, and their ratio. */
export interface NoiseEstimate {
  /** Windows of the small batch. */
  bSmall: number;
  /** Windows of the big batch. */
  bBig: number;
  /** Draws averaged. */
  draws: number;
  /** Mean over draws of |G_small|². */
  small2: number;
  /** Mean over draws of |G_big|². */
  big2: number;
  /** |G|² ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small). */
  g2: number;
  /** tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big). */
  trSigma: number;
  /** B_simple = tr(Σ) / |G|², in windows (NaN when the |G|² estimate is not positive). */
  bSimple: number;
}

/**
 * The estimator of the module doc from per-draw squared norms: `small2[d]` = |G_small|² and `big2[d]` =
 * |G_big|² of draw d, averaged over draws, then combined.
 */
export function noiseScale(
  bSmall: number,
  bBig: number,
  small2: readonly number[],
  big2: readonly number[],
): NoiseEstimate {
  if (!(bBig > bSmall && bSmall >= 1)) {
    throw new Error(`noiseScale: need 1 <= B_small < B_big (${bSmall}, ${bBig})`);
  }
  if (small2.length !== big2.length || small2.length === 0) {
    throw new Error(`noiseScale: ${small2.length} small and ${big2.length} big draws`);
  }
  const mean = (x: readonly number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const s = mean(small2), b = mean(big2);
  const g2 = (bBig * b - bSmall * s) / (bBig - bSmall);
  const trSigma = (s - b) / (1 / bSmall - 1 / bBig);
  return {
    bSmall,
    bBig,
    draws: small2.length,
    small2: s,
    big2: b,
    g2,
    trSigma,
    bSimple: g2 > 0 ? trSigma / g2 : NaN,
  };
}

/** Options of {@linkcode measureNoiseScale}. */
export interface NoiseOptions {
  /** The run's settings: mode, prefix, decoding, ε schedule, dropout (in `config`), seed. */
  train: TrainConfig;
  /** The 0-based step whose ε scheduled sampling uses (its schedule at the measured weights). */
  step: number;
  /** Windows of the small batch (default max(1, batch_size / 4)). */
  bSmall?: number;
  /** Windows of the big batch, a multiple of bSmall (default 2 · batch_size, rounded up to one). */
  bBig?: number;
  /** Draws (default 4). */
  draws?: number;
  /** Seed of the windows and of the micro-steps' randomness (default train.seed). */
  seed?: number;
  /** The padding id of lines-mode data (ignored targets). */
  padId?: number;
  /** A device (default: a new one). */
  gpu?: Gpu;
  /** Window starts of small batch `i` of draw `d` instead of random ones (tests: identical windows). */
  offsets?: (draw: number, i: number) => number[];
}

/** {@linkcode NoiseEstimate} with the per-draw squared norms it came from. */
export interface NoiseResult extends NoiseEstimate {
  /** Per draw: mean |G_small|² of its k small batches. */
  small2PerDraw: number[];
  /** Per draw: |G_big|², the squared norm of the mean of its small batches' gradients. */
  big2PerDraw: number[];
}

/**
 * B_simple of the mode `opts.train.mode` at the weights `params` (host, nanoGPT layout) on windows of
 * `split` (the training split), as the module doc describes.
 */
export async function measureNoiseScale(
  config: GPTConfig,
  params: Float32Array,
  split: Split,
  opts: NoiseOptions,
): Promise<NoiseResult> {
  const cfg = opts.train, T = config.block_size;
  const bSmall = opts.bSmall ?? Math.max(1, Math.floor(cfg.batch_size / 4));
  const bBig = opts.bBig ?? Math.ceil((2 * cfg.batch_size) / bSmall) * bSmall;
  const draws = opts.draws ?? 4;
  if (!(Number.isInteger(draws) && draws >= 1)) {
    throw configError`${setting("noiseDraws")} must be a positive integer (got ${draws})`;
  }
  for (const [k, v] of [["B_small", bSmall], ["B_big", bBig]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) {
      throw new InputError(`noise scale: ${k} must be a positive integer (got ${v})`);
    }
  }
  if (!(bBig > bSmall && bBig % bSmall === 0)) {
    throw new InputError(`noise scale: B_big ${bBig} must be a multiple of B_small ${bSmall} above it`);
  }
  const k = bBig / bSmall, seed = opts.seed ?? cfg.seed;
  const gpu = opts.gpu ?? await createGpu();
  const dev = gpu.device;
  const padId = opts.padId ?? NO_TOKEN;
  const model = await GPT.create(gpu, config, {
    B: bSmall,
    T,
    meanFactor: 1 / (bSmall * T),
    ignoreIndex: opts.padId,
  });
  model.params.write(gpu, params);
  const modeStep = await buildModeStep(gpu, { ...cfg, block_size: T }, model, { ignoreId: opts.padId });
  modeStep.update(opts.step);
  const u32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
  const corpus = createStorage(gpu, "noise.corpus", split.tokens.byteLength, split.tokens);
  const offsets = u32("noise.offsets", bSmall),
    lengths = u32("noise.lengths", bSmall),
    seeds = u32("noise.seeds", 1);
  const io = { ...model.gatherOutputs, corpus, offsets, lengths, seeds };
  const g = await gather(gpu, io, { B: bSmall, T, micro: 0, padId, ignoreId: padId });
  const dispatches = [g, ...modeStep.dispatches, ...model.forwardTrain, ...model.backward];
  const rng = new Rng(seed ^ 0x0015e5ca);
  const n = model.params.layout.totalFloats;
  const small2PerDraw: number[] = [], big2PerDraw: number[] = [];
  try {
    for (let d = 0; d < draws; d++) {
      const sum = new Float64Array(n);
      let small = 0;
      for (let i = 0; i < k; i++) {
        const w = drawWindows(split, rng, bSmall, T);
        const offs = opts.offsets ? opts.offsets(d, i) : w.offsets;
        writeArray(gpu, offsets, Uint32Array.from(offs));
        writeArray(gpu, lengths, Uint32Array.from(opts.offsets ? offs.map(() => T + 1) : w.lengths));
        writeArray(gpu, seeds, Uint32Array.of(hash3(seed, d, i)));
        const enc = dev.createCommandEncoder({ label: "noise" });
        for (const b of model.grads.buffers) enc.clearBuffer(b);
        enc.clearBuffer(model.lossAcc);
        const pass = enc.beginComputePass({ label: "noise" });
        encodeDispatches(pass, dispatches);
        pass.end();
        dev.queue.submit([enc.finish()]);
        const grad = await model.grads.read(gpu);
        let s2 = 0;
        for (let j = 0; j < n; j++) {
          s2 += grad[j] * grad[j];
          sum[j] += grad[j];
        }
        small += s2;
      }
      let b2 = 0;
      for (let j = 0; j < n; j++) b2 += (sum[j] / k) ** 2;
      small2PerDraw.push(small / k);
      big2PerDraw.push(b2);
    }
    gpu.check();
  } finally {
    for (const b of [corpus, offsets, lengths, seeds]) b.destroy();
  }
  return { ...noiseScale(bSmall, bBig, small2PerDraw, big2PerDraw), small2PerDraw, big2PerDraw };
}
