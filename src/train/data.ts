/**
 * Training data: text in, token ids out, split into train and validation, and the window sampler
 * that picks teacher-forcing windows from anywhere in the training split.
 *
 * Two modes: `stream` (nanoGPT: one long token stream; a window is block_size+1 consecutive tokens at
 * a random offset) and `lines` (each non-empty line is an example; a window starts at an example's
 * beginning, is at most block_size+1 tokens, and the rest of the row is padding whose targets are
 * ignored).
 *
 * @module
 */
import { type Tokenizer, type TokenizerType, trainTokenizer } from "../data/tokenizer.ts";
import { loadGpt2Tokenizer } from "../data/gpt2.ts";
import { generateLanguage } from "../data/language.ts";
import type { Rng } from "../util/rng.ts";
import { InputError } from "../util/errors.ts";
import { configError, type ExamplesMode, setting } from "./config.ts";
import { invalidUtf8Offset } from "../util/utf8.ts";

export type { ExamplesMode };

/** Token ids of one split, with example boundaries in `lines` mode. */
export interface Split {
  /** All token ids, examples concatenated. */
  tokens: Uint32Array;
  /** `lines` mode: start of each example in `tokens`. */
  starts?: Uint32Array;
  /** `lines` mode: length of each example. */
  lengths?: Uint32Array;
}

/** A tokenized corpus ready for training. */
export interface Corpus {
  /** The tokenizer (trained on the training text, or taken from a checkpoint). */
  tokenizer: Tokenizer;
  /** Training split. */
  train: Split;
  /** Validation split. */
  val: Split;
  /** One line for the console, e.g. "tinyshakespeare.txt: 1,115,394 chars, 65 tokens". */
  description: string;
  /** Best achievable loss in nats per token, when the source is known (the generated language). */
  entropyRate?: number;
}

/** Where the corpus comes from and how to tokenize it. */
export interface CorpusOptions {
  /** Training text file; absent: `text`, else the generated default language. */
  data?: string;
  /** Training text given directly (a browser page, a library caller); used when `data` is absent. */
  text?: string;
  /** Validation text file; absent: the last 10% of the data. */
  val?: string;
  /** Tokenizer kind (ignored when `tokenizer` is given). */
  tokenizerType: TokenizerType;
  /** Vocabulary size for word/bpe. */
  vocabSize?: number;
  /** gpt2: the folder of GPT-2's vocab.json and merges.txt (its vocabulary is read, not trained). */
  vocabFile?: string;
  /** Use this tokenizer instead of training one (resume, fine-tune). */
  tokenizer?: Tokenizer;
  /** Example mode. */
  examples: ExamplesMode;
  /** Needed window: block_size + 1 tokens. */
  blockSize: number;
  /** Seed of the generated language. */
  seed: number;
  /** Decode ill-formed UTF-8 in `data` and `val` to U+FFFD instead of refusing the file. */
  allowInvalidUtf8?: boolean;
}

/**
 * Reads a UTF-8 text file; a missing, unreadable or empty file, or one that is not valid UTF-8, is an
 * {@linkcode InputError} naming the file (and the offset of the first bad byte). With
 * `allowInvalidUtf8`, ill-formed bytes decode to U+FFFD replacement characters instead.
 */
export async function readText(path: string, what: string, allowInvalidUtf8 = false): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message.split("\n")[0];
    throw new InputError(`${what} file '${path}': ${reason}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: !allowInvalidUtf8 }).decode(bytes);
  } catch {
    const at = invalidUtf8Offset(bytes);
    const byte = bytes[at].toString(16).padStart(2, "0");
    throw configError`${what} file '${path}' is not valid UTF-8: bad byte 0x${byte} at offset ${at}
      (${setting("allow_invalid_utf8")} decodes it with U+FFFD replacement characters)`;
  }
  if (text.length === 0) throw new InputError(`${what} file '${path}' is empty`);
  return text;
}

/** Loads, tokenizes and splits the corpus; checks that each split can fill a window. */
export async function loadCorpus(o: CorpusOptions): Promise<Corpus> {
  let text: string, source: string, entropyRate: number | undefined, alphabet = "";
  if (o.data === undefined && o.text !== undefined) {
    if (o.text.length === 0) throw new InputError("data: the training text is empty");
    text = o.text;
    source = `text: ${text.length.toLocaleString("en-US")} chars`;
  } else if (o.data === undefined) {
    const lang = generateLanguage({ seed: o.seed });
    text = lang.text;
    source = lang.description;
    // The generated language's rate is per character: it is per token for the char tokenizer only.
    if ((o.tokenizer?.type ?? o.tokenizerType) === "char") entropyRate = lang.entropyRate;
    // A char vocabulary holds every character the language can emit (a rare typo may be absent from the text).
    alphabet = lang.alphabet.join("");
  } else {
    text = await readText(o.data, "data", o.allowInvalidUtf8);
    source = `${o.data}: ${text.length.toLocaleString("en-US")} chars`;
  }
  const valText = o.val === undefined ? undefined : await readText(o.val, "validation", o.allowInvalidUtf8);
  const lines = o.examples === "lines";
  // The char vocabulary covers the validation text too, so it can be encoded (nanoGPT builds it from
  // the whole file), and the generated language's alphabet; word/bpe learn from the training text only.
  const tokenizer = o.tokenizer ??
    (o.tokenizerType === "gpt2" ? await gpt2Tokenizer(o.vocabFile) : trainTokenizer(
      o.tokenizerType,
      o.tokenizerType === "char" ? text + (valText ?? "") + alphabet : text,
      { vocabSize: o.vocabSize, pad: lines },
    ));
  if (lines && tokenizer.padId === null) {
    throw configError`${setting("examples")} lines needs a tokenizer with a <pad> token (this checkpoint's
      has none)`;
  }
  let train: Split, val: Split;
  if (valText !== undefined) {
    train = encodeSplit(tokenizer, text, lines);
    val = encodeSplit(tokenizer, valText, lines);
  } else if (lines) {
    const all = text.split("\n").filter((l) => l.length > 0);
    const cut = Math.max(1, Math.floor(all.length * 0.9));
    if (all.length < 2) {
      throw configError`data: ${setting("examples")} lines needs at least 2 non-empty lines to split`;
    }
    train = encodeSplit(tokenizer, all.slice(0, cut).join("\n"), true);
    val = encodeSplit(tokenizer, all.slice(cut).join("\n"), true);
  } else {
    const ids = encodeOrThrow(tokenizer, text, "data");
    const cut = Math.floor(ids.length * 0.9);
    train = { tokens: ids.slice(0, cut) };
    val = { tokens: ids.slice(cut) };
  }
  const need = o.blockSize + 1;
  if (!lines) {
    if (train.tokens.length < need) {
      throw new InputError(
        `data: the training split has ${train.tokens.length} tokens, fewer than block_size+1 = ${need}`,
      );
    }
    if (val.tokens.length < need) {
      throw new InputError(
        `data: the validation split has ${val.tokens.length} tokens, fewer than block_size+1 = ${need}`,
      );
    }
  } else {
    if (!train.starts?.length) throw new InputError("data: no training examples (all lines empty?)");
    if (!val.starts?.length) throw new InputError("data: no validation examples (all lines empty?)");
  }
  const description = `${source}; ${tokenizer.type} tokenizer, vocab ${tokenizer.vocabSize}; ` +
    `train ${train.tokens.length.toLocaleString("en-US")} tokens, val ${
      val.tokens.length.toLocaleString("en-US")
    }`;
  return { tokenizer, train, val, description, entropyRate };
}

/** GPT-2's tokenizer from `dir` (vocab.json + merges.txt); none given is an InputError. */
function gpt2Tokenizer(dir: string | undefined): Promise<Tokenizer> {
  if (dir === undefined) {
    throw configError`${setting("tokenizer")} gpt2 needs ${setting("vocab_file")} DIR (a folder of GPT-2's
      vocab.json and merges.txt)`;
  }
  return loadGpt2Tokenizer(dir);
}

function encodeOrThrow(tok: Tokenizer, text: string, what: string): Uint32Array {
  try {
    return tok.encode(text);
  } catch (e) {
    const msg = `${what}: ${(e as Error).message}`;
    throw e instanceof InputError ? new InputError(msg) : new Error(msg);
  }
}

/** Tokenizes a split; in lines mode each non-empty line (with its newline) is one example. */
function encodeSplit(tok: Tokenizer, text: string, lines: boolean): Split {
  if (!lines) return { tokens: encodeOrThrow(tok, text, "data") };
  const parts: Uint32Array[] = [];
  for (const line of text.split("\n")) {
    if (line.length > 0) parts.push(encodeOrThrow(tok, line + "\n", "data"));
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const tokens = new Uint32Array(total), starts = new Uint32Array(parts.length);
  const lengths = new Uint32Array(parts.length);
  let o = 0;
  parts.forEach((p, i) => {
    tokens.set(p, o);
    starts[i] = o;
    lengths[i] = p.length;
    o += p.length;
  });
  return { tokens, starts, lengths };
}

/**
 * Draws B windows of up to T+1 tokens: offsets and usable lengths for the gather kernel.
 * stream: uniform offsets in [0, n - T - 1]; lines: a uniform example, from its start (a longer
 * example contributes a uniform sub-window).
 */
export function drawWindows(
  split: Split,
  rng: Rng,
  B: number,
  T: number,
): { offsets: number[]; lengths: number[] } {
  const offsets: number[] = [], lengths: number[] = [];
  for (let b = 0; b < B; b++) {
    if (split.starts && split.lengths) {
      const i = rng.int(split.starts.length);
      const len = split.lengths[i];
      const extra = len > T + 1 ? rng.int(len - T) : 0;
      offsets.push(split.starts[i] + extra);
      lengths.push(Math.min(len - extra, T + 1));
    } else {
      offsets.push(rng.int(split.tokens.length - T));
      lengths.push(T + 1);
    }
  }
  return { offsets, lengths };
}
