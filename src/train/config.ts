/**
 * TrainConfig: every knob of a training run, nanoGPT's names in snake case; CLI flags map 1:1 in kebab
 * case (`--lr-decay-steps` is `lr_decay_steps`).
 *
 * @module
 */
import type { TokenizerType } from "../data/tokenizer.ts";
import { type Precision, PRECISIONS } from "../model/config.ts";
import type { ExamplesMode } from "./data.ts";
import { validateModeConfig } from "./modes.ts";
import { InputError } from "../util/errors.ts";

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
  /** Final learning rate of the cosine. */
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
  mode: "teacher-forcing" | "free-running" | "scheduled-sampling";
  /** Gold prefix P of free-running inputs and of `eval --exposure`, in [1, block_size); default block_size / 4. */
  prefix?: number;
  /** free-running: the model's own next token is its argmax or a sample (temperature 1). */
  fr_decode: "argmax" | "sample";
  /** scheduled-sampling: pass 1's prediction per position is its argmax or a sample (temperature 1). */
  ss_decode: "argmax" | "sample";
  /** scheduled-sampling: decay of ε, the probability of keeping a gold input (Bengio et al. 2015). */
  ss_schedule: "linear" | "exponential" | "inverse-sigmoid";
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
 * `deno task train --help`: each key's value form ("" for a switch) and one line of help. The mapped type
 * makes a TrainConfig key without help a type error, so the help cannot fall behind the config.
 */
export const TRAIN_FLAG_HELP: {
  readonly [K in keyof TrainConfig]-?: readonly [value: string, help: string];
} = {
  data: ["FILE", "training text (UTF-8); default: the embedded generated language"],
  val: ["FILE", "validation text; default: the last 10% of the data"],
  allow_invalid_utf8: [
    "",
    "decode --data and --val bytes that are not UTF-8 as U+FFFD instead of refusing the file",
  ],
  tokenizer: [
    "char|word|bpe|gpt2",
    "char: code points; word: words and punctuation; bpe: byte-level BPE; gpt2: GPT-2's (--vocab-file)",
  ],
  vocab_size: ["N", "vocabulary size of the word and bpe tokenizers (bpe: 512 when not given)"],
  vocab_file: ["DIR", "--tokenizer gpt2: a folder of GPT-2's vocab.json and merges.txt (Hugging Face's)"],
  examples: ["stream|lines", "stream: windows of one token stream; lines: one example per line, padded"],
  n_layer: ["N", "transformer blocks"],
  n_head: ["N", "attention heads"],
  n_embd: ["N", "channels, a multiple of --n-head"],
  block_size: ["N", "context length in tokens"],
  batch_size: ["N", "sequences per micro-batch"],
  grad_accum: ["N", "micro-batches per optimizer step, all in the step's one GPU submission"],
  dropout: ["P", "dropout on the embeddings, attention probabilities and residual branches"],
  bias: ["", "biases in the Linear and LayerNorm layers (--no-bias: none)"],
  steps: ["N", "optimizer steps in total, counting the steps before a --resume"],
  lr: ["X", "peak learning rate"],
  min_lr: ["X", "learning rate at the end of the cosine decay"],
  warmup: ["N", "steps of linear warmup"],
  lr_decay_steps: ["N", "steps of cosine decay (default: --steps)"],
  weight_decay: ["X", "AdamW weight decay of the matrices and embeddings"],
  beta1: ["X", "AdamW beta1"],
  beta2: ["X", "AdamW beta2"],
  grad_clip: ["X", "clip the global gradient norm to X (0: off)"],
  dtype: ["float32|float16", "float16: f16 operands, f32 arithmetic and master weights, loss scaling"],
  eval_interval: ["N", "evaluate and save a checkpoint every N steps"],
  eval_iters: ["N", "validation batches per evaluation"],
  log_interval: ["N", "read the training loss back every N steps"],
  seed: ["N", "seed of the initialisation, data order, dropout and generated language"],
  out: ["DIR", "run folder: checkpoints, log.jsonl, loss.svg"],
  resume: ["", "continue the run in --out with its saved settings (model, data, optimizer, schedule)"],
  overwrite: ["", "train afresh into an --out that holds a run, moving its files to DIR/replaced-TIME/"],
  init_from: ["FILE", "fine-tune from this checkpoint's weights, shape and tokenizer (step 0)"],
  sample_chars: ["N", "tokens of sample text printed at the end (0: none)"],
  mode: [
    "teacher-forcing|free-running|scheduled-sampling",
    "how the inputs are formed: gold tokens, the model's own, or a decaying mix",
  ],
  prefix: ["N", "free-running: gold tokens before the model's own (default: block size / 4)"],
  fr_decode: ["argmax|sample", "free-running: the model's next token is its argmax or a sample"],
  ss_decode: ["argmax|sample", "scheduled-sampling: pass 1's prediction is its argmax or a sample"],
  ss_schedule: [
    "linear|exponential|inverse-sigmoid",
    "scheduled-sampling: how ε, the chance of a gold input, decays",
  ],
  ss_k: ["X", "ε's parameter k (default by schedule; see src/train/modes.ts)"],
  ss_c: ["X", "linear ε's slope per step (default: (k - ss-min) / steps)"],
  ss_min: ["X", "floor of ε, in [0, 1]"],
};

/** Throws a one-line error naming the first invalid setting. */
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
      throw new InputError(`--${kebab(k)} must be a positive integer (got ${c[k]})`);
    }
  }
  const nonNegInt = ["warmup", "sample_chars"] as const;
  for (const k of nonNegInt) {
    if (!Number.isInteger(c[k]) || c[k] < 0) {
      throw new InputError(`--${kebab(k)} must be an integer >= 0 (got ${c[k]})`);
    }
  }
  if (c.lr_decay_steps !== undefined && (!Number.isInteger(c.lr_decay_steps) || c.lr_decay_steps < 1)) {
    throw new InputError(`--lr-decay-steps must be a positive integer (got ${c.lr_decay_steps})`);
  }
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) {
    throw new InputError(`--seed must be an integer in [0, 2^32) (got ${c.seed})`);
  }
  if (c.n_embd % c.n_head !== 0) {
    throw new InputError(`--n-embd (${c.n_embd}) must be divisible by --n-head (${c.n_head})`);
  }
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new InputError(`--lr must be > 0 (got ${c.lr})`);
  if (!(c.min_lr >= 0 && c.min_lr <= c.lr)) {
    throw new InputError(`--min-lr must be in [0, lr = ${c.lr}] (got ${c.min_lr})`);
  }
  if (!(c.weight_decay >= 0 && Number.isFinite(c.weight_decay))) {
    throw new InputError(`--weight-decay must be >= 0 (got ${c.weight_decay})`);
  }
  if (!(c.beta1 >= 0 && c.beta1 < 1)) throw new InputError(`--beta1 must be in [0, 1) (got ${c.beta1})`);
  if (!(c.beta2 >= 0 && c.beta2 < 1)) throw new InputError(`--beta2 must be in [0, 1) (got ${c.beta2})`);
  if (!(c.grad_clip >= 0 && Number.isFinite(c.grad_clip))) {
    throw new InputError(`--grad-clip must be >= 0 (got ${c.grad_clip})`);
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) {
    throw new InputError(`--dropout must be in [0, 1) (got ${c.dropout})`);
  }
  if (!["char", "word", "bpe", "gpt2"].includes(c.tokenizer)) {
    throw new InputError(`--tokenizer must be char, word, bpe or gpt2 (got ${c.tokenizer})`);
  }
  checkVocabFile(c);
  if (!["stream", "lines"].includes(c.examples)) {
    throw new InputError(`--examples must be stream or lines (got ${c.examples})`);
  }
  checkVocabSize(c);
  if (!PRECISIONS.includes(c.dtype)) {
    throw new InputError(`--dtype must be ${PRECISIONS.join(" or ")} (got ${c.dtype})`);
  }
  validateModeConfig(c);
}

/**
 * `--vocab-size` against the tokenizer it sizes: none for char (its vocabulary is the text's code
 * points), >= 3 for word (`<pad>`, `<unk>` and one word), [256 (+1 for the `<pad>` of `--examples
 * lines`), 2^21] for byte-level bpe.
 */
function checkVocabSize(c: TrainConfig): void {
  const v = c.vocab_size;
  if (v === undefined) return;
  if (c.tokenizer === "char") {
    throw new InputError(
      `--vocab-size applies to the word and bpe tokenizers, not char (got --vocab-size ${v})`,
    );
  }
  if (c.tokenizer === "word" && !(Number.isInteger(v) && v >= 3)) {
    throw new InputError(`--vocab-size must be an integer >= 3 for the word tokenizer (got ${v})`);
  }
  const lines = c.examples === "lines", lo = 256 + (lines ? 1 : 0), hi = 2 ** 21;
  if (c.tokenizer === "bpe" && !(Number.isInteger(v) && v >= lo && v <= hi)) {
    throw new InputError(
      `--vocab-size must be an integer in [${lo}, ${hi}] for the bpe tokenizer` +
        `${lines ? " with --examples lines" : ""} (got ${v})`,
    );
  }
}

/**
 * `--vocab-file` against `--tokenizer`: gpt2 reads its vocabulary from one (and has no `<pad>` for
 * `--examples lines`, nor a size to choose); no other tokenizer takes one.
 */
function checkVocabFile(c: TrainConfig): void {
  if (c.tokenizer !== "gpt2") {
    if (c.vocab_file !== undefined) {
      throw new InputError(
        `--vocab-file applies to --tokenizer gpt2, not ${c.tokenizer} (got --vocab-file ${c.vocab_file})`,
      );
    }
    return;
  }
  if (c.vocab_file === undefined || c.vocab_file === "") {
    throw new InputError(
      "--tokenizer gpt2 needs --vocab-file DIR (a folder of GPT-2's vocab.json and merges.txt)",
    );
  }
  if (c.vocab_size !== undefined) {
    throw new InputError(
      `--vocab-size does not apply to --tokenizer gpt2 (its files fix the vocabulary; got ${c.vocab_size})`,
    );
  }
  if (c.examples === "lines") {
    throw new InputError("--examples lines needs a <pad> token, which --tokenizer gpt2 does not have");
  }
}

/** snake_case -> kebab-case. */
export function kebab(k: string): string {
  return k.replaceAll("_", "-");
}
