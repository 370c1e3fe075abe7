/**
 * Byte-level BPE: ids 0..255 are the UTF-8 bytes, each learned merge of two ids adds one id (256, 257, ...),
 * and an optional `<pad>` is the last id. Text is first cut into chunks GPT-2 style (words, digits, other
 * symbols, whitespace; a single leading space stays attached to the chunk after it) and merges never
 * cross chunks. Any string encodes (its UTF-8 bytes), and decode(encode(s)) === s for every well-formed
 * string.
 *
 * Training counts each distinct chunk once, weighted by its frequency, keeps pair counts incrementally
 * (only the chunks that contain the merged pair are rescanned) and picks the next merge from a max-heap
 * with lazy deletion: the most frequent pair, ties to the smallest (left id, right id). Encoding applies
 * merges by rank within each chunk and caches the result per chunk.
 *
 * JSON: `{"type":"bpe","merges":[[a,b],...]}` (+ `"pad": 256 + merges.length` when padded).
 *
 * @module
 */
import { checkId, checkKeys, describe, type Tokenizer, type TokenizerType } from "./tokenizer_types.ts";

/**
 * GPT-2-like pre-split: a word (letters and marks, inner apostrophes allowed, one optional leading space), a
 * number, a run of other symbols, a whitespace run ending in newlines, or a whitespace run that leaves its
 * last space to the word after it. The chunks concatenate back to the text, and merges stay inside a chunk.
 */
export const BPE_SPLIT: RegExp =
  / ?[\p{L}\p{M}]+(?:['\u2019][\p{L}\p{M}]+)*| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]+|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Splits `text` into BPE pre-split chunks. */
export function splitChunks(text: string): string[] {
  return text.match(BPE_SPLIT) ?? [];
}

const MAX_IDS = 1 << 21; // pair keys a * MAX_IDS + b stay below 2^42, exact in a double
const CACHE_LIMIT = 1 << 17; // chunk encodings kept before the cache is cleared

function pairKey(a: number, b: number): number {
  return a * MAX_IDS + b;
}

/** A byte-level BPE tokenizer; build with `trainTokenizer("bpe", text, { vocabSize })` or from JSON. */
export class BpeTokenizer implements Tokenizer {
  /** Always "bpe". */
  readonly type: TokenizerType = "bpe";
  /** 256 + merges (+ 1 with pad). */
  readonly vocabSize: number;
  /** The last id when padded, else null. */
  readonly padId: number | null;
  /** Merge i joins ids [a, b] into id 256 + i. */
  readonly merges: readonly (readonly [number, number])[];
  #ranks: Map<number, number>; // pair key -> merge index
  #bytes: Uint8Array[]; // id -> its bytes
  #cache = new Map<string, Uint32Array>();
  #encoder = new TextEncoder();
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  /** Builds from validated merges. */
  constructor(merges: readonly (readonly [number, number])[], pad: boolean) {
    this.merges = merges;
    this.padId = pad ? 256 + merges.length : null;
    this.vocabSize = 256 + merges.length + (pad ? 1 : 0);
    this.#ranks = new Map();
    this.#bytes = [];
    for (let i = 0; i < 256; i++) this.#bytes.push(Uint8Array.of(i));
    merges.forEach(([a, b], i) => {
      this.#ranks.set(pairKey(a, b), i);
      const x = this.#bytes[a], y = this.#bytes[b];
      const z = new Uint8Array(x.length + y.length);
      z.set(x);
      z.set(y, x.length);
      this.#bytes.push(z);
    });
    if (pad) this.#bytes.push(new Uint8Array(0));
  }

  /** Learns `vocabSize - 256 (- 1 with pad)` merges from `text` (fewer only if no pair is left to merge). */
  static train(text: string, vocabSize: number, pad: boolean): BpeTokenizer {
    const base = 256 + (pad ? 1 : 0);
    if (vocabSize < base || vocabSize > MAX_IDS) {
      throw new Error(`bpe tokenizer: vocabSize must be in [${base}, ${MAX_IDS}], got ${vocabSize}`);
    }
    const nMerges = vocabSize - base;
    // Distinct chunks with their frequencies.
    const freqOf = new Map<string, number>();
    for (const c of splitChunks(text)) freqOf.set(c, (freqOf.get(c) ?? 0) + 1);
    const enc = new TextEncoder();
    const words: number[][] = [];
    const freq: number[] = [];
    for (const [c, f] of freqOf) {
      const bytes = enc.encode(c);
      if (bytes.length < 2) continue; // no pair inside
      words.push(Array.from(bytes));
      freq.push(f);
    }
    // Pair counts (weighted by chunk frequency) and the chunks each pair occurs in.
    const count = new Map<number, number>();
    const where = new Map<number, Set<number>>();
    for (let w = 0; w < words.length; w++) {
      const s = words[w], f = freq[w];
      for (let i = 0; i + 1 < s.length; i++) {
        const k = pairKey(s[i], s[i + 1]);
        count.set(k, (count.get(k) ?? 0) + f);
        let set = where.get(k);
        if (!set) where.set(k, set = new Set());
        set.add(w);
      }
    }
    const heap = new PairHeap();
    for (const [k, c] of count) heap.push(c, k);

    const merges: [number, number][] = [];
    const changed = new Set<number>();
    while (merges.length < nMerges) {
      let best = -1;
      while (heap.size > 0) {
        const c = heap.topCount(), k = heap.topKey();
        heap.pop();
        if (count.get(k) === c) {
          best = k;
          break;
        }
      }
      if (best < 0) break; // every chunk is a single token
      const a = Math.floor(best / MAX_IDS), b = best - a * MAX_IDS;
      const id = 256 + merges.length;
      merges.push([a, b]);
      changed.clear();
      for (const w of where.get(best)!) {
        const s = words[w], f = freq[w];
        let hit = false;
        for (let i = 0; i + 1 < s.length; i++) {
          if (s[i] === a && s[i + 1] === b) {
            hit = true;
            break;
          }
        }
        if (!hit) continue; // stale entry: an earlier merge consumed the pair here
        for (let i = 0; i + 1 < s.length; i++) {
          const k = pairKey(s[i], s[i + 1]);
          count.set(k, count.get(k)! - f);
          changed.add(k);
        }
        const t: number[] = [];
        for (let i = 0; i < s.length;) {
          if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
            t.push(id);
            i += 2;
          } else t.push(s[i++]);
        }
        words[w] = t;
        for (let i = 0; i + 1 < t.length; i++) {
          const k = pairKey(t[i], t[i + 1]);
          count.set(k, (count.get(k) ?? 0) + f);
          changed.add(k);
          if (t[i] === id || t[i + 1] === id) {
            let set = where.get(k);
            if (!set) where.set(k, set = new Set());
            set.add(w);
          }
        }
      }
      count.delete(best);
      where.delete(best);
      for (const k of changed) {
        const c = count.get(k);
        if (c === undefined) continue;
        if (c > 0) heap.push(c, k);
        else {
          count.delete(k);
          where.delete(k);
        }
      }
    }
    return new BpeTokenizer(merges, pad);
  }

  /** Validates and loads `{"type":"bpe","merges":[[a,b],...],"pad"?:n}`. */
  static fromJSON(rec: Record<string, unknown>): BpeTokenizer {
    checkKeys(rec, ["type", "merges", "pad"]);
    const merges = rec.merges;
    if (!Array.isArray(merges)) {
      throw new Error(`tokenizer JSON (bpe): "merges" must be an array, got ${describe(merges)}`);
    }
    if (256 + merges.length >= MAX_IDS) {
      throw new Error(`tokenizer JSON (bpe): too many merges (${merges.length})`);
    }
    const seen = new Set<number>();
    const out: [number, number][] = merges.map((m, i) => {
      const limit = 256 + i;
      if (
        !Array.isArray(m) || m.length !== 2 ||
        !m.every((x) => Number.isInteger(x) && x >= 0 && x < limit)
      ) {
        throw new Error(
          `tokenizer JSON (bpe): merges[${i}] must be a pair of ids in [0, ${limit}), got ${
            JSON.stringify(m)
          }`,
        );
      }
      const k = pairKey(m[0], m[1]);
      if (seen.has(k)) {
        throw new Error(`tokenizer JSON (bpe): merges[${i}] ${JSON.stringify(m)} repeats an earlier merge`);
      }
      seen.add(k);
      return [m[0], m[1]];
    });
    const pad = rec.pad;
    if (pad !== undefined && pad !== 256 + merges.length) {
      throw new Error(
        `tokenizer JSON (bpe): "pad" must be ${256 + merges.length} (the last id), got ${describe(pad)}`,
      );
    }
    return new BpeTokenizer(out, pad !== undefined);
  }

  /** Token ids of the UTF-8 bytes of `text` (lone surrogates become U+FFFD, as in TextEncoder). */
  encode(text: string): Uint32Array {
    let out = new Uint32Array(Math.max(16, text.length));
    let n = 0;
    BPE_SPLIT.lastIndex = 0;
    for (const m of text.matchAll(BPE_SPLIT)) {
      const chunk = m[0];
      let ids = this.#cache.get(chunk);
      if (ids === undefined) {
        ids = this.#encodeChunk(chunk);
        if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
        this.#cache.set(chunk, ids);
      }
      out = withRoom(out, n, ids.length);
      out.set(ids, n);
      n += ids.length;
    }
    return out.slice(0, n);
  }

  #encodeChunk(chunk: string): Uint32Array {
    const s: number[] = Array.from(this.#encoder.encode(chunk));
    const ranks = this.#ranks;
    while (s.length > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < s.length; i++) {
        const r = ranks.get(pairKey(s[i], s[i + 1]));
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const [a, b] = this.merges[best];
      const id = 256 + best;
      let j = 0;
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          s[j++] = id;
          i += 2;
        } else s[j++] = s[i++];
      }
      s.length = j;
    }
    return Uint32Array.from(s);
  }

  /** The text whose UTF-8 bytes the ids spell; pad decodes to "", broken UTF-8 to U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return this.#decoder.decode(tokenBytes(this.#bytes, ids, this.vocabSize, "bpe"));
  }

  /** `{"type":"bpe","merges":[[a,b],...]}` plus `"pad"` when padded. */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { type: "bpe", merges: this.merges.map(([a, b]) => [a, b]) };
    if (this.padId !== null) json.pad = this.padId;
    return json;
  }
}

/** Max-heap of (count, pair key): larger count first, then smaller key. Stale entries are skipped by the caller. */
class PairHeap {
  #c: number[] = [];
  #k: number[] = [];

  get size(): number {
    return this.#c.length;
  }

  topCount(): number {
    return this.#c[0];
  }

  topKey(): number {
    return this.#k[0];
  }

  #above(i: number, j: number): boolean {
    const c = this.#c, k = this.#k;
    return c[i] > c[j] || (c[i] === c[j] && k[i] < k[j]);
  }

  #swap(i: number, j: number): void {
    const c = this.#c, k = this.#k;
    const tc = c[i], tk = k[i];
    c[i] = c[j];
    k[i] = k[j];
    c[j] = tc;
    k[j] = tk;
  }

  push(count: number, key: number): void {
    this.#c.push(count);
    this.#k.push(key);
    let i = this.#c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#above(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }

  pop(): void {
    const c = this.#c, k = this.#k;
    const last = c.length - 1;
    c[0] = c[last];
    k[0] = k[last];
    c.pop();
    k.pop();
    const n = c.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && this.#above(l, m)) m = l;
      if (r < n && this.#above(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
  }
}

/**
 * The bytes that `ids` spell, each id's bytes from `table` in turn (byte-level BPE decoding before UTF-8);
 * an id outside [0, vocabSize) is a one-line error naming the `kind` of tokenizer and its position.
 */
export function tokenBytes(
  table: readonly Uint8Array[],
  ids: ArrayLike<number>,
  vocabSize: number,
  kind: TokenizerType,
): Uint8Array {
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    checkId(ids[i], vocabSize, kind, i);
    total += table[ids[i]].length;
  }
  const buf = new Uint8Array(total);
  let o = 0;
  for (let i = 0; i < ids.length; i++) {
    const b = table[ids[i]];
    if (b.length === 1) buf[o++] = b[0];
    else {
      buf.set(b, o);
      o += b.length;
    }
  }
  return buf;
}

/** `out` if it has room for `extra` more ids after its first `n`, else a copy twice as large (at least). */
export function withRoom(
  out: Uint32Array<ArrayBuffer>,
  n: number,
  extra: number,
): Uint32Array<ArrayBuffer> {
  if (n + extra <= out.length) return out;
  const grown = new Uint32Array(Math.max(out.length * 2, n + extra));
  grown.set(out.subarray(0, n));
  return grown;
}
