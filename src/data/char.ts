/**
 * Character tokenizer: one id per Unicode code point of the training text (so "é" and "💡" are one token
 * each), sorted by code point; an optional `<pad>` id one past the characters.
 *
 * JSON: `{"type":"char","vocab":["\n"," ","a",...]}` (+ `"pad": vocab.length` when padded).
 *
 * @module
 */
import { checkId, checkKeys, describe, show, type Tokenizer, type TokenizerType } from "./tokenizer_types.ts";
import { InputError } from "../util/errors.ts";

/** A character (code point) tokenizer; build with `trainTokenizer("char", text)` or from JSON. */
export class CharTokenizer implements Tokenizer {
  /** Always "char". */
  readonly type: TokenizerType = "char";
  /** Characters plus pad, if any. */
  readonly vocabSize: number;
  /** `vocab.length` when padded, else null. */
  readonly padId: number | null;
  /** The characters, one code point each, in increasing code point order; id = index. */
  readonly vocab: readonly string[];
  #bmp: Int32Array; // code unit -> id + 1 (0 = absent), for code points below 0x10000
  #astral: Map<number, number>; // code point -> id, for code points >= 0x10000

  /** Builds from a sorted, distinct list of single code points (validated by the callers). */
  constructor(vocab: readonly string[], pad: boolean) {
    this.vocab = vocab;
    this.padId = pad ? vocab.length : null;
    this.vocabSize = vocab.length + (pad ? 1 : 0);
    this.#bmp = new Int32Array(0x10000);
    this.#astral = new Map();
    vocab.forEach((ch, id) => {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x10000) this.#bmp[cp] = id + 1;
      else this.#astral.set(cp, id);
    });
  }

  /** The distinct code points of `text`, sorted; throws on an empty text. */
  static train(text: string, pad: boolean): CharTokenizer {
    if (text.length === 0) throw new Error("char tokenizer: the training text is empty");
    const seen = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          seen.add(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
          i++;
          continue;
        }
      }
      seen.add(c);
    }
    const cps = [...seen].sort((a, b) => a - b);
    return new CharTokenizer(cps.map((cp) => String.fromCodePoint(cp)), pad);
  }

  /** Validates and loads `{"type":"char","vocab":[...],"pad"?:n}`. */
  static fromJSON(rec: Record<string, unknown>): CharTokenizer {
    checkKeys(rec, ["type", "vocab", "pad"]);
    const vocab = rec.vocab;
    if (!Array.isArray(vocab)) {
      throw new Error(`tokenizer JSON (char): "vocab" must be an array, got ${describe(vocab)}`);
    }
    if (vocab.length === 0) throw new Error(`tokenizer JSON (char): "vocab" is empty`);
    let prev = -1;
    vocab.forEach((ch, i) => {
      if (typeof ch !== "string" || ch.length === 0 || [...ch].length !== 1) {
        throw new Error(`tokenizer JSON (char): vocab[${i}] must be one character, got ${describe(ch)}`);
      }
      const cp = ch.codePointAt(0)!;
      if (cp <= prev) {
        throw new Error(
          `tokenizer JSON (char): vocab[${i}] ${show(ch)} (${codePoint(cp)}) is not after vocab[${i - 1}] ` +
            `in code point order (sorted and distinct required)`,
        );
      }
      prev = cp;
    });
    const pad = rec.pad;
    if (pad !== undefined && pad !== vocab.length) {
      throw new Error(
        `tokenizer JSON (char): "pad" must be ${vocab.length} (vocab length), got ${describe(pad)}`,
      );
    }
    return new CharTokenizer(vocab as string[], pad !== undefined);
  }

  /** One id per code point; throws an InputError naming the first character not in the vocabulary. */
  encode(text: string): Uint32Array {
    const out = new Uint32Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let id: number | undefined;
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          id = this.#astral.get(cp);
          if (id !== undefined) {
            out[n++] = id;
            i++;
            continue;
          }
        }
      }
      if (cp < 0x10000) {
        const v = this.#bmp[cp];
        if (v !== 0) {
          out[n++] = v - 1;
          continue;
        }
      }
      throw new InputError(
        `char tokenizer: character ${JSON.stringify(String.fromCodePoint(cp))} (${codePoint(cp)}) at ` +
          `offset ${i} is not in the vocabulary (${this.vocab.length} characters)`,
      );
    }
    return out.slice(0, n);
  }

  /** The characters of `ids`; pad decodes to "". */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      checkId(id, this.vocabSize, "char", i);
      parts[i] = id === this.padId ? "" : this.vocab[id];
    }
    return parts.join("");
  }

  /** `{"type":"char","vocab":[...]}` plus `"pad"` when padded. */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { type: "char", vocab: [...this.vocab] };
    if (this.padId !== null) json.pad = this.padId;
    return json;
  }
}

function codePoint(cp: number): string {
  return "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
}
