/**
 * The training loop. Each optimizer step is ONE command buffer and ONE queue.submit of the training step
 * (src/train/step.ts: clears, then gather -> [mode] -> forward -> loss -> backward per micro-step, grad
 * norm -> clip -> AdamW), plus, at log steps, copies of the loss sums and grad norm into a ring of MAP_READ
 * buffers.
 *
 * The CPU never waits inside a step: window offsets, dropout seeds and the AdamW learning rate are
 * written with queue.writeBuffer before the submit, and the loss comes back asynchronously through the
 * ring. At most two steps are in flight. Evaluation (its own random stream; src/train/evaluate.ts) and
 * checkpoints (written in the background; src/train/checkpointer.ts) happen between steps every
 * eval_interval steps.
 *
 * @module
 */
import { createGpu, type Gpu, GpuError } from "../gpu/device.ts";
import { firstFailingDispatch } from "../gpu/kernel.ts";
import type { GPTConfig } from "../model/config.ts";
import type { GPT } from "../model/gpt.ts";
import { initParams } from "../model/init.ts";
import { checkMemory } from "../model/memory.ts";
import { Rng } from "../util/rng.ts";
import { configError, DEFAULT_TRAIN, setting, type TrainConfig, validateTrainConfig } from "./config.ts";
import { type Corpus, loadCorpus } from "./data.ts";
import { learningRate, type LrSchedule } from "./schedule.ts";
import { loadTrainState } from "./state.ts";
import { RunLog, type StepRecord } from "./log.ts";
import { WriteError } from "../io/atomic.ts";
import { ThroughputMeter } from "./throughput.ts";
import { loadModel, type ModelCheckpoint, weightsToArena } from "../model/checkpoint.ts";
import { type ClaimReport, RunFolder } from "./runfolder.ts";
import { resolveSchedule, resumeConfig } from "./resume.ts";
import { STEP_STATS_BYTES, TrainStep } from "./step.ts";
import { ValidationLoss } from "./evaluate.ts";
import { isHfGpt2Folder } from "../model/hf_gpt2.ts";
import { Checkpointer, type RunPosition } from "./checkpointer.ts";
import { TrainedModel } from "./trained.ts";

export { dropoutSeed } from "./step.ts";

/** A float16 run stops when overflow has halved its loss scale below this (32 halvings from 2^16). */
const MIN_LOSS_SCALE = 1 / 65536;

/**
 * What {@linkcode train} takes: any TrainConfig settings over DEFAULT_TRAIN (nanoGPT's snake_case names,
 * as its config and tforce's saved runs spell them), the text itself, and whether to write a run folder.
 */
export interface TrainOptions extends Partial<TrainConfig> {
  /** Training text given directly instead of `data` (a file); giving both is refused. */
  text?: string;
  /**
   * Write the run folder `out` (checkpoints, train_state.safetensors, log.jsonl, loss.svg). Default: when
   * `out` or `resume` is given; `false` writes nothing to disk wherever `out` points.
   */
  save?: boolean;
}

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
  /** Write nothing to disk, as {@linkcode TrainOptions.save} `false` (tests, browser pages). */
  noSave?: boolean;
  /** float16 runs: the initial dynamic loss scale (default 2^16, as torch.cuda.amp.GradScaler). */
  lossScaleInit?: number;
  /** Training text, as {@linkcode TrainOptions.text}. */
  text?: string;
  /** Called after each evaluation (and its checkpoint) with the model, e.g. to sample from it. */
  onEval?: (e: { step: number; valLoss: number; model: GPT }) => void | Promise<void>;
  /**
   * Called at log steps with this step's gradient g and the previous step's p: [g·p, g·g, p·p] (cosine of
   * successive gradients = gp / sqrt(gg * pp)). Setting it adds one pass over the gradients to each step.
   * In float16 runs g is the loss-scaled gradient (S·g: the cosine is unaffected, gg and gp scale).
   */
  onGradStats?: (step: number, stats: { gp: number; gg: number; pp: number }) => void;
  /**
   * The learning rate of 0-based step `step`, asked just before the step is submitted, given the schedule's
   * rate `scheduled` (a page's live control); default: the schedule's.
   */
  learningRate?: (step: number, scheduled: number) => number;
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
  /** The model (weights on the GPU): save it, take its bytes, or sample from it (`model.generator()`). */
  model: TrainedModel;
  /** The device used. */
  gpu: Gpu;
  /** Best achievable loss when known. */
  entropyRate?: number;
  /** The run's effective configuration. */
  config: TrainConfig;
  /** The latest checkpoint on disk and its step, or null when none was written (or noSave). */
  checkpoint: { path: string; step: number } | null;
}

/**
 * Trains a GPT as `options` say over the defaults (DEFAULT_TRAIN), or, with `resume`, over the settings
 * saved in `out`; see the module doc for the shape of one step. A run that saves (`out` given, or `save`)
 * claims its folder first (src/train/runfolder.ts): locked, and refused if it holds another run.
 *
 * ```ts
 * const r = await train({ text: "hello world\n".repeat(500), steps: 100 }); // nothing written
 * await r.model.save("model.safetensors");
 * ```
 */
export async function train(options: TrainOptions = {}, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { text = hooks.text, save, ...given } = options;
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  if (options.text !== undefined && set.data !== undefined) {
    throw configError`train from text or from ${setting("data")}, not both (got ${
      setting("data")
    } ${set.data})`;
  }
  const saves = save ?? (set.out !== undefined || set.resume === true);
  hooks = { ...hooks, text, noSave: hooks.noSave === true || !saves };
  const asked = { ...DEFAULT_TRAIN, ...set } as TrainConfig;
  // A peak rate given without a final one decays to a tenth of it (nanoGPT's rule), as the defaults do.
  if (set.lr !== undefined && set.min_lr === undefined && !asked.resume) asked.min_lr = asked.lr / 10;
  validateTrainConfig(asked);
  if (asked.resume && asked.init_from !== undefined) {
    throw configError`${setting("init_from")} starts a new run from a checkpoint; it cannot be combined
      with ${setting("resume")}`;
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
 * The run after its settings are checked: the step, the evaluation, the log and the checkpoints are set
 * up, then the loop runs step -> (log read-back) -> every eval_interval steps: evaluate, log, checkpoint.
 */
async function trainIn(
  claim: () => Promise<RunFolder | null>,
  asked: TrainConfig,
  given: Partial<TrainConfig>,
  hooks: TrainHooks,
): Promise<TrainResult> {
  const run = await openRun(claim, asked, given, hooks);
  const { folder, cfg, resumed, corpus, config } = run;
  const saved = resumed?.state;
  const gpu = hooks.gpu ?? await createGpu();
  const step = await createStep(gpu, run, hooks);
  const validation = await ValidationLoss.create(gpu, step.model, corpus.val, {
    batches: cfg.eval_iters,
    padId: corpus.tokenizer.padId ?? undefined,
  });
  const schedule: LrSchedule = {
    lr: cfg.lr,
    minLr: cfg.min_lr,
    warmup: cfg.warmup,
    decaySteps: cfg.lr_decay_steps ?? cfg.steps,
  };
  const trainRng = new Rng(cfg.seed ^ 0x5eed5eed), evalRng = new Rng(cfg.seed ^ 0xe7a1e7a1);
  if (saved) [trainRng.state, evalRng.state] = [saved.trainRng, saved.evalRng];
  const startStep = saved?.step ?? 0;
  // Every input check has passed: only now is an old run moved aside (--overwrite) and the log opened.
  await folder?.prepare();
  const log = new RunLog(cfg.out, hooks.noSave === true, saved?.step ?? null, corpus.entropyRate);
  await log.open();
  hooks.onStart?.({
    config: cfg,
    folder: folder?.report,
    corpus: corpus.description,
    model: config,
    params: step.params,
    adapter: gpu.description,
    entropyRate: corpus.entropyRate,
    startStep,
  });

  const r: RunContext = {
    gpu,
    cfg,
    hooks,
    step,
    validation,
    log,
    trainRng,
    evalRng,
    checkpoints: new Checkpointer(step, {
      dir: cfg.out,
      config,
      tokenizer: corpus.tokenizer,
      run: cfg,
      dry: hooks.noSave === true,
      savedStep: resumed ? startStep : -1,
      hfLayout: cfg.init_from !== undefined && await isHfGpt2Folder(cfg.init_from),
      givenText: hooks.text !== undefined,
    }),
    ring: new StatsRing(gpu, 4),
    inFlight: [],
    clock: new RunClock(saved?.elapsed ?? 0, saved?.evalElapsed ?? 0),
    meter: new ThroughputMeter(step.tokens, startStep, performance.now()),
    progress: { bestVal: saved?.bestVal ?? Infinity, finalVal: NaN, diverged: null },
  };
  const { progress, checkpoints } = r;
  let i = startStep;
  let stopped: TrainResult["stopped"] = "done";
  // However the run ends (an error included), no checkpoint write is left half done when the process exits.
  try {
    try {
      for (; i < cfg.steps; i++) {
        gpu.check(); // surface a validation error or device loss from an earlier step, naming its kernel
        checkpoints.check(); // a checkpoint write failed: stop at once
        log.check();
        if (hooks.signal?.aborted) {
          stopped = "aborted";
          break;
        }
        if (progress.diverged) break;
        const scheduled = learningRate(i, schedule);
        const lr = hooks.learningRate?.(i, scheduled) ?? scheduled;
        await runStep(r, i, lr);
        const done = i + 1;
        if (done % cfg.eval_interval === 0 || done === cfg.steps) {
          await r.ring.drain();
          gpu.check();
          if (progress.diverged || !(await evaluateAt(r, done, lr))) break;
        }
      }
      await r.ring.drain();
      await checkpoints.settle();
      gpu.check();
    } catch (e) {
      throw await stepFailure(r, e, i);
    }
    // Ctrl-C: keep the last completed step.
    await finishSaves(r, i, stopped === "aborted" && i > startStep);
    if (progress.diverged) stopped = "diverged";
    await log.close();
    if (progress.diverged) {
      throw new TrainingDiverged(
        `training stopped: ${progress.diverged}; ${
          checkpoints.kept().replace("last checkpoint", "last good checkpoint")
        }`,
      );
    }
    return {
      history: log.records,
      bestValLoss: progress.bestVal,
      finalValLoss: progress.finalVal,
      steps: i,
      stopped,
      corpus,
      model: new TrainedModel(gpu, step.model, corpus.tokenizer, {
        step: String(i),
        val_loss: String(progress.finalVal),
        // A run on given text cannot name its held-out text: eval then needs --data.
        ...(hooks.text === undefined ? { train_config: JSON.stringify(cfg) } : {}),
      }),
      gpu,
      entropyRate: corpus.entropyRate,
      config: cfg,
      checkpoint: checkpoints.latest,
    };
  } finally {
    await checkpoints.idle();
  }
}

/** A run's checked settings and inputs, before anything touches the GPU. */
interface OpenedRun {
  /** The claimed run folder (null when nothing is saved). */
  folder: RunFolder | null;
  /** The effective configuration: a resume's saved settings, defaults resolved. */
  cfg: TrainConfig;
  /** The state a resume continues from. */
  resumed: Awaited<ReturnType<typeof loadTrainState>> | null;
  /** The weights, shape and tokenizer to start from: a resume's or `--init-from`'s, else none. */
  base: ModelCheckpoint | null;
  /** The tokenized corpus. */
  corpus: Corpus;
  /** The model's shape. */
  config: GPTConfig;
}

/**
 * Settings, resume state, data and model shape. `claim` takes the run folder: a resume first (its state
 * is read under the lock), a new run once its data and checkpoint have loaded (bad input changes nothing).
 */
async function openRun(
  claim: () => Promise<RunFolder | null>,
  asked: TrainConfig,
  given: Partial<TrainConfig>,
  hooks: TrainHooks,
): Promise<OpenedRun> {
  let folder = asked.resume ? await claim() : null;
  const resumed = asked.resume ? await loadTrainState(`${asked.out}/train_state.safetensors`) : null;
  const saved = resumed?.state.run;
  const cfg = saved ? resumeConfig(saved, given, asked.out) : resolveSchedule(asked);
  validateTrainConfig(cfg);
  if (resumed && cfg.steps < resumed.state.step) {
    throw configError`${setting("steps")} ${cfg.steps} is below step ${resumed.state.step}, which the run in
      '${cfg.out}' has reached`;
  }
  // Fine-tuning: weights, shape and tokenizer from a checkpoint; fresh optimizer, step 0, this run's dropout.
  // A checkpoint without a tokenizer (nanoGPT's ckpt.pt on GPT-2's tokens) takes --vocab-file's.
  const initial = !resumed && cfg.init_from !== undefined
    ? await loadModel(cfg.init_from, { vocab: cfg.vocab_file })
    : null;
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
  return { folder, cfg, resumed, base, corpus, config };
}

/**
 * The run's training step on `gpu`, its weights and optimizer state written: a resume's, `--init-from`'s
 * weights with fresh moments, or nanoGPT's initialisation.
 */
async function createStep(gpu: Gpu, run: OpenedRun, hooks: TrainHooks): Promise<TrainStep> {
  const { cfg, corpus, config, base } = run, saved = run.resumed?.state;
  checkMemory(gpu, [
    { name: `training split [${corpus.train.tokens.length} tokens]`, bytes: corpus.train.tokens.byteLength },
    { name: `validation split [${corpus.val.tokens.length} tokens]`, bytes: corpus.val.tokens.byteLength },
  ], "use a smaller corpus (the token ids live in one GPU buffer)");
  const step = await TrainStep.create(gpu, config, {
    B: cfg.batch_size,
    T: config.block_size,
    microSteps: cfg.grad_accum,
    corpus: corpus.train,
    // Padding (lines mode) is both the filler input and an ignored target: no loss, no gradient.
    padId: corpus.tokenizer.padId ?? undefined,
    tokens: corpus.tokenizer.vocabSize,
    optimizer: {
      lr: cfg.lr,
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      weightDecay: cfg.weight_decay,
      gradClip: cfg.grad_clip,
    },
    modeSettings: cfg,
    gradProbe: hooks.onGradStats !== undefined,
    model: { dtype: cfg.dtype },
  });
  const layout = step.model.params.layout;
  const scaleInit = hooks.lossScaleInit === undefined ? undefined : { scale: hooks.lossScaleInit, good: 0 };
  step.load({
    params: base ? weightsToArena(base.weights, layout) : initParams(config, layout, cfg.seed),
    m: saved?.m,
    v: saved?.v,
    lossScaler: saved?.lossScaler ?? scaleInit,
  });
  return step;
}

/** What the loop's steps, evaluations and stops share. */
interface RunContext {
  gpu: Gpu;
  cfg: TrainConfig;
  hooks: TrainHooks;
  step: TrainStep;
  validation: ValidationLoss;
  log: RunLog;
  checkpoints: Checkpointer;
  /** The training windows' stream and the evaluation's (both saved in checkpoints). */
  trainRng: Rng;
  evalRng: Rng;
  ring: StatsRing;
  /** Completion of the submitted steps still running (at most two). */
  inFlight: Promise<void>[];
  clock: RunClock;
  meter: ThroughputMeter;
  /** Best and last validation loss, and why the run must stop if it diverged. */
  progress: { bestVal: number; finalVal: number; diverged: string | null };
}

/**
 * Step `i` (0-based) at learning rate `lr`: its windows and inputs written, one submission, and at log
 * steps the statistics copied into the ring and logged when they arrive. Waits only when three steps
 * would be in flight.
 */
async function runStep(r: RunContext, i: number, lr: number): Promise<void> {
  const { step, cfg } = r, queue = r.gpu.device.queue;
  step.prepare({ step: i, lr, batch: step.drawBatch(r.trainRng, { seed: cfg.seed, step: i }) });
  const enc = step.encode(`step ${i}`);
  const logNow = (i + 1) % cfg.log_interval === 0 || i + 1 === cfg.steps;
  const slot = logNow ? await r.ring.acquire() : null;
  if (slot) step.copyStats(enc, slot.buffer);
  queue.submit([enc.finish({ label: `step ${i}` })]);
  slot?.read((stats) => logTrainingStep(r, i + 1, lr, stats));
  r.inFlight.push(queue.onSubmittedWorkDone());
  if (r.inFlight.length > 2) await r.inFlight.shift();
}

/** Logs step `done`'s read-back statistics (TrainStep.copyStats's layout) and notes a divergence. */
function logTrainingStep(r: RunContext, done: number, lr: number, stats: Float32Array): void {
  const [sum, count, gnorm, , skippedFlag, lossScale, gp, gg, pp] = stats;
  if (r.step.probe) r.hooks.onGradStats!(done, { gp, gg, pp });
  const loss = sum / count;
  const tps = r.meter.record(done, performance.now());
  const skipped = skippedFlag !== 0;
  r.progress.diverged ??= divergence({ loss, gnorm, skipped, lossScale, step: done });
  const rec: StepRecord = {
    step: done,
    train_loss: loss,
    val_loss: null,
    lr,
    grad_norm: gnorm,
    tokens_per_s: tps,
    elapsed_s: r.clock.elapsed(),
    eval_s: r.clock.evalTime(),
    ...(r.step.model.lossScaler ? { loss_scale: lossScale, skipped } : {}),
  };
  r.log.add(rec);
  r.hooks.onRecord?.(rec);
}

/**
 * Why a logged step means the run has diverged, or null. A float16 step whose gradients overflowed was
 * skipped and the loss scale halved: not divergence, unless it keeps happening until the scale is
 * absurdly small.
 */
function divergence(
  s: { loss: number; gnorm: number; skipped: boolean; lossScale: number; step: number },
): string | null {
  if (!Number.isFinite(s.loss)) return `loss is ${s.loss} at step ${s.step}`;
  if (!Number.isFinite(s.gnorm) && !s.skipped) {
    return `gradient norm is ${s.gnorm} at step ${s.step} (loss ${s.loss})`;
  }
  if (s.skipped && s.lossScale < MIN_LOSS_SCALE) {
    return `gradients overflow float16 at every loss scale (down to ${s.lossScale}) at step ${s.step}`;
  }
  return null;
}

/**
 * The evaluation after step `done`: validation loss, its log record, a checkpoint, the plot, the onEval
 * hook. False when the loss is not finite (the run has diverged and stops).
 */
async function evaluateAt(r: RunContext, done: number, lr: number): Promise<boolean> {
  const { progress } = r;
  r.clock.startEval();
  const val = await r.validation.measure(r.evalRng);
  progress.finalVal = val;
  if (!Number.isFinite(val)) {
    progress.diverged = `validation loss is ${val} at step ${done}`;
    return false;
  }
  if (val < progress.bestVal) progress.bestVal = val;
  const rec: StepRecord = {
    step: done,
    train_loss: null,
    val_loss: val,
    lr,
    grad_norm: null,
    tokens_per_s: null,
    elapsed_s: r.clock.elapsed(),
    eval_s: r.clock.evalTime(),
  };
  r.log.add(rec);
  r.hooks.onRecord?.(rec);
  await r.checkpoints.save(val, () => positionAt(r, done));
  await r.log.flush();
  r.clock.endEval();
  await r.hooks.onEval?.({ step: done, valLoss: val, model: r.step.model });
  r.meter.restart(done, performance.now()); // evaluation and checkpoint time is not training time
  return true;
}

/** Where the run stands after step `step`, for a checkpoint. */
function positionAt(r: RunContext, step: number): RunPosition {
  return {
    step,
    trainRng: r.trainRng.state,
    evalRng: r.evalRng.state,
    bestVal: r.progress.bestVal,
    elapsed: r.clock.elapsed(),
    evalElapsed: r.clock.evalTime(),
  };
}

/**
 * The end of the loop: after Ctrl-C (`keepLast`), evaluates and checkpoints the last completed step `at`;
 * then waits for the checkpoint writes. A failed write names the step and the checkpoint kept.
 */
async function finishSaves(r: RunContext, at: number, keepLast: boolean): Promise<void> {
  try {
    if (keepLast) {
      r.clock.startEval();
      const val = await r.validation.measure(r.evalRng);
      r.progress.finalVal = val;
      if (Number.isFinite(val)) {
        if (val < r.progress.bestVal) r.progress.bestVal = val;
        await r.checkpoints.save(val, () => positionAt(r, at));
      }
    }
    await r.checkpoints.settle();
  } catch (e) {
    if (e instanceof WriteError) throw new WriteError(`${e.message} at step ${at}; ${r.checkpoints.kept()}`);
    throw e;
  }
}

/**
 * The error that stops the run when step `i` (0-based) or its evaluation failed. A failed write, and a
 * WebGPU validation error or device loss mid-run, keep the log, name the step (and the kernel) and point
 * at the checkpoint on disk (the weights on the GPU can no longer be trusted); anything else is as is.
 */
async function stepFailure(r: RunContext, e: unknown, i: number): Promise<unknown> {
  const { gpu, checkpoints, log } = r;
  await checkpoints.idle(); // a save of weights read back before the error still lands (latest)
  if (e instanceof WriteError) {
    await log.close().catch(() => {});
    return new WriteError(`${e.message} at step ${i}; ${checkpoints.kept()}`);
  }
  if (!(e instanceof GpuError)) return e;
  await log.close().catch(() => {});
  const dispatches = r.step.dispatches;
  const culprit = gpu.lost ? null : await firstFailingDispatch(gpu, dispatches).catch(() => null);
  const kernel = culprit?.kernel ?? e.kernel;
  const where = culprit ? `kernel ${kernel} (dispatch ${culprit.index + 1} of ${dispatches.length})` : kernel;
  return new GpuError(
    kernel,
    `GPU error in ${where} at training step ${i + 1}: ${
      e.message.slice(e.kernel.length + 2)
    }; ${checkpoints.kept()}`,
  );
}

/** Wall-clock seconds of a run across resumes, and the part of them spent evaluating and checkpointing. */
class RunClock {
  readonly #t0 = performance.now();
  readonly #before: number;
  #evalSeconds: number;
  #evalStart: number | null = null;

  /** A clock continuing from `before` seconds, `evalBefore` of them evaluating (0, 0 for a new run). */
  constructor(before: number, evalBefore: number) {
    this.#before = before;
    this.#evalSeconds = evalBefore;
  }

  /** Seconds so far. */
  elapsed(): number {
    return this.#before + (performance.now() - this.#t0) / 1000;
  }

  /** Seconds evaluating and checkpointing: the finished evaluations plus the running one. */
  evalTime(): number {
    return this.#evalSeconds + (this.#evalStart === null ? 0 : (performance.now() - this.#evalStart) / 1000);
  }

  /** An evaluation (and its checkpoint) begins. */
  startEval(): void {
    this.#evalStart = performance.now();
  }

  /** The evaluation and its checkpoint are done. */
  endEval(): void {
    this.#evalSeconds = this.evalTime();
    this.#evalStart = null;
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

/**
 * A ring of small MAP_READ buffers, one per logged step in flight, each holding the step's statistics
 * as TrainStep.copyStats lays them out ({@linkcode STEP_STATS_BYTES}).
 */
class StatsRing {
  #gpu: Gpu;
  #slots: { buffer: GPUBuffer; busy: Promise<void> | null }[] = [];
  #next = 0;

  constructor(gpu: Gpu, size: number) {
    this.#gpu = gpu;
    for (let i = 0; i < size; i++) {
      this.#slots.push({
        buffer: gpu.device.createBuffer({
          label: `stats_ring${i}`,
          size: STEP_STATS_BYTES,
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
