/**
 * Word tokenizer: tokens are words (runs of Unicode letters, combining marks, digits and apostrophes),
 * whitespace runs and single other characters (punctuation, symbols), so that decoding the tokens of a
 * text gives the text back whenever every token is in the vocabulary. Ids: 0 = `<pad>`, 1 = `<unk>`, then
 * the training text's tokens from most to least frequent (ties in code unit order). Unknown tokens encode
 * to `<unk>`, which decodes to the literal "<unk>".
 *
 * JSON: `{"type":"word","vocab":["<pad>","<unk>"," ","the",...]}`.
 *
 * @module
 */
import { checkId, checkKeys, describe, show, type Tokenizer, type TokenizerType } from "./tokenizer_types.ts";

/** The pattern that cuts text into word-tokenizer tokens; the pieces concatenate back to the text. */
export const WORD_SPLIT: RegExp = /[\p{L}\p{M}\p{N}'\u2019]+|\s+|[^]/gu;

/** Splits `text` into word-tokenizer tokens (words, whitespace runs, single other characters). */
export function splitWords(text: string): string[] {
  return text.match(WORD_SPLIT) ?? [];
}

/** A word tokenizer; build with `trainTokenizer("word", text, { vocabSize })` or from JSON. */
export class WordTokenizer implements Tokenizer {
  /** Always "word". */
  readonly type: TokenizerType = "word";
  /** Number of ids, `<pad>` and `<unk>` included. */
  readonly vocabSize: number;
  /** Always 0. */
  readonly padId: number | null = 0;
  /** Id of `<unk>`: 1. */
  readonly unkId: number = 1;
  /** The tokens; id = index; vocab[0] = "<pad>", vocab[1] = "<unk>". */
  readonly vocab: readonly string[];
  #ids: Map<string, number>;

  /** Builds from a validated vocabulary. */
  constructor(vocab: readonly string[]) {
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    this.#ids = new Map();
    for (let i = 2; i < vocab.length; i++) this.#ids.set(vocab[i], i);
  }

  /** `<pad>`, `<unk>` and the most frequent tokens of `text`, at most `vocabSize` ids in all. */
  static train(text: string, vocabSize?: number): WordTokenizer {
    if (text.length === 0) throw new Error("word tokenizer: the training text is empty");
    if (vocabSize !== undefined && vocabSize < 3) {
      throw new Error(
        `word tokenizer: vocabSize must be at least 3 (<pad>, <unk> and one token), got ${vocabSize}`,
      );
    }
    const counts = new Map<string, number>();
    for (const t of splitWords(text)) counts.set(t, (counts.get(t) ?? 0) + 1);
    const sorted = [...counts.entries()].sort((a, b) =>
      b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    );
    const keep = vocabSize === undefined ? sorted.length : Math.min(sorted.length, vocabSize - 2);
    return new WordTokenizer(["<pad>", "<unk>", ...sorted.slice(0, keep).map(([t]) => t)]);
  }

  /** Validates and loads `{"type":"word","vocab":[...]}`. */
  static fromJSON(rec: Record<string, unknown>): WordTokenizer {
    checkKeys(rec, ["type", "vocab"]);
    const vocab = rec.vocab;
    if (!Array.isArray(vocab)) {
      throw new Error(`tokenizer JSON (word): "vocab" must be an array, got ${describe(vocab)}`);
    }
    if (vocab[0] !== "<pad>" || vocab[1] !== "<unk>") {
      throw new Error(`tokenizer JSON (word): "vocab" must start with "<pad>", "<unk>"`);
    }
    const seen = new Set<string>();
    for (let i = 2; i < vocab.length; i++) {
      const t = vocab[i];
      if (typeof t !== "string") {
        throw new Error(`tokenizer JSON (word): vocab[${i}] must be a string, got ${describe(t)}`);
      }
      const parts = splitWords(t);
      if (parts.length !== 1) {
        throw new Error(
          `tokenizer JSON (word): vocab[${i}] ${
            show(t)
          } is not a single token (it splits in ${parts.length})`,
        );
      }
      if (seen.has(t)) throw new Error(`tokenizer JSON (word): vocab[${i}] ${show(t)} is a duplicate`);
      seen.add(t);
    }
    return new WordTokenizer(vocab as string[]);
  }

  /** One id per token; tokens not in the vocabulary become `<unk>` (1). */
  encode(text: string): Uint32Array {
    const parts = splitWords(text);
    const out = new Uint32Array(parts.length);
    for (let i = 0; i < parts.length; i++) out[i] = this.#ids.get(parts[i]) ?? 1;
    return out;
  }

  /** The tokens of `ids` concatenated; `<pad>` decodes to "", `<unk>` to "<unk>". */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      checkId(id, this.vocabSize, "word", i);
      parts[i] = id === 0 ? "" : this.vocab[id];
    }
    return parts.join("");
  }

  /** `{"type":"word","vocab":[...]}`. */
  toJSON(): Record<string, unknown> {
    return { type: "word", vocab: [...this.vocab] };
  }
}
