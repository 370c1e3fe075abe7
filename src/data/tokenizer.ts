/**
 * The tokenizer interface shared by the char, word, byte-level BPE and GPT-2 tokenizers, with a factory that
 * trains one on a text and a loader that rebuilds one from the JSON stored in checkpoint metadata.
 *
 * Every error is one line that names the problem (a character outside a char vocabulary shows the
 * character and its code point; a malformed JSON field is named by its path).
 *
 * @module
 */
import { CharTokenizer } from "./char.ts";
import { WordTokenizer } from "./word.ts";
import { BpeTokenizer } from "./bpe.ts";
import { Gpt2Tokenizer } from "./gpt2.ts";

/** The kinds of tokenizer; "gpt2" is GPT-2's vocabulary, read from its files (src/data/gpt2.ts), not trained. */
export type TokenizerType = "char" | "word" | "bpe" | "gpt2";

/** The tokenizer kinds, in the order they are listed in messages. */
export const TOKENIZER_TYPES: readonly TokenizerType[] = ["char", "word", "bpe", "gpt2"];

/** Maps text to token ids in 0..vocabSize-1 and back. */
export interface Tokenizer {
  /** Which kind of tokenizer this is. */
  readonly type: TokenizerType;
  /** Number of ids: ids are 0..vocabSize-1 (the pad id included, when there is one). */
  readonly vocabSize: number;
  /** Id of `<pad>` if the tokenizer has one, else null. Pad decodes to the empty string. */
  readonly padId: number | null;
  /** Token ids of `text`; throws a one-line Error naming the problem (e.g. a character not in a char vocab). */
  encode(text: string): Uint32Array;
  /** Text of `ids`; throws on an id out of range or not an integer. */
  decode(ids: ArrayLike<number>): string;
  /** A plain JSON object from which {@linkcode tokenizerFromJSON} rebuilds an identical tokenizer. */
  toJSON(): Record<string, unknown>;
}

/** Options for {@linkcode trainTokenizer}. */
export interface TrainTokenizerOptions {
  /**
   * Vocabulary size, pad included. char: ignored (the vocabulary is the text's distinct characters).
   * word: at most this many ids (`<pad>`, `<unk>` and the most frequent tokens; default: all tokens).
   * bpe: >= 256 (+1 with pad), default 512; fewer only if the text runs out of pairs to merge.
   */
  vocabSize?: number;
  /** Add a `<pad>` id (char: one past the characters; bpe: the last id). word always has `<pad>` = 0. */
  pad?: boolean;
}

/**
 * Trains a tokenizer of kind `type` on `text`.
 *
 * @example
 * ```ts
 * const tok = trainTokenizer("char", "hello world");
 * tok.decode(tok.encode("hello")); // "hello"
 * ```
 */
export function trainTokenizer(
  type: TokenizerType,
  text: string,
  opts: TrainTokenizerOptions = {},
): Tokenizer {
  if (typeof text !== "string") throw new Error(`trainTokenizer: text must be a string, got ${typeof text}`);
  const { vocabSize, pad = false } = opts;
  if (vocabSize !== undefined && (!Number.isSafeInteger(vocabSize) || vocabSize < 1)) {
    throw new Error(`trainTokenizer: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  switch (type) {
    case "char":
      return CharTokenizer.train(text, pad);
    case "word":
      return WordTokenizer.train(text, vocabSize);
    case "bpe":
      return BpeTokenizer.train(text, vocabSize ?? 512, pad);
    case "gpt2":
      throw new Error(
        "trainTokenizer: gpt2 is GPT-2's vocabulary, not trained: load it with loadGpt2Tokenizer(folder)",
      );
    default:
      throw new Error(
        `trainTokenizer: unknown tokenizer type ${show(type)} (expected ${TOKENIZER_TYPES.join(", ")})`,
      );
  }
}

/**
 * Rebuilds a tokenizer from the object made by its `toJSON()` (or that object's JSON text). Validates every
 * field and throws a one-line Error naming the first problem.
 */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  let obj = json;
  if (typeof obj === "string") {
    try {
      obj = JSON.parse(obj);
    } catch (e) {
      throw new Error(`tokenizer JSON: not valid JSON (${oneLine((e as Error).message)})`);
    }
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new Error(`tokenizer JSON: expected an object, got ${describe(obj)}`);
  }
  const rec = obj as Record<string, unknown>;
  switch (rec.type) {
    case "char":
      return CharTokenizer.fromJSON(rec);
    case "word":
      return WordTokenizer.fromJSON(rec);
    case "bpe":
      return BpeTokenizer.fromJSON(rec);
    case "gpt2":
      return Gpt2Tokenizer.fromJSON(rec);
    default:
      throw new Error(
        `tokenizer JSON: "type" must be one of ${TOKENIZER_TYPES.join(", ")}, got ${describe(rec.type)}`,
      );
  }
}

/** Throws unless `rec` has only the `allowed` keys (shared by the loaders). @internal */
export function checkKeys(rec: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(rec)) {
    if (!allowed.includes(k)) {
      throw new Error(
        `tokenizer JSON (${rec.type}): unknown key ${show(k)} (allowed: ${allowed.join(", ")})`,
      );
    }
  }
}

/** Throws a one-line error unless every id is an integer in [0, vocabSize). @internal */
export function checkId(id: number, vocabSize: number, type: TokenizerType, index: number): void {
  if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
    throw new Error(`${type} tokenizer: id ${id} at index ${index} is out of range [0, ${vocabSize})`);
  }
}

/** A short one-line rendering of any value for error messages. @internal */
export function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (typeof v === "string") return show(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === "object" && v !== null) return "an object";
  return String(v);
}

/** A string quoted and escaped (JSON style), shortened to 40 characters. @internal */
export function show(s: unknown): string {
  const str = String(s);
  return JSON.stringify(str.length > 40 ? str.slice(0, 37) + "..." : str);
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ");
}

/**
 * The token a sample with no prompt starts from, for any vocabulary: a newline if it encodes to one
 * token, else a space, else the first id that is not padding (a DNA or digits corpus has neither).
 */
export function startToken(tok: Tokenizer): number {
  for (const s of ["\n", " "]) {
    try {
      const ids = tok.encode(s);
      if (ids.length === 1 && ids[0] !== tok.padId) return ids[0];
    } catch {
      // not in this vocabulary
    }
  }
  return tok.padId === 0 ? 1 : 0;
}
