/**
 * A restricted unpickler: reads Python pickles (protocols 2 to 5, what `torch.save` and `pickle.dump`
 * write) into plain values, in the manner of `torch.load(weights_only=True)`. It runs nothing from the
 * file: a global the pickle names is looked up in a table the caller gives (`globals`), and anything else
 * (`posix.system`, `builtins.eval`, a `torch.nn.Module`...) is refused with one line naming it, at the
 * opcode that names it, before anything could call it.
 *
 * Values: `None` is `null`, bools and floats are JS booleans and numbers, ints are numbers (bigints past
 * 2^53), str is string, bytes is Uint8Array, list is an array, tuple a {@linkcode PyTuple}, dict a
 * {@linkcode PyDict} (a Map; an OrderedDict too). Persistent ids (torch's tensor storages) go to the
 * caller's `persistentLoad`.
 *
 * Why our own: a pickle is a tiny stack machine, and the part of it a checkpoint needs is about 50
 * opcodes; the libraries that read pickles in JavaScript either execute arbitrary globals or are
 * unmaintained. Every read is bounds-checked, every loop is bounded by the input's length, nothing
 * recurses, and every failure is a one-line {@linkcode InputError} naming the file, the opcode and its
 * byte offset.
 *
 * @module
 */
import { InputError } from "../util/errors.ts";

/** A Python tuple (immutable; distinct from a list). */
export class PyTuple {
  /** Creates the tuple of `items`. */
  constructor(readonly items: readonly PyValue[]) {}
}

/** A Python dict (or OrderedDict): keys are strings, numbers, bigints, booleans, null or tuples (by identity). */
export class PyDict extends Map<PyValue, PyValue> {
  /** Attributes set by a BUILD opcode (an OrderedDict's `_metadata`, for example); ignored by readers. */
  attributes?: PyValue;
}

/** A global the caller allows: data (a class used as a tag) or a function REDUCE may call. */
export class PyGlobal {
  /**
   * Creates the global `module.name`; `call` (when given) builds the value of `global(*args)` and throws
   * a one-line error for arguments it does not accept.
   */
  constructor(
    readonly module: string,
    readonly name: string,
    readonly call?: (args: readonly PyValue[]) => PyValue,
  ) {}
}

/** Any value an unpickled file can hold; `object` stands for values a caller's hooks make (tensors). */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PyGlobal
  | object;

/** How to unpickle: names for messages, the allowed globals, and the persistent-id hook. */
export interface UnpickleOptions {
  /** What is read, for messages (a file name). */
  what: string;
  /** The allowed globals by "module.name"; any other is refused. */
  globals?: ReadonlyMap<string, PyGlobal>;
  /** What may be in the file, for the refusal: "only tensors, dicts, lists, tuples, strings and numbers". */
  allowed?: string;
  /** Who may not refer to other globals, for the refusal: "a checkpoint". */
  holder?: string;
  /** Resolves a BINPERSID id (torch: a storage); absent: persistent ids are refused. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

const MARK = Symbol("mark");

/** Opcode names, for messages (all of pickle's, so an unsupported one is named rather than shown as a byte). */
const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

/** Longest LONG1/LONG4 integer read, in bytes (2^(8*64): far past any count a checkpoint holds). */
const MAX_LONG_BYTES = 64;

/**
 * Unpickles `data`. Throws a one-line {@linkcode InputError} prefixed with `opts.what` for a truncated or
 * malformed pickle, an unsupported opcode, or a global not in `opts.globals`.
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const { what } = opts;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const stack: (PyValue | typeof MARK)[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0, op = 0, at = 0;

  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  const opName = () => OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, "0")}`;
  const bad = (msg: string): never => fail(`malformed pickle: ${opName()} at byte ${at} ${msg}`);
  const need = (n: number) => {
    if (n > data.length - pos) {
      fail(`pickle ends inside ${opName()} at byte ${at} (the file is truncated or damaged)`);
    }
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), pos += 2, view.getUint16(pos - 2, true));
  const u32 = () => (need(4), pos += 4, view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const x = view.getBigUint64(pos, true);
    pos += 8;
    if (x > BigInt(data.length)) bad(`has a length ${x} past the end of the file`);
    return Number(x);
  };
  const bytes = (n: number) => (need(n), pos += n, data.subarray(pos - n, pos));
  const text = (n: number) => {
    const b = bytes(n);
    try {
      return utf8.decode(b);
    } catch {
      return bad(`holds a string that is not valid UTF-8`);
    }
  };
  const latin1 = (b: Uint8Array) => {
    let s = "";
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    return s;
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail(`pickle ends inside ${opName()} at byte ${at} (the file is truncated or damaged)`);
    const s = latin1(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) return bad(`finds the stack empty`);
    if (v === MARK) return bad(`finds a MARK where it needs a value`);
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined) return bad(`finds the stack empty`);
    if (v === MARK) return bad(`finds a MARK where it needs a value`);
    return v;
  };
  const popMark = (): PyValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) bad(`has no MARK to pop to`);
    const items = stack.splice(i) as PyValue[];
    items.shift();
    return items;
  };
  const key = (k: PyValue): PyValue => {
    if (Array.isArray(k) || k instanceof PyDict || k instanceof Uint8Array) {
      bad(
        `uses an unhashable ${
          Array.isArray(k) ? "list" : k instanceof PyDict ? "dict" : "bytearray"
        } as a key`,
      );
    }
    return k;
  };
  const dict = (v: PyValue): PyDict => v instanceof PyDict ? v : bad(`sets an item of ${aTypeName(v)}`);
  const list = (v: PyValue): PyValue[] => Array.isArray(v) ? v : bad(`appends to ${aTypeName(v)}`);
  const global = (module: string, name: string): PyGlobal => {
    const g = opts.globals?.get(`${module}.${name}`);
    if (g) return g;
    const shown = JSON.stringify(`${module}.${name}`).slice(1, -1);
    return fail(
      `pickle refers to '${shown.length > 80 ? shown.slice(0, 77) + "..." : shown}', which ${
        opts.holder ?? "a checkpoint"
      } may not (${opts.allowed ?? "only tensors, dicts, lists, tuples, strings and numbers"})`,
    );
  };
  const int = (x: bigint) =>
    x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  const long = (n: number) => {
    if (n > MAX_LONG_BYTES) bad(`holds a ${n}-byte integer (at most ${MAX_LONG_BYTES} bytes)`);
    const b = bytes(n);
    if (n === 0) return 0;
    let x = 0n;
    for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
    if (b[n - 1] & 0x80) x -= 1n << BigInt(8 * n);
    return int(x);
  };

  while (pos < data.length) {
    at = pos;
    op = data[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p < 2 || p > 5) bad(`names protocol ${p} (reads 2 to 5)`);
        break;
      }
      case 0x95: // FRAME: a hint of the next frame's length; the data is read as it comes.
        need(8);
        pos += 8;
        break;
      case 0x2e: { // STOP
        const v = pop();
        if (stack.length !== 0) bad(`leaves ${stack.length} more item(s) on the stack`);
        return v;
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        if (stack.pop() === undefined) bad(`finds the stack empty`);
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(u8()));
        break;
      case 0x8b: // LONG4
        stack.push(long(u32()));
        break;
      case 0x47: // BINFLOAT
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(latin1(bytes(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(u64()).slice());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) bad(`has an odd number of items (${items.length})`);
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) d.set(key(items[i]), items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        list(top()).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = list(top());
        for (const v of items) l.push(v);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        dict(top()).set(key(k), v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) bad(`has an odd number of items (${items.length})`);
        const d = dict(top());
        for (let i = 0; i < items.length; i += 2) d.set(key(items[i]), items[i + 1]);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) bad(`reads memo entry ${i}, which was never stored`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line(), name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") bad(`needs two strings`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), f = pop();
        if (!(f instanceof PyGlobal) || f.call === undefined) {
          return bad(
            `calls a ${f instanceof PyGlobal ? `'${f.module}.${f.name}'` : typeName(f)}, not a function`,
          );
        }
        if (!(args instanceof PyTuple)) return bad(`calls '${f.module}.${f.name}' with ${aTypeName(args)}`);
        stack.push(f.call(args.items));
        break;
      }
      case 0x62: { // BUILD: only an OrderedDict's attributes (a state_dict's `_metadata`), kept aside.
        const state = pop(), obj = top();
        if (!(obj instanceof PyDict)) bad(`sets the state of ${aTypeName(obj)}`);
        (obj as PyDict).attributes = state;
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) bad(`needs a persistent object, which this file may not hold`);
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      default:
        return fail(
          `pickle opcode ${opName()} at byte ${at} is not supported (${
            OPCODE_NAMES[op] ? "not one a checkpoint needs" : "not a pickle opcode; the file is damaged"
          })`,
        );
    }
  }
  return fail(`pickle ends without STOP (the file is truncated or damaged)`);
}

/** `typeName` with its article ("an int", "a dict"), for messages. */
export function aTypeName(v: PyValue | symbol): string {
  const t = typeName(v);
  return `${/^[aeiou]/i.test(t) ? "an" : "a"} ${t}`;
}

/** A string from a file, single-quoted for a one-line message: escaped as JSON, cut at 80 characters. */
export function quoted(s: string): string {
  const j = JSON.stringify(s.length > 80 ? s.slice(0, 77) + "..." : s).slice(1, -1);
  return `'${j}'`;
}

/** A short name for a value's Python type, for messages. */
export function typeName(v: PyValue | symbol): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "bigint") return "int";
  if (typeof v === "string") return "str";
  if (v instanceof Uint8Array) return "bytes";
  if (Array.isArray(v)) return "list";
  if (v instanceof PyTuple) return "tuple";
  if (v instanceof PyDict) return "dict";
  if (v instanceof PyGlobal) return `'${v.module}.${v.name}'`;
  if (typeof v === "symbol") return v === MARK ? "MARK" : "symbol";
  return (v as object).constructor?.name ?? "object";
}
