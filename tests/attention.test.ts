import assert from "node:assert/strict";
import { assertClose, dot, finiteDiff, testGpu } from "./helpers.ts";
import { createStorage, readF16, readF32, roundF16, upload, uploadF16 } from "../src/gpu/buffers.ts";
import type { StorageType } from "../src/gpu/source.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import {
  attentionBackward,
  attentionDsBytes,
  attentionForward,
  type AttentionOptions,
  attentionScratchBytes,
  type AttentionVariant,
  CPU_MAX_HS,
} from "../src/kernels/attention.ts";
import { dkdvPlan, dqPlan, forwardPlan } from "../src/kernels/attention_plan.ts";
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

/** Storage types of the four typed tensors (the forward uses qkv and out; the backward all four). */
type AttentionTypes = { qkv: StorageType; out: StorageType; dout: StorageType; dqkv: StorageType };

const F32: AttentionTypes = { qkv: "f32", out: "f32", dout: "f32", dqkv: "f32" };

/** A storage buffer holding `data` as `type` (f16: rounded, 2 bytes per value). */
function store(gpu: Gpu, label: string, data: Float32Array, type: StorageType): GPUBuffer {
  return type === "f16" ? uploadF16(gpu, label, data) : upload(gpu, label, data);
}

/**
 * Runs forward and backward on the GPU with storage types `ty`; outputs are pre-filled with garbage to catch
 * unwritten elements. Results are widened to f32 whatever their storage type. `storedDs`: the backward's
 * stored-dS path, its dS buffer pre-filled with NaN (what dq must not read comes out NaN if it does).
 * `drop`: dropout on the probabilities with that p, seed (written to rng[0]) and stream.
 */
async function runGpu(
  x: Float32Array,
  dy: Float32Array,
  s: { B: number; T: number; C: number; NH: number },
  opts: AttentionOptions = {},
  ty: AttentionTypes = F32,
  storedDs = false,
  drop?: ref.AttentionDropout,
): Promise<{ out: Float32Array; lse: Float32Array; dqkv: Float32Array; dqkv2: Float32Array }> {
  const gpu = await testGpu();
  const { B, T, C, NH } = s;
  const rng = drop ? upload(gpu, "rng", new Uint32Array([drop.seed, 0, 0, 0])) : undefined;
  const dropout = drop ? { p: drop.p, stream: drop.stream } : undefined;
  const read = (buf: GPUBuffer, type: StorageType) => type === "f16" ? readF16(gpu, buf) : readF32(gpu, buf);
  const qkv = store(gpu, "qkv", x, ty.qkv), dout = store(gpu, "dout", dy, ty.dout);
  const out = store(gpu, "out", filled(B * T * C, GARBAGE), ty.out);
  const lse = upload(gpu, "lse", filled(B * NH * T, GARBAGE));
  const dqkv = store(gpu, "dqkv", filled(B * T * 3 * C, GARBAGE), ty.dqkv);
  const scratch = upload(gpu, "scratch", filled(attentionScratchBytes(s) / 4, GARBAGE));
  const fwd = await attentionForward(
    gpu,
    { out, lse, qkv, rng },
    { ...s, types: { qkv: ty.qkv, out: ty.out }, dropout },
    opts,
  );
  // dS is stored as dqkv's type; NaN in either width.
  const dsFill = (v: number) => filled(attentionDsBytes(s, ty.dqkv) / (ty.dqkv === "f16" ? 2 : 4), v);
  const ds = storedDs ? store(gpu, "ds", dsFill(NaN), ty.dqkv) : undefined;
  const bwd = await attentionBackward(
    gpu,
    { dqkv, dout, qkv, out, lse, scratch, ds, rng },
    { ...s, types: ty, dropout },
    opts,
  );
  submitDispatches(gpu, [fwd, ...bwd], "attention test");
  const r: { out: Float32Array; lse: Float32Array; dqkv: Float32Array; dqkv2: Float32Array } = {
    out: await read(out, ty.out),
    lse: await readF32(gpu, lse),
    dqkv: await read(dqkv, ty.dqkv),
    dqkv2: new Float32Array(0),
  };
  // Again over different garbage: the backward must be bitwise reproducible.
  const again = filled(B * T * 3 * C, -GARBAGE);
  gpu.device.queue.writeBuffer(dqkv, 0, ty.dqkv === "f16" ? Float16Array.from(again) : again);
  gpu.device.queue.writeBuffer(scratch, 0, filled(B * NH * T, -GARBAGE));
  if (ds) {
    gpu.device.queue.writeBuffer(ds, 0, ty.dqkv === "f16" ? Float16Array.from(dsFill(1)) : dsFill(GARBAGE));
  }
  submitDispatches(gpu, bwd, "attention test again");
  r.dqkv2 = await read(dqkv, ty.dqkv);
  for (const buf of [qkv, dout, out, lse, dqkv, scratch, ds, rng]) buf?.destroy();
  return r;
}

/** Throws unless two runs of the backward gave the same bits. */
function assertSameBits(r: { dqkv: Float32Array; dqkv2: Float32Array }): void {
  const a = new Uint32Array(r.dqkv.buffer), b2 = new Uint32Array(r.dqkv2.buffer);
  const diff = a.findIndex((v, i) => v !== b2[i]);
  if (diff >= 0) {
    throw new Error(`backward not bitwise reproducible at ${diff}: ${r.dqkv[diff]} vs ${r.dqkv2[diff]}`);
  }
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
  { B: 1, T: 40, C: 8, NH: 2, opts: { workgroupBytes: 16384 } }, // HS 4: chunks of 4 dims
  { B: 2, T: 19, C: 24, NH: 2 }, // HS 12
  { B: 1, T: 70, C: 72, NH: 2 }, // HS 36: a partial dim column per thread
  { B: 1, T: 33, C: 160, NH: 2 }, // HS 80
  { B: 1, T: 66, C: 248, NH: 2, opts: { workgroupBytes: 16384 } }, // HS 124
];

/**
 * Each case in both forms (the GPU's blocked kernels and the CPU adapter's), but only in the blocked form
 * where it sets a workgroup budget (which only the blocked form uses) or its head size `hs` is past the cpu
 * form's default range plus one size beyond it (48: larger heads take llvmpipe seconds to compile); names
 * get the form.
 */
function forms(hs: number, opts?: AttentionOptions): { opts: AttentionOptions; tag: string }[] {
  const cpu = !opts?.workgroupBytes && hs <= Math.max(CPU_MAX_HS, 48);
  const all: AttentionVariant[] = cpu ? ["blocked", "cpu"] : ["blocked"];
  return all.map((variant) => ({ opts: { ...opts, variant }, tag: ` ${variant}` }));
}

for (const { B, T, C, NH, std = 1, opts: shapeOpts } of shapes) {
  for (const { opts, tag } of forms(C / NH, shapeOpts)) {
    const name = `B=${B} T=${T} C=${C} NH=${NH}${
      opts.workgroupBytes ? ` budget=${opts.workgroupBytes}` : ""
    }${tag}`;
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
      assertSameBits(r);
      // The stored-dS path: the same gradients, from dS written by dk/dv and read back by dq.
      const rs = await runGpu(x, dy, s, opts, F32, true);
      assertClose(`dqkv stored dS ${name}`, rs.dqkv, dx, { atol: 1e-4, rtol: 1e-3 });
      assertSameBits(rs);
    });
  }
}

// f16 storage. Combinations: the model's (forward qkv, out f16; backward also dqkv f16, dout f32), all f16,
// and f16 inputs with f32 outputs (isolates the f16 loads: no output rounding, no rounded out in delta).
const f16Combos: { name: string; ty: AttentionTypes }[] = [
  { name: "model", ty: { qkv: "f16", out: "f16", dout: "f32", dqkv: "f16" } },
  { name: "all f16", ty: { qkv: "f16", out: "f16", dout: "f16", dqkv: "f16" } },
  { name: "f16 in f32 out", ty: { qkv: "f16", out: "f32", dout: "f16", dqkv: "f32" } },
];
const f16Shapes: { B: number; T: number; C: number; NH: number }[] = [
  { B: 2, T: 37, C: 32, NH: 2 }, // HS 16, T not a multiple of any tile
  { B: 1, T: 45, C: 128, NH: 2 }, // HS 64 (dk/dv and dq: 2 threads per row)
  { B: 1, T: 29, C: 256, NH: 2 }, // HS 128 (forward: 2 threads per row; backward: 4)
];

for (const { B, T, C, NH } of f16Shapes) {
  for (const { name: combo, ty } of f16Combos) {
    for (const { opts, tag } of forms(C / NH)) {
      const name = `B=${B} T=${T} C=${C} NH=${NH} ${combo}${tag}`;
      Deno.test(`attention f16 storage matches reference on f16-rounded inputs, ${name}`, async () => {
        const s = { B, T, C, NH };
        const rng = new Rng(B * 1000 + T + C + 7);
        const x = rng.normalArray(B * T * 3 * C), dy = rng.normalArray(B * T * C);
        // The reference sees exactly what the GPU reads: inputs rounded where they are stored as f16.
        const xr = ty.qkv === "f16" ? roundF16(x) : x, dyr = ty.dout === "f16" ? roundF16(dy) : dy;
        // The model's combination takes the stored-dS path (as the model does where dS fits).
        const r = await runGpu(x, dy, s, opts, ty, combo === "model");
        const want = ref.attentionForward(xr, B, T, C, NH);
        const dx = ref.attentionBackward(dyr, xr, B, T, C, NH);
        // f32-stored results from (rounded) inputs: the f32 test's tolerances.
        let outTol = { atol: 2e-5, rtol: 1e-4 }, dqkvTol = { atol: 1e-4, rtol: 1e-3 };
        // An f16 out is rounded once: relative error <= 2^-11 = 4.9e-4, so rtol 1e-3 (atol as in f32, for
        // values near 0 where f32 arithmetic error dominates).
        if (ty.out === "f16") outTol = { atol: 2e-5, rtol: 1e-3 };
        // An f16 dqkv is rounded once (<= 4.9e-4 relative). Also, with out stored in f16 the backward's delta
        // = dout . out uses the rounded out: an absolute error of about |dout| |out| sqrt(HS) 2^-11 in delta,
        // which reaches dq, dk through ds = p (dp - delta) times scale |k| or |q| (~1e-3 at these sizes); the
        // reference, from qkv and dout alone, uses the exact out. Hence atol 2e-3 * max |ref|.
        if (ty.dqkv === "f16" || ty.out === "f16") {
          dqkvTol = { atol: 2e-3 * dx.reduce((m, v) => Math.max(m, Math.abs(v)), 0), rtol: 2e-3 };
        }
        assertClose(`out ${name}`, r.out, want.out, outTol);
        assertClose(`lse ${name}`, r.lse, want.lse, { atol: 2e-5, rtol: 1e-5 }); // lse is always f32
        assertClose(`dqkv ${name}`, r.dqkv, dx, dqkvTol);
        assertSameBits(r);
      });
    }
  }
}

Deno.test("reference attention dropout: about p of the probabilities dropped, the backward equals finite differences", () => {
  const drop = { p: 0.25, seed: 7, stream: 3 };
  let zeros = 0, n = 0;
  for (let bh = 0; bh < 4; bh++) {
    for (let t = 0; t < 64; t++) {
      for (let j = 0; j <= t; j++, n++) {
        const f = ref.attentionDropFactor(drop, bh, 64, t, j);
        if (f === 0) zeros++;
        else if (f !== 1 / 0.75) throw new Error(`kept factor ${f}`);
      }
    }
  }
  // n = 8320 draws: the dropped share is within 4 standard deviations of p.
  const sd = Math.sqrt(0.25 * 0.75 / n);
  if (Math.abs(zeros / n - 0.25) > 4 * sd) throw new Error(`dropped ${zeros} of ${n}`);
  for (const [B, T, C, NH] of [[1, 5, 8, 2], [2, 4, 8, 1]]) {
    const x = new Rng(30 + T).normalArray(B * T * 3 * C);
    const w = new Rng(40 + T).normalArray(B * T * C);
    const g = ref.attentionBackward(w, x, B, T, C, NH, drop);
    const fd = finiteDiff((p) => dot(ref.attentionForward(p, B, T, C, NH, drop).out, w), x);
    assertClose("attention dropout fd", g, fd, { atol: 1e-8, rtol: 1e-6 });
    // The mask changes the output.
    const plain = ref.attentionForward(x, B, T, C, NH).out;
    const dropped = ref.attentionForward(x, B, T, C, NH, drop).out;
    if (plain.every((v, i) => v === dropped[i])) throw new Error("dropout changed nothing");
  }
});

// Dropout on the probabilities: both backward forms, small heads (key split), two query vec4s per thread,
// HS 128, T not a multiple of any tile, the WebGPU-default budget and the model's f16 combination.
const dropShapes: {
  B: number;
  T: number;
  C: number;
  NH: number;
  opts?: AttentionOptions;
  ty?: AttentionTypes;
}[] = [
  { B: 2, T: 37, C: 32, NH: 2 }, // HS 16
  { B: 1, T: 70, C: 128, NH: 2 }, // HS 64
  { B: 1, T: 33, C: 256, NH: 2, opts: { workgroupBytes: 16384 } }, // HS 128
  { B: 1, T: 45, C: 128, NH: 2, ty: { qkv: "f16", out: "f16", dout: "f16", dqkv: "f16" } },
];
for (const { B, T, C, NH, opts: shapeOpts, ty = F32 } of dropShapes) {
  for (const { opts, tag } of forms(C / NH, shapeOpts)) {
    const name = `B=${B} T=${T} C=${C} NH=${NH}${
      opts.workgroupBytes ? ` budget=${opts.workgroupBytes}` : ""
    } ${ty.qkv}${tag}`;
    Deno.test(`attention with dropout on the probabilities matches reference, ${name}`, async () => {
      const s = { B, T, C, NH };
      const rng = new Rng(B * 1000 + T + C + 11);
      const x = rng.normalArray(B * T * 3 * C), dy = rng.normalArray(B * T * C);
      const xr = ty.qkv === "f16" ? roundF16(x) : x, dyr = ty.dout === "f16" ? roundF16(dy) : dy;
      const drop = { p: 0.2, seed: 12345 + T, stream: 0x8000 + 1 };
      const want = ref.attentionForward(xr, B, T, C, NH, drop);
      const dx = ref.attentionBackward(dyr, xr, B, T, C, NH, drop);
      const f16 = ty.dqkv === "f16";
      const outTol = f16 ? { atol: 2e-5, rtol: 1e-3 } : { atol: 2e-5, rtol: 1e-4 };
      const dTol = f16
        ? { atol: 2e-3 * dx.reduce((m, v) => Math.max(m, Math.abs(v)), 0), rtol: 2e-3 }
        : { atol: 1e-4, rtol: 1e-3 };
      for (const storedDs of [false, true]) {
        const r = await runGpu(x, dy, s, opts, ty, storedDs, drop);
        assertClose(`out ${name}`, r.out, want.out, outTol);
        assertClose(`lse ${name}`, r.lse, want.lse, { atol: 2e-5, rtol: 1e-5 });
        assertClose(`dqkv ${name} storedDs=${storedDs}`, r.dqkv, dx, dTol);
        assertSameBits(r);
      }
    });
  }
}

Deno.test("attention dispatchers reject unsupported head sizes, a short dS buffer, bad dropout and an unknown variant in one line", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 4096);
  const b = { out: buf, lse: buf, qkv: buf };
  for (const [C, NH] of [[36, 2], [272, 2], [30, 4], [20, 2], [264, 2]]) {
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
  // A dS buffer too small for the shape, and dropout without its seed buffer: one line each.
  const s = { B: 1, T: 64, C: 32, NH: 2 };
  const b2 = { ...b, dqkv: buf, dout: buf, scratch: buf };
  await assert.rejects(
    attentionBackward(gpu, { ...b2, ds: buf }, s),
    /^Error: attention_backward: the ds buffer holds 4096 bytes; dS needs 32768$/,
  );
  await assert.rejects(
    attentionForward(gpu, b, { ...s, dropout: { p: 0.1, stream: 1 } }),
    /^Error: attention_forward: dropout needs both s.dropout and the rng buffer$/,
  );
  await assert.rejects(
    attentionBackward(gpu, { ...b2, rng: buf }, { ...s, dropout: { p: 1, stream: 1 } }),
    /^Error: attention_backward: dropout p must be in \[0, 1\) \(got 1\)$/,
  );
  const bad = { variant: "fast" as AttentionVariant };
  await assert.rejects(
    attentionForward(gpu, b, s, bad),
    /^Error: attention: variant must be blocked or cpu \(got fast\)$/,
  );
  await assert.rejects(
    attentionBackward(gpu, b2, s, bad),
    /^Error: attention: variant must be blocked or cpu \(got fast\)$/,
  );
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

Deno.test("attention plans fit every head size in 32 KiB and 16 KiB, and reject the rest in one line", () => {
  for (let hs = 4; hs <= 128; hs += 4) {
    for (const budget of [32768, 16384]) {
      const hs4 = hs / 4, nc = Math.ceil(hs4 / 8);
      const f = forwardPlan(hs, budget), q = dqPlan(hs, budget), k = dkdvPlan(hs, budget);
      const qs = dqPlan(hs, budget, true); // stored dS: K rows only in `stage`
      const fBR = 32 * f.RV, fBC = 32 * f.KV, qBR = 32 * q.RV, kBQ = 32 * k.RV, qsBR = 32 * qs.RV;
      const checks: [string, boolean][] = [
        ["forward bytes", 16 * (f.STAGE + fBC * fBR / 4 + fBR / 4) <= budget],
        ["forward stage", f.STAGE >= f.BD * (fBR + fBC) / 4 && f.STAGE >= f.KC * hs4 && fBC % f.KC === 0],
        ["dq bytes", 16 * (q.STAGE + 32 * qBR / 4) <= budget],
        ["dq stage", q.STAGE >= q.BD * (2 * qBR + 64) / 4 && q.STAGE >= q.KC * hs4 && 32 % q.KC === 0],
        ["dq stored-dS bytes", 16 * (qs.STAGE + 32 * qsBR / 4) <= budget],
        ["dq stored-dS stage", qs.STAGE >= qs.KC * hs4 && 32 % qs.KC === 0 && qs.KC >= q.KC],
        ["dkdv bytes", 16 * (k.STAGE + 2 * kBQ * 8 + kBQ / 2) <= budget],
        ["dkdv stage", k.STAGE >= k.BD * (64 + 2 * kBQ) / 4 && k.STAGE >= 2 * k.QC * hs4 && kBQ % k.QC === 0],
        ["chunk dims", hs % f.BD === 0 && hs % q.BD === 0 && hs % k.BD === 0],
        ["registers", f.RV * nc <= 4 && q.RV * nc <= 4 && k.RV * nc <= 4 && qs.RV * nc <= 4],
      ];
      for (const [what, ok] of checks) {
        if (!ok) throw new Error(`${what}: HS ${hs}, budget ${budget}: ${JSON.stringify({ f, q, qs, k })}`);
      }
    }
  }
  for (const [hs, budget] of [[132, 32768], [18, 32768], [0, 32768], [64, 4096]]) {
    for (const plan of [forwardPlan, dqPlan, dkdvPlan]) {
      let msg = "";
      try {
        plan(hs, budget);
      } catch (e) {
        msg = (e as Error).message;
      }
      if (!/^attention: [^\n]+$/.test(msg)) {
        throw new Error(`${plan.name} HS ${hs} budget ${budget}: '${msg}'`);
      }
    }
  }
});
