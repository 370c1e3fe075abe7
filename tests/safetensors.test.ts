import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type SafetensorsFile,
} from "../src/io/safetensors.ts";
import { Rng } from "../src/util/rng.ts";

// ---- small local assertions (the project has no assertion library) ----

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function sameBits(label: string, a: Float32Array, b: Float32Array): void {
  check(a.length === b.length, `${label}: length ${a.length} != ${b.length}`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    check(
      ua[i] === ub[i],
      `${label}[${i}]: ${a[i]} (0x${ua[i].toString(16)}) != ${b[i]} (0x${ub[i].toString(16)})`,
    );
  }
}

/** Runs `fn`, requires a one-line SafetensorsError whose message contains `fragment`; returns the message. */
function refuses(fn: () => unknown, fragment: string): string {
  try {
    fn();
  } catch (e) {
    check(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    check(
      e.message.includes(fragment),
      `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(fragment)}`,
    );
    check(!e.message.includes("\n"), `message is not one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
  throw new Error(`expected a SafetensorsError containing ${JSON.stringify(fragment)}, but it decoded`);
}

// ---- hand-made files, byte by byte from the spec ----

/** 8-byte LE length (or `lenOverride`), the header text as UTF-8, then `data`. */
function rawFile(
  header: string | Uint8Array,
  data: ArrayLike<number> = [],
  lenOverride?: bigint,
): Uint8Array {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Little-endian bytes of u16 values. */
function u16le(...v: number[]): number[] {
  return v.flatMap((x) => [x & 0xff, x >> 8]);
}

Deno.test("hand-made F16 and BF16 tensors decode to the spec's values", () => {
  // F16: 1, -2, 65504 (max), 2^-24 (min subnormal), 0x3555 (~1/3), -0, +inf, -inf, NaN.
  const f16 = u16le(0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00);
  // BF16: 1, -3, 3.140625, smallest subnormal, +inf, 0x0000.
  const bf16 = u16le(0x3f80, 0xc040, 0x4049, 0x0001, 0x7f80, 0x0000);
  let header = JSON.stringify({
    a: { dtype: "F16", shape: [3, 3], data_offsets: [0, 18] },
    b: { dtype: "BF16", shape: [6], data_offsets: [18, 30] },
  });
  // Data at an odd file offset, so the reader must not rely on alignment.
  if (header.length % 2 === 0) header += " ";
  const file = decodeSafetensors(rawFile(header, [...f16, ...bf16]));
  const a = file.tensors.get("a")!, b = file.tensors.get("b")!;
  check(a.dtype === "F16" && a.shape.join() === "3,3", `a: ${a.dtype} [${a.shape}]`);
  const wantA = [1, -2, 65504, 2 ** -24, 0.333251953125, -0, Infinity, -Infinity, NaN];
  for (let i = 0; i < wantA.length; i++) {
    check(Object.is(a.data[i], wantA[i]), `F16[${i}] = ${a.data[i]}, want ${wantA[i]}`);
  }
  check(b.dtype === "BF16" && b.shape.join() === "6", `b: ${b.dtype} [${b.shape}]`);
  const wantB = [1, -3, 3.140625, 2 ** -133, Infinity, 0];
  for (let i = 0; i < wantB.length; i++) {
    check(Object.is(b.data[i], wantB[i]), `BF16[${i}] = ${b.data[i]}, want ${wantB[i]}`);
  }
  check(Object.keys(file.metadata).length === 0, "no metadata expected");
});

Deno.test("every F16 bit pattern decodes like the runtime's Float16Array", () => {
  const F16 = (globalThis as any).Float16Array;
  if (typeof F16 !== "function") return console.log("Float16Array not available; skipped");
  const bits = new Uint16Array(65536).map((_, i) => i);
  const data = new Uint8Array(bits.buffer); // little-endian host assumed by this test
  const header = JSON.stringify({ all: { dtype: "F16", shape: [256, 256], data_offsets: [0, 131072] } });
  const got = decodeSafetensors(rawFile(header, data)).tensors.get("all")!.data;
  const want = Float32Array.from(new F16(bits.buffer) as ArrayLike<number>);
  for (let i = 0; i < 65536; i++) {
    check(
      Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])),
      `0x${i.toString(16)}`,
    );
  }
});

Deno.test("hand-made F64 and F32 tensors, scalar and zero-size, at unaligned offsets", () => {
  const f64 = new Float64Array([Math.PI, -1e300, 1e-50, 0.1]);
  const f32 = new Float32Array([1.5]);
  const data = new Uint8Array(36);
  data.set(new Uint8Array(f64.buffer), 0);
  data.set(new Uint8Array(f32.buffer), 32);
  const header = JSON.stringify({
    __metadata__: { format: "pt", note: "hand made" },
    s: { dtype: "F32", shape: [], data_offsets: [32, 36] },
    z: { dtype: "F16", shape: [0, 7], data_offsets: [32, 32] },
    d: { dtype: "F64", shape: [2, 2], data_offsets: [0, 32] },
  }) + " ";
  const bytes = rawFile(header, data);
  // Decode from a subarray at an odd byte offset of a bigger buffer.
  const host = new Uint8Array(bytes.length + 3);
  host.set(bytes, 3);
  const file = decodeSafetensors(host.subarray(3));
  check([...file.tensors.keys()].join() === "d,z,s", `order by data offset: ${[...file.tensors.keys()]}`);
  const d = file.tensors.get("d")!;
  sameBits("F64", d.data, new Float32Array([Math.PI, -Infinity, 0, 0.1]));
  const s = file.tensors.get("s")!;
  check(s.shape.length === 0 && s.data.length === 1 && s.data[0] === 1.5, "scalar");
  const z = file.tensors.get("z")!;
  check(z.shape.join() === "0,7" && z.data.length === 0, "zero-size");
  check(file.metadata.format === "pt" && file.metadata.note === "hand made", JSON.stringify(file.metadata));
});

Deno.test("encode then decode round-trips names, shapes, bits, order and metadata", () => {
  const rng = new Rng(7);
  const weird = new Float32Array([NaN, -0, Infinity, -Infinity, 1e-45, 3.4028234663852886e38]);
  const tensors = [
    { name: "wte", shape: [5, 3], data: rng.normalArray(15) },
    { name: "10", shape: [2], data: rng.normalArray(2) },
    { name: "2", shape: [], data: new Float32Array([42]) },
    { name: "__proto__", shape: [6], data: weird },
    { name: "empty", shape: [3, 0, 2], data: new Float32Array(0) },
    { name: 'ünï "q"\n', shape: [1, 1, 1, 4], data: rng.uniformArray(4) },
    { name: "view", shape: [3], data: rng.normalArray(10).subarray(2, 5) },
  ];
  const meta = { step: "1200", config: JSON.stringify({ n_layer: 6 }), __proto__x: "y" };
  const bytes = encodeSafetensors(tensors, meta);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  check(n % 8 === 0, `header length ${n} is not a multiple of 8`);
  check(bytes.length === 8 + n + 4 * (15 + 2 + 1 + 6 + 0 + 4 + 3), `file size ${bytes.length}`);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  check(/^\{.*\} *$/.test(text.replace(/\n/g, "")), `header text ${text}`);
  const file = decodeSafetensors(bytes);
  check(
    [...file.tensors.keys()].join("|") === tensors.map((t) => t.name).join("|"),
    `order ${[...file.tensors.keys()]}`,
  );
  for (const t of tensors) {
    const got = file.tensors.get(t.name)!;
    check(got.dtype === "F32", `${t.name} dtype ${got.dtype}`);
    check(got.shape.join() === t.shape.join() && got.shape.length === t.shape.length, `${t.name} shape`);
    sameBits(t.name, got.data, t.data);
  }
  check(JSON.stringify(file.metadata) === JSON.stringify(meta), JSON.stringify(file.metadata));
  check(Object.getPrototypeOf(file.metadata) === Object.prototype, "metadata prototype untouched");
  // No tensors, no metadata: still a valid file.
  const empty = encodeSafetensors([]);
  check(empty.length === 16, `empty file is ${empty.length} bytes`);
  check(decodeSafetensors(empty).tensors.size === 0, "empty decodes");
  const metaOnly = decodeSafetensors(encodeSafetensors([], { a: "b" }));
  check(metaOnly.tensors.size === 0 && metaOnly.metadata.a === "b", "metadata only");
});

Deno.test("a '__proto__' metadata key stays a plain key", () => {
  const header = '{"__metadata__":{"__proto__":"evil","k":"v"}}';
  const file = decodeSafetensors(rawFile(header));
  check(file.metadata["__proto__" as keyof typeof file.metadata] === "evil", "own key");
  check(Object.getPrototypeOf(file.metadata) === Object.prototype, "prototype unchanged");
});

Deno.test("the encoder refuses inconsistent tensors", () => {
  const one = new Float32Array(1);
  refuses(() => encodeSafetensors([{ name: "a", shape: [2], data: one }]), "needs 2 values, data has 1");
  refuses(() => encodeSafetensors([{ name: "a", shape: [-1], data: one }]), "bad dimension -1");
  refuses(() => encodeSafetensors([{ name: "a", shape: [1.5], data: one }]), "bad dimension 1.5");
  refuses(() => encodeSafetensors([{ name: "__metadata__", shape: [1], data: one }]), "reserved");
  refuses(
    () => encodeSafetensors([{ name: "a", shape: [1], data: one }, { name: "a", shape: [1], data: one }]),
    'duplicate tensor name "a"',
  );
  refuses(() => encodeSafetensors([], { a: 3 as unknown as string }), 'metadata value for "a" is number');
});

// ---- each refusal, with its own message ----

const F32x2 = [0, 0, 128, 63, 0, 0, 0, 64]; // [1, 2] as little-endian f32
const ok = (entry: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ t: entry, ...extra });
const good = { dtype: "F32", shape: [2], data_offsets: [0, 8] };

Deno.test("the reader refuses malformed files, each with its own message", () => {
  // Sanity: the base case decodes.
  check(decodeSafetensors(rawFile(ok(good), F32x2)).tensors.get("t")!.data[1] === 2, "base case");
  const cases: [string, Uint8Array, string][] = [
    ["empty file", new Uint8Array(0), "file is 0 bytes, shorter than the 8-byte header length"],
    ["7 bytes", new Uint8Array(7), "file is 7 bytes"],
    [
      "length past end",
      rawFile(ok(good), F32x2, 1000n),
      "header length 1000 is past the end of the file (70 bytes)",
    ],
    ["absurd length", rawFile(ok(good), F32x2, 0xffff_ffff_ffff_ffffn), "exceeds the 100000000-byte limit"],
    ["absurd length 2^53+1", rawFile("{}", [], 2n ** 53n + 1n), "exceeds the 100000000-byte limit"],
    ["zero-length header", rawFile("", [1, 2, 3]), "header is not valid JSON"],
    ["bad UTF-8", rawFile(new Uint8Array([0x7b, 0xff, 0x7d])), "header is not valid UTF-8"],
    [
      "truncated UTF-8",
      rawFile(new Uint8Array([0x7b, 0x22, 0xc3, 0x22, 0x3a, 0x31, 0x7d])),
      "not valid UTF-8",
    ],
    ["not JSON", rawFile("{dtype: F32}"), "header is not valid JSON"],
    ["trailing garbage", rawFile("{} x"), "header is not valid JSON"],
    ["NUL padding", rawFile("{}\0\0"), "header is not valid JSON"],
    ["array header", rawFile("[1,2]"), "header is an array, not a JSON object"],
    ["null header", rawFile("null"), "header is null, not a JSON object"],
    ["string header", rawFile('"x"'), "header is string, not a JSON object"],
    ["entry not object", rawFile(ok([1])), 'tensor "t": entry is not an object'],
    [
      "missing dtype",
      rawFile(ok({ shape: [2], data_offsets: [0, 8] }), F32x2),
      'tensor "t": missing "dtype"',
    ],
    ["missing shape", rawFile(ok({ dtype: "F32", data_offsets: [0, 8] }), F32x2), 'missing "shape"'],
    ["missing offsets", rawFile(ok({ dtype: "F32", shape: [2] }), F32x2), 'missing "data_offsets"'],
    ["dtype not string", rawFile(ok({ ...good, dtype: 4 }), F32x2), '"dtype" is not a string'],
    ["unknown dtype", rawFile(ok({ ...good, dtype: "F33" }), F32x2), 'tensor "t": unknown dtype "F33"'],
    ["lowercase dtype", rawFile(ok({ ...good, dtype: "f32" }), F32x2), 'unknown dtype "f32"'],
    ["unsupported dtype", rawFile(ok({ ...good, dtype: "I32" }), F32x2), 'unsupported dtype "I32"'],
    ["shape not array", rawFile(ok({ ...good, shape: 2 }), F32x2), '"shape" is not an array'],
    [
      "negative dim",
      rawFile(ok({ ...good, shape: [-2] }), F32x2),
      "dimension -2, not a non-negative integer",
    ],
    [
      "fractional dim",
      rawFile(ok({ ...good, shape: [2.5] }), F32x2),
      "dimension 2.5, not a non-negative integer",
    ],
    [
      "huge dim",
      rawFile(ok({ ...good, shape: [1e300] }), F32x2),
      "dimension 1e+300, not a non-negative integer",
    ],
    ["string dim", rawFile(ok({ ...good, shape: ["2"] }), F32x2), "shape has a non-number dimension"],
    ["offsets not pair", rawFile(ok({ ...good, data_offsets: [0, 4, 8] }), F32x2), "not a [begin, end] pair"],
    ["offsets not array", rawFile(ok({ ...good, data_offsets: "0-8" }), F32x2), "not a [begin, end] pair"],
    [
      "offsets strings",
      rawFile(ok({ ...good, data_offsets: ["0", 8] }), F32x2),
      '"data_offsets" holds non-numbers',
    ],
    [
      "negative offset",
      rawFile(ok({ ...good, data_offsets: [-4, 4] }), F32x2),
      "are not non-negative integers",
    ],
    ["reversed offsets", rawFile(ok({ ...good, data_offsets: [8, 0] }), F32x2), "end before they begin"],
    [
      "offsets past end",
      rawFile(ok({ ...good, shape: [4], data_offsets: [0, 16] }), F32x2),
      "data_offsets [0, 16] run past the 8-byte data buffer",
    ],
    [
      "length disagrees with shape",
      rawFile(ok({ ...good, shape: [3] }), F32x2),
      'tensor "t": 8 bytes of data but shape [3] x F32 needs 12',
    ],
    [
      "shape product overflows",
      rawFile(ok({ ...good, shape: [2 ** 40, 2 ** 40] }), F32x2),
      "needs more than the data buffer holds",
    ],
    [
      "overlap",
      rawFile(ok(good, { u: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }), F32x2),
      'tensors "t" and "u" overlap at bytes [4, 8)',
    ],
    [
      "hole",
      rawFile(ok({ ...good, shape: [1], data_offsets: [4, 8] }), F32x2),
      'data buffer has a hole at bytes [0, 4) before "t"',
    ],
    [
      "uncovered tail",
      rawFile(ok({ ...good, shape: [1], data_offsets: [0, 4] }), F32x2),
      "data buffer has 4 bytes no tensor covers at [4, 8)",
    ],
    [
      "metadata not object",
      rawFile(ok(good, { __metadata__: "x" }), F32x2),
      '"__metadata__" is not an object',
    ],
    [
      "metadata number",
      rawFile(ok(good, { __metadata__: { step: 12 } }), F32x2),
      'metadata value for "step" is number, not a string',
    ],
    [
      "metadata null",
      rawFile(ok(good, { __metadata__: { a: "b", c: null } }), F32x2),
      'metadata value for "c" is null, not a string',
    ],
  ];
  const seen = new Set<string>();
  for (const [label, bytes, fragment] of cases) {
    const msg = refuses(() => decodeSafetensors(bytes), fragment);
    seen.add(msg);
    if (label === "overlap") console.log(`e.g. ${label}: ${msg}`);
  }
  // With `what`, messages are prefixed by it.
  refuses(
    () => decodeSafetensors(new Uint8Array(3), "ckpt/model.safetensors"),
    "ckpt/model.safetensors: file is 3",
  );
  // A long hostile name is shortened in the message.
  const longName = "x".repeat(10_000);
  const msg = refuses(
    () => decodeSafetensors(rawFile(JSON.stringify({ [longName]: 1 }))),
    "entry is not an object",
  );
  check(msg.length < 200, `message of ${msg.length} chars`);
});

// ---- fuzz ----

type Dt = "F32" | "F16" | "BF16" | "F64";
const SIZE: Record<Dt, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** A random valid file with tensors of all four dtypes, maybe metadata, maybe padding. */
function randomValidFile(rng: Rng): Uint8Array {
  const dts: Dt[] = ["F32", "F16", "BF16", "F64"];
  const nt = rng.int(5);
  const header: Record<string, unknown> = {};
  if (rng.uniform() < 0.5) header.__metadata__ = { format: "pt", step: String(rng.int(1000)) };
  const names = Array.from({ length: nt }, (_, i) => `t${i}`);
  // Lay data out in a random permutation of the header order.
  const order = names.map((n) => [rng.uniform(), n] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  let off = 0;
  const entries: Record<string, unknown> = {};
  for (const name of order) {
    const dtype = dts[rng.int(4)];
    const shape = Array.from({ length: rng.int(4) }, () => rng.int(4));
    const n = shape.reduce((a, b) => a * b, 1);
    entries[name] = { dtype, shape, data_offsets: [off, off + n * SIZE[dtype]] };
    off += n * SIZE[dtype];
  }
  for (const name of names) header[name] = entries[name];
  const text = JSON.stringify(header) + " ".repeat(rng.int(8));
  const data = new Uint8Array(off).map(() => rng.int(256));
  return rawFile(text, data);
}

const JSON_BITS = [
  '"',
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  "-",
  "0",
  "1",
  "9",
  ".",
  "e",
  " ",
  "\\",
  "\u00e9",
  "\ud83d",
];
const NUMBERS = [
  "-1",
  "0",
  "1",
  "2",
  "7",
  "1.5",
  "1e30",
  "9007199254740993",
  "-0",
  "1e-7",
  "4294967296",
  "null",
];

function mutateJson(rng: Rng, text: string): string {
  const k = rng.int(7);
  const at = rng.int(text.length + 1);
  if (k === 0) return text.slice(0, at) + text.slice(at + 1 + rng.int(6)); // delete a run
  if (k === 1) return text.slice(0, at) + JSON_BITS[rng.int(JSON_BITS.length)] + text.slice(at); // insert a char
  if (k === 2) {
    // replace the n-th number with another one
    const nums = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
    if (nums.length === 0) return text;
    const m = nums[rng.int(nums.length)];
    return text.slice(0, m.index) + NUMBERS[rng.int(NUMBERS.length)] + text.slice(m.index! + m[0].length);
  }
  if (k === 3) {
    const dts = ["F32", "F16", "BF16", "F64", "I64", "U8", "F8_E4M3", "f32", ""];
    return text.replace(/"(F32|F16|BF16|F64)"/, `"${dts[rng.int(dts.length)]}"`);
  }
  if (k === 4) {
    // duplicate a segment (may duplicate keys or tensors)
    const b = rng.int(text.length), e = Math.min(text.length, b + rng.int(40));
    return text.slice(0, e) + text.slice(b, e) + text.slice(e);
  }
  if (k === 5) {
    // structured edit of a parsed header
    let h: any;
    try {
      h = JSON.parse(text);
    } catch {
      return text;
    }
    const keys = Object.keys(h);
    if (keys.length === 0) return JSON.stringify({ t: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
    const key = keys[rng.int(keys.length)];
    const e = h[key];
    const r = rng.int(6);
    if (r === 0) delete h[key];
    else if (r === 1 && e && e.shape) e.shape = [...e.shape, rng.int(3)];
    else if (r === 2 && e && e.data_offsets) e.data_offsets = [e.data_offsets[1], e.data_offsets[0]];
    else if (r === 3 && e && e.data_offsets) e.data_offsets[rng.int(2)] += rng.int(9) - 4;
    else if (r === 4) h[key] = [null, 1, "s", {}, []][rng.int(5)];
    else {h[`n${rng.int(9)}`] = {
        dtype: "F32",
        shape: [rng.int(3)],
        data_offsets: [rng.int(64), rng.int(64)],
      };}
    return JSON.stringify(h);
  }
  return text.slice(0, at); // truncate the JSON
}

function mutate(rng: Rng, file: Uint8Array): Uint8Array {
  const k = rng.int(5);
  const out = file.slice();
  const view = new DataView(out.buffer);
  if (k === 0) {
    // flip 1..4 bytes anywhere (header length included)
    for (let i = 1 + rng.int(4); i > 0 && out.length > 0; i--) out[rng.int(out.length)] ^= 1 + rng.int(255);
    return out;
  }
  if (k === 1) return out.slice(0, rng.int(out.length + 1)); // truncate
  if (k === 2) {
    // append junk
    const extra = new Uint8Array(1 + rng.int(16)).map(() => rng.int(256));
    const r = new Uint8Array(out.length + extra.length);
    r.set(out);
    r.set(extra, out.length);
    return r;
  }
  if (k === 3) {
    // header length edits
    const n = view.getBigUint64(0, true);
    const choices = [
      n + BigInt(rng.int(17)) - 8n,
      BigInt(out.length - 8),
      BigInt(out.length),
      BigInt(rng.nextU32()),
      (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32()),
      0n,
      2n ** 63n,
    ];
    const v = choices[rng.int(choices.length)];
    view.setBigUint64(0, v < 0n ? 0n : v, true);
    return out;
  }
  // JSON edits, re-framed with a correct length (a few rounds)
  const n = Number(view.getBigUint64(0, true));
  let text = new TextDecoder().decode(out.subarray(8, 8 + n));
  for (let i = 1 + rng.int(3); i > 0; i--) text = mutateJson(rng, text);
  return rawFile(text, out.subarray(8 + n));
}

Deno.test("fuzz: mutated files decode validly or fail with a SafetensorsError, fast and bounded", () => {
  const rng = new Rng(20240901);
  const t0 = performance.now();
  let decoded = 0, refused = 0, worst = 0;
  const messages = new Map<string, number>();
  const N = 50_000;
  for (let i = 0; i < N; i++) {
    const base = randomValidFile(rng);
    const bytes = i % 10 === 0 ? base : mutate(rng, base);
    const s = performance.now();
    let file: SafetensorsFile;
    try {
      file = decodeSafetensors(bytes);
    } catch (e) {
      if (!(e instanceof SafetensorsError)) {
        throw new Error(
          `case ${i}: ${e} (not a SafetensorsError) on ${JSON.stringify([...bytes.slice(0, 200)])}`,
        );
      }
      check(!e.message.includes("\n"), `case ${i}: multi-line message ${JSON.stringify(e.message)}`);
      refused++;
      const kind = e.message.replace(/"[^"]*"|\d+|\(.*\)/g, "_").slice(0, 40);
      messages.set(kind, (messages.get(kind) ?? 0) + 1);
      worst = Math.max(worst, performance.now() - s);
      continue;
    }
    worst = Math.max(worst, performance.now() - s);
    decoded++;
    let floats = 0;
    for (const [name, t] of file.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      check(t.data.length === n, `case ${i}: ${name} has ${t.data.length} values for shape [${t.shape}]`);
      floats += t.data.length;
    }
    // Output never exceeds twice the input (F16/BF16 -> F32 is the worst case).
    check(4 * floats <= 2 * bytes.length, `case ${i}: ${4 * floats} bytes decoded from ${bytes.length}`);
    for (const v of Object.values(file.metadata)) check(typeof v === "string", `case ${i}: metadata`);
  }
  const ms = performance.now() - t0;
  console.log(
    `fuzz: ${N} files, ${decoded} decoded, ${refused} refused, ${messages.size} kinds of message, ` +
      `${ms.toFixed(0)} ms total, slowest ${worst.toFixed(2)} ms`,
  );
  check(decoded > N / 10 && refused > N / 2, "the fuzz should exercise both outcomes");
  check(messages.size >= 15, `only ${messages.size} kinds of refusal reached`);
  check(worst < 200, `a single decode took ${worst} ms`);
});
