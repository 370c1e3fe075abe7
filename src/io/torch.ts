/**
 * Reading what `torch.save` writes (PyTorch >= 1.6, its zip format) without PyTorch and without running
 * anything from the file: `ARCHIVE/data.pkl` is read by the restricted unpickler of `pickle.ts`, which
 * allows only what rebuilds tensors and OrderedDicts (as `torch.load(weights_only=True)` does), and each
 * tensor's storage is the entry `ARCHIVE/data/KEY` (read by `zip.ts`, stored or deflated, CRC-checked).
 *
 * Tensors stay descriptions (dtype, shape, strides, offset into a storage) until asked for: reading a
 * nanoGPT checkpoint converts the model's tensors and never touches the optimizer's, which are twice as
 * large. float32, float16, bfloat16 and float64 storages convert to f32, at any storage offset and with
 * any strides that stay inside the storage; a tensor that views more elements than its storage holds
 * (stride-0 broadcasting), and integer or boolean tensors where floats are needed, are refused.
 *
 * The old (pre-1.6, non-zip) `torch.save` format is recognised and refused with a line saying so.
 *
 * @module
 */
import { InputError } from "../util/errors.ts";
import { aTypeName, PyDict, PyGlobal, PyTuple, type PyValue, quoted, typeName, unpickle } from "./pickle.ts";
import { isZip, zipEntries, type ZipEntry, zipRead } from "./zip.ts";

/** Element types of torch storages, as torch names their storage classes. */
export type TorchDtype =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

const STORAGES: Readonly<Record<string, [TorchDtype, number]>> = {
  FloatStorage: ["float32", 4],
  HalfStorage: ["float16", 2],
  BFloat16Storage: ["bfloat16", 2],
  DoubleStorage: ["float64", 8],
  LongStorage: ["int64", 8],
  IntStorage: ["int32", 4],
  ShortStorage: ["int16", 2],
  CharStorage: ["int8", 1],
  ByteStorage: ["uint8", 1],
  BoolStorage: ["bool", 1],
};

/** A storage a tensor views: the archive entry `data/KEY`, of `numel` elements of `dtype`. */
export interface TorchStorage {
  /** The storage's key (its entry is ARCHIVE/data/KEY). */
  readonly key: string;
  /** Element type. */
  readonly dtype: TorchDtype;
  /** Bytes per element. */
  readonly itemSize: number;
  /** Elements in the storage. */
  readonly numel: number;
}

/** A tensor as `torch._utils._rebuild_tensor_v2` describes it: a strided view of a storage. */
export class TorchTensor {
  /** Creates the view; `validate` has checked it stays inside the storage. */
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}

  /** The number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The element type. */
  get dtype(): TorchDtype {
    return this.storage.dtype;
  }
}

/** The globals a torch checkpoint may name (besides storage classes): what weights_only allows for tensors. */
function torchGlobals(what: string): Map<string, PyGlobal> {
  const g = new Map<string, PyGlobal>();
  const add = (module: string, name: string, call?: (args: readonly PyValue[]) => PyValue) =>
    g.set(`${module}.${name}`, new PyGlobal(module, name, call));
  add("collections", "OrderedDict", (args) => {
    if (args.length !== 0) {
      throw new InputError(`${what}: OrderedDict is built with arguments (${args.length})`);
    }
    return new PyDict();
  });
  add("torch._utils", "_rebuild_tensor_v2", (args) => rebuildTensor(args, what));
  add("torch._utils", "_rebuild_parameter", (args) => {
    if (args.length !== 3 || !(args[0] instanceof TorchTensor)) {
      throw new InputError(
        `${what}: _rebuild_parameter gets ${args.length} arguments, not (tensor, bool, hooks)`,
      );
    }
    return args[0];
  });
  for (const name of Object.keys(STORAGES)) add("torch", name);
  return g;
}

function rebuildTensor(args: readonly PyValue[], what: string): TorchTensor {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: _rebuild_tensor_v2 ${msg}`);
  };
  if (args.length < 6 || args.length > 7) fail(`gets ${args.length} arguments (6 or 7 expected)`);
  const [storage, offset, size, stride] = args;
  if (!isStorage(storage)) return fail(`gets ${aTypeName(storage)} where a storage belongs`);
  const ints = (v: PyValue, name: string): number[] => {
    if (!(v instanceof PyTuple)) return fail(`gets ${aTypeName(v)} for its ${name}, not a tuple`);
    return v.items.map((x) => {
      if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
        return fail(`gets ${String(x)} in its ${name} (non-negative integers only)`);
      }
      return x;
    });
  };
  const shape = ints(size, "size"), strides = ints(stride, "stride");
  if (shape.length !== strides.length) {
    fail(`gets size [${shape}] and stride [${strides}] of different lengths`);
  }
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    return fail(`gets storage offset ${String(offset)}`);
  }
  let numel = 1, last = offset;
  for (let i = 0; i < shape.length; i++) {
    numel *= shape[i];
    if (shape[i] > 0) last += (shape[i] - 1) * strides[i];
    if (numel > storage.numel || last > Number.MAX_SAFE_INTEGER) break;
  }
  if (numel > 0 && (last >= storage.numel || numel > storage.numel - offset)) {
    fail(
      `views [${shape}] (stride [${strides}], offset ${offset}) past storage ${
        quoted(storage.key)
      } of ${storage.numel} elements`,
    );
  }
  return new TorchTensor(storage, offset, shape, strides);
}

function isStorage(v: PyValue): v is TorchStorage {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === STORAGE_TAG;
}

const STORAGE_TAG = Symbol("torch storage");

/** A file `torch.save` wrote: its unpickled object, and the way to read its tensors' values. */
export class TorchFile {
  readonly #bytes: Uint8Array;
  readonly #entries: Map<string, ZipEntry>;
  readonly #prefix: string;
  readonly #littleEndian: boolean;
  readonly #what: string;
  readonly #storages = new Map<string, Uint8Array>();

  /** The unpickled object (nanoGPT: a dict with 'model', 'model_args', 'optimizer', ...). */
  readonly root: PyValue;

  private constructor(
    bytes: Uint8Array,
    entries: Map<string, ZipEntry>,
    prefix: string,
    littleEndian: boolean,
    what: string,
    root: (file: TorchFile) => PyValue,
  ) {
    this.#bytes = bytes;
    this.#entries = entries;
    this.#prefix = prefix;
    this.#littleEndian = littleEndian;
    this.#what = what;
    this.root = root(this);
  }

  /**
   * Reads a `torch.save` zip archive. Throws a one-line {@linkcode InputError} naming `what` for a file
   * that is not one, is damaged, or names a global other than tensors' and OrderedDict.
   */
  static async read(bytes: Uint8Array, what: string): Promise<TorchFile> {
    if (!isZip(bytes)) {
      if (isLegacyTorch(bytes)) {
        throw new InputError(
          `${what}: torch.save's old (pre-1.6) format; load and save it again with PyTorch >= 1.6`,
        );
      }
      throw new InputError(`${what}: not a torch.save zip archive`);
    }
    const entries = zipEntries(bytes, what);
    const pkl = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl.length !== 1) {
      throw new InputError(
        `${what}: a torch.save archive holds one ARCHIVE/data.pkl; this zip holds ${pkl.length}`,
      );
    }
    const prefix = pkl[0].slice(0, -"data.pkl".length);
    let littleEndian = true;
    const order = entries.get(`${prefix}byteorder`);
    if (order) {
      const s = new TextDecoder().decode(await zipRead(bytes, order, what)).trim();
      if (s !== "little" && s !== "big") throw new InputError(`${what}: byteorder is '${s.slice(0, 20)}'`);
      littleEndian = s === "little";
    }
    const data = await zipRead(bytes, entries.get(pkl[0])!, what);
    return new TorchFile(bytes, entries, prefix, littleEndian, what, (file) =>
      unpickle(data, {
        what,
        globals: torchGlobals(what),
        persistentLoad: (pid) => file.#storage(pid),
      }));
  }

  /** A BINPERSID id ('storage', storage class, key, location, numel) as a storage description. */
  #storage(pid: PyValue): TorchStorage {
    const fail = (msg: string): never => {
      throw new InputError(`${this.#what}: persistent id ${msg}`);
    };
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") {
      return fail(`is ${aTypeName(pid)}, not ('storage', type, key, location, numel)`);
    }
    const [, type, key, , numel] = pid.items;
    if (!(type instanceof PyGlobal) || type.module !== "torch" || !Object.hasOwn(STORAGES, type.name)) {
      return fail(`names storage type ${typeName(type)}`);
    }
    if (typeof key !== "string") return fail(`has ${aTypeName(key)} key`);
    if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) {
      return fail(`gives storage ${quoted(key)} ${String(numel)} elements`);
    }
    const entry = this.#entries.get(`${this.#prefix}data/${key}`);
    if (!entry) return fail(`names storage ${quoted(key)}, which the archive does not hold`);
    const [dtype, itemSize] = STORAGES[type.name];
    if (entry.size < numel * itemSize) {
      fail(`says storage ${quoted(key)} holds ${numel} ${dtype} elements; its entry has ${entry.size} bytes`);
    }
    return { kind: STORAGE_TAG, key, dtype, itemSize, numel } as TorchStorage;
  }

  /**
   * The values of `t` as f32 (float32, float16, bfloat16 and float64 storages), in C order. Reads (and
   * CRC-checks) its storage on first use. `name` is for messages.
   */
  async float32(t: TorchTensor, name: string): Promise<Float32Array> {
    if (!["float32", "float16", "bfloat16", "float64"].includes(t.dtype)) {
      throw new InputError(
        `${this.#what}: tensor ${quoted(name)} is ${t.dtype} (reads float32, float16, bfloat16, float64)`,
      );
    }
    const s = t.storage;
    let raw = this.#storages.get(s.key);
    if (!raw) {
      raw = await zipRead(this.#bytes, this.#entries.get(`${this.#prefix}data/${s.key}`)!, this.#what);
      this.#storages.set(s.key, raw);
    }
    return toFloat32(raw, t, this.#littleEndian);
  }
}

/**
 * The start of a pre-1.6 `torch.save` file: pickle PROTO 2, then the magic number 0x1950a86a20f9469cfc6c
 * as a LONG1 of 10 little-endian bytes.
 */
const LEGACY_MAGIC = Uint8Array.of(
  0x80,
  0x02,
  0x8a,
  10,
  ...Array.from({ length: 10 }, (_, i) => Number((0x1950a86a20f9469cfc6cn >> BigInt(8 * i)) & 0xffn)),
);

/** Whether `bytes` starts like what `torch.save` wrote before PyTorch 1.6 (not a zip: pickles in a row). */
export function isLegacyTorch(bytes: Uint8Array): boolean {
  return bytes.length >= LEGACY_MAGIC.length && LEGACY_MAGIC.every((b, i) => bytes[i] === b);
}

let f16: Float32Array | null = null;

/** f16 bit pattern -> value, all 65536 of them (built once). */
function halfTable(): Float32Array {
  if (f16) return f16;
  f16 = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    f16[h] = e === 0
      ? sign * m * 2 ** -24
      : e === 31
      ? (m ? NaN : sign * Infinity)
      : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return f16;
}

/** Gathers the strided view `t` of the storage bytes `raw` into C order, as f32. */
function toFloat32(raw: Uint8Array, t: TorchTensor, le: boolean): Float32Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = t.numel, out = new Float32Array(n);
  const read: (i: number) => number = t.dtype === "float32"
    ? (i) => v.getFloat32(4 * i, le)
    : t.dtype === "float64"
    ? (i) => v.getFloat64(8 * i, le)
    : t.dtype === "bfloat16"
    ? (() => {
      const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
      return (i: number) => {
        bits[0] = v.getUint16(2 * i, le) << 16;
        return f[0];
      };
    })()
    : ((table) => (i: number) => table[v.getUint16(2 * i, le)])(halfTable());
  const dims = t.shape.length;
  // Contiguous (strides of size-1 dimensions do not matter): one run.
  let contiguous = true;
  for (let d = dims - 1, want = 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== want) contiguous = false;
    want *= t.shape[d];
  }
  if (contiguous) {
    if (t.dtype === "float32" && le && (raw.byteOffset + 4 * t.offset) % 4 === 0) {
      out.set(new Float32Array(raw.buffer, raw.byteOffset + 4 * t.offset, n));
    } else {
      for (let i = 0; i < n; i++) out[i] = read(t.offset + i);
    }
    return out;
  }
  // Strided: walk the index odometer.
  const idx = new Array(dims).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = read(src);
    for (let d = dims - 1; d >= 0; d--) {
      if (++idx[d] < t.shape[d]) {
        src += t.stride[d];
        break;
      }
      src -= (t.shape[d] - 1) * t.stride[d];
      idx[d] = 0;
    }
  }
  return out;
}
