/**
 * Any tokenizer kind (char, word, byte-level BPE, GPT-2's): a factory that trains one on a text and a loader
 * that rebuilds one from the JSON stored in checkpoint metadata. The interface they share is defined in
 * tokenizer_types.ts (which the concrete tokenizers import) and re-exported here.
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
import { describe, show, type Tokenizer, TOKENIZER_TYPES, type TokenizerType } from "./tokenizer_types.ts";

export { type Tokenizer, TOKENIZER_TYPES, type TokenizerType } from "./tokenizer_types.ts";

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
