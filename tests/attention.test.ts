import { assertClose, dot, finiteDiff, testGpu } from "./helpers.ts";
import { createStorage, readF32, upload } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import {
  attentionBackward,
  attentionForward,
  type AttentionOptions,
  attentionScratchBytes,
} from "../src/kernels/attention.ts";
import * as ref from "../src/reference/attention.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;

function filled(n: number, v: number): Float32Array<ArrayBuffer> {
  return new Float32Array(n).fill(v);
}

Deno.test("reference forward: T=1 gives out = v and lse = q.k/sqrt(HS); rows are convex mixes of v", () => {
  const C = 8, NH = 2, HS = 4;
  const x = new Rng(3).normalArray(3 * C);
  const { out, lse } = ref.attentionForward(x, 1, 1, C, NH);
  assertClose("T=1 out", out, x.slice(2 * C, 3 * C), { atol: 1e-15, rtol: 0 });
  const want = [0, 1].map((h) => dot(x.slice(h * HS, h * HS + HS), x.slice(C + h * HS, C + h * HS + HS)) / 2);
  assertClose("T=1 lse", lse, want, { atol: 1e-15, rtol: 0 });
  // Second row, one head, by hand: softmax over two keys.
  const T = 2, y = new Rng(4).normalArray(T * 3 * HS);
  const r = ref.attentionForward(y, 1, T, HS, 1);
  const row = 3 * HS;
  const s0 = dot(y.slice(row, row + HS), y.slice(HS, 2 * HS)) / 2;
  const s1 = dot(y.slice(row, row + HS), y.slice(row + HS, row + 2 * HS)) / 2;
  const p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1)), p1 = 1 - p0;
  const o = Array.from({ length: HS }, (_, d) => p0 * y[2 * HS + d] + p1 * y[row + 2 * HS + d]);
  assertClose("T=2 row 1", r.out.slice(HS), o, { atol: 1e-14, rtol: 0 });
  assertClose("T=2 lse", [r.lse[1]], [Math.log(Math.exp(s0) + Math.exp(s1))], { atol: 1e-14, rtol: 0 });
});

for (const [B, T, C, NH] of [[1, 3, 8, 2], [2, 4, 8, 1], [1, 5, 12, 3]]) {
  Deno.test(`reference attention backward equals finite differences, B=${B} T=${T} C=${C} NH=${NH}`, () => {
    const x = new Rng(10 + T).normalArray(B * T * 3 * C);
    const w = new Rng(20 + T).normalArray(B * T * C);
    const g = ref.attentionBackward(w, x, B, T, C, NH);
    const fd = finiteDiff((p) => dot(ref.attentionForward(p, B, T, C, NH).out, w), x);
    assertClose("attention fd", g, fd, { atol: 1e-8, rtol: 1e-6 });
  });
}

/** Runs forward and backward on the GPU; outputs are pre-filled with garbage to catch unwritten elements. */
async function runGpu(
  x: Float32Array,
  dy: Float32Array,
  s: { B: number; T: number; C: number; NH: number },
  opts: AttentionOptions = {},
): Promise<{ out: Float32Array; lse: Float32Array; dqkv: Float32Array; dqkv2: Float32Array }> {
  const gpu = await testGpu();
  const { B, T, C, NH } = s;
  const qkv = upload(gpu, "qkv", x), dout = upload(gpu, "dout", dy);
  const out = upload(gpu, "out", filled(B * T * C, GARBAGE));
  const lse = upload(gpu, "lse", filled(B * NH * T, GARBAGE));
  const dqkv = upload(gpu, "dqkv", filled(B * T * 3 * C, GARBAGE));
  const scratch = upload(gpu, "scratch", filled(attentionScratchBytes(s) / 4, GARBAGE));
  const fwd = await attentionForward(gpu, { out, lse, qkv }, s, opts);
  const bwd = await attentionBackward(gpu, { dqkv, dout, qkv, out, lse, scratch }, s, opts);
  submitDispatches(gpu, [fwd, ...bwd], "attention test");
  const r: { out: Float32Array; lse: Float32Array; dqkv: Float32Array; dqkv2: Float32Array } = {
    out: await readF32(gpu, out),
    lse: await readF32(gpu, lse),
    dqkv: await readF32(gpu, dqkv),
    dqkv2: new Float32Array(0),
  };
  // Again over different garbage: the backward must be bitwise reproducible.
  gpu.device.queue.writeBuffer(dqkv, 0, filled(B * T * 3 * C, -GARBAGE));
  gpu.device.queue.writeBuffer(scratch, 0, filled(B * NH * T, -GARBAGE));
  submitDispatches(gpu, bwd, "attention test again");
  r.dqkv2 = await readF32(gpu, dqkv);
  for (const buf of [qkv, dout, out, lse, dqkv, scratch]) buf.destroy();
  return r;
}

const shapes: { B: number; T: number; C: number; NH: number; std?: number; opts?: AttentionOptions }[] = [
  { B: 1, T: 1, C: 32, NH: 2 },
  { B: 2, T: 7, C: 32, NH: 2 },
  { B: 3, T: 33, C: 96, NH: 3 }, // HS 32
  { B: 1, T: 20, C: 96, NH: 2 }, // HS 48 (backward: 2 threads per row, 6 vec4s each)
  { B: 1, T: 65, C: 64, NH: 4 }, // HS 16
  { B: 2, T: 50, C: 128, NH: 2 }, // HS 64 (dk/dv and dq: 2 threads per row)
  { B: 1, T: 37, C: 256, NH: 2 }, // HS 128 (forward: 2 threads per row; backward: 4)
  { B: 1, T: 70, C: 96, NH: 1, std: 2 }, // HS 96, peaked softmax
  { B: 1, T: 45, C: 16, NH: 2 }, // HS 8
  { B: 1, T: 100, C: 64, NH: 1, opts: { workgroupBytes: 16384 } }, // WebGPU-default budget: small tiles
  { B: 1, T: 29, C: 256, NH: 2, opts: { workgroupBytes: 16384 } },
  { B: 1, T: 1024, C: 16, NH: 1 },
];

for (const { B, T, C, NH, std = 1, opts } of shapes) {
  const name = `B=${B} T=${T} C=${C} NH=${NH}${opts ? ` budget=${opts.workgroupBytes}` : ""}`;
  Deno.test(`attention forward and backward match reference, ${name}`, async () => {
    const s = { B, T, C, NH };
    const rng = new Rng(B * 1000 + T + C);
    const x = rng.normalArray(B * T * 3 * C, std);
    const dy = rng.normalArray(B * T * C);
    const r = await runGpu(x, dy, s, opts);
    const want = ref.attentionForward(x, B, T, C, NH);
    assertClose(`out ${name}`, r.out, want.out, { atol: 2e-5, rtol: 1e-4 });
    assertClose(`lse ${name}`, r.lse, want.lse, { atol: 2e-5, rtol: 1e-5 });
    const dx = ref.attentionBackward(dy, x, B, T, C, NH);
    assertClose(`dqkv ${name}`, r.dqkv, dx, { atol: 1e-4, rtol: 1e-3 });
    const a = new Uint32Array(r.dqkv.buffer), b2 = new Uint32Array(r.dqkv2.buffer);
    const diff = a.findIndex((v, i) => v !== b2[i]);
    if (diff >= 0) {
      throw new Error(`backward not bitwise reproducible at ${diff}: ${r.dqkv[diff]} vs ${r.dqkv2[diff]}`);
    }
  });
}

Deno.test("attention dispatchers reject unsupported head sizes with a clear error", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 4096);
  const b = { out: buf, lse: buf, qkv: buf };
  for (const [C, NH] of [[36, 2], [272, 2], [30, 4], [72, 2], [240, 2]]) {
    let msg = "";
    try {
      await attentionForward(gpu, b, { B: 1, T: 4, C, NH });
    } catch (e) {
      msg = (e as Error).message;
    }
    if (!/attention: .*(head size|divisible)/.test(msg)) throw new Error(`C=${C} NH=${NH}: got '${msg}'`);
  }
  let msg = "";
  try {
    await attentionBackward(gpu, { ...b, dqkv: buf, dout: buf, scratch: buf }, { B: 1, T: 4, C: 36, NH: 2 });
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!/head size HS = C \/ NH = 18/.test(msg)) throw new Error(`backward: got '${msg}'`);
  buf.destroy();
});

Deno.test("attention backward takes qkv, dout, out and lse as ranges of one read-only buffer", async () => {
  const gpu = await testGpu();
  const s = { B: 2, T: 9, C: 64, NH: 2 }, { B, T, C, NH } = s;
  const rng = new Rng(77);
  const x = rng.normalArray(B * T * 3 * C), dy = rng.normalArray(B * T * C);
  const want = ref.attentionForward(x, B, T, C, NH);
  // One "activations" buffer: [qkv | dout | out | lse], each at a 256-byte-aligned offset.
  const align = (n: number) => Math.ceil(n / 64) * 64;
  const offs = [0, align(x.length)];
  offs.push(offs[1] + align(dy.length), offs[1] + align(dy.length) + align(B * T * C));
  const acts = new Float32Array(offs[3] + B * NH * T);
  acts.set(x, offs[0]);
  acts.set(dy, offs[1]);
  acts.set(Float32Array.from(want.out), offs[2]);
  acts.set(Float32Array.from(want.lse), offs[3]);
  const buf = upload(gpu, "acts", acts);
  const range = (i: number, n: number) => ({ buffer: buf, offset: offs[i] * 4, size: n * 4 });
  const dqkv = upload(gpu, "dqkv", filled(B * T * 3 * C, GARBAGE));
  const scratch = createStorage(gpu, "scratch", attentionScratchBytes(s));
  const bwd = await attentionBackward(gpu, {
    dqkv,
    scratch,
    qkv: range(0, x.length),
    dout: range(1, dy.length),
    out: range(2, B * T * C),
    lse: range(3, B * NH * T),
  }, s);
  submitDispatches(gpu, bwd, "attention shared inputs");
  const got = await readF32(gpu, dqkv);
  assertClose("dqkv shared inputs", got, ref.attentionBackward(dy, x, B, T, C, NH), {
    atol: 1e-4,
    rtol: 1e-3,
  });
  for (const b of [buf, dqkv, scratch]) b.destroy();
});
