/**
 * The playground page: the engine, unchanged, training a GPT in the browser, with views to learn from.
 * Pick or paste a text, choose a model, train (loss and learning-rate charts, progress and a time
 * estimate; the learning rate can be changed between steps), and after each evaluation the model writes
 * a sample, streamed, each character shaded by how sure the model was of it. An attention map shows what
 * a chosen head reads; the exposure panel compares teacher-forced and free-running predictions (against
 * the true law of the built-in language). Download the model as .safetensors and load one back.
 *
 * Everything runs on the page's main thread and one WebGPU device: a training step is one queue
 * submission and the trainer awaits the GPU between steps, so the page stays responsive. Samples are
 * written inside the trainer's evaluation hook, when its queue is idle.
 *
 * Every failure is shown beside the control it came from, and the page stays usable. The text and the
 * prompt are checked before any kernel is compiled.
 *
 * For tests and links, URL parameters preset the form: `size` (tiny | small), `dtype` (float32 | float16:
 * mixed precision where the adapter has shader-f16), `steps`, `eval` (steps between evaluations) and
 * `chars` (sample length). The body's data attributes report progress: `data-state` (loading | ready |
 * compiling | training | stopping | sampling | measuring | done | error | no-webgpu), `data-error-slot`
 * (which control's message is showing), `data-step`, `data-first-loss`, `data-last-loss`, `data-val-loss`,
 * `data-lr` and `data-lr-scheduled` (the rate the latest logged step used, and its schedule's),
 * `data-samples`, `data-kernels` and `data-compile-s` (pipelines compiled, and seconds, before the first
 * step), `data-attention-cells`, `data-stopped` (the step a Stop settled at) and, after a measurement,
 * `data-exposure-tf`, `-fr`, `-gap`, `-kl`, `-windows`, and with the oracle `data-exposure-oracle-gold`
 * and `-own` (mean KL(p* ‖ model), nats).
 *
 * @module
 */
import { Arena } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { generateLanguage } from "../src/data/language.ts";
import { type LanguageOracle, languageOracle } from "../src/data/oracle.ts";
import { type Tokenizer, trainTokenizer } from "../src/data/tokenizer.ts";
import { decodeModel, encodeModel, weightsToArena } from "../src/model/checkpoint.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { Generator } from "../src/model/generate.ts";
import { countParams, paramLayout } from "../src/model/params.ts";
import { DEFAULT_TRAIN, type TrainConfig } from "../src/train/config.ts";
import type { StepRecord } from "../src/train/log.ts";
import { learningRate } from "../src/train/schedule.ts";
import { train, type TrainResult } from "../src/train/trainer.ts";
import { measureExposure } from "../src/train/exposure.ts";
import {
  type AdapterReport,
  describeAdapter,
  duration,
  expectedTiming,
  noWebGpuHelp,
  rememberTiming,
  requestAdapterInfo,
} from "./adapter.ts";
import { AttentionMap } from "./attention.ts";
import { LineChart } from "./chart.ts";
import { attentionMaps, cpuViewFits, type HostModel, hostModel, tokenProbabilities } from "./lens.ts";
import { beginSample } from "./samples.ts";
import { exposureView } from "./exposure_view.ts";
import {
  checkText,
  encodeFor,
  PageError,
  PEAK_LRS,
  presetSteps,
  runConfig,
  scheduleOf,
  type Size,
  type Slot,
} from "./settings.ts";

// ---- page elements and parameters ----------------------------------------------------------------------

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: no element #${id}`);
  return e as T;
}

const ui = {
  adapter: el<HTMLParagraphElement>("adapter"),
  adapterNote: el<HTMLParagraphElement>("adapter-note"),
  text: el<HTMLTextAreaElement>("text"),
  file: el<HTMLInputElement>("file"),
  resetText: el<HTMLButtonElement>("reset-text"),
  textInfo: el<HTMLSpanElement>("text-info"),
  size: el<HTMLSelectElement>("size"),
  dtype: el<HTMLSelectElement>("dtype"),
  steps: el<HTMLInputElement>("steps"),
  sizeInfo: el<HTMLParagraphElement>("size-info"),
  estimate: el<HTMLParagraphElement>("estimate"),
  lr: el<HTMLInputElement>("lr"),
  lrValue: el<HTMLOutputElement>("lr-value"),
  train: el<HTMLButtonElement>("train"),
  stop: el<HTMLButtonElement>("stop"),
  progress: el<HTMLProgressElement>("progress"),
  status: el<HTMLParagraphElement>("status"),
  prompt: el<HTMLInputElement>("prompt"),
  temperature: el<HTMLInputElement>("temperature"),
  temperatureValue: el<HTMLOutputElement>("temperature-value"),
  sample: el<HTMLButtonElement>("sample"),
  samples: el<HTMLOListElement>("samples"),
  details: el<HTMLDivElement>("char-details"),
  attnText: el<HTMLInputElement>("attn-text"),
  attnLayer: el<HTMLSelectElement>("attn-layer"),
  attnHead: el<HTMLSelectElement>("attn-head"),
  measure: el<HTMLButtonElement>("measure"),
  exposureStatus: el<HTMLParagraphElement>("exposure-status"),
  download: el<HTMLButtonElement>("download"),
  load: el<HTMLInputElement>("load"),
  modelInfo: el<HTMLSpanElement>("model-info"),
};

const charts = {
  loss: new LineChart(el("chart"), "loss chart"),
  lr: new LineChart(el("lr-chart"), "learning-rate chart"),
  exposure: new LineChart(el("exposure-chart"), "teacher forcing vs free running chart"),
};
const attention = new AttentionMap(el("attention"), el("attention-readout"));

const query = new URLSearchParams(location.search);
function intParam(name: string): number | undefined {
  const v = query.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`URL parameter ${name}=${v}: expected a positive integer`);
  }
  return n;
}
const evalEvery = intParam("eval");
/** binding=BYTES: plan buffers as if one storage binding held BYTES (a small model then takes the paths of
 * one larger than the adapter's binding, as GPT-2 small is on a 128 MiB binding). */
const bindingCap = intParam("binding");
const sampleChars = intParam("chars") ?? 160;
/** Exposure measurement: validation windows (8 keeps it to seconds on a software adapter). */
const EXPOSURE_WINDOWS = 8;
/** The built-in language's seed (generateLanguage's default), for its oracle. */
const LANGUAGE_SEED = 1337;
const DEFAULT_TEXT = generateLanguage({ chars: 20000, seed: LANGUAGE_SEED });

function setData(values: Record<string, string | number>): void {
  for (const [k, v] of Object.entries(values)) document.body.dataset[k] = String(v);
}

// ---- errors: beside the control that caused them -------------------------------------------------------

function clearError(slot: Slot): void {
  const e = el(`${slot}-error`);
  e.hidden = true;
  e.textContent = "";
}

/**
 * Shows `e` beside its control (a PageError's slot, a data error's "text", else `slot`) and ends the
 * action: the page is usable again. `quiet`: only the message (a side view failed; what runs goes on).
 */
function showError(e: unknown, slot: Slot, o: { quiet?: boolean } = {}): void {
  console.warn(e);
  const msg = e instanceof Error ? e.message : String(e);
  const where: Slot = e instanceof PageError ? e.slot : /^data: /.test(msg) ? "text" : slot;
  const box = el(`${where}-error`);
  box.textContent = msg.replace(/^data: /, "The text: ");
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
  if (o.quiet) return;
  setState("error");
  setData({ errorSlot: where });
}

// ---- the device ------------------------------------------------------------------------------------------

let device: Promise<Gpu> | null = null;
let adapter: AdapterReport = { name: "unknown adapter", software: null };
/** Pipelines whose compilation has started and finished on the device. */
const compiles = { started: 0, done: 0 };

/** The page's one device; its pipeline compilations are counted for the progress bar. */
function gpu(): Promise<Gpu> {
  const limits = bindingCap === undefined ? undefined : { maxStorageBufferBindingSize: bindingCap };
  return device ??= createGpu({ limits }).then((g) => {
    const d = g.device, compile = d.createComputePipelineAsync.bind(d);
    d.createComputePipelineAsync = (desc) => {
      compiles.started++;
      return compile(desc).finally(() => compiles.done++);
    };
    return g;
  });
}

// ---- state -------------------------------------------------------------------------------------------

type State =
  | "ready"
  | "compiling"
  | "training"
  | "stopping"
  | "sampling"
  | "measuring"
  | "done"
  | "error"
  | "no-webgpu";

/** A model to sample from, measure and save: its weights on the GPU and on the host. */
interface Model {
  config: GPTConfig;
  tokenizer: Tokenizer;
  params: Arena;
  generator: Generator;
  /** The parameter-arena image of `params`. */
  host: Float32Array;
  /** The host weights by name, for the CPU views. */
  view: HostModel;
  /** Written into a downloaded checkpoint (step, val_loss, or a loaded file's own). */
  metadata: Record<string, string>;
  /** The text it was trained on ("" for a loaded model: the text box's is used). */
  text: string;
}

/** A Model of its parts; the host view is built from `host`. */
function modelOf(m: Omit<Model, "view">): Model {
  return { ...m, view: hostModel(m.config, m.tokenizer, m.params.layout, m.host) };
}

/** The last trained or loaded model (Sample, Download, Measure). */
let current: Model | null = null;
/** The newest weights to show in the attention view: the current model, or the run's latest evaluation. */
let live: Model | null = null;
/** The run in progress. */
let running: Run | null = null;
let sampleSeed = 1;

function setState(state: State): void {
  const busy = ["compiling", "training", "stopping", "sampling", "measuring"].includes(state);
  const noGpu = state === "no-webgpu";
  ui.train.disabled = busy || noGpu;
  ui.stop.disabled = state !== "compiling" && state !== "training";
  for (const b of [ui.sample, ui.measure, ui.download]) b.disabled = busy || current === null;
  for (const c of [ui.load, ui.file, ui.resetText, ui.size, ui.dtype, ui.steps]) c.disabled = busy || noGpu;
  setData({ state });
  if (!busy) {
    ui.progress.value = state === "done" ? ui.progress.value : 0;
    delete document.body.dataset.errorSlot;
  }
}

// ---- text, model size and estimates ---------------------------------------------------------------------

function formSize(): Size {
  return ui.size.value as Size;
}

function describeText(): void {
  const t = ui.text.value;
  const chars = Array.from(t).length, distinct = new Set(t).size;
  const source = t === DEFAULT_TEXT.text ? "the generated language; " : "";
  ui.textInfo.textContent = `${source}${chars.toLocaleString("en-US")} characters, ${distinct} distinct`;
}

function describeSize(): void {
  const c = runConfig(formSize(), 1, {});
  const vocab = new Set(ui.text.value).size || 1;
  const n = countParams({ ...c, vocab_size: vocab });
  ui.sizeInfo.textContent = `${c.n_layer} layer${c.n_layer > 1 ? "s" : ""}, ${c.n_head} heads, ` +
    `${c.n_embd} channels, reads ${c.block_size} characters at a time, batch ${c.batch_size}: ` +
    `${n.toLocaleString("en-US")} parameters with this text's ${vocab} characters.`;
  describeEstimate();
}

/** The time a run of the form's settings should take here, with a warning when it is long. */
function describeEstimate(): void {
  const steps = Number(ui.steps.value);
  if (!Number.isInteger(steps) || steps < 1) {
    ui.estimate.textContent = "";
    return;
  }
  const t = expectedTiming(adapter, formSize());
  const total = t.compileS + steps * t.stepS;
  const where = adapter.software ? "this software renderer" : "this adapter";
  const basis = t.measured
    ? "as measured here last time"
    : adapter.software
    ? "typical for a software renderer"
    : "a guess until the first run";
  const perStep = t.stepS < 0.1 ? `${Math.round(t.stepS * 1000)} ms` : `${t.stepS.toFixed(2)} s`;
  const long = total > 300 ? " That is a long wait: try the tiny model or fewer steps first." : "";
  ui.estimate.textContent = `Expected time on ${where}: about ${duration(total)} ` +
    `(${duration(t.compileS)} compiling kernels, then ~${perStep} a step; ${basis}).${long}`;
  ui.estimate.classList.toggle("warn", total > 300);
  drawLrChart(null);
}

/** The peak learning rate on the slider. */
function peakLr(): number {
  return PEAK_LRS[Number(ui.lr.value)] ?? DEFAULT_TRAIN.lr;
}

/** The prompt box's token ids for `tok` (a new line, or the text's first character, when empty). */
function promptIds(tok: Tokenizer, text: string): number[] {
  const typed = ui.prompt.value;
  if (typed.length > 0) {
    const ids = encodeFor(tok, typed, "prompt", "The prompt");
    if (ids.length > 0) return ids;
  }
  for (const s of ["\n", Array.from(text)[0] ?? ""]) {
    try {
      const ids = tok.encode(s);
      if (ids.length > 0) return Array.from(ids);
    } catch {
      // not in the vocabulary: try the next one
    }
  }
  return [0];
}

// ---- charts ------------------------------------------------------------------------------------------

function drawLossChart(history: StepRecord[], steps: number, entropyRate?: number): void {
  const pts = (k: "train_loss" | "val_loss") =>
    history.filter((r) => r[k] !== null).map((r) => [r.step, r[k] as number] as const);
  charts.loss.draw({
    xLabel: "step",
    yLabel: "loss",
    series: [
      { name: "train", points: pts("train_loss") },
      { name: "validation", points: pts("val_loss"), dashed: true },
    ],
    hlines: entropyRate === undefined
      ? []
      : [{ y: entropyRate, label: `best achievable ${entropyRate.toFixed(3)}` }],
    xDomain: [0, steps],
  });
}

/** The planned schedule (at the slider's peak from now on) and, during or after a run, the rates used. */
function drawLrChart(history: StepRecord[] | null): void {
  const cfg = running?.cfg ?? runConfig(formSize(), Number(ui.steps.value) || 1, { lr: peakLr() });
  const s = scheduleOf(cfg), scale = peakLr() / cfg.lr;
  const every = Math.max(1, Math.floor(cfg.steps / 300));
  const planned: [number, number][] = [];
  for (let i = 0; i < cfg.steps; i += every) planned.push([i + 1, learningRate(i, s) * scale]);
  const series = [{ name: "schedule at the current peak", points: planned, dashed: true }];
  if (history?.length) {
    series.push({
      name: "used by each step",
      points: history.filter((r) => r.train_loss !== null).map((r) => [r.step, r.lr]),
      dashed: false,
    });
  }
  charts.lr.draw({
    xLabel: "step",
    yLabel: "learning rate",
    series,
    xDomain: [0, cfg.steps],
    format: (v) => v.toExponential(1),
  });
}

// ---- samples ---------------------------------------------------------------------------------------------

/** Thrown from the generator's stream when Stop is pressed mid-sample. */
class SampleStopped extends Error {}

/**
 * Writes a sample of `m` at the top of the list: streamed as it is generated, then shaded by the model's
 * probabilities (CPU) when the model is small enough. Stops at the next chunk once `signal` is aborted.
 */
async function writeSample(m: Model, label: string, signal?: AbortSignal): Promise<void> {
  const prompt = promptIds(m.tokenizer, m.text || ui.text.value);
  const temperature = Number(ui.temperature.value);
  const promptText = m.tokenizer.decode(prompt);
  const entry = beginSample(
    ui.samples,
    ui.details,
    `${label} · temperature ${temperature}`,
    promptText.replace(/\n/g, "↵\n"),
  );
  setData({ samples: ui.samples.children.length });
  const ids = [...prompt];
  try {
    await m.generator.generate(prompt, sampleChars, { temperature, seed: sampleSeed++ }, (tokens) => {
      if (signal?.aborted) throw new SampleStopped("stopped");
      ids.push(...tokens);
      entry.append(m.tokenizer.decode(tokens));
    });
  } catch (e) {
    if (!(e instanceof SampleStopped)) throw e;
    entry.note("(stopped)");
    return;
  }
  if (!cpuViewFits(m.config, ids.length)) {
    entry.note("(this model is too large for the page's CPU view of its probabilities)");
    return;
  }
  entry.shade(tokenProbabilities(m.view, ids, prompt.length), temperature);
  ui.details.replaceChildren(
    Object.assign(document.createElement("p"), {
      className: "muted",
      textContent: "Point at a character of a sample (or focus one and use the arrow keys) to see its top 5.",
    }),
  );
}

// ---- attention -------------------------------------------------------------------------------------------

let attnTyped = false;

/** Fills the layer and head choices for `m` and a default text of the model's context. */
function prepareAttention(m: Model): void {
  const fill = (sel: HTMLSelectElement, n: number) => {
    const keep = Number(sel.value) || 0;
    sel.replaceChildren(...Array.from({ length: n }, (_, i) => new Option(String(i), String(i))));
    sel.value = String(Math.min(keep, n - 1));
  };
  fill(ui.attnLayer, m.config.n_layer);
  fill(ui.attnHead, m.config.n_head);
  if (!attnTyped) {
    const chars = Array.from(m.text || ui.text.value);
    ui.attnText.value = chars.slice(0, Math.min(m.config.block_size, 40)).join("");
  }
}

/** Redraws the attention view; a problem (say, a character the model has not seen) goes beside it. */
function refreshAttention(): void {
  try {
    drawAttention();
  } catch (e) {
    showError(e, "attention", { quiet: true });
  }
}

/** Draws the chosen head's attention over the attention text, for the newest weights. */
function drawAttention(): void {
  clearError("attention");
  const m = live ?? current;
  if (!m) return;
  const chars = Array.from(ui.attnText.value).slice(0, m.config.block_size);
  if (chars.length === 0) {
    throw new PageError("attention", "Type a few characters of the text to see attention over them.");
  }
  const ids = encodeFor(m.tokenizer, chars.join(""), "attention", "The attention text")
    .slice(0, m.config.block_size);
  if (!cpuViewFits(m.config, ids.length)) {
    attention.draw([], [], "This model is too large for the page's CPU view of attention.");
    return;
  }
  const maps = attentionMaps(m.view, ids);
  attention.draw(maps.tokens, maps.weights(Number(ui.attnLayer.value), Number(ui.attnHead.value)));
  setData({ attentionCells: attention.cells });
}

// ---- exposure ----------------------------------------------------------------------------------------------

let oracle: LanguageOracle | null = null;
const EXPOSURE_KEYS = ["exposureTf", "exposureFr", "exposureGap", "exposureKl", "exposureWindows"];

function clearExposure(message: string): void {
  for (const k of [...EXPOSURE_KEYS, "exposureOracleGold", "exposureOracleOwn"]) {
    delete document.body.dataset[k];
  }
  charts.exposure.draw(null);
  ui.exposureStatus.textContent = message;
}

/**
 * Measures teacher-forced against free-running predictions of `m` on validation windows of its text (the
 * last 10%): against the language's true law (the oracle) when that text is the built-in language.
 */
async function measure(m: Model): Promise<void> {
  clearError("exposure");
  const text = m.text || ui.text.value, T = m.config.block_size;
  const all = encodeFor(m.tokenizer, text, "exposure", "The text box's text");
  const ids = Uint32Array.from(all.slice(Math.floor(all.length * 0.9)));
  if (ids.length < T + 1) {
    clearExposure(`Not measured: the validation text has ${ids.length} tokens, fewer than ${T + 1}.`);
    return;
  }
  const withOracle = text === DEFAULT_TEXT.text && m.tokenizer.type === "char";
  if (withOracle) oracle ??= languageOracle(LANGUAGE_SEED);
  setState("measuring");
  const t0 = performance.now(), compiled = compiles.done;
  const tick = setInterval(() => {
    ui.exposureStatus.textContent = `Measuring… ${((performance.now() - t0) / 1000).toFixed(0)} s` +
      (compiles.done > compiled ? ` (${compiles.done - compiled} kernels compiled for it so far)` : "");
  }, 250);
  try {
    const r = await measureExposure(m.config, m.host, ids, {
      gpu: await gpu(),
      windows: EXPOSURE_WINDOWS,
      prefix: Math.max(1, Math.floor(T / 4)),
      decode: "argmax",
      oracle: withOracle ? oracle! : undefined,
      tokenizer: m.tokenizer,
    });
    const view = exposureView(r, (performance.now() - t0) / 1000);
    charts.exposure.draw(view.spec);
    ui.exposureStatus.textContent = view.summary;
    setData(view.data);
  } finally {
    clearInterval(tick);
  }
}

// ---- kernels compiled ahead ------------------------------------------------------------------------------

/** The models whose kernels are compiled or compiling (size, precision and vocabulary). */
const warmed = new Set<string>();

/**
 * Compiles, in the background, the kernels a run of the form's model will need: a throwaway run of one
 * step and its evaluation, the sample generator and the exposure measurement (on zero weights), side by
 * side. Pipelines are cached per device, so a run started later (or now) finds them ready or compiling.
 * Called when the page opens and when a run starts, not when a choice changes: compilations cannot be
 * cancelled, and a model merely looked at would hold up the one trained.
 */
function warmUp(): void {
  const size = formSize(), dtype = ui.dtype.value as Precision, text = ui.text.value;
  const cfg = { ...runConfig(size, 1, { dtype, evalEvery: 1 }), eval_iters: 1 };
  try {
    checkText(text, cfg.block_size);
  } catch {
    return; // Train will say what is wrong
  }
  const tokenizer = trainTokenizer(cfg.tokenizer, text);
  const key = `${size}/${dtype}/${tokenizer.vocabSize}`;
  if (warmed.has(key) || document.body.dataset.state === "no-webgpu") return;
  warmed.add(key);
  const config: GPTConfig = {
    n_layer: cfg.n_layer,
    n_head: cfg.n_head,
    n_embd: cfg.n_embd,
    block_size: cfg.block_size,
    vocab_size: tokenizer.vocabSize,
    bias: cfg.bias,
    dropout: cfg.dropout,
  };
  const T = config.block_size;
  gpu().then(async (g) => {
    const params = new Arena(g, "warm.params", paramLayout(config).layout);
    await Promise.all([
      train(cfg, { gpu: g, text, noSave: true }),
      Generator.create(g, config, params),
      measureExposure(
        config,
        new Float32Array(params.layout.totalFloats),
        new Uint32Array(EXPOSURE_WINDOWS * T + 1),
        {
          gpu: g,
          windows: EXPOSURE_WINDOWS,
          prefix: Math.max(1, Math.floor(T / 4)),
          decode: "argmax",
        },
      ),
    ]);
  }).catch((e) => {
    warmed.delete(key);
    console.warn("compiling ahead failed (a run will report it):", e);
  });
  showWarmUp();
}

/** While nothing runs, the status line counts the kernels compiled ahead. */
function showWarmUp(): void {
  const before = compiles.done;
  const tick = setInterval(() => {
    const idle = ["ready", "done"].includes(document.body.dataset.state ?? "");
    const pending = compiles.started - compiles.done;
    if (idle && running === null) {
      const ready = compiles.done - before;
      ui.status.textContent = pending > 0
        ? `Compiling kernels ahead, so that Train starts sooner: ${ready} ready, ${pending} compiling…`
        : `Ready: ${compiles.done} kernels compiled.`;
    }
    if (pending === 0) clearInterval(tick);
  }, 500);
}

// ---- training ------------------------------------------------------------------------------------------------

/** A training run in progress. */
interface Run {
  cfg: TrainConfig;
  size: Size;
  text: string;
  tokenizer: Tokenizer;
  abort: AbortController;
  entropyRate?: number;
  t0: number;
  phase: "compiling" | "training" | "sampling";
  /** Pipelines compiled before this run began (they are cached per device). */
  compiledBefore: number;
  /** The model's shape (known once the trainer starts). */
  config: GPTConfig | null;
  /** When the first step was about to run, and the pipelines compiled by then. */
  started: { at: number; kernels: number } | null;
  history: StepRecord[];
  /** The first logged step and when it arrived (for the rate). */
  firstRecord: { step: number; at: number } | null;
  /** When Stop was pressed. */
  stopAt: number | null;
  generator: Generator | null;
  /** The newest evaluated weights. */
  model: Model | null;
}

/** The status line and progress bar of run `r`. */
function showProgress(r: Run): void {
  const now = performance.now(), secs = (now - r.t0) / 1000;
  const step = r.history.at(-1)?.step ?? 0, steps = r.cfg.steps;
  if (r.stopAt !== null) {
    ui.status.textContent = r.phase === "compiling"
      ? "Stopping: the kernels being compiled must finish first…"
      : `Stopping after step ${step}…`;
    return;
  }
  if (r.phase === "compiling") {
    const t = expectedTiming(adapter, r.size), done = compiles.done - r.compiledBefore;
    ui.progress.value = Math.min(0.99, Math.max(done / t.kernels, secs / t.compileS));
    ui.progress.max = 1;
    ui.status.textContent = `Compiling kernels: ${done} ready · ${secs.toFixed(0)} s (about ` +
      `${duration(t.compileS)} expected here). The browser turns each WGSL kernel into machine code once; ` +
      `later runs in this page reuse them.`;
    return;
  }
  ui.progress.max = steps;
  ui.progress.value = step;
  const last = (k: "train_loss" | "val_loss") => r.history.findLast((x) => x[k] !== null)?.[k];
  const tl = last("train_loss"), vl = last("val_loss");
  let left = "";
  if (r.firstRecord && step > r.firstRecord.step && step < steps) {
    const perStep = (now - r.firstRecord.at) / 1000 / (step - r.firstRecord.step);
    left = `, about ${duration((steps - step) * perStep)} left`;
  }
  ui.status.textContent = `Step ${step} of ${steps}` +
    (tl != null ? ` · train loss ${tl.toFixed(3)}` : "") +
    (vl != null ? ` · validation ${vl.toFixed(3)}` : "") +
    (r.history.length ? ` · learning rate ${r.history.at(-1)!.lr.toExponential(1)}` : "") +
    (r.phase === "sampling" ? " · writing a sample…" : "") + ` · ${secs.toFixed(0)} s${left}`;
}

/** Trains on the text box's text with the form's settings; see the module doc for what it shows. */
async function runTraining(): Promise<void> {
  for (const s of ["text", "train", "prompt"] as const) clearError(s);
  const text = ui.text.value, size = formSize(), steps = Number(ui.steps.value);
  if (!Number.isInteger(steps) || steps < 1) {
    throw new PageError("train", "Steps must be a whole number above 0.");
  }
  const cfg = runConfig(size, steps, { evalEvery, dtype: ui.dtype.value as Precision, lr: peakLr() });
  checkText(text, cfg.block_size);
  const tokenizer = trainTokenizer(cfg.tokenizer, text); // the trainer's: the same text, the same rule
  promptIds(tokenizer, text);
  warmUp(); // the sample and exposure kernels compile beside the run's, if not yet done
  const r: Run = {
    cfg,
    size,
    text,
    tokenizer,
    abort: new AbortController(),
    entropyRate: text === DEFAULT_TEXT.text ? DEFAULT_TEXT.entropyRate : undefined,
    t0: performance.now(),
    phase: "compiling",
    compiledBefore: compiles.done,
    config: null,
    started: null,
    history: [],
    firstRecord: null,
    stopAt: null,
    generator: null,
    model: null,
  };
  running = r;
  clearExposure("Measured when training finishes.");
  setState("compiling");
  setData({ step: 0, samples: ui.samples.children.length });
  drawLossChart(r.history, steps, r.entropyRate);
  drawLrChart(r.history);
  const tick = setInterval(() => showProgress(r), 250);
  showProgress(r);
  let result: TrainResult;
  try {
    result = await train(cfg, trainHooks(r, await gpu()));
  } finally {
    clearInterval(tick);
    running = null;
  }
  await finishRun(r, result);
}

/** The trainer's hooks for run `r`: progress, charts, the live learning rate and a sample per evaluation. */
function trainHooks(r: Run, g: Gpu): Parameters<typeof train>[1] {
  return {
    gpu: g,
    text: r.text,
    noSave: true,
    signal: r.abort.signal,
    learningRate: (_step, scheduled) => scheduled * peakLr() / r.cfg.lr,
    onStart: (info) => {
      if (info.model.vocab_size !== r.tokenizer.vocabSize) {
        throw new Error(`page: tokenizer mismatch (${info.model.vocab_size} vs ${r.tokenizer.vocabSize})`);
      }
      r.config = info.model;
      r.started = { at: performance.now(), kernels: compiles.done - r.compiledBefore };
      setData({ kernels: r.started.kernels, compileS: ((r.started.at - r.t0) / 1000).toFixed(1) });
      r.phase = "training";
      setState("training");
    },
    onRecord: (rec) => {
      r.history.push(rec);
      if (rec.train_loss !== null) {
        if (r.firstRecord === null) {
          r.firstRecord = { step: rec.step, at: performance.now() };
          setData({ firstLoss: rec.train_loss });
        }
        setData({
          lastLoss: rec.train_loss,
          lr: rec.lr,
          lrScheduled: learningRate(rec.step - 1, scheduleOf(r.cfg)),
        });
      }
      if (rec.val_loss !== null) setData({ valLoss: rec.val_loss });
      setData({ step: rec.step });
      drawLossChart(r.history, r.cfg.steps, r.entropyRate);
      drawLrChart(r.history);
      showProgress(r);
    },
    onEval: ({ step, valLoss, model }) => sampleAtEval(r, g, { step, valLoss, params: model.params }),
  };
}

/** After an evaluation (the queue idle): the weights read back, the views refreshed, a sample written. */
async function sampleAtEval(
  r: Run,
  g: Gpu,
  e: { step: number; valLoss: number; params: Arena },
): Promise<void> {
  if (r.abort.signal.aborted) return;
  r.phase = "sampling";
  showProgress(r);
  const config = r.config!, host = await e.params.read(g);
  r.generator ??= await Generator.create(g, config, e.params, 1, { tokenizer: r.tokenizer });
  const metadata = {
    step: String(e.step),
    val_loss: String(e.valLoss),
    source: `tforce playground, ${r.size} preset`,
  };
  r.model = live = modelOf({
    config,
    tokenizer: r.tokenizer,
    params: e.params,
    generator: r.generator,
    host,
    metadata,
    text: r.text,
  });
  if (e.step === r.cfg.eval_interval || !ui.attnLayer.options.length) prepareAttention(r.model);
  refreshAttention();
  try {
    await writeSample(r.model, `step ${e.step} · val loss ${e.valLoss.toFixed(3)}`, r.abort.signal);
  } catch (err) {
    showError(err, "prompt", { quiet: true }); // training goes on
  }
  r.phase = "training";
}

/**
 * The end of run `r`: the final weights become the current model. A finished run is measured (exposure);
 * a stopped one is left as it is, at once.
 */
async function finishRun(r: Run, result: TrainResult): Promise<void> {
  const g = result.gpu, end = performance.now();
  const { config, params } = result.model;
  current = live = modelOf({
    config,
    tokenizer: result.corpus.tokenizer,
    params,
    generator: r.generator ??
      await Generator.create(g, config, params, 1, { tokenizer: result.corpus.tokenizer }),
    host: await params.read(g),
    metadata: {
      step: String(result.steps),
      val_loss: String(result.finalValLoss),
      source: `tforce playground, ${r.size} preset`,
    },
    text: r.text,
  });
  if (r.started && r.started.kernels > 0 && result.steps > 0) {
    rememberTiming(adapter, r.size, {
      compileS: (r.started.at - r.t0) / 1000,
      stepS: (end - r.started.at) / 1000 / result.steps,
      kernels: r.started.kernels,
    });
  }
  showModel("trained");
  prepareAttention(current);
  refreshAttention();
  const secs = (end - r.t0) / 1000;
  const best = `best validation loss ${result.bestValLoss.toFixed(3)}` +
    (r.entropyRate !== undefined ? ` (the best achievable is ${r.entropyRate.toFixed(3)})` : "");
  if (result.stopped === "aborted") {
    const settle = r.stopAt === null ? 0 : (end - r.stopAt) / 1000;
    ui.status.textContent = `Stopped at step ${result.steps} of ${r.cfg.steps} after ${secs.toFixed(1)} s ` +
      `(the stop took ${settle.toFixed(1)} s); ${best}. Sample, measure or download this model below.`;
    setData({ stopped: result.steps });
    clearExposure("Not measured after a stop: press Measure again to measure this model.");
    setState("done");
    return;
  }
  ui.status.textContent = `Done: ${result.steps} steps in ${secs.toFixed(1)} s; ${best}.`;
  ui.progress.max = 1;
  ui.progress.value = 1;
  await guard(() => measure(current!), "exposure", { quiet: true })();
  setState("done");
}

function showModel(how: string): void {
  if (!current) return;
  const c = current.config;
  ui.modelInfo.textContent = `${how}: ${c.n_layer} layer(s), ${c.n_head} heads, ${c.n_embd} channels, ` +
    `context ${c.block_size}, vocab ${c.vocab_size}, ${countParams(c).toLocaleString("en-US")} parameters` +
    (current.metadata.step ? `, step ${current.metadata.step}` : "");
  setData({ model: how });
}

// ---- sample, download, load ----------------------------------------------------------------------------

async function sampleAgain(): Promise<void> {
  if (!current) return;
  clearError("prompt");
  setState("sampling");
  await writeSample(current, `sample (${current.metadata.step ? `step ${current.metadata.step}` : "model"})`);
  setState("done");
}

function download(): Promise<void> {
  if (!current) return Promise.resolve();
  clearError("checkpoint");
  const m = current;
  const bytes = encodeModel(m.config, m.tokenizer, m.params.layout, m.host, m.metadata);
  const url = URL.createObjectURL(
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }),
  );
  const a = document.createElement("a");
  a.href = url;
  a.download = `tforce-${m.config.n_layer}x${m.config.n_embd}-step${m.metadata.step ?? 0}.safetensors`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return Promise.resolve();
}

/** Loads a checkpoint: it becomes the current model, writes a sample and is measured. */
async function load(file: File): Promise<void> {
  clearError("checkpoint");
  setState("sampling");
  let ck;
  try {
    ck = decodeModel(new Uint8Array(await file.arrayBuffer()), file.name);
  } catch (e) {
    throw new PageError("checkpoint", (e as Error).message);
  }
  clearExposure("Measured once the checkpoint is loaded.");
  const g = await gpu();
  const params = new Arena(g, "loaded.params", paramLayout(ck.config).layout);
  const host = weightsToArena(ck.weights, params.layout);
  params.write(g, host);
  current = live = modelOf({
    config: ck.config,
    tokenizer: ck.tokenizer,
    params,
    generator: await Generator.create(g, ck.config, params, 1, { tokenizer: ck.tokenizer }),
    host,
    metadata: ck.metadata,
    text: "",
  });
  showModel(`loaded ${file.name}`);
  prepareAttention(current);
  refreshAttention();
  const step = ck.metadata.step ? ` (step ${ck.metadata.step})` : "";
  await guard(() => writeSample(current!, `${file.name}${step}`), "prompt", { quiet: true })();
  await guard(() => measure(current!), "exposure", { quiet: true })();
  setState("done");
}

// ---- wiring ----------------------------------------------------------------------------------------------------

/**
 * Runs `fn`, showing its error beside `slot` (and ending the action: the page is usable again), or with
 * `quiet` only the message (a side view failed; whatever runs goes on).
 */
function guard(fn: () => Promise<void>, slot: Slot, o: { quiet?: boolean } = {}): () => Promise<void> {
  return () =>
    fn().catch((e) => {
      showError(e, slot, o);
      if (!o.quiet && running === null) {
        const where = document.body.dataset.errorSlot as Slot | undefined;
        ui.status.textContent = `Not done: the message is beside the ${SLOT_NAMES[where ?? slot]}.`;
      }
    });
}

/** How the status line names the control a message is beside. */
const SLOT_NAMES: Record<Slot, string> = {
  text: "text (above)",
  train: "Train button",
  prompt: "prompt (Samples panel)",
  attention: "attention text",
  exposure: "Measure button",
  checkpoint: "Load button (Checkpoint panel)",
};

function wire(): void {
  const onText = () => {
    clearError("text");
    describeText();
    describeSize();
  };
  ui.text.addEventListener("input", onText);
  ui.resetText.addEventListener("click", () => {
    ui.text.value = DEFAULT_TEXT.text;
    onText();
  });
  ui.file.addEventListener(
    "change",
    guard(async () => {
      const f = ui.file.files?.[0];
      if (!f) return;
      ui.text.value = await f.text();
      ui.file.value = "";
      onText();
    }, "text"),
  );
  ui.size.addEventListener("change", () => {
    ui.steps.value = String(presetSteps(formSize()));
    describeSize();
  });
  ui.steps.addEventListener("input", describeEstimate);
  ui.lr.addEventListener("input", () => {
    ui.lrValue.value = String(peakLr());
    drawLrChart(running?.history ?? null);
  });
  ui.temperature.addEventListener("input", () => {
    const t = Number(ui.temperature.value);
    ui.temperatureValue.value = t === 0 ? "0 (greedy)" : t.toFixed(2);
  });
  ui.prompt.addEventListener("input", () => clearError("prompt"));
  ui.train.addEventListener("click", guard(runTraining, "train"));
  ui.stop.addEventListener("click", () => {
    if (!running || running.stopAt !== null) return;
    running.stopAt = performance.now();
    running.abort.abort();
    setState("stopping");
    showProgress(running);
  });
  ui.sample.addEventListener("click", guard(sampleAgain, "prompt"));
  ui.measure.addEventListener(
    "click",
    guard(() => current ? measure(current).then(() => setState("done")) : Promise.resolve(), "exposure"),
  );
  ui.download.addEventListener("click", guard(download, "checkpoint"));
  ui.load.addEventListener(
    "change",
    guard(async () => {
      const f = ui.load.files?.[0];
      ui.load.value = "";
      if (f) await load(f);
    }, "checkpoint"),
  );
  const redraw = refreshAttention;
  ui.attnText.addEventListener("input", () => {
    attnTyped = true;
    redraw();
  });
  ui.attnLayer.addEventListener("change", redraw);
  ui.attnHead.addEventListener("change", redraw);
  globalThis.addEventListener("unhandledrejection", (ev) => showError(ev.reason, "train"));
}

/** Fills the form (URL parameters over the defaults) and draws the empty charts. */
function fillForm(): void {
  const size = query.get("size") ?? "tiny";
  if (size !== "tiny" && size !== "small") {
    throw new Error(`URL parameter size=${size}: expected tiny or small`);
  }
  ui.size.value = size;
  const dtype = query.get("dtype") ?? "float32";
  if (dtype !== "float32" && dtype !== "float16") {
    throw new Error(`URL parameter dtype=${dtype}: expected float32 or float16`);
  }
  ui.dtype.value = dtype;
  ui.steps.value = String(intParam("steps") ?? presetSteps(size));
  ui.lr.max = String(PEAK_LRS.length - 1);
  ui.lr.value = String(PEAK_LRS.indexOf(DEFAULT_TRAIN.lr));
  ui.lrValue.value = String(peakLr());
  ui.temperature.dispatchEvent(new Event("input"));
  ui.text.value = DEFAULT_TEXT.text;
  describeText();
  describeSize();
  drawLossChart([], Number(ui.steps.value), DEFAULT_TEXT.entropyRate);
}

/** Finds the adapter and opens the device; without WebGPU, says in browser terms what to do. */
async function openDevice(): Promise<void> {
  const info = await requestAdapterInfo().catch(() => null);
  if (!info) {
    ui.adapter.textContent = "No WebGPU in this browser, so nothing can train here.";
    ui.adapterNote.textContent = noWebGpuHelp();
    ui.adapterNote.hidden = false;
    setState("no-webgpu");
    return;
  }
  adapter = describeAdapter(info);
  ui.adapter.textContent = `WebGPU adapter: ${adapter.name}` +
    (adapter.software ? " (software: runs on the CPU)" : "");
  if (adapter.software) {
    ui.adapterNote.textContent = `This is ${adapter.software}: the GPU's work runs on your processor, ` +
      "tens to hundreds of times slower than a graphics card. The tiny model trains in about a minute; " +
      "the small one takes many minutes (see the estimate below).";
    ui.adapterNote.hidden = false;
  }
  setData({ software: String(adapter.software !== null) });
  describeEstimate();
  const g = await gpu();
  // Mixed precision needs shader-f16; without it the option stays visible but cannot be picked.
  const f16 = ui.dtype.querySelector<HTMLOptionElement>('option[value="float16"]')!;
  f16.disabled = !g.features.f16;
  if (!g.features.f16 && ui.dtype.value === "float16") ui.dtype.value = "float32";
  setData({ f16: String(g.features.f16) });
  setState("ready");
  warmUp();
}

try {
  wire();
  fillForm();
  openDevice().catch((e) => {
    ui.adapterNote.textContent = `WebGPU failed to start: ${(e as Error).message}. ${noWebGpuHelp()}`;
    ui.adapterNote.hidden = false;
    setState("no-webgpu");
  });
} catch (e) {
  showError(e, "train");
}
