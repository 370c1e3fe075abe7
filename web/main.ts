/**
 * The demo page: the engine, unchanged, training a GPT in the browser. Pick or paste a text, choose a
 * model size, train (the loss chart and the status line update live; after each evaluation the model
 * writes a sample), download the model as .safetensors and load one back.
 *
 * Everything runs on the page's main thread: a training step is one queue submission and the trainer
 * awaits the GPU between steps, so the page stays responsive while it trains. Samples are drawn on a
 * second WebGPU device (a {@linkcode Sampler}) so that their many small read-backs do not wait in the
 * training queue behind the steps submitted before them.
 *
 * For tests and links, URL parameters preset the form: `size` (tiny | small), `dtype` (float32 | float16:
 * mixed precision where the adapter has shader-f16), `steps`, `eval` (steps between evaluations) and
 * `chars` (sample length). The body's data attributes report progress:
 * `data-state` (loading | ready | training | sampling | done | error), `data-step`, `data-first-loss`,
 * `data-last-loss` (training loss of the first and latest logged steps), `data-val-loss` and
 * `data-samples` (samples shown so far). After training and after loading a checkpoint the page measures
 * exposure bias (teacher-forced vs free-running loss on validation windows, src/train/exposure.ts) and
 * reports it as `data-exposure-tf`, `data-exposure-fr` (mean losses over the free positions, nats),
 * `data-exposure-gap` (fr - tf), `data-exposure-kl` (mean KL) and `data-exposure-windows`; the state is
 * `measuring` meanwhile.
 *
 * @module
 */
import { Arena, readF32, writeArray } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { generateLanguage } from "../src/data/language.ts";
import { type Tokenizer, trainTokenizer } from "../src/data/tokenizer.ts";
import { linePlotSvg } from "../src/io/svg.ts";
import { decodeModel, encodeModel, weightsToArena } from "../src/model/checkpoint.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { Generator } from "../src/model/generate.ts";
import { countParams, paramLayout } from "../src/model/params.ts";
import { DEFAULT_TRAIN, type TrainConfig } from "../src/train/config.ts";
import type { StepRecord } from "../src/train/log.ts";
import { train, type TrainResult } from "../src/train/trainer.ts";
import { type ExposureResult, measureExposure } from "../src/train/exposure.ts";

// ---- model presets -------------------------------------------------------------------------------

type Size = "tiny" | "small";

/** Model shapes and run lengths; "small" is the CLI's default run (DEFAULT_TRAIN). */
const PRESETS: Record<Size, Partial<TrainConfig>> = {
  tiny: {
    n_layer: 1,
    n_head: 2,
    n_embd: 32,
    block_size: 32,
    batch_size: 8,
    steps: 200,
    warmup: 10,
    eval_iters: 4,
  },
  small: {},
};

/** The preset's default run length. */
function presetSteps(size: Size): number {
  return PRESETS[size].steps ?? DEFAULT_TRAIN.steps;
}

/** The TrainConfig of a preset run of `steps` steps with about six evaluations (or every `evalEvery`). */
function runConfig(size: Size, steps: number, evalEvery?: number, dtype: Precision = "float32"): TrainConfig {
  return {
    ...DEFAULT_TRAIN,
    ...PRESETS[size],
    dtype,
    steps,
    warmup: Math.min(PRESETS[size].warmup ?? DEFAULT_TRAIN.warmup, Math.floor(steps / 5)),
    eval_interval: evalEvery ?? Math.max(1, Math.ceil(steps / 6)),
    log_interval: Math.max(1, Math.round(steps / 100)),
    sample_chars: 0,
  };
}

// ---- page elements ---------------------------------------------------------------------------------

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: no element #${id}`);
  return e as T;
}

const ui = {
  adapter: el<HTMLParagraphElement>("adapter"),
  text: el<HTMLTextAreaElement>("text"),
  file: el<HTMLInputElement>("file"),
  resetText: el<HTMLButtonElement>("reset-text"),
  textInfo: el<HTMLSpanElement>("text-info"),
  size: el<HTMLSelectElement>("size"),
  dtype: el<HTMLSelectElement>("dtype"),
  sizeInfo: el<HTMLParagraphElement>("size-info"),
  steps: el<HTMLInputElement>("steps"),
  train: el<HTMLButtonElement>("train"),
  stop: el<HTMLButtonElement>("stop"),
  status: el<HTMLParagraphElement>("status"),
  chart: el<HTMLDivElement>("chart"),
  prompt: el<HTMLInputElement>("prompt"),
  sample: el<HTMLButtonElement>("sample"),
  samples: el<HTMLOListElement>("samples"),
  download: el<HTMLButtonElement>("download"),
  load: el<HTMLInputElement>("load"),
  modelInfo: el<HTMLSpanElement>("model-info"),
  exposureStatus: el<HTMLParagraphElement>("exposure-status"),
  exposureChart: el<HTMLDivElement>("exposure-chart"),
  error: el<HTMLParagraphElement>("error"),
};

const query = new URLSearchParams(location.search);
const intParam = (name: string): number | undefined => {
  const v = query.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`URL parameter ${name}=${v}: expected a positive integer`);
  }
  return n;
};
const evalEvery = intParam("eval");
const sampleChars = intParam("chars") ?? 160;
const TEMPERATURE = 0.8;
/** Exposure measurement: validation windows (8 keeps it to seconds on a software adapter). */
const EXPOSURE_WINDOWS = 8;

const DEFAULT_TEXT = generateLanguage({ chars: 20000 });

function setData(values: Record<string, string | number>): void {
  for (const [k, v] of Object.entries(values)) document.body.dataset[k] = String(v);
}

// ---- state -----------------------------------------------------------------------------------------

/**
 * A model to sample from, on the sampling device: its weights in a parameter arena and a KV-cache
 * generator over them. `load` replaces the weights (same shape).
 */
class Sampler {
  readonly config: GPTConfig;
  readonly tokenizer: Tokenizer;
  readonly #gpu: Gpu;
  readonly #params: Arena;
  readonly #generator: Generator;

  private constructor(g: Gpu, config: GPTConfig, tokenizer: Tokenizer, params: Arena, generator: Generator) {
    this.#gpu = g;
    this.config = config;
    this.tokenizer = tokenizer;
    this.#params = params;
    this.#generator = generator;
  }

  /** A sampler for models of this shape (weights zero until `load`). */
  static async create(g: Gpu, config: GPTConfig, tokenizer: Tokenizer): Promise<Sampler> {
    const params = new Arena(g, "sampler.params", paramLayout(config).layout);
    return new Sampler(g, config, tokenizer, params, await Generator.create(g, config, params, 1));
  }

  /** Replaces the weights with a parameter-arena image (the layout of paramLayout(config)). */
  load(host: Float32Array): void {
    writeArray(this.#gpu, this.#params.buffer, host);
  }

  /** The weights as a parameter-arena image. */
  weights(): Promise<Float32Array> {
    return readF32(this.#gpu, this.#params.buffer);
  }

  /** The checkpoint bytes of these weights (nanoGPT names, config and tokenizer in the metadata). */
  async checkpoint(metadata: Record<string, string>): Promise<Uint8Array> {
    return encodeModel(this.config, this.tokenizer, this.#params.layout, await this.weights(), metadata);
  }

  /** Continues the prompt box's text (or a new line) by `sampleChars` tokens at temperature 0.8. */
  async sample(text: string): Promise<string> {
    const tok = this.tokenizer;
    const prompt = promptIds(tok, text);
    const [ids] = await this.#generator.generate(prompt, sampleChars, {
      temperature: TEMPERATURE,
      seed: sampleSeed++,
    });
    return tok.decode(ui.prompt.value.length > 0 ? [...prompt, ...ids] : ids);
  }
}

/** The model that Sample and Download use: the last trained or loaded one. */
interface Current {
  sampler: Sampler;
  /** Metadata written into the downloaded checkpoint (step, val_loss, and a loaded file's own). */
  metadata: Record<string, string>;
  /** Text to take the default prompt from. */
  text: string;
}

const devices: { train?: Promise<Gpu>; sample?: Promise<Gpu> } = {};
let current: Current | null = null;
let abort: AbortController | null = null;
let sampleSeed = 1;

/** The training device, or the sampling device (a second device on the same adapter). */
function gpu(which: "train" | "sample"): Promise<Gpu> {
  return devices[which] ??= createGpu();
}

function setBusy(state: "training" | "sampling" | "measuring" | "ready" | "done"): void {
  const busy = state === "training" || state === "sampling" || state === "measuring";
  ui.train.disabled = busy;
  ui.stop.disabled = state !== "training";
  ui.sample.disabled = busy || current === null;
  ui.download.disabled = busy || current === null;
  ui.load.disabled = busy;
  ui.file.disabled = busy;
  ui.resetText.disabled = busy;
  ui.size.disabled = busy;
  ui.dtype.disabled = busy;
  ui.steps.disabled = busy;
  setData({ state });
}

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(e);
  ui.error.textContent = msg;
  ui.error.hidden = false;
  setData({ state: "error" });
  ui.train.disabled = false;
  ui.stop.disabled = true;
  ui.load.disabled = false;
  ui.sample.disabled = current === null;
  ui.download.disabled = current === null;
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

// ---- text ------------------------------------------------------------------------------------------

function describeText(): void {
  const t = ui.text.value;
  const distinct = new Set(t).size;
  const source = t === DEFAULT_TEXT.text ? "the generated default language; " : "";
  ui.textInfo.textContent = `${source}${t.length.toLocaleString("en-US")} characters, ${distinct} distinct`;
}

function describeSize(): void {
  const size = ui.size.value as Size;
  const c = runConfig(size, 1);
  const vocab = new Set(ui.text.value).size || 1;
  const n = countParams({ ...c, vocab_size: vocab });
  ui.sizeInfo.textContent = `${c.n_layer} layer${c.n_layer > 1 ? "s" : ""}, ${c.n_head} heads, ` +
    `${c.n_embd} channels, context ${c.block_size}, batch ${c.batch_size}: ` +
    `${n.toLocaleString("en-US")} parameters with this text's ${vocab} characters`;
}

// ---- chart and samples -----------------------------------------------------------------------------

function drawChart(history: StepRecord[], entropyRate?: number): void {
  const pts = (k: "train_loss" | "val_loss") =>
    history.filter((r) => r[k] !== null).map((r) => [r.step, r[k] as number] as [number, number]);
  ui.chart.innerHTML = linePlotSvg({
    title: "training loss",
    xLabel: "step",
    yLabel: "loss (nats/token)",
    series: [
      { name: "train", points: pts("train_loss") },
      { name: "val", points: pts("val_loss"), dashed: true },
    ],
    hlines: entropyRate === undefined
      ? []
      : [{ y: entropyRate, label: `best achievable ${entropyRate.toFixed(3)}` }],
    width: 900,
    height: 360,
  });
}

function addSample(label: string, text: string): void {
  const li = document.createElement("li");
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = label;
  li.append(meta, text);
  ui.samples.prepend(li);
  setData({ samples: ui.samples.children.length });
}

/** Prompt ids: the prompt box, else a newline, else the text's first character, else token 0. */
function promptIds(tok: Tokenizer, text: string): Uint32Array {
  const typed = ui.prompt.value;
  if (typed.length > 0) {
    let ids: Uint32Array;
    try {
      ids = tok.encode(typed);
    } catch (e) {
      throw new Error(`prompt: ${(e as Error).message}`);
    }
    if (ids.length > 0) return ids;
  }
  for (const s of ["\n", text.slice(0, 1)]) {
    try {
      const ids = tok.encode(s);
      if (ids.length > 0) return ids;
    } catch {
      // not in the vocabulary: try the next one
    }
  }
  return new Uint32Array([0]);
}

// ---- exposure bias ---------------------------------------------------------------------------------

const EXPOSURE_KEYS = ["exposureTf", "exposureFr", "exposureGap", "exposureKl", "exposureWindows"];

function clearExposure(message: string): void {
  for (const k of EXPOSURE_KEYS) delete document.body.dataset[k];
  ui.exposureChart.innerHTML = "";
  ui.exposureStatus.textContent = message;
}

/** The stream-mode validation split of a text: its last 10% of tokens (as the trainer splits it). */
function validationIds(tok: Tokenizer, text: string): Uint32Array {
  const ids = tok.encode(text);
  return ids.subarray(Math.floor(ids.length * 0.9));
}

/**
 * Measures teacher-forced vs free-running loss of the weights `host` (a parameter-arena image) on
 * validation windows `ids`, on the training device, and shows the curves and their means.
 */
async function showExposure(config: GPTConfig, host: Float32Array, ids: Uint32Array): Promise<void> {
  const T = config.block_size;
  if (ids.length < T + 1) {
    clearExposure(`Not measured: the validation text has ${ids.length} tokens, fewer than ${T + 1}.`);
    return;
  }
  setBusy("measuring");
  ui.exposureStatus.textContent = "Measuring teacher-forced and free-running loss…";
  const t0 = performance.now();
  const r: ExposureResult = await measureExposure(config, host, ids, {
    gpu: await gpu("train"),
    windows: EXPOSURE_WINDOWS,
    batchSize: EXPOSURE_WINDOWS,
    prefix: Math.max(1, Math.floor(T / 4)),
    decode: "argmax",
  });
  const gap = r.gold_loss_after_own_mean - r.gold_loss_after_gold_mean;
  const pts = (a: number[]) => a.map((y, t): [number, number] => [t, y]);
  ui.exposureChart.innerHTML = linePlotSvg({
    title: `teacher forcing vs free running (gold prefix ${r.prefix}, ${r.windows} windows, greedy)`,
    xLabel: "position t (scores the gold token t+1)",
    yLabel: "loss (nats/token)",
    series: [
      { name: "teacher-forced", points: pts(r.gold_loss_after_gold) },
      { name: "free-running", points: pts(r.gold_loss_after_own) },
      { name: "KL(tf || fr)", points: pts(r.drift_kl), dashed: true },
    ],
    width: 900,
    height: 360,
  });
  ui.exposureStatus.textContent = `positions ${r.prefix}..${r.positions - 1}, ${r.windows} windows: ` +
    `teacher-forced loss ${r.gold_loss_after_gold_mean.toFixed(3)} · free-running loss ` +
    `${r.gold_loss_after_own_mean.toFixed(3)} · gap ${gap >= 0 ? "+" : ""}${gap.toFixed(3)} nats/token · ` +
    `mean KL ${r.drift_kl_mean.toFixed(4)} · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  setData({
    exposureTf: r.gold_loss_after_gold_mean,
    exposureFr: r.gold_loss_after_own_mean,
    exposureGap: gap,
    exposureKl: r.drift_kl_mean,
    exposureWindows: r.windows,
  });
}

// ---- training --------------------------------------------------------------------------------------

async function runTraining(): Promise<void> {
  clearError();
  const text = ui.text.value;
  if (text.length === 0) throw new Error("the text is empty: paste some text or pick a file");
  const steps = Number(ui.steps.value);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer`);
  const size = ui.size.value as Size;
  const cfg = runConfig(size, steps, evalEvery, ui.dtype.value as Precision);
  const [g, sg] = await Promise.all([gpu("train"), gpu("sample")]);
  const entropyRate = text === DEFAULT_TEXT.text ? DEFAULT_TEXT.entropyRate : undefined;
  // The trainer builds the same char tokenizer from the same text; samples during training need it.
  const tokenizer = trainTokenizer(cfg.tokenizer, text);
  const history: StepRecord[] = [];
  let firstLoss: number | null = null;
  // Set when training starts: a sampler for the model's shape (its weights come from onEval).
  let run = null as { sampler: Promise<Sampler> } | null;
  let samples = Promise.resolve(), sampleError: unknown = null, latest: object | null = null, lastSampled = 0;
  const t0 = performance.now();

  abort = new AbortController();
  clearExposure("Measured when training finishes.");
  setBusy("training");
  setData({ step: 0, samples: ui.samples.children.length });
  ui.status.textContent = "Compiling kernels and preparing the data…";
  drawChart(history, entropyRate);

  // Called by the trainer right after an evaluation, before the next step is submitted: the read-back
  // queued here holds exactly the evaluated weights. Samples are drawn one after another on the
  // sampling device; one whose turn comes when a newer evaluation is already waiting is skipped.
  const sampleAfterEval = (step: number, valLoss: number, params: GPUBuffer) => {
    if (!run) return;
    const { sampler } = run, weights = readF32(g, params), token = {};
    latest = token;
    samples = samples.then(async () => {
      const host = await weights;
      if (latest !== token) return;
      const s = await sampler;
      s.load(host);
      addSample(`step ${step} · val loss ${valLoss.toFixed(3)}`, await s.sample(text));
      lastSampled = step;
    }).catch((e) => {
      sampleError ??= e;
    });
  };

  let result: TrainResult;
  try {
    result = await train(cfg, {
      gpu: g,
      text,
      noSave: true,
      signal: abort.signal,
      onStart: (info) => {
        if (info.model.vocab_size !== tokenizer.vocabSize) {
          throw new Error(`page: tokenizer mismatch (${info.model.vocab_size} vs ${tokenizer.vocabSize})`);
        }
        run = { sampler: Sampler.create(sg, info.model, tokenizer) };
        run.sampler.catch(() => {}); // awaited (and reported) by the first sample
        ui.status.textContent = `Training ${
          info.params.toLocaleString("en-US")
        } parameters on ${info.corpus}…`;
      },
      onEval: ({ step, valLoss, model }) => sampleAfterEval(step, valLoss, model.params.buffer),
      onRecord: (rec) => {
        history.push(rec);
        if (rec.train_loss !== null) {
          firstLoss ??= rec.train_loss;
          setData({ firstLoss, lastLoss: rec.train_loss });
        }
        if (rec.val_loss !== null) setData({ valLoss: rec.val_loss });
        setData({ step: rec.step });
        const last = (k: "train_loss" | "val_loss") => history.findLast((r) => r[k] !== null)?.[k];
        const tl = last("train_loss"), vl = last("val_loss");
        const tps = history.findLast((r) => r.tokens_per_s !== null)?.tokens_per_s;
        ui.status.textContent = `step ${rec.step}/${steps}` +
          (tl != null ? ` · train loss ${tl.toFixed(3)}` : "") +
          (vl != null ? ` · val loss ${vl.toFixed(3)}` : "") +
          (tps != null ? ` · ${Math.round(tps).toLocaleString("en-US")} tokens/s` : "") +
          ` · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
        drawChart(history, entropyRate);
      },
    });
  } finally {
    abort = null;
  }
  await samples;
  if (sampleError) throw sampleError;
  // The final weights (after a Stop, later than the last evaluation) become the current model.
  const sampler = await (run?.sampler ?? Sampler.create(sg, result.model.config, result.corpus.tokenizer));
  const host = await readF32(g, result.model.params.buffer);
  sampler.load(host);
  current = {
    sampler,
    metadata: {
      step: String(result.steps),
      val_loss: String(result.finalValLoss),
      source: `tforce web demo, ${size} preset`,
    },
    text,
  };
  if (lastSampled !== result.steps) {
    setBusy("sampling");
    addSample(
      `step ${result.steps} · val loss ${result.finalValLoss.toFixed(3)}`,
      await sampler.sample(text),
    );
  }
  await showExposure(result.model.config, host, result.corpus.val.tokens);
  const secs = (performance.now() - t0) / 1000;
  ui.status.textContent =
    `${result.stopped === "aborted" ? "Stopped" : "Done"} after ${result.steps} steps ` +
    `in ${secs.toFixed(1)} s: best val loss ${result.bestValLoss.toFixed(3)}` +
    (entropyRate !== undefined ? ` (best achievable ${entropyRate.toFixed(3)})` : "") + ".";
  showModel("trained");
  setBusy("done");
}

function showModel(how: string): void {
  if (!current) return;
  const c = current.sampler.config;
  ui.modelInfo.textContent = `${how}: ${c.n_layer} layer(s), ${c.n_head} heads, ${c.n_embd} channels, ` +
    `context ${c.block_size}, vocab ${c.vocab_size}, ${countParams(c).toLocaleString("en-US")} parameters` +
    (current.metadata.step ? `, step ${current.metadata.step}` : "");
  setData({ model: how });
}

// ---- sample, download, load ------------------------------------------------------------------------

async function sampleAgain(): Promise<void> {
  if (!current) return;
  clearError();
  setBusy("sampling");
  const s = await current.sampler.sample(current.text);
  addSample(`sample (${current.metadata.step ? `step ${current.metadata.step}` : "model"})`, s);
  setBusy("done");
}

async function download(): Promise<void> {
  if (!current) return;
  clearError();
  const bytes = await current.sampler.checkpoint(current.metadata);
  const url = URL.createObjectURL(
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }),
  );
  const c = current.sampler.config;
  const a = document.createElement("a");
  a.href = url;
  a.download = `tforce-${c.n_layer}x${c.n_embd}-step${current.metadata.step ?? 0}.safetensors`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function load(file: File): Promise<void> {
  clearError();
  clearExposure("Measured once the checkpoint is loaded.");
  setBusy("sampling");
  const ck = decodeModel(new Uint8Array(await file.arrayBuffer()), file.name);
  const sampler = await Sampler.create(await gpu("sample"), ck.config, ck.tokenizer);
  const host = weightsToArena(ck.weights, paramLayout(ck.config).layout);
  sampler.load(host);
  current = { sampler, metadata: ck.metadata, text: "" };
  showModel(`loaded ${file.name}`);
  addSample(`${file.name}${ck.metadata.step ? ` (step ${ck.metadata.step})` : ""}`, await sampler.sample(""));
  // Measured on the text box's validation part, if this model's vocabulary covers it.
  let ids: Uint32Array | null = null;
  try {
    ids = validationIds(ck.tokenizer, ui.text.value);
  } catch (e) {
    clearExposure(`Not measured: the text does not fit this model's tokenizer (${(e as Error).message}).`);
  }
  if (ids) await showExposure(ck.config, host, ids);
  setBusy("done");
}

// ---- wiring ----------------------------------------------------------------------------------------

function guard(fn: () => Promise<void>): () => void {
  return () => void fn().catch(showError);
}

function init(): void {
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
  ui.text.value = DEFAULT_TEXT.text;
  describeText();
  describeSize();

  ui.text.addEventListener("input", () => {
    describeText();
    describeSize();
  });
  ui.resetText.addEventListener("click", () => {
    ui.text.value = DEFAULT_TEXT.text;
    describeText();
    describeSize();
  });
  ui.file.addEventListener(
    "change",
    guard(async () => {
      const f = ui.file.files?.[0];
      if (!f) return;
      ui.text.value = await f.text();
      ui.file.value = "";
      describeText();
      describeSize();
    }),
  );
  ui.size.addEventListener("change", () => {
    ui.steps.value = String(presetSteps(ui.size.value as Size));
    describeSize();
  });
  ui.train.addEventListener("click", guard(runTraining));
  ui.stop.addEventListener("click", () => abort?.abort());
  ui.sample.addEventListener("click", guard(sampleAgain));
  ui.download.addEventListener("click", guard(download));
  ui.load.addEventListener(
    "change",
    guard(async () => {
      const f = ui.load.files?.[0];
      ui.load.value = "";
      if (f) await load(f);
    }),
  );
  globalThis.addEventListener("unhandledrejection", (ev) => showError(ev.reason));

  gpu("train").then((g) => {
    ui.adapter.textContent = `WebGPU adapter: ${g.description}`;
    // Mixed precision needs shader-f16; without it the option stays visible but cannot be picked.
    const f16 = ui.dtype.querySelector<HTMLOptionElement>('option[value="float16"]')!;
    f16.disabled = !g.features.f16;
    if (!g.features.f16 && ui.dtype.value === "float16") ui.dtype.value = "float32";
    setData({ f16: String(g.features.f16) });
    setBusy("ready");
  }, (e) => {
    ui.adapter.textContent = "WebGPU is not available in this browser.";
    showError(e);
    ui.train.disabled = true;
  });
}

try {
  init();
} catch (e) {
  showError(e);
}
