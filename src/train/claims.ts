/**
 * Two checks of the experiment that are measurements rather than training runs:
 *
 * - {@linkcode historyCheck} (claim 3, "teacher forcing decouples the loss from the model's own prediction
 *   history"): a training step's loss is split where the trainer's step splits it, into forming the inputs
 *   (gather, then the mode's dispatches: nothing for teacher forcing, the rollout for free running, the
 *   first pass and mix for scheduled sampling) and scoring them (forward and loss, per position). The
 *   inputs are then formed once by the model itself and once by other weights θ' (a freshly initialised
 *   model: the earlier outputs change, the scoring weights do not), and the per-position losses compared.
 *   A mode whose loss ignores the model's own outputs gives identical losses; free running does not.
 *   Also: the gold tokens after a cut c are replaced, and the losses at positions <= c compared (causality:
 *   every mode passes it, so it is not what separates them).
 * - {@linkcode stepTimes} (claim 4, parallel processing): training-step time of the modes over block
 *   sizes, with each mode's sequential depth.
 *
 * @module
 */
import { readF32, readU32, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/kernel.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT } from "../model/gpt.ts";
import { initParams } from "../model/init.ts";
import { paramLayout } from "../model/params.ts";
import { hash3 } from "../util/hash.ts";
import type { TrainConfig } from "./config.ts";
import { buildModeStep, prefixOf, type TrainMode } from "./modes.ts";
import { train } from "./trainer.ts";
import { InputError } from "../util/errors.ts";

/** Options of {@linkcode historyCheck}. */
export interface HistoryCheckOptions {
  /** The run's settings (mode, prefix, decoding, ε schedule). */
  train: TrainConfig;
  /** The 0-based step whose ε scheduled sampling uses. */
  step: number;
  /** Windows checked (default 8; fewer if the data is short). */
  windows?: number;
  /** The weights θ' that form the inputs in the second pass (default: a fresh initialisation). */
  other?: Float32Array;
  /** Cut c of the causality check (default (P + T) / 2). */
  cut?: number;
  /** A device (default: a new one). */
  gpu?: Gpu;
}

/** What {@linkcode historyCheck} found (losses in nats). */
export interface HistoryCheck {
  /** The mode checked. */
  mode: TrainMode;
  /** Windows and positions per window. */
  windows: number;
  /** Positions per window (block_size). */
  positions: number;
  /** Share of input positions that differ when the inputs are formed by θ' instead of the model. */
  inputsChanged: number;
  /** Largest |change| of a per-position training loss when the inputs are formed by θ'. */
  maxChangeOwn: number;
  /** Positions (over all windows) whose loss changed by more than `tolerance` then. */
  changedOwn: number;
  /** The cut c of the causality check. */
  cut: number;
  /** Largest |change| of a loss at a position <= c when the gold tokens after c + 1 are replaced. */
  maxChangeFuture: number;
  /** The tolerance of "unchanged" (float32 losses of identical computations are bit-identical). */
  tolerance: number;
  /** True when the loss did not move with the model's earlier outputs (maxChangeOwn <= tolerance). */
  decoupled: boolean;
  /** True when no loss at t <= c moved with the gold tokens after c + 1. */
  causal: boolean;
}

/**
 * The claim-3 check of the module doc for the mode `opts.train.mode` at weights `params` (host, nanoGPT
 * layout) on windows of `ids` (evenly spaced), with dropout off.
 */
export async function historyCheck(
  config: GPTConfig,
  params: Float32Array,
  ids: Uint32Array,
  opts: HistoryCheckOptions,
): Promise<HistoryCheck> {
  const T = config.block_size, cfg = opts.train;
  if (ids.length < T + 1) {
    throw new InputError(`data: ${ids.length} tokens, fewer than block_size+1 = ${T + 1}`);
  }
  const W = Math.max(1, Math.min(opts.windows ?? 8, Math.floor((ids.length - 1) / (T + 1))));
  const P = prefixOf({ prefix: cfg.prefix, block_size: T });
  const cut = opts.cut ?? Math.floor((P + T) / 2);
  if (!(Number.isInteger(cut) && cut >= 0 && cut < T - 1)) {
    throw new Error(`historyCheck: cut ${cut} outside [0, T-1)`);
  }
  const gpu = opts.gpu ?? await createGpu();
  const dev = gpu.device;
  const model = await GPT.create(gpu, { ...config, dropout: 0 }, { B: W, T, storedDs: false });
  const modeStep = await buildModeStep(gpu, { ...cfg, block_size: T }, model);
  modeStep.update(opts.step);
  const other = opts.other ?? initParams(config, paramLayout(config).layout, (cfg.seed ^ 0x0bad5eed) >>> 0);
  const starts = Array.from(
    { length: W },
    (_, w) => Math.floor(w * (ids.length - T - 1) / Math.max(1, W - 1)),
  );
  const gold = new Uint32Array(W * (T + 1));
  starts.forEach((o, w) => gold.set(ids.subarray(o, o + T + 1), w * (T + 1)));
  // The causality variant: gold tokens after position cut + 1 taken from the next window.
  const future = gold.slice();
  for (let w = 0; w < W; w++) {
    const src = starts[(w + 1) % W] + 7;
    for (let t = cut + 2; t <= T; t++) future[w * (T + 1) + t] = ids[(src + t) % ids.length];
  }
  const run = async (g: Uint32Array, former: Float32Array) => {
    const tok = new Uint32Array(W * T), tgt = new Uint32Array(W * T);
    for (let w = 0; w < W; w++) {
      tok.set(g.subarray(w * (T + 1), w * (T + 1) + T), w * T);
      tgt.set(g.subarray(w * (T + 1) + 1, (w + 1) * (T + 1)), w * T);
    }
    writeArray(gpu, model.tokens, tok);
    writeArray(gpu, model.targets, tgt);
    writeArray(gpu, model.seed, Uint32Array.of(hash3(cfg.seed, 0x3157, 0), 0, 0, 0));
    const submit = (label: string, dispatches: typeof model.forwardEval) => {
      const enc = dev.createCommandEncoder({ label });
      if (label === "score") enc.clearBuffer(model.lossAcc);
      const pass = enc.beginComputePass({ label });
      encodeDispatches(pass, dispatches);
      pass.end();
      dev.queue.submit([enc.finish()]);
    };
    // Form the inputs with `former`'s weights, then score them with the model's.
    model.params.write(gpu, former);
    if (modeStep.dispatches.length) submit("form inputs", modeStep.dispatches);
    const inputs = await readU32(gpu, model.tokens, 0, W * T);
    model.params.write(gpu, params);
    submit("score", [...model.forwardEval, ...model.lossOnly]);
    return { inputs, losses: await readF32(gpu, model.losses, 0, W * T) };
  };
  const base = await run(gold, params);
  const own = await run(gold, other);
  const fut = await run(future, params);
  gpu.check();
  const tolerance = 1e-6;
  let maxOwn = 0, changedOwn = 0, maxFuture = 0, diffInputs = 0;
  for (let w = 0; w < W; w++) {
    for (let t = 0; t < T; t++) {
      const i = w * T + t;
      const d = Math.abs(own.losses[i] - base.losses[i]);
      maxOwn = Math.max(maxOwn, d);
      if (d > tolerance) changedOwn++;
      if (own.inputs[i] !== base.inputs[i]) diffInputs++;
      if (t <= cut) maxFuture = Math.max(maxFuture, Math.abs(fut.losses[i] - base.losses[i]));
    }
  }
  return {
    mode: cfg.mode,
    windows: W,
    positions: T,
    inputsChanged: diffInputs / (W * T),
    maxChangeOwn: maxOwn,
    changedOwn,
    cut,
    maxChangeFuture: maxFuture,
    tolerance,
    decoupled: maxOwn <= tolerance,
    causal: maxFuture <= tolerance,
  };
}

/** One block size of {@linkcode stepTimes}. */
export interface StepTimeRow {
  /** Block size T. */
  blockSize: number;
  /** Gold prefix of free running at this T (its default, T / 4). */
  prefix: number;
  /** Milliseconds per training step by mode (NaN: not measured). */
  ms: Partial<Record<TrainMode, number>>;
  /** Sequential decode steps a free-running step runs before its forward (T − 1, T − P of them its own). */
  frDecodeSteps: number;
}

/** Options of {@linkcode stepTimes}. */
export interface StepTimeOptions {
  /** The shared settings (block_size replaced, prefix the default T / 4). */
  base: TrainConfig;
  /** Block sizes to time, ascending. */
  blockSizes: number[];
  /** Modes to time (default teacher forcing and free running). */
  modes?: TrainMode[];
  /** Steps per timed run (default 3). */
  steps?: number;
  /** Rounds over the whole table; each cell keeps its fastest (default 2). */
  rounds?: number;
  /** Training text given directly instead of base.data. */
  text?: string;
  /** A device (default: a new one). */
  gpu?: Gpu;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * Milliseconds per training step of each mode at each block size: short runs of `steps` steps with one
 * loss readback at their end (tokens/s over the whole run, so the pipeline's start is included), the
 * modes interleaved, `rounds` rounds over the table, each cell's fastest kept (the least disturbed by
 * anything else on the machine). A block size the adapter cannot hold (an InputError from the memory
 * check) ends the table, with `stopped` saying why.
 */
export async function stepTimes(o: StepTimeOptions): Promise<{ rows: StepTimeRow[]; stopped?: string }> {
  const gpu = o.gpu ?? await createGpu();
  const S = o.steps ?? 3, rounds = o.rounds ?? 2;
  const modes = o.modes ?? ["teacher-forcing", "free-running"];
  const rows: StepTimeRow[] = o.blockSizes.map((T) => {
    const P = prefixOf({ block_size: T });
    return { blockSize: T, prefix: P, ms: {}, frDecodeSteps: T - 1 };
  });
  let stopped: string | undefined, last = rows.length;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < last; i++) {
      const row = rows[i], T = row.blockSize;
      for (const mode of modes) {
        let tps: number;
        try {
          const r = await train({
            ...o.base,
            mode,
            block_size: T,
            prefix: undefined,
            steps: S,
            log_interval: S,
            eval_interval: S,
            eval_iters: 1,
            sample_chars: 0,
          }, { gpu, noSave: true, text: o.text });
          tps = r.history.find((h) => h.tokens_per_s !== null)?.tokens_per_s ?? NaN;
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          stopped ??= `block size ${T} (${mode}): ${e.message}`;
          last = i;
          break;
        }
        const ms = (o.base.batch_size * o.base.grad_accum * T) / tps * 1000;
        if (!(ms >= (row.ms[mode] ?? Infinity))) row.ms[mode] = ms;
        o.log?.(`block ${T}, ${mode}: ${ms.toFixed(1)} ms/step (round ${round + 1} of ${rounds})`);
      }
    }
  }
  return { rows: rows.slice(0, last), ...(stopped ? { stopped } : {}) };
}
