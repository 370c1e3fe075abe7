/**
 * TrainConfig: every knob of a training run, nanoGPT's names in snake case, and its validation. Errors
 * name settings by these keys ({@linkcode ConfigError}: "lr_decay_steps must be a positive integer"); the
 * command line, whose flags map 1:1 in kebab case, writes them as flags (`--lr-decay-steps`).
 *
 * @module
 */
import type { TokenizerType } from "../data/tokenizer_types.ts";
import { type Precision, PRECISIONS } from "../model/config.ts";
import { InputError } from "../util/errors.ts";

/** How the inputs of a training step are formed (src/train/modes.ts). */
export type TrainMode = "teacher-forcing" | "free-running" | "scheduled-sampling";
/** Every training mode, in the order the experiment reports them. */
export const TRAIN_MODES: readonly TrainMode[] = ["teacher-forcing", "free-running", "scheduled-sampling"];
/** How the model picks its own token: the most likely one, or a draw at temperature 1. */
export type DecodeRule = "argmax" | "sample";
/** The decay of scheduled sampling's teacher-forcing probability ε (Bengio et al. 2015). */
export type SsSchedule = "linear" | "exponential" | "inverse-sigmoid";
/** Every ε schedule. */
export const SS_SCHEDULES: readonly SsSchedule[] = ["linear", "exponential", "inverse-sigmoid"];

/** How examples are formed from the text: windows of the stream, or one line each (padded). */
export type ExamplesMode = "stream" | "lines";

/** A training run's configuration (model shape, data, optimization, bookkeeping). */
export interface TrainConfig {
  /** Training text file; absent: the embedded generated language. */
  data?: string;
  /** Validation text file; absent: the last 10% of the data. */
  val?: string;
  /** Decode data and validation bytes that are not UTF-8 as U+FFFD instead of refusing the file. */
  allow_invalid_utf8?: boolean;
  /** Tokenizer: char (code points), word, byte-level bpe, or GPT-2's (gpt2, from `vocab_file`). */
  tokenizer: TokenizerType;
  /** Vocabulary size for word/bpe tokenizers (bpe default 512). */
  vocab_size?: number;
  /** gpt2 tokenizer: a folder holding GPT-2's vocab.json and merges.txt (Hugging Face's gpt2 files). */
  vocab_file?: string;
  /** stream: one token stream; lines: one example per line, padded. */
  examples: ExamplesMode;
  /** Transformer blocks. */
  n_layer: number;
  /** Attention heads. */
  n_head: number;
  /** Channels. */
  n_embd: number;
  /** Context length. */
  block_size: number;
  /** Sequences per micro-batch. */
  batch_size: number;
  /** Micro-batches per optimizer step (all in the step's one submission). */
  grad_accum: number;
  /** Dropout probability. */
  dropout: number;
  /** Biases in Linear and LayerNorm layers. */
  bias: boolean;
  /** Optimizer steps to run (total, counting steps before a resume). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Final learning rate of the cosine (when `lr` is given without it: lr / 10, nanoGPT's rule). */
  min_lr: number;
  /** Linear warmup steps. */
  warmup: number;
  /** Steps of cosine decay (default: steps). */
  lr_decay_steps?: number;
  /** AdamW weight decay (>= 2-D tensors only). */
  weight_decay: number;
  /** AdamW beta1. */
  beta1: number;
  /** AdamW beta2. */
  beta2: number;
  /** Clip the global gradient norm to this (0: off). */
  grad_clip: number;
  /** Storage precision: float32, or float16 mixed precision with dynamic loss scaling (needs shader-f16). */
  dtype: Precision;
  /** Evaluate (and checkpoint) every this many steps. */
  eval_interval: number;
  /** Validation batches per evaluation. */
  eval_iters: number;
  /** Read the training loss back every this many steps. */
  log_interval: number;
  /** Seed of initialisation, data order, dropout and the generated language. */
  seed: number;
  /** Output folder: model.safetensors, best.safetensors, train_state.safetensors, log.jsonl, loss.svg. */
  out: string;
  /** Continue from out/train_state.safetensors (weights, optimizer, step, RNG streams). */
  resume: boolean;
  /** Train afresh into an `out` that holds another run, after moving its files to out/replaced-TIME/. */
  overwrite: boolean;
  /** Fine-tune: start from this model checkpoint's weights, shape and tokenizer (fresh optimizer, step 0). */
  init_from?: string;
  /** Characters of sample text generated at the end (0: none). */
  sample_chars: number;
  /** How inputs are formed: teacher-forcing, free-running or scheduled-sampling (src/train/modes.ts). */
  mode: TrainMode;
  /** Gold prefix P of free-running inputs and of `eval --exposure`, in [1, block_size); default block_size / 4. */
  prefix?: number;
  /** free-running: the model's own next token is its argmax or a sample (temperature 1). */
  fr_decode: DecodeRule;
  /** scheduled-sampling: pass 1's prediction per position is its argmax or a sample (temperature 1). */
  ss_decode: DecodeRule;
  /** scheduled-sampling: decay of ε, the probability of keeping a gold input (Bengio et al. 2015). */
  ss_schedule: SsSchedule;
  /** ε parameter k: linear offset in [0, 1], exponential base in (0, 1], inverse-sigmoid k >= 1; default by schedule. */
  ss_k?: number;
  /** Linear ε slope per step (>= 0); default (k - ss_min) / steps. */
  ss_c?: number;
  /** Floor of ε, in [0, 1]. */
  ss_min: number;
}

/**
 * Defaults sized for the embedded corpus on a CPU through lavapipe (a few minutes): a small char model
 * that learns the generated language to near its entropy rate.
 */
export const DEFAULT_TRAIN: Readonly<TrainConfig> = {
  tokenizer: "char",
  examples: "stream",
  n_layer: 2,
  n_head: 4,
  n_embd: 64,
  block_size: 64,
  batch_size: 16,
  grad_accum: 1,
  dropout: 0,
  bias: false,
  steps: 1000,
  lr: 3e-3,
  min_lr: 3e-4,
  warmup: 30,
  weight_decay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  grad_clip: 1,
  dtype: "float32",
  eval_interval: 200,
  eval_iters: 8,
  log_interval: 10,
  seed: 1337,
  out: "out",
  resume: false,
  overwrite: false,
  sample_chars: 300,
  mode: "teacher-forcing",
  fr_decode: "argmax",
  ss_decode: "argmax",
  ss_schedule: "linear",
  ss_min: 0,
};

/**
 * Named recipes (`--preset NAME`, applied over the defaults and under any other flag):
 * - `shakespeare-char`: nanoGPT's config/train_shakespeare_char.py (6 layers, 6 heads, 384 channels, context
 *   256, batch 64, dropout 0.2, lr 1e-3 decaying to 1e-4 over 5000 steps after 100 warmup, beta2 0.99,
 *   evaluation every 250 steps over 200 batches; no bias, weight decay 0.1, clip 1 as nanoGPT's train.py).
 *   nanoGPT reaches val loss 1.4697 on tinyshakespeare with it.
 */
export const PRESETS: Readonly<Record<string, Readonly<Partial<TrainConfig>>>> = {
  "shakespeare-char": {
    tokenizer: "char",
    n_layer: 6,
    n_head: 6,
    n_embd: 384,
    block_size: 256,
    batch_size: 64,
    grad_accum: 1,
    dropout: 0.2,
    bias: false,
    steps: 5000,
    lr: 1e-3,
    min_lr: 1e-4,
    warmup: 100,
    lr_decay_steps: 5000,
    weight_decay: 0.1,
    beta1: 0.9,
    beta2: 0.99,
    grad_clip: 1,
    eval_interval: 250,
    eval_iters: 200,
    log_interval: 10,
  },
};

/**
 * The library options of evaluation, exposure measurement, sampling and experiments that a message may
 * name, as the library spells them (camelCase); the command line has a flag for each.
 */
export type OptionName =
  | "batchSize"
  | "data"
  | "decode"
  | "maxTokens"
  | "modes"
  | "noiseDraws"
  | "numSamples"
  | "oracleChars"
  | "oracleFile"
  | "prompt"
  | "seeds"
  | "temperature"
  | "topK"
  | "topP"
  | "windows";

/** What a {@linkcode ConfigError} may name: a TrainConfig key or another library option. */
export type SettingKey = keyof TrainConfig | OptionName;

/** A setting named in a {@linkcode ConfigError}'s message. */
export class SettingName {
  /** The TrainConfig key or option name. */
  readonly key: SettingKey;
  /** Names `key`. */
  constructor(key: SettingKey) {
    this.key = key;
  }
}

/** A piece of a {@linkcode ConfigError}'s message: text, or a setting's name. */
export type MessagePart = string | SettingName;

/**
 * An invalid TrainConfig: an {@linkcode InputError} whose one-line message names settings by their keys
 * ("n_embd (60) must be divisible by n_head (7)"). `parts` keeps which pieces are setting names, so a
 * front end can write them in its own terms (the command line: `--n-embd`).
 */
export class ConfigError extends InputError {
  /** The message, piece by piece. */
  readonly parts: readonly MessagePart[];
  /** Creates the error; the message writes each setting as its key. */
  constructor(parts: readonly MessagePart[]) {
    super(parts.map((p) => typeof p === "string" ? p : p.key).join(""));
    this.name = "ConfigError";
    this.parts = parts;
  }

  /** The message with each setting written as `name(key)`. */
  wordedWith(name: (key: SettingKey) => string): string {
    return this.parts.map((p) => typeof p === "string" ? p : name(p.key)).join("");
  }
}

/** The name of setting `key`, to interpolate into a {@linkcode configError} message. */
export function setting(key: SettingKey): SettingName {
  return new SettingName(key);
}

/**
 * A {@linkcode ConfigError} from a template: `` configError`${setting("lr")} must be > 0 (got ${lr})` ``.
 * Interpolated {@linkcode SettingName}s stay setting names; any other value becomes text. A line break in
 * the template's own text, with the spaces around it, reads as one space, so a long message can wrap.
 */
export function configError(text: TemplateStringsArray, ...values: unknown[]): ConfigError {
  const line = (t: string) => t.replace(/ *\n */g, " ");
  const parts: MessagePart[] = [line(text[0])];
  values.forEach((v, i) => parts.push(v instanceof SettingName ? v : String(v), line(text[i + 1])));
  return new ConfigError(parts);
}

/** Throws a one-line {@linkcode ConfigError} naming the first invalid setting. */
export function validateTrainConfig(c: TrainConfig): void {
  const posInt = [
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "batch_size",
    "grad_accum",
    "steps",
    "eval_interval",
    "eval_iters",
    "log_interval",
  ] as const;
  for (const k of posInt) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw configError`${setting(k)} must be a positive integer (got ${c[k]})`;
    }
  }
  const nonNegInt = ["warmup", "sample_chars"] as const;
  for (const k of nonNegInt) {
    if (!Number.isInteger(c[k]) || c[k] < 0) {
      throw configError`${setting(k)} must be an integer >= 0 (got ${c[k]})`;
    }
  }
  if (c.lr_decay_steps !== undefined && (!Number.isInteger(c.lr_decay_steps) || c.lr_decay_steps < 1)) {
    throw configError`${setting("lr_decay_steps")} must be a positive integer (got ${c.lr_decay_steps})`;
  }
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) {
    throw configError`${setting("seed")} must be an integer in [0, 2^32) (got ${c.seed})`;
  }
  if (c.n_embd % c.n_head !== 0) {
    throw configError`${setting("n_embd")} (${c.n_embd})
      must be divisible by ${setting("n_head")} (${c.n_head})`;
  }
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw configError`${setting("lr")} must be > 0 (got ${c.lr})`;
  if (!(c.min_lr >= 0 && c.min_lr <= c.lr)) {
    throw configError`${setting("min_lr")} must be in [0, lr = ${c.lr}] (got ${c.min_lr})`;
  }
  if (!(c.weight_decay >= 0 && Number.isFinite(c.weight_decay))) {
    throw configError`${setting("weight_decay")} must be >= 0 (got ${c.weight_decay})`;
  }
  for (const k of ["beta1", "beta2"] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) throw configError`${setting(k)} must be in [0, 1) (got ${c[k]})`;
  }
  if (!(c.grad_clip >= 0 && Number.isFinite(c.grad_clip))) {
    throw configError`${setting("grad_clip")} must be >= 0 (got ${c.grad_clip})`;
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) {
    throw configError`${setting("dropout")} must be in [0, 1) (got ${c.dropout})`;
  }
  if (!["char", "word", "bpe", "gpt2"].includes(c.tokenizer)) {
    throw configError`${setting("tokenizer")} must be char, word, bpe or gpt2 (got ${c.tokenizer})`;
  }
  checkVocabFile(c);
  if (!["stream", "lines"].includes(c.examples)) {
    throw configError`${setting("examples")} must be stream or lines (got ${c.examples})`;
  }
  checkVocabSize(c);
  if (!PRECISIONS.includes(c.dtype)) {
    throw configError`${setting("dtype")} must be ${PRECISIONS.join(" or ")} (got ${c.dtype})`;
  }
  validateModeConfig(c);
}

/**
 * vocab_size against the tokenizer it sizes: none for char (its vocabulary is the text's code points),
 * >= 3 for word (`<pad>`, `<unk>` and one word), [256 (+1 for the `<pad>` of examples "lines"), 2^21]
 * for byte-level bpe.
 */
function checkVocabSize(c: TrainConfig): void {
  const v = c.vocab_size, vocabSize = setting("vocab_size"), examples = setting("examples");
  if (v === undefined) return;
  if (c.tokenizer === "char") {
    throw configError`${vocabSize} applies to the word and bpe tokenizers, not char (got ${vocabSize} ${v})`;
  }
  if (c.tokenizer === "word" && !(Number.isInteger(v) && v >= 3)) {
    throw configError`${vocabSize} must be an integer >= 3 for the word tokenizer (got ${v})`;
  }
  const lines = c.examples === "lines", lo = 256 + (lines ? 1 : 0), hi = 2 ** 21;
  if (c.tokenizer === "bpe" && !(Number.isInteger(v) && v >= lo && v <= hi)) {
    throw lines
      ? configError`${vocabSize} must be an integer in [${lo}, ${hi}] for the bpe tokenizer with ${examples}
          lines (got ${v})`
      : configError`${vocabSize} must be an integer in [${lo}, ${hi}] for the bpe tokenizer (got ${v})`;
  }
}

/**
 * vocab_file against the tokenizer: gpt2 reads its vocabulary from one (and has no `<pad>` for examples
 * "lines", nor a size to choose); no other tokenizer takes one.
 */
function checkVocabFile(c: TrainConfig): void {
  const tokenizer = setting("tokenizer"), vocabFile = setting("vocab_file");
  if (c.tokenizer !== "gpt2") {
    if (c.vocab_file !== undefined) {
      throw configError`${vocabFile} applies to ${tokenizer} gpt2, not ${c.tokenizer}
        (got ${vocabFile} ${c.vocab_file})`;
    }
    return;
  }
  if (c.vocab_file === undefined || c.vocab_file === "") {
    throw configError`${tokenizer} gpt2 needs ${vocabFile} DIR
      (a folder of GPT-2's vocab.json and merges.txt)`;
  }
  if (c.vocab_size !== undefined) {
    throw configError`${setting("vocab_size")} does not apply to ${tokenizer} gpt2
      (its files fix the vocabulary; got ${c.vocab_size})`;
  }
  if (c.examples === "lines") {
    throw configError`${setting("examples")} lines needs a <pad> token,
      which ${tokenizer} gpt2 does not have`;
  }
}

/** Checks a gold prefix against a block size; throws a one-line {@linkcode ConfigError}. */
export function checkPrefix(prefix: number, blockSize: number): void {
  if (!Number.isInteger(prefix) || prefix < 1 || prefix >= blockSize) {
    throw configError`${setting("prefix")} must be an integer
      in [1, block_size = ${blockSize}) (got ${prefix})`;
  }
}

/**
 * Throws a one-line {@linkcode ConfigError} naming the first invalid mode setting (called by
 * validateTrainConfig; the ε schedules are defined in src/train/modes.ts).
 */
export function validateModeConfig(c: TrainConfig): void {
  if (!TRAIN_MODES.includes(c.mode)) {
    throw configError`${setting("mode")}
      must be teacher-forcing, free-running or scheduled-sampling (got ${c.mode})`;
  }
  for (const k of ["fr_decode", "ss_decode"] as const) {
    if (c[k] !== "argmax" && c[k] !== "sample") {
      throw configError`${setting(k)} must be argmax or sample (got ${c[k]})`;
    }
  }
  if (!SS_SCHEDULES.includes(c.ss_schedule)) {
    throw configError`${setting("ss_schedule")}
      must be linear, exponential or inverse-sigmoid (got ${c.ss_schedule})`;
  }
  if (c.prefix !== undefined) checkPrefix(c.prefix, c.block_size);
  if (c.mode === "free-running" && c.block_size < 2) {
    throw configError`free-running needs ${setting("block_size")} >= 2 (got ${c.block_size})`;
  }
  if (!(c.ss_min >= 0 && c.ss_min <= 1)) {
    throw configError`${setting("ss_min")} must be in [0, 1] (got ${c.ss_min})`;
  }
  checkSsK(c);
  if (c.ss_c !== undefined) {
    if (c.ss_schedule !== "linear") throw configError`${setting("ss_c")} applies to the linear schedule only`;
    if (!(c.ss_c >= 0 && Number.isFinite(c.ss_c))) {
      throw configError`${setting("ss_c")} must be >= 0 (got ${c.ss_c})`;
    }
  }
}

/** ss_k against its schedule: linear in [0, 1], exponential in (0, 1], inverse-sigmoid >= 1. */
function checkSsK(c: TrainConfig): void {
  const k = c.ss_k, ssK = setting("ss_k");
  if (k === undefined) return;
  if (c.ss_schedule === "linear" && !(k >= 0 && k <= 1)) {
    throw configError`${ssK} must be in [0, 1] for the linear schedule (got ${k})`;
  }
  if (c.ss_schedule === "exponential" && !(k > 0 && k <= 1)) {
    throw configError`${ssK} must be in (0, 1] for the exponential schedule (got ${k})`;
  }
  if (c.ss_schedule === "inverse-sigmoid" && !(k >= 1 && Number.isFinite(k))) {
    throw configError`${ssK} must be >= 1 for the inverse-sigmoid schedule (got ${k})`;
  }
}

/** snake_case -> kebab-case (TrainConfig keys as command-line flags). */
export function kebab(k: string): string {
  return k.replaceAll("_", "-");
}
