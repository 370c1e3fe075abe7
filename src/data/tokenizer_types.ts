/**
 * What every tokenizer shares: the {@linkcode Tokenizer} interface, the kinds, and the checks and
 * renderings their JSON loaders use for one-line error messages. The concrete tokenizers (char, word,
 * bpe, gpt2) import this module; src/data/tokenizer.ts imports them to train and load any kind.
 *
 * @module
 */

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
  /** A plain JSON object from which tokenizer.ts's `tokenizerFromJSON` rebuilds an identical tokenizer. */
  toJSON(): Record<string, unknown>;
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
