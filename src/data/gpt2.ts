/**
 * GPT-2's tokenizer: byte-level BPE with GPT-2's 50,000 merges and `<|endoftext|>` (50,257 ids), read from
 * the `vocab.json` + `merges.txt` a user downloads from Hugging Face's gpt2 repository, and giving the ids
 * tiktoken's `gpt2` encoding gives (the one nanoGPT's `prepare.py` scripts use).
 *
 * - Pre-tokenisation: GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
 *   with `\s` the Unicode White_Space property as in tiktoken's Rust regex and GPT-2's Python `regex` (a
 *   JavaScript `\s` would also match U+FEFF and miss U+0085).
 * - Bytes: each UTF-8 byte is a token; GPT-2's byte-to-unicode map spells bytes as printable characters in
 *   the files (a space is "Ġ"), and orders the 256 byte ids (the printable ones first).
 * - Merges: as tiktoken, repeatedly join the adjacent pair whose concatenation is the token of lowest rank
 *   (leftmost on ties), where merge `i` (line `i` of merges.txt) makes id `256 + i` and rank = id. Pieces of
 *   up to 64 bytes use a direct scan; longer ones (a run of thousands of spaces) a heap, O(n log n).
 * - Text is encoded as ordinary text: `<|endoftext|>` in it is spelled out in bytes, never id 50256
 *   (tiktoken's `encode_ordinary`, what nanoGPT's data preparation uses); decoding 50256 gives the string.
 *
 * vocab.json must be what the merges imply (id of every byte and merged token as above; tiktoken checks
 * the same of GPT-2's files), plus special tokens at the ids after the merges. So the checkpoint JSON holds
 * only the merges, as pairs of ids packed into base64 (16 bits per id, 32 when ids reach 65536), and the
 * special tokens: 267 KB for GPT-2, against 1.5 MB for the two files, so a checkpoint stays self-contained
 * (its weights are at least 50257 x n_embd floats, 13 MB at n_embd 64).
 *
 * Why our own code and not js-tiktoken: tforce must read the standard vocab.json + merges.txt, which
 * js-tiktoken does not; the browser build would carry js-tiktoken's 5.6 MB of bundled encodings (545 KB
 * with its gpt2 ranks alone) where this is a few KB; JSR is not reachable and npm packages need a first
 * download; and js-tiktoken's merge loop is quadratic in a piece's length. js-tiktoken@1.0.21 is the
 * reference the tests compare ids against (tests/gpt2_tokenizer.test.ts).
 *
 * @module
 */
import { checkKeys, describe, show, type Tokenizer, type TokenizerType } from "./tokenizer_types.ts";
import { InputError } from "../util/errors.ts";
import { tokenBytes, withRoom } from "./bpe.ts";

/** Unicode White_Space, the `\s` of tiktoken's and GPT-2's regular expressions. */
const WS = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/** GPT-2's pre-tokenisation pattern (global, Unicode); merges never cross the pieces it cuts. */
export const GPT2_SPLIT: RegExp = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  "gu",
);

/** GPT-2's byte ids: BYTE_OF_ID[id] is the byte of id `id` (< 256); the printable bytes come first. */
const BYTE_OF_ID: readonly number[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const printable = new Set(bs);
  for (let b = 0; b < 256; b++) if (!printable.has(b)) bs.push(b);
  return bs;
})();

/** The character GPT-2's files spell each byte with (a printable byte is itself; the rest from U+0100 on). */
const CHAR_OF_BYTE: readonly string[] = (() => {
  const out: string[] = new Array(256);
  let n = 0;
  BYTE_OF_ID.forEach((b, i) => out[b] = String.fromCharCode(i < 188 ? b : 256 + n++));
  return out;
})();

const BYTE_OF_CHAR: ReadonlyMap<string, number> = new Map(CHAR_OF_BYTE.map((c, b) => [c, b]));
const ID_OF_BYTE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  BYTE_OF_ID.forEach((b, id) => t[b] = id);
  return t;
})();

/** GPT-2's byte-to-unicode map: the character that spells byte `b` in vocab.json and merges.txt. */
export function byteToUnicode(b: number): string {
  return CHAR_OF_BYTE[b];
}

const MAX_IDS = 1 << 21; // pair keys a * MAX_IDS + b stay below 2^42, exact in a double
const SHORT = 64; // pieces up to this many bytes merge by a direct scan; longer ones through a heap
const CACHE_LIMIT = 1 << 16; // piece encodings kept before the cache is cleared
const CACHE_CHARS = 256; // longer pieces are not cached
const NONE = 0xffffffff;

/** Bytes as a string of char codes 0-255: a Map key for a byte sequence. */
function latin1(b: Uint8Array): string {
  if (b.length <= 64) {
    let s = "";
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  }
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

/** GPT-2's tokenizer (type "gpt2"); load with {@linkcode loadGpt2Tokenizer} or from checkpoint JSON. */
export class Gpt2Tokenizer implements Tokenizer {
  /** Always "gpt2". */
  readonly type: TokenizerType = "gpt2";
  /** 256 + merges + special tokens (GPT-2: 50257). */
  readonly vocabSize: number;
  /** GPT-2 has no padding token. */
  readonly padId: number | null = null;
  /** Merge i joins ids merges[2i], merges[2i+1] into id 256 + i. */
  readonly merges: Uint32Array;
  /** Special tokens (GPT-2: `<|endoftext|>`), ids 256 + merges after one another; encode never makes them. */
  readonly specials: readonly string[];
  #bytes: Uint8Array[]; // id -> its bytes
  #keys: string[]; // id -> its bytes as latin1 (byte and merged tokens)
  #ids: Map<string, number>; // latin1 bytes of a byte or merged token -> id
  #pairs: Map<number, number> | null = null; // a * MAX_IDS + b -> id of their concatenation (built lazily)
  #cache = new Map<string, Uint32Array>();
  #encoder = new TextEncoder();
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  #json: Record<string, unknown> | null = null;

  /** Builds from merges (pairs of earlier ids) and special tokens; throws a one-line Error on a bad merge. */
  constructor(merges: Uint32Array, specials: readonly string[], what = "gpt2 tokenizer") {
    const m = merges.length / 2;
    if (!Number.isInteger(m) || 256 + m + specials.length > MAX_IDS) {
      throw new Error(`${what}: ${merges.length} merge ids (pairs, at most ${MAX_IDS - 256} merges)`);
    }
    this.merges = merges;
    this.specials = specials;
    this.vocabSize = 256 + m + specials.length;
    const bytes: Uint8Array[] = this.#bytes = [];
    const keys: string[] = this.#keys = [];
    const ids = this.#ids = new Map();
    for (let id = 0; id < 256; id++) {
      bytes.push(Uint8Array.of(BYTE_OF_ID[id]));
      keys.push(String.fromCharCode(BYTE_OF_ID[id]));
      ids.set(keys[id], id);
    }
    for (let i = 0; i < m; i++) {
      const a = merges[2 * i], b = merges[2 * i + 1], id = 256 + i;
      if (a >= id || b >= id) {
        throw new Error(`${what}: merge ${i} joins ids ${a} and ${b}, not both below its own id ${id}`);
      }
      const key = keys[a] + keys[b];
      const dup = ids.get(key);
      if (dup !== undefined) {
        throw new Error(`${what}: merge ${i} makes ${show(spell(key))}, which id ${dup} already is`);
      }
      ids.set(key, id);
      keys.push(key);
      const z = new Uint8Array(key.length);
      for (let k = 0; k < key.length; k++) z[k] = key.charCodeAt(k);
      bytes.push(z);
    }
    for (const s of specials) {
      const bytes = [...s].every((c) => BYTE_OF_CHAR.has(c))
        ? Uint8Array.from([...s], (c) => BYTE_OF_CHAR.get(c)!)
        : this.#encoder.encode(s);
      this.#bytes.push(bytes);
    }
  }

  /**
   * Reads the standard files: `vocab.json` (token -> id, tokens spelled with GPT-2's byte-to-unicode map)
   * and `merges.txt` (an optional `#version` line, then one merge "left right" per line, in rank order).
   * vocab.json must give every byte and merged token the id the merges imply, and may add special tokens
   * after them. Every problem is a one-line {@linkcode InputError} naming `what` and the line or token.
   */
  static fromFiles(vocabJson: string, mergesTxt: string, what = "gpt2 vocabulary"): Gpt2Tokenizer {
    const fail = (msg: string): never => {
      throw new InputError(`${what}: ${msg}`);
    };
    // Tokens as the files spell them -> id, for the bytes and then each merge in turn (the spelling is
    // one character per byte, so concatenating spellings spells the concatenated bytes).
    const ids = new Map<string, number>();
    for (let id = 0; id < 256; id++) ids.set(CHAR_OF_BYTE[BYTE_OF_ID[id]], id);
    const lines = mergesTxt.split("\n");
    const pairs: number[] = [];
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n].endsWith("\r") ? lines[n].slice(0, -1) : lines[n];
      if (line === "" || (n === 0 && line.startsWith("#version"))) continue;
      const sp = line.indexOf(" ");
      const left = line.slice(0, sp), right = line.slice(sp + 1);
      if (sp <= 0 || right === "" || right.includes(" ")) {
        fail(`merges.txt line ${n + 1} is ${show(line)}, not two tokens separated by one space`);
      }
      const a = ids.get(left), b = ids.get(right);
      for (const [tok, x] of [[left, a], [right, b]] as const) {
        if (x === undefined) {
          fail(
            `merges.txt line ${n + 1}: ${show(tok)} is not a token its earlier lines make` +
              ([...tok].every((c) => BYTE_OF_CHAR.has(c)) ? "" : " (nor spelled in GPT-2's byte characters)"),
          );
        }
      }
      const key = left + right;
      if (ids.has(key)) fail(`merges.txt line ${n + 1} makes ${show(key)} again`);
      ids.set(key, 256 + pairs.length / 2);
      pairs.push(a!, b!);
    }
    const m = pairs.length / 2;
    if (m === 0) fail(`merges.txt holds no merges`);
    let vocab: unknown;
    try {
      vocab = JSON.parse(vocabJson);
    } catch (e) {
      return fail(`vocab.json is not valid JSON (${(e as Error).message.split("\n")[0].slice(0, 100)})`);
    }
    if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) {
      return fail(`vocab.json is ${describe(vocab)}, not an object of token -> id`);
    }
    let seen = 0;
    const specials: [number, string][] = [];
    for (const [tok, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
        fail(`vocab.json gives ${show(tok)} the id ${describe(id)}, not an integer >= 0`);
      }
      const want = ids.get(tok);
      if (want !== undefined) {
        if (want !== id) {
          fail(
            `vocab.json gives ${show(tok)} id ${id} but merges.txt makes it ${want} (256 + its line's rank)`,
          );
        }
        seen++;
      } else if ((id as number) < 256 + m) {
        fail(`vocab.json gives ${show(tok)} id ${id}, which merges.txt gives another token`);
      } else specials.push([id as number, tok]);
    }
    if (seen !== 256 + m) {
      fail(`vocab.json lacks ${256 + m - seen} of the ${256 + m} byte and merged tokens of merges.txt`);
    }
    specials.sort((x, y) => x[0] - y[0]);
    specials.forEach(([id, tok], k) => {
      if (id !== 256 + m + k) {
        fail(
          `vocab.json gives special token ${show(tok)} id ${id}; specials follow the merges from ${256 + m}`,
        );
      }
    });
    return new Gpt2Tokenizer(Uint32Array.from(pairs), specials.map(([, t]) => t), what);
  }

  /** Validates and loads `{"type":"gpt2","bits":16|32,"merges":BASE64,"specials":[...]}`. */
  static fromJSON(rec: Record<string, unknown>): Gpt2Tokenizer {
    checkKeys(rec, ["type", "bits", "merges", "specials"]);
    const { bits, merges, specials } = rec;
    if (bits !== 16 && bits !== 32) {
      throw new Error(`tokenizer JSON (gpt2): "bits" must be 16 or 32, got ${describe(bits)}`);
    }
    if (typeof merges !== "string") {
      throw new Error(`tokenizer JSON (gpt2): "merges" must be a base64 string, got ${describe(merges)}`);
    }
    if (!Array.isArray(specials) || !specials.every((s) => typeof s === "string" && s.length > 0)) {
      throw new Error(
        `tokenizer JSON (gpt2): "specials" must be an array of strings, got ${describe(specials)}`,
      );
    }
    let raw: string;
    try {
      raw = atob(merges);
    } catch {
      throw new Error(`tokenizer JSON (gpt2): "merges" is not valid base64`);
    }
    const width = bits / 8;
    if (raw.length % (2 * width) !== 0) {
      throw new Error(
        `tokenizer JSON (gpt2): "merges" holds ${raw.length} bytes, not whole pairs of ${bits}-bit ids`,
      );
    }
    const pairs = new Uint32Array(raw.length / width);
    for (let i = 0; i < pairs.length; i++) {
      let x = 0;
      for (let k = width - 1; k >= 0; k--) x = x * 256 + raw.charCodeAt(i * width + k);
      pairs[i] = x;
    }
    return new Gpt2Tokenizer(pairs, specials as string[], "tokenizer JSON (gpt2)");
  }

  /** The ids of `text`'s UTF-8 bytes (lone surrogates become U+FFFD, as in TextEncoder). */
  encode(text: string): Uint32Array {
    let out = new Uint32Array(Math.max(16, text.length >> 1));
    let n = 0;
    for (const match of text.matchAll(GPT2_SPLIT)) {
      const piece = match[0];
      let ids = this.#cache.get(piece);
      if (ids === undefined) {
        ids = this.#encodePiece(piece);
        if (piece.length <= CACHE_CHARS) {
          if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
          this.#cache.set(piece, ids);
        }
      }
      out = withRoom(out, n, ids.length);
      out.set(ids, n);
      n += ids.length;
    }
    return out.slice(0, n);
  }

  #encodePiece(piece: string): Uint32Array {
    const bytes = this.#encoder.encode(piece);
    const s = new Uint32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) s[i] = ID_OF_BYTE[bytes[i]];
    if (s.length < 2) return s;
    // A piece that is a token is that token (tiktoken's shortcut, which its merges need not reach).
    const whole = this.#ids.get(latin1(bytes));
    if (whole !== undefined) return Uint32Array.of(whole);
    return s.length <= SHORT ? this.#mergeShort(s) : this.#mergeLong(s);
  }

  /** (a, b) -> the id their concatenation is, or NONE: every split of every merged token (tiktoken's rule). */
  #pairTable(): Map<number, number> {
    if (this.#pairs) return this.#pairs;
    const pairs = new Map<number, number>();
    const end = 256 + this.merges.length / 2;
    for (let id = 256; id < end; id++) {
      const key = this.#keys[id];
      for (let k = 1; k < key.length; k++) {
        const a = this.#ids.get(key.slice(0, k));
        if (a === undefined) continue;
        const b = this.#ids.get(key.slice(k));
        if (b !== undefined) pairs.set(a * MAX_IDS + b, id);
      }
    }
    return this.#pairs = pairs;
  }

  /** Direct scan: the leftmost lowest-ranked pair, again and again. */
  #mergeShort(s: Uint32Array): Uint32Array {
    const pairs = this.#pairTable();
    const rank = (a: number, b: number) => pairs.get(a * MAX_IDS + b) ?? NONE;
    let n = s.length;
    const r = new Uint32Array(n);
    for (let i = 0; i + 1 < n; i++) r[i] = rank(s[i], s[i + 1]);
    r[n - 1] = NONE;
    for (;;) {
      let best = NONE, at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (r[i] < best) {
          best = r[i];
          at = i;
        }
      }
      if (at < 0) break;
      s[at] = best;
      s.copyWithin(at + 1, at + 2, n);
      r.copyWithin(at + 1, at + 2, n);
      n--;
      r[n - 1] = NONE;
      if (at > 0) r[at - 1] = rank(s[at - 1], s[at]);
      r[at] = at + 1 < n ? rank(s[at], s[at + 1]) : NONE;
    }
    return s.slice(0, n);
  }

  /**
   * The same merges for a long piece: a linked list of parts and a min-heap of (rank, position) with stale
   * entries skipped, so the lowest rank, leftmost on ties, merges first, in O(n log n).
   */
  #mergeLong(s: Uint32Array): Uint32Array {
    const pairs = this.#pairTable();
    const n = s.length;
    const next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new Heap();
    const rankAt = (i: number) => {
      const j = next[i];
      return j < 0 ? NONE : pairs.get(s[i] * MAX_IDS + s[j]) ?? NONE;
    };
    for (let i = 0; i + 1 < n; i++) {
      const r = rankAt(i);
      if (r !== NONE) heap.push(r * 2 ** 31 + i);
    }
    const alive = new Uint8Array(n).fill(1);
    while (heap.size > 0) {
      const top = heap.pop();
      const r = Math.floor(top / 2 ** 31), i = top - r * 2 ** 31;
      if (!alive[i] || rankAt(i) !== r) continue; // stale: a merge changed this pair
      const j = next[i];
      s[i] = r;
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) {
        const q = rankAt(prev[i]);
        if (q !== NONE) heap.push(q * 2 ** 31 + prev[i]);
      }
      const q = rankAt(i);
      if (q !== NONE) heap.push(q * 2 ** 31 + i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(s[i]);
    return Uint32Array.from(out);
  }

  /** The text whose UTF-8 bytes the ids spell (broken UTF-8 decodes to U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    return this.#decoder.decode(tokenBytes(this.#bytes, ids, this.vocabSize, "gpt2"));
  }

  /**
   * `{"type":"gpt2","bits":16,"merges":BASE64,"specials":["<|endoftext|>"]}`: the merges as little-endian
   * id pairs (32-bit ids when the vocabulary passes 65536). Built once; the same object is returned after.
   */
  toJSON(): Record<string, unknown> {
    if (this.#json) return this.#json;
    const bits = this.vocabSize > 65536 ? 32 : 16, width = bits / 8;
    const raw = new Uint8Array(this.merges.length * width);
    const v = new DataView(raw.buffer);
    this.merges.forEach((x, i) => bits === 16 ? v.setUint16(2 * i, x, true) : v.setUint32(4 * i, x, true));
    return this.#json = { type: "gpt2", bits, merges: btoa(latin1(raw)), specials: [...this.specials] };
  }

  /**
   * GPT-2's two files for this vocabulary: vocab.json (token as GPT-2 spells its bytes -> id) and
   * merges.txt (one merge a line, in rank order), which {@linkcode Gpt2Tokenizer.fromFiles} reads back to
   * the same ids.
   */
  toFiles(): { vocabJson: string; mergesTxt: string } {
    const m = this.merges.length / 2, keys = this.#keys;
    const vocab: Record<string, number> = {};
    for (let id = 0; id < 256 + m; id++) vocab[spell(keys[id])] = id;
    this.specials.forEach((s, i) => vocab[s] = 256 + m + i);
    const lines = ["#version: 0.2"];
    for (let i = 0; i < m; i++) {
      lines.push(`${spell(keys[this.merges[2 * i]])} ${spell(keys[this.merges[2 * i + 1]])}`);
    }
    return { vocabJson: JSON.stringify(vocab), mergesTxt: lines.join("\n") + "\n" };
  }
}

/** How vocab.json spells the bytes of a latin1 key, for messages. */
function spell(key: string): string {
  return Array.from(key, (c) => CHAR_OF_BYTE[c.charCodeAt(0)]).join("");
}

/** A binary min-heap of numbers. */
class Heap {
  #a: number[] = [];

  get size(): number {
    return this.#a.length;
  }

  push(x: number): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= x) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = x;
  }

  pop(): number {
    const a = this.#a, top = a[0], last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = l < n && a[l] < last ? l : -1;
        if (r < n && a[r] < (m < 0 ? last : a[m])) m = r;
        if (m < 0) break;
        a[i] = a[m];
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

/**
 * Reads GPT-2's tokenizer from `path`: a folder holding `vocab.json` and `merges.txt` (as in Hugging
 * Face's gpt2 repository), or the path of such a vocab.json. A missing or bad file is a one-line
 * {@linkcode InputError} naming it.
 */
export async function loadGpt2Tokenizer(path: string): Promise<Gpt2Tokenizer> {
  let dir = path;
  try {
    if ((await Deno.stat(path)).isFile) dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  } catch (e) {
    throw new InputError(`gpt2 vocabulary '${path}': ${reason(e)}`);
  }
  const read = async (name: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${name}`);
    } catch (e) {
      throw new InputError(`gpt2 vocabulary '${dir}': cannot read ${name} (${reason(e)})`);
    }
  };
  const vocab = await read("vocab.json"), merges = await read("merges.txt"); // in order: the first missing is named
  return Gpt2Tokenizer.fromFiles(vocab, merges, `gpt2 vocabulary '${dir}'`);
}

function reason(e: unknown): string {
  return e instanceof Deno.errors.NotFound ? "no such file or folder" : (e as Error).message.split("\n")[0];
}
