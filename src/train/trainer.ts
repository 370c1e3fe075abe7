/**
 * The training loop. Each optimizer step is ONE command buffer and ONE queue.submit:
 *
 *   clear grads and the loss accumulator
 *   one compute pass: for each micro-step m: gather(m) -> [mode: free-running rollout, or scheduled
 *                     sampling's first pass + mix; src/train/modes.ts] -> forward -> fused loss -> backward
 *                     then global grad norm -> clip -> AdamW over the whole parameter arena
 *   at log steps: copy the loss sums and grad norm into a ring of MAP_READ buffers
 *
 * The CPU never waits inside a step: window offsets, dropout seeds and the AdamW learning rate are
 * written with queue.writeBuffer before the submit, and the loss comes back asynchronously through the
 * ring. At most two steps are in flight. Evaluation (its own random stream) and checkpoints happen
 * between steps every eval_interval steps.
 *
 * @module
 */
import { Arena, createStorage, readF32, snapshotF32, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu, GpuError } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches, firstFailingDispatch } from "../gpu/kernel.ts";
import { gather, NO_TOKEN } from "../kernels/gather.ts";
import { adamw, adamwUniforms, gradNorm, gradNormScratchBytes, STATS_FLOATS } from "../kernels/optimizer.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT } from "../model/gpt.ts";
import { initParams } from "../model/init.ts";
import { checkMemory } from "../model/memory.ts";
import { hash3 } from "../util/hash.ts";
import { Rng } from "../util/rng.ts";
import { DEFAULT_TRAIN, type TrainConfig, validateTrainConfig } from "./config.ts";
import { type Corpus, drawWindows, loadCorpus, type Split } from "./data.ts";
import { learningRate, type LrSchedule } from "./schedule.ts";
import { loadTrainState, saveCheckpoint, type TrainState } from "./state.ts";
import { RunLog, type StepRecord } from "./log.ts";
import { WriteError } from "../io/atomic.ts";
import { ThroughputMeter } from "./throughput.ts";
import { loadModel, weightsToArena } from "../model/checkpoint.ts";
import { buildModeStep, createGradProbe } from "./modes.ts";
import { type ClaimReport, RunFolder } from "./runfolder.ts";
import { resolveSchedule, resumeConfig } from "./resume.ts";
import { InputError } from "../util/errors.ts";

/** A float16 run stops when overflow has halved its loss scale below this (32 halvings from 2^16). */
const MIN_LOSS_SCALE = 1 / 65536;

/** Hooks and resources for {@linkcode train}. */
export interface TrainHooks {
  /** A device to use (default: a new one). */
  gpu?: Gpu;
  /** Called with every log record (training loss at log steps, validation loss at eval steps). */
  onRecord?: (r: StepRecord) => void;
  /** Called once with a description of the run before the first step. */
  onStart?: (info: TrainStart) => void;
  /** Stops training after the current step when aborted (a checkpoint is written). */
  signal?: AbortSignal;
  /** Write nothing to disk (tests, browser pages). */
  noSave?: boolean;
  /** float16 runs: the initial dynamic loss scale (default 2^16, as torch.cuda.amp.GradScaler). */
  lossScaleInit?: number;
  /** Training text given directly instead of `cfg.data` (browser pages, library callers). */
  text?: string;
  /** Called after each evaluation (and its checkpoint) with the model, e.g. to sample from it. */
  onEval?: (e: { step: number; valLoss: number; model: GPT }) => void | Promise<void>;
  /**
   * Called at log steps with this step's gradient g and the previous step's p: [g·p, g·g, p·p] (cosine of
   * successive gradients = gp / sqrt(gg * pp)). Setting it adds one pass over the gradients to each step.
   * In float16 runs g is the loss-scaled gradient (S·g: the cosine is unaffected, gg and gp scale).
   */
  onGradStats?: (step: number, stats: { gp: number; gg: number; pp: number }) => void;
}

/** What {@linkcode TrainHooks.onStart} receives. */
export interface TrainStart {
  /** The corpus description. */
  corpus: string;
  /** The model's shape. */
  model: GPTConfig;
  /** Trainable parameters. */
  params: number;
  /** The adapter. */
  adapter: string;
  /** Best achievable loss when known (nats/token). */
  entropyRate?: number;
  /** First step to run (0, or the resumed step). */
  startStep: number;
  /** The run's effective configuration (a resume's saved settings, defaults resolved). */
  config: TrainConfig;
  /** What preparing the run folder did (stale lock or temporary files removed, an old run moved). */
  folder?: ClaimReport;
}

/** The outcome of {@linkcode train}. */
export interface TrainResult {
  /** Every record logged, in order. */
  history: StepRecord[];
  /** Best validation loss seen (nats/token). */
  bestValLoss: number;
  /** Last validation loss. */
  finalValLoss: number;
  /** Steps completed (total, including before a resume). */
  steps: number;
  /** Why training ended. */
  stopped: "done" | "aborted" | "diverged";
  /** The corpus used (tokenizer included). */
  corpus: Corpus;
  /** The model (weights on the GPU): sample from it with Generator. */
  model: GPT;
  /** The device used. */
  gpu: Gpu;
  /** Best achievable loss when known. */
  entropyRate?: number;
  /** The run's effective configuration. */
  config: TrainConfig;
  /** The latest checkpoint on disk and its step, or null when none was written (or noSave). */
  checkpoint: { path: string; step: number } | null;
}

/** Per-step seed of micro-step `m`'s dropout masks: a pure function of (seed, step, m), so resumes match. */
export function dropoutSeed(seed: number, step: number, m: number): number {
  return hash3(seed, step, m);
}

/**
 * Trains a GPT as `given` says over the defaults (DEFAULT_TRAIN), or, with `resume`, over the settings
 * saved in `out`; see the module doc for the shape of one step. Unless `hooks.noSave`, the run folder
 * is claimed first (src/train/runfolder.ts): locked, and refused if it holds another run.
 */
export async function train(given: Partial<TrainConfig>, hooks: TrainHooks = {}): Promise<TrainResult> {
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const asked = { ...DEFAULT_TRAIN, ...set } as TrainConfig;
  validateTrainConfig(asked);
  if (asked.resume && asked.init_from !== undefined) {
    throw new InputError(
      "--init-from starts a new run from a checkpoint; it cannot be combined with --resume",
    );
  }
  let folder: RunFolder | null = null;
  const claim = async () => {
    if (!hooks.noSave) folder = await RunFolder.claim(asked.out, asked);
    return folder;
  };
  try {
    return await trainIn(claim, asked, set, hooks);
  } finally {
    await (folder as RunFolder | null)?.release();
  }
}

/**
 * The run after its settings are checked. `claim` takes the run folder: a resume first (its state is
 * read under the lock), a new run once its data and checkpoint have loaded (bad input changes nothing).
 */
async function trainIn(
  claim: () => Promise<RunFolder | null>,
  asked: TrainConfig,
  given: Partial<TrainConfig>,
  hooks: TrainHooks,
): Promise<TrainResult> {
  let folder = asked.resume ? await claim() : null;
  const resumed = asked.resume ? await loadResume(asked) : null;
  const saved = resumed?.state.run;
  const cfg = saved ? resumeConfig(saved, given, asked.out) : resolveSchedule(asked);
  validateTrainConfig(cfg);
  if (resumed && cfg.steps < resumed.state.step) {
    throw new InputError(
      `--steps ${cfg.steps} is below step ${resumed.state.step}, which the run in '${cfg.out}' has reached`,
    );
  }
  // Fine-tuning: weights, shape and tokenizer from a checkpoint; fresh optimizer, step 0, this run's dropout.
  const initial = !resumed && cfg.init_from !== undefined ? await loadModel(cfg.init_from) : null;
  const base = resumed ?? initial;
  const corpus = await loadCorpus({
    data: cfg.data,
    text: hooks.text,
    val: cfg.val,
    tokenizerType: cfg.tokenizer,
    vocabSize: cfg.vocab_size,
    tokenizer: base?.tokenizer,
    examples: cfg.examples,
    blockSize: base?.config.block_size ?? cfg.block_size,
    seed: cfg.seed,
    allowInvalidUtf8: cfg.allow_invalid_utf8,
    vocabFile: cfg.vocab_file,
  });
  if (!asked.resume) folder = await claim();
  const config: GPTConfig = resumed?.config ??
    (initial ? { ...initial.config, dropout: cfg.dropout } : null) ?? {
    n_layer: cfg.n_layer,
    n_head: cfg.n_head,
    n_embd: cfg.n_embd,
    block_size: cfg.block_size,
    vocab_size: corpus.tokenizer.vocabSize,
    bias: cfg.bias,
    dropout: cfg.dropout,
  };
  const gpu = hooks.gpu ?? await createGpu();
  const B = cfg.batch_size, T = config.block_size, M = cfg.grad_accum, N = B * T;
  checkMemory(gpu, [
    { name: `training split [${corpus.train.tokens.length} tokens]`, bytes: corpus.train.tokens.byteLength },
    { name: `validation split [${corpus.val.tokens.length} tokens]`, bytes: corpus.val.tokens.byteLength },
  ], "use a smaller corpus (the token ids live in one GPU buffer)");
  // Padding (lines mode) is both the filler input and an ignored target: no loss, no gradient.
  const model = await GPT.create(gpu, config, {
    B,
    T,
    lossScale: 1 / (N * M),
    ignoreIndex: corpus.tokenizer.padId ?? undefined,
    training: true,
    dtype: cfg.dtype,
  });
  if (model.lossScaler && (resumed?.state.lossScaler || hooks.lossScaleInit !== undefined)) {
    const { scale, good } = resumed?.state.lossScaler ?? { scale: hooks.lossScaleInit!, good: 0 };
    writeArray(gpu, model.lossScaler, new Float32Array([scale, good]));
  }
  const layout = model.params.layout;
  const dev = gpu.device;
  writeArray(
    gpu,
    model.params.buffer,
    base ? weightsToArena(base.weights, layout) : initParams(config, layout, cfg.seed),
  );
  const mArena = new Arena(gpu, "adam_m", layout), vArena = new Arena(gpu, "adam_v", layout);
  if (resumed) {
    writeArray(gpu, mArena.buffer, resumed.state.m);
    writeArray(gpu, vArena.buffer, resumed.state.v);
  }

  // Step inputs written by the CPU before each submit.
  const u32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
  const trainBuf = { corpus: upload(gpu, "corpus.train", corpus.train), offsets: u32("offsets", M * B) };
  const lengths = u32("lengths", M * B), seeds = u32("seeds", M);
  const EI = cfg.eval_iters;
  const valBuf = { corpus: upload(gpu, "corpus.val", corpus.val), offsets: u32("eval_offsets", EI * B) };
  const evalLengths = u32("eval_lengths", EI * B), evalSeeds = u32("eval_seeds", EI);
  const padId = corpus.tokenizer.padId ?? NO_TOKEN;
  const gathers: Dispatch[] = [], evalGathers: Dispatch[] = [];
  const common = { tokens: model.tokens, targets: model.targets, rng: model.rng };
  for (let m = 0; m < M; m++) {
    gathers.push(
      await gather(gpu, { ...common, ...trainBuf, lengths, seeds }, {
        B,
        T,
        micro: m,
        padId,
        ignoreId: padId,
      }),
    );
  }
  for (let i = 0; i < EI; i++) {
    evalGathers.push(
      await gather(gpu, { ...common, ...valBuf, lengths: evalLengths, seeds: evalSeeds }, {
        B,
        T,
        micro: i,
        padId,
        ignoreId: padId,
      }),
    );
  }

  const n = layout.totalFloats;
  const stats = createStorage(gpu, "grad_stats", 4 * STATS_FLOATS);
  const normScratch = createStorage(gpu, "grad_norm_scratch", gradNormScratchBytes(n));
  const scaler = model.lossScaler ? { scaler: model.lossScaler } : {};
  const norm = await gradNorm(gpu, { stats, grads: model.grads.buffer, scratch: normScratch, ...scaler }, {
    n,
    maxNorm: cfg.grad_clip,
  });
  const opt = await adamw(gpu, {
    params: model.params.buffer,
    m: mArena.buffer,
    v: vArena.buffer,
    grads: model.grads.buffer,
    stats,
  }, {
    n,
    decayEnd: cfg.weight_decay > 0 ? model.decayEnd : 0,
    lr: cfg.lr,
    beta1: cfg.beta1,
    beta2: cfg.beta2,
    eps: 1e-8,
    weightDecay: cfg.weight_decay,
    step: 1,
  });
  // The training mode's dispatches go between gather(m) and the training forward (src/train/modes.ts).
  const modeStep = await buildModeStep(gpu, cfg, model, padId);
  const probe = hooks.onGradStats ? await createGradProbe(gpu, model.grads.buffer, n) : null;
  const stepDispatches: Dispatch[] = [];
  for (let m = 0; m < M; m++) {
    stepDispatches.push(gathers[m], ...modeStep.dispatches, ...model.forwardTrain, ...model.backward);
  }
  stepDispatches.push(...norm, ...(probe?.dispatches ?? []), opt);
  const evalDispatches: Dispatch[] = [];
  for (let i = 0; i < EI; i++) evalDispatches.push(evalGathers[i], ...model.forwardEval, ...model.lossOnly);

  const schedule: LrSchedule = {
    lr: cfg.lr,
    minLr: cfg.min_lr,
    warmup: cfg.warmup,
    decaySteps: cfg.lr_decay_steps ?? cfg.steps,
  };
  const trainRng = new Rng(cfg.seed ^ 0x5eed5eed), evalRng = new Rng(cfg.seed ^ 0xe7a1e7a1);
  let startStep = 0, bestVal = Infinity, elapsedBefore = 0, evalSeconds = 0;
  if (resumed) {
    trainRng.state = resumed.state.trainRng;
    evalRng.state = resumed.state.evalRng;
    startStep = resumed.state.step;
    bestVal = resumed.state.bestVal;
    elapsedBefore = resumed.state.elapsed;
    evalSeconds = resumed.state.evalElapsed;
  }
  // Every input check has passed: only now is an old run moved aside (--overwrite) and the log opened.
  await folder?.prepare();
  const log = new RunLog(cfg.out, hooks.noSave === true, resumed?.state.step ?? null, corpus.entropyRate);
  await log.open();
  hooks.onStart?.({
    config: cfg,
    folder: folder?.report,
    corpus: corpus.description,
    model: config,
    params: layout.entries.reduce((s, e) => s + e.size, 0),
    adapter: gpu.description,
    entropyRate: corpus.entropyRate,
    startStep,
  });

  const ring = new LossRing(gpu, 4);
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - t0) / 1000;
  // Seconds spent evaluating and checkpointing (part of elapsed): finished evaluations plus the running one.
  let evalStart: number | null = null;
  const evalTime = () => evalSeconds + (evalStart === null ? 0 : (performance.now() - evalStart) / 1000);
  const meter = new ThroughputMeter(N * M, startStep, performance.now());
  let diverged: string | null = null;
  let finalVal = NaN;

  const evaluate = async (): Promise<number> => {
    const offs = new Uint32Array(EI * B), lens = new Uint32Array(EI * B);
    for (let i = 0; i < EI; i++) {
      const w = drawWindows(corpus.val, evalRng, B, T);
      offs.set(w.offsets, i * B);
      lens.set(w.lengths, i * B);
    }
    writeArray(gpu, valBuf.offsets, offs);
    writeArray(gpu, evalLengths, lens);
    const enc = dev.createCommandEncoder({ label: "eval" });
    enc.clearBuffer(model.lossAcc);
    const pass = enc.beginComputePass({ label: "eval" });
    encodeDispatches(pass, evalDispatches);
    pass.end();
    dev.queue.submit([enc.finish()]);
    const acc = await readF32(gpu, model.lossAcc, 0, 2);
    return acc[0] / acc[1];
  };

  // Checkpoints are written while training goes on. The read-backs are queued at this point of the GPU's
  // timeline, so later steps cannot change what they copy; encoding, writing and fsync (0.2-0.6 s for
  // shakespeare_char's 10.7M parameters and moments on this machine) overlap the next steps instead of
  // stalling them. One save at a time, in order; a failed save's error is thrown at the next step (or
  // save, or the end of the run: `settleSaves`), never left as an unhandled rejection.
  let pendingSave: Promise<void> = Promise.resolve();
  let saveError: unknown = null;
  const settleSaves = async () => {
    await pendingSave;
    if (saveError !== null) throw saveError;
  };
  const save = async (step: number, valLoss: number) => {
    if (hooks.noSave) return;
    await settleSaves();
    const reads = Promise.all([
      snapshotF32(gpu, model.params.buffer),
      snapshotF32(gpu, mArena.buffer),
      snapshotF32(gpu, vArena.buffer),
      model.lossScaler ? snapshotF32(gpu, model.lossScaler) : null,
    ]);
    const isBest = valLoss <= bestVal;
    const at = { step, trainRng: trainRng.state, evalRng: evalRng.state, bestVal, elapsed: elapsed() };
    const evalElapsed = evalTime();
    pendingSave = (async () => {
      const [params, m, v, ls] = await reads;
      const state: TrainState = {
        ...at,
        evalElapsed,
        m,
        v,
        ...(ls ? { lossScaler: { scale: ls[0], good: ls[1] } } : {}),
        run: cfg,
      };
      await saveCheckpoint(cfg.out, config, corpus.tokenizer, layout, params, state, valLoss, isBest);
      savedStep = step;
    })().catch((e) => {
      saveError ??= e;
    });
  };

  let step = startStep, savedStep = resumed ? startStep : -1;
  let stopped: TrainResult["stopped"] = "done";
  const kept = () =>
    savedStep >= 0 && !hooks.noSave
      ? `the last checkpoint (step ${savedStep}) is kept in ${cfg.out}/model.safetensors`
      : "no checkpoint was written";
  // However the run ends (an error included), no checkpoint write is left half done when the process exits.
  try {
    try {
      for (; step < cfg.steps; step++) {
        gpu.check(); // surface a validation error or device loss from an earlier step, naming its kernel
        if (saveError !== null) throw saveError; // a checkpoint or log write failed: stop at once
        log.check();
        if (hooks.signal?.aborted) {
          stopped = "aborted";
          break;
        }
        if (diverged) break;
        // CPU side of the step: windows, seeds, learning rate. No waiting.
        const offs = new Uint32Array(M * B), lens = new Uint32Array(M * B), sds = new Uint32Array(M);
        for (let m = 0; m < M; m++) {
          const w = drawWindows(corpus.train, trainRng, B, T);
          offs.set(w.offsets, m * B);
          lens.set(w.lengths, m * B);
          sds[m] = dropoutSeed(cfg.seed, step, m);
        }
        writeArray(gpu, trainBuf.offsets, offs);
        writeArray(gpu, lengths, lens);
        writeArray(gpu, seeds, sds);
        const lr = learningRate(step, schedule);
        opt.update(adamwUniforms({ lr, beta1: cfg.beta1, beta2: cfg.beta2, step: step + 1 }));
        modeStep.update(step);

        const enc = dev.createCommandEncoder({ label: `step ${step}` });
        enc.clearBuffer(model.grads.buffer);
        enc.clearBuffer(model.lossAcc);
        const pass = enc.beginComputePass({ label: `step ${step}` });
        encodeDispatches(pass, stepDispatches);
        pass.end();
        const logNow = (step + 1) % cfg.log_interval === 0 || step + 1 === cfg.steps;
        const slot = logNow ? await ring.acquire() : null;
        if (slot) {
          enc.copyBufferToBuffer(model.lossAcc, 0, slot.buffer, 0, 8);
          enc.copyBufferToBuffer(stats, 0, slot.buffer, 8, 16);
          if (probe) enc.copyBufferToBuffer(probe.gstats, 0, slot.buffer, 24, 12);
        }
        dev.queue.submit([enc.finish({ label: `step ${step}` })]);
        if (slot) {
          const s = step, lrNow = lr;
          slot.read(([sum, count, gnorm, , skippedFlag, lossScale, gp, gg, pp]) => {
            if (probe) hooks.onGradStats!(s + 1, { gp, gg, pp });
            const loss = sum / count;
            const tps = meter.record(s + 1, performance.now());
            // A float16 step whose gradients overflowed was skipped and the loss scale halved: not divergence,
            // unless it keeps happening until the scale is absurdly small.
            const skipped = skippedFlag !== 0;
            if (!Number.isFinite(loss)) {
              diverged ??= `loss is ${loss} at step ${s + 1}`;
            } else if (!Number.isFinite(gnorm) && !skipped) {
              diverged ??= `gradient norm is ${gnorm} at step ${s + 1} (loss ${loss})`;
            } else if (skipped && lossScale < MIN_LOSS_SCALE) {
              diverged ??= `gradients overflow float16 at every loss scale (down to ${lossScale}) at step ${
                s + 1
              }`;
            }
            const rec: StepRecord = {
              step: s + 1,
              train_loss: loss,
              val_loss: null,
              lr: lrNow,
              grad_norm: gnorm,
              tokens_per_s: tps,
              elapsed_s: elapsed(),
              eval_s: evalTime(),
              ...(model.lossScaler ? { loss_scale: lossScale, skipped } : {}),
            };
            log.add(rec);
            hooks.onRecord?.(rec);
          });
        }
        inFlight.push(dev.queue.onSubmittedWorkDone());
        if (inFlight.length > 2) await inFlight.shift();

        const done = step + 1;
        if (done % cfg.eval_interval === 0 || done === cfg.steps) {
          await ring.drain();
          gpu.check();
          if (diverged) break;
          evalStart = performance.now();
          const val = await evaluate();
          finalVal = val;
          if (!Number.isFinite(val)) {
            diverged = `validation loss is ${val} at step ${done}`;
            break;
          }
          const best = val < bestVal;
          if (best) bestVal = val;
          const rec: StepRecord = {
            step: done,
            train_loss: null,
            val_loss: val,
            lr,
            grad_norm: null,
            tokens_per_s: null,
            elapsed_s: elapsed(),
            eval_s: evalTime(),
          };
          log.add(rec);
          hooks.onRecord?.(rec);
          await save(done, val);
          await log.flush();
          evalSeconds = evalTime();
          evalStart = null;
          await hooks.onEval?.({ step: done, valLoss: val, model });
          meter.restart(done, performance.now()); // evaluation and checkpoint time is not training time
        }
      }
      await ring.drain();
      await settleSaves();
      gpu.check();
    } catch (e) {
      await pendingSave; // a save of weights read back before the error still lands (savedStep)
      if (e instanceof WriteError) {
        await log.close().catch(() => {});
        throw new WriteError(`${e.message} at step ${step}; ${kept()}`);
      }
      if (!(e instanceof GpuError)) throw e;
      // A validation error or device loss mid-run: keep the log, name the step and the kernel, and point
      // at the checkpoint on disk (the weights on the GPU can no longer be trusted).
      await log.close().catch(() => {});
      const culprit = gpu.lost ? null : await firstFailingDispatch(gpu, stepDispatches).catch(() => null);
      const kernel = culprit?.kernel ?? e.kernel;
      const where = culprit
        ? `kernel ${kernel} (dispatch ${culprit.index + 1} of ${stepDispatches.length})`
        : kernel;
      throw new GpuError(
        kernel,
        `GPU error in ${where} at training step ${step + 1}: ${
          e.message.slice(e.kernel.length + 2)
        }; ${kept()}`,
      );
    }
    try {
      if (stopped === "aborted" && step > startStep) {
        // Keep the last completed step.
        evalStart = performance.now();
        const val = await evaluate();
        finalVal = val;
        if (Number.isFinite(val)) {
          if (val < bestVal) bestVal = val;
          await save(step, val);
        }
      }
      await settleSaves();
    } catch (e) {
      if (e instanceof WriteError) throw new WriteError(`${e.message} at step ${step}; ${kept()}`);
      throw e;
    }
    if (diverged) stopped = "diverged";
    await log.close();
    if (diverged) {
      throw new TrainingDiverged(
        `training stopped: ${diverged}; ${kept().replace("last checkpoint", "last good checkpoint")}`,
      );
    }
    return {
      history: log.records,
      bestValLoss: bestVal,
      finalValLoss: finalVal,
      steps: step,
      stopped,
      corpus,
      model,
      gpu,
      entropyRate: corpus.entropyRate,
      config: cfg,
      checkpoint: savedStep >= 0 && !hooks.noSave
        ? { path: `${cfg.out}/model.safetensors`, step: savedStep }
        : null,
    };
  } finally {
    await pendingSave;
  }
}

/** Raised when the loss becomes NaN or infinite; the last good checkpoint stays on disk. */
export class TrainingDiverged extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "TrainingDiverged";
  }
}

function upload(gpu: Gpu, label: string, s: Split): GPUBuffer {
  return createStorage(gpu, label, s.tokens.byteLength, s.tokens);
}

function loadResume(cfg: TrainConfig) {
  return loadTrainState(`${cfg.out}/train_state.safetensors`);
}

/**
 * A ring of small MAP_READ buffers, per logged step: [loss sum, count, grad norm, gradient multiplier, skipped,
 * loss scale, g·p, g·g, p·p].
 */
class LossRing {
  #gpu: Gpu;
  #slots: { buffer: GPUBuffer; busy: Promise<void> | null }[] = [];
  #next = 0;

  constructor(gpu: Gpu, size: number) {
    this.#gpu = gpu;
    for (let i = 0; i < size; i++) {
      this.#slots.push({
        buffer: gpu.device.createBuffer({
          label: `loss_ring${i}`,
          size: 48, // loss sum, count, 4 optimizer stats, 3 gradient probe stats
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        }),
        busy: null,
      });
    }
  }

  /** The next free slot (waits only if the GPU is a whole ring of log intervals behind). */
  async acquire(): Promise<{ buffer: GPUBuffer; read: (use: (v: Float32Array) => void) => void }> {
    const slot = this.#slots[this.#next];
    this.#next = (this.#next + 1) % this.#slots.length;
    if (slot.busy) await slot.busy;
    return {
      buffer: slot.buffer,
      // Call after the submit that fills the slot; `use` runs when the values arrive.
      read: (use) => {
        slot.busy = slot.buffer.mapAsync(GPUMapMode.READ).then(() => {
          const v = new Float32Array(slot.buffer.getMappedRange().slice(0));
          slot.buffer.unmap();
          use(v);
        });
      },
    };
  }

  /** Waits for every pending read. */
  async drain(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.busy));
    this.#gpu.check();
  }
}
