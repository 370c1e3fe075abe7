/**
 * Reading and writing the Hugging Face safetensors format.
 *
 * Layout: an 8-byte little-endian u64 header length N, then N bytes of UTF-8 JSON, then the data
 * buffer. The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
 * (offsets relative to the start of the data buffer), plus an optional `"__metadata__"` object of
 * string values. Tensors are C-contiguous and little-endian, and together they cover the data buffer
 * exactly: no holes, no overlap (the spec's rule, enforced here as the reference implementation does).
 *
 * The writer stores F32. The reader accepts F32, F16, BF16 and F64 and converts to f32. The reader
 * validates the whole header against the file's size before it allocates anything for tensor data, so
 * a hostile or damaged file costs at most about twice its own size in memory and fails with a one-line
 * {@linkcode SafetensorsError}.
 *
 * @module
 */
import { InputError } from "../util/errors.ts";

/** Element types this module reads (the writer uses F32 only). */
export type Dtype = "F32" | "F16" | "BF16" | "F64";

/** One decoded tensor: its stored dtype and shape, and its values converted to f32. */
export interface StoredTensor {
  /** The dtype as stored in the file. */
  readonly dtype: Dtype;
  /** The shape; `[]` for a scalar. */
  readonly shape: readonly number[];
  /** The values in C order, converted to f32 (F64 rounds to nearest). */
  readonly data: Float32Array;
}

/** A decoded safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in the order of their data in the file. */
  readonly tensors: ReadonlyMap<string, StoredTensor>;
  /** The `__metadata__` entries (empty when the file has none). */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * A malformed safetensors file, or an invalid tensor given to the writer; the message is one line. It is
 * an {@linkcode InputError}: what was given (a file, tensors) cannot be used as it is.
 */
export class SafetensorsError extends InputError {
  /** Creates the error; `message` names the problem. */
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/** The reference implementation's cap on the JSON header (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_BYTES: Readonly<Record<Dtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** Dtypes the spec defines that this reader does not convert. */
const OTHER_SPEC_DTYPES = new Set([
  "BOOL",
  "U8",
  "I8",
  "U16",
  "I16",
  "U32",
  "I32",
  "U64",
  "I64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
  "C64",
]);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A short, single-line rendering of a (possibly hostile) string for error messages. */
function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? s.slice(0, 64) + "…" : s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Product of `shape`, or -1 when it exceeds `cap` (so no intermediate overflows past 2^53). */
function elementCount(shape: readonly number[], cap: number): number {
  if (shape.some((d) => d === 0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > cap) return -1;
  }
  return n;
}

/**
 * Encodes tensors as an F32 safetensors file. Tensors are laid out in the given order; the header is
 * padded with spaces so the data buffer starts at a multiple of 8 bytes. Throws
 * {@linkcode SafetensorsError} on a duplicate or reserved name, a bad shape, or a data length that
 * disagrees with the shape.
 */
export function encodeSafetensors(
  tensors: readonly { name: string; shape: readonly number[]; data: Float32Array }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  const seen = new Set<string>();
  if (metadata !== undefined) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(`metadata value for ${quote(k)} is ${typeof v}, not a string`);
      }
      Object.defineProperty(meta, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    header["__metadata__"] = meta;
  }
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__") throw new SafetensorsError(`tensor name "__metadata__" is reserved`);
    if (seen.has(t.name)) throw new SafetensorsError(`duplicate tensor name ${quote(t.name)}`);
    seen.add(t.name);
    for (const d of t.shape) {
      if (!isNonNegativeInteger(d)) {
        throw new SafetensorsError(`tensor ${quote(t.name)}: bad dimension ${d} in shape [${t.shape}]`);
      }
    }
    const n = elementCount(t.shape, Number.MAX_SAFE_INTEGER);
    if (n !== t.data.length) {
      throw new SafetensorsError(
        `tensor ${quote(t.name)}: shape [${t.shape}] needs ${n} values, data has ${t.data.length}`,
      );
    }
    const entry = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, offset + 4 * n] };
    // defineProperty: a tensor named "__proto__" must become a key, not a prototype.
    Object.defineProperty(header, t.name, {
      value: entry,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    offset += 4 * n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  let pos = 8 + padded;
  for (const t of tensors) {
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) view.setFloat32(pos + 4 * i, t.data[i], true);
    }
    pos += t.data.byteLength;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decodes a safetensors file, converting every tensor to f32. Throws {@linkcode SafetensorsError}
 * (message prefixed with `what`, e.g. the file path) on any deviation from the format: truncated file,
 * header length past the end, non-UTF-8 or non-JSON header, malformed entries, unsupported dtypes,
 * offsets out of range, overlapping tensors or holes in the data buffer, byte lengths that disagree
 * with the shape, non-string metadata values.
 */
export function decodeSafetensors(bytes: Uint8Array, what?: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(what ? `${what}: ${msg}` : msg);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLen = Number(n64);
  if (headerLen > bytes.length - 8) {
    fail(`header length ${headerLen} is past the end of the file (${bytes.length} bytes)`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerLen),
    );
  } catch {
    return fail(`header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0].slice(0, 120) : String(e);
    return fail(`header is not valid JSON (${why})`);
  }
  if (!isPlainObject(header)) {
    return fail(
      `header is ${
        Array.isArray(header) ? "an array" : header === null ? "null" : typeof header
      }, not a JSON object`,
    );
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isPlainObject(raw)) fail(`"__metadata__" is not an object`);
      const pairs: [string, string][] = [];
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(
            `metadata value for ${quote(k)} is ${
              v === null ? "null" : Array.isArray(v) ? "an array" : typeof v
            }, not a string`,
          );
        }
        pairs.push([k, v as string]);
      }
      metadata = Object.fromEntries(pairs); // CreateDataProperty: "__proto__" stays a plain key
      continue;
    }
    const t = `tensor ${quote(name)}`;
    if (!isPlainObject(raw)) fail(`${t}: entry is not an object`);
    const e = raw as Record<string, unknown>;
    for (const key of ["dtype", "shape", "data_offsets"]) {
      if (!Object.hasOwn(e, key)) fail(`${t}: missing "${key}"`);
    }
    if (typeof e.dtype !== "string") fail(`${t}: "dtype" is not a string`);
    const dtype = e.dtype as string;
    if (!Object.hasOwn(DTYPE_BYTES, dtype)) {
      if (OTHER_SPEC_DTYPES.has(dtype)) {
        fail(`${t}: unsupported dtype ${quote(dtype)} (reads F32, F16, BF16, F64)`);
      }
      fail(`${t}: unknown dtype ${quote(dtype)}`);
    }
    if (!Array.isArray(e.shape)) fail(`${t}: "shape" is not an array`);
    const shape = e.shape as unknown[];
    for (const d of shape) {
      if (typeof d !== "number") fail(`${t}: shape has a non-number dimension`);
      if (!isNonNegativeInteger(d)) fail(`${t}: shape has dimension ${d}, not a non-negative integer`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2) fail(`${t}: "data_offsets" is not a [begin, end] pair`);
    const [begin, end] = offs as unknown[];
    if (typeof begin !== "number" || typeof end !== "number") fail(`${t}: "data_offsets" holds non-numbers`);
    if (!isNonNegativeInteger(begin) || !isNonNegativeInteger(end)) {
      fail(`${t}: data_offsets [${begin}, ${end}] are not non-negative integers`);
    }
    const b = begin as number, en = end as number;
    if (en < b) fail(`${t}: data_offsets [${b}, ${en}] end before they begin`);
    if (en > dataLen) fail(`${t}: data_offsets [${b}, ${en}] run past the ${dataLen}-byte data buffer`);
    const size = DTYPE_BYTES[dtype as Dtype];
    const count = elementCount(shape as number[], Math.floor(Number.MAX_SAFE_INTEGER / 8));
    if (count < 0 || count * size !== en - b) {
      fail(
        `${t}: ${en - b} bytes of data but shape [${(shape as number[]).join(", ")}] x ${dtype} needs ${
          count < 0 ? "more than the data buffer holds" : count * size
        }`,
      );
    }
    entries.push({ name, dtype: dtype as Dtype, shape: shape as number[], begin: b, end: en });
  }

  // The data buffer must be covered exactly: sort by offsets and walk.
  entries.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let covered = 0;
  let prev: Entry | null = null;
  for (const e of entries) {
    if (e.begin < covered) {
      fail(`tensors ${quote(prev!.name)} and ${quote(e.name)} overlap at bytes [${e.begin}, ${covered})`);
    }
    if (e.begin > covered) {
      fail(`data buffer has a hole at bytes [${covered}, ${e.begin}) before ${quote(e.name)}`);
    }
    covered = e.end;
    prev = e;
  }
  if (covered !== dataLen) {
    fail(`data buffer has ${dataLen - covered} bytes no tensor covers at [${covered}, ${dataLen})`);
  }

  // Only now allocate and convert.
  const tensors = new Map<string, StoredTensor>();
  for (const e of entries) {
    const data = convert(bytes, dataStart + e.begin, dataStart + e.end, e.dtype);
    tensors.set(e.name, Object.freeze({ dtype: e.dtype, shape: Object.freeze(e.shape), data }));
  }
  return { tensors, metadata: Object.freeze(metadata) };
}

let f16Table: Float32Array | null = null;

/** f16 bit pattern -> f32 value, all 65536 of them (built once, 256 KiB). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f, m = h & 0x3ff;
    t[h] = e === 0
      ? sign * m * 2 ** -24
      : e === 31
      ? (m ? NaN : sign * Infinity)
      : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  f16Table = t;
  return t;
}

function convert(bytes: Uint8Array, start: number, end: number, dtype: Dtype): Float32Array {
  const n = (end - start) / DTYPE_BYTES[dtype];
  // slice() copies into a fresh, aligned ArrayBuffer, so typed views over it are always legal.
  const raw = bytes.slice(start, end);
  if (dtype === "F32") {
    if (LITTLE_ENDIAN_HOST) return new Float32Array(raw.buffer);
    const v = new DataView(raw.buffer), out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true);
    return out;
  }
  if (dtype === "F64") {
    if (LITTLE_ENDIAN_HOST) return Float32Array.from(new Float64Array(raw.buffer));
    const v = new DataView(raw.buffer), out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true);
    return out;
  }
  const out = new Float32Array(n);
  const v = new DataView(raw.buffer);
  if (dtype === "BF16") {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = v.getUint16(2 * i, true) << 16;
  } else {
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[v.getUint16(2 * i, true)];
  }
  return out;
}
