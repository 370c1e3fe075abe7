import { assertClose, dot, finiteDiff, testGpu } from "./helpers.ts";
import { createStorage, readF32, readU32, upload } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import {
  encoderBackward,
  encoderForward,
  encoderScratchBytes,
  encoderScratchLayout,
} from "../src/kernels/encoder.ts";
import * as ref from "../src/reference/encoder.ts";
import { Rng } from "../src/util/rng.ts";

interface Shape {
  B: number;
  T: number;
  C: number;
  V: number;
}

const GUARD = 256; // bytes of guard before and after each gradient binding (a valid offset alignment)
const GUARD_VALUE = -777.25;

/** Tokens: half drawn from a few "frequent" ids (long runs in the sort), half uniform in [0, V). */
function makeTokens(rng: Rng, N: number, V: number): Uint32Array {
  const frequent = [rng.int(V), rng.int(V), rng.int(V)];
  const t = new Uint32Array(N);
  for (let i = 0; i < N; i++) t[i] = rng.uniform() < 0.5 ? frequent[rng.int(3)] : rng.int(V);
  return t;
}

/**
 * A gradient buffer holding `prefill` at byte offset GUARD, guarded on both sides. The binding also covers
 * the `extra` guard floats after it (spare rows, as in a padded arena): the kernel must not touch them.
 */
function guarded(
  gpu: Gpu,
  label: string,
  prefill: Float32Array,
  extra = 0,
): { buf: GPUBuffer; bind: GPUBufferBinding } {
  const n = prefill.length;
  const all = new Float32Array(GUARD / 4 + n + extra + GUARD / 4).fill(GUARD_VALUE);
  all.set(prefill, GUARD / 4);
  const buf = upload(gpu, label, all);
  return { buf, bind: { buffer: buf, offset: GUARD, size: (n + extra) * 4 } };
}

/** Reads a guarded buffer back; throws if a guard float changed. */
async function readGuarded(gpu: Gpu, label: string, buf: GPUBuffer, n: number): Promise<Float32Array> {
  const all = await readF32(gpu, buf);
  const g = GUARD / 4;
  for (let i = 0; i < all.length; i++) {
    if ((i < g || i >= g + n) && all[i] !== GUARD_VALUE) {
      throw new Error(`${label}: write outside the binding at float ${i - g} (${all[i]})`);
    }
  }
  return all.slice(g, g + n);
}

interface BackwardResult {
  dwte: Float32Array;
  dwpe: Float32Array;
  sorted: Uint32Array;
}

async function runBackward(
  gpu: Gpu,
  s: Shape,
  tokens: GPUBuffer,
  dout: GPUBuffer,
  dwte0: Float32Array,
  dwpe0: Float32Array,
  scratchSeed: number,
): Promise<BackwardResult> {
  // dwte's binding has two spare rows past V and dwpe's one past T: none may be written.
  const dwte = guarded(gpu, "dwte", dwte0, 2 * s.C), dwpe = guarded(gpu, "dwpe", dwpe0, s.C);
  // Scratch starts as garbage: the backward must not depend on its contents.
  const sr = new Rng(scratchSeed);
  const junk = new Uint32Array(encoderScratchBytes(s) / 4).map(() => sr.nextU32());
  const scratch = upload(gpu, "scratch", junk);
  const ds = await encoderBackward(gpu, { dwte: dwte.bind, dwpe: dwpe.bind, dout, tokens, scratch }, s);
  submitDispatches(gpu, ds, "test");
  const L = encoderScratchLayout(s);
  const result = {
    dwte: await readGuarded(gpu, "dwte", dwte.buf, s.V * s.C),
    dwpe: await readGuarded(gpu, "dwpe", dwpe.buf, s.T * s.C),
    sorted: await readU32(gpu, scratch, L.sorted, s.B * s.T),
  };
  for (const b of [dwte.buf, dwpe.buf, scratch]) b.destroy();
  return result;
}

function sameBits(label: string, a: Float32Array, b: Float32Array): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) throw new Error(`${label}: run 2 differs from run 1 at [${i}]: ${a[i]} vs ${b[i]}`);
  }
}

/** Forward and backward on the GPU against the reference, plus determinism and untouched-row checks. */
async function checkShape(s: Shape, tok: Uint32Array, seed: number): Promise<void> {
  const gpu = await testGpu();
  const { B, T, C, V } = s;
  const N = B * T;
  const rng = new Rng(seed);
  const wteH = rng.uniformArray(V * C), wpeH = rng.uniformArray((T + 2) * C); // wpe has spare rows
  // wte's buffer has two spare rows past V holding 1e30: a token >= V must not read them.
  const wteBig = new Float32Array((V + 2) * C).fill(1e30);
  wteBig.set(wteH);
  const doutH = rng.uniformArray(N * C);
  const dwte0 = rng.uniformArray(V * C, -2, 2), dwpe0 = rng.uniformArray(T * C, -2, 2);
  const tag = `B=${B} T=${T} C=${C} V=${V}`;

  // Forward: out pre-filled with garbage so unwritten elements show.
  const tokens = upload(gpu, "tokens", tok);
  const wte = upload(gpu, "wte", wteBig), wpe = upload(gpu, "wpe", wpeH);
  const out = upload(gpu, "out", new Float32Array(N * C).fill(12345));
  submitDispatches(gpu, [await encoderForward(gpu, { out, tokens, wte, wpe }, s)], "test");
  const y = await readF32(gpu, out);
  assertClose(`encoder fwd ${tag}`, y, ref.encoderForward(tok, wteH, wpeH, B, T, C), {
    atol: 3e-7,
    rtol: 1e-6,
  });

  // Backward, twice with different scratch garbage: bitwise identical.
  const dout = upload(gpu, "dout", doutH);
  const r1 = await runBackward(gpu, s, tokens, dout, dwte0, dwpe0, seed + 1);
  const r2 = await runBackward(gpu, s, tokens, dout, dwte0, dwpe0, seed + 2);
  const g = ref.encoderBackward(doutH, tok, B, T, C, V);
  const counts = new Array<number>(V).fill(0);
  for (const t of tok) if (t < V) counts[t]++;
  const atol = 1e-6 * (2 + Math.sqrt(Math.max(B, ...counts)));
  assertClose(`encoder dwte ${tag}`, r1.dwte, g.dwte.map((x, i) => x + dwte0[i]), { atol, rtol: 1e-5 });
  assertClose(`encoder dwpe ${tag}`, r1.dwpe, g.dwpe.map((x, i) => x + dwpe0[i]), { atol, rtol: 1e-5 });
  sameBits(`dwte ${tag}`, r1.dwte, r2.dwte);
  sameBits(`dwpe ${tag}`, r1.dwpe, r2.dwpe);

  // Rows of tokens that never occur are untouched, bit for bit.
  for (let v = 0; v < V; v++) {
    if (counts[v] > 0) continue;
    sameBits(`absent row ${v}`, r1.dwte.subarray(v * C, (v + 1) * C), dwte0.subarray(v * C, (v + 1) * C));
  }

  // The sort is stable: positions ordered by (min(token, V), position).
  const want = Array.from({ length: N }, (_, i) => i);
  want.sort((a, b) => Math.min(tok[a], V) - Math.min(tok[b], V) || a - b);
  const bad = want.findIndex((p, i) => r1.sorted[i] !== p);
  if (bad >= 0) throw new Error(`sorted order ${tag}: [${bad}] = ${r1.sorted[bad]}, want ${want[bad]}`);

  for (const b of [tokens, wte, wpe, out, dout]) b.destroy();
}

Deno.test("reference encoder backward equals finite differences of its forward", () => {
  const [B, T, C, V] = [2, 3, 2, 4];
  const rng = new Rng(7);
  const tokens = [1, 3, 1, 9, 0, 1]; // repeats and one id >= V
  const wte = rng.uniformArray(V * C), wpe = rng.uniformArray(T * C), w = rng.uniformArray(B * T * C);
  const g = ref.encoderBackward(w, tokens, B, T, C, V);
  const fdWte = finiteDiff((p) => dot(ref.encoderForward(tokens, p, wpe, B, T, C), w), wte);
  const fdWpe = finiteDiff((p) => dot(ref.encoderForward(tokens, wte, p, B, T, C), w), wpe);
  assertClose("encoder fd dwte", g.dwte, fdWte, { atol: 1e-8, rtol: 1e-6 });
  assertClose("encoder fd dwpe", g.dwpe, fdWpe, { atol: 1e-8, rtol: 1e-6 });
});

const shapes: Shape[] = [
  { B: 1, T: 1, C: 1, V: 1 },
  { B: 2, T: 5, C: 7, V: 3 },
  { B: 3, T: 17, C: 33, V: 11 },
  { B: 4, T: 300, C: 8, V: 2 }, // many positions per token, 5 sort chunks, buckets over many segments, vec4
  { B: 2, T: 20, C: 12, V: 5000 }, // V >> B*T, two radix passes
  { B: 4, T: 300, C: 5, V: 700 }, // two radix passes over several chunks
  { B: 2, T: 70, C: 130, V: 50 }, // two column blocks
  { B: 257, T: 256, C: 1, V: 3 }, // 257 sort chunks: the per-digit scan over chunks takes two tiles
];

for (const [i, s] of shapes.entries()) {
  Deno.test(`encoder forward and backward match reference, B=${s.B} T=${s.T} C=${s.C} V=${s.V}`, async () => {
    const seed = 100 + i;
    await checkShape(s, makeTokens(new Rng(seed * 31), s.B * s.T, s.V), seed);
  });
}

Deno.test("encoder: out-of-range tokens give a zero embedding and touch no dwte row", async () => {
  // Tokens V, V+1 and 0xffffffff are out of range. V = 255 puts the out-of-range bucket in the top digit
  // of a single radix pass; V = 256 needs a second pass just for it. B*T = 270 spreads that bucket over
  // two segments of the sorted order; B*T <= 128 keeps it inside one. C = 4 takes the vec4 forward.
  for (
    const s of [
      { B: 3, T: 90, C: 4, V: 5 },
      { B: 3, T: 90, C: 3, V: 256 },
      { B: 2, T: 25, C: 3, V: 5 },
      { B: 2, T: 25, C: 4, V: 255 },
      { B: 1, T: 50, C: 5, V: 256 },
    ]
  ) {
    const V = s.V;
    const tok = makeTokens(new Rng(V), s.B * s.T, V);
    for (let i = 0; i < tok.length; i += 7) tok[i] = [V, V + 1, 0xffffffff][i % 3];
    await checkShape(s, tok, 500 + V + s.B);
  }
  // And directly: an out-of-range token's output row equals its wpe row exactly.
  const gpu = await testGpu();
  const s = { B: 1, T: 3, C: 3, V: 2 };
  const tokens = upload(gpu, "tokens", new Uint32Array([2, 0xffffffff, 1]));
  const wteH = new Rng(9).uniformArray(6), wpeH = new Rng(10).uniformArray(9);
  const wte = upload(gpu, "wte", wteH), wpe = upload(gpu, "wpe", wpeH);
  const out = createStorage(gpu, "out", 9 * 4, new Float32Array(9).fill(12345));
  submitDispatches(gpu, [await encoderForward(gpu, { out, tokens, wte, wpe }, s)], "test");
  const y = await readF32(gpu, out);
  for (let i = 0; i < 6; i++) {
    if (y[i] !== wpeH[i]) throw new Error(`out[${i}] = ${y[i]}, want wpe ${wpeH[i]}`);
  }
  assertClose("in-range row", y.subarray(6), [0, 1, 2].map((c) => Math.fround(wteH[3 + c] + wpeH[6 + c])), {
    atol: 0,
    rtol: 0,
  });
});

Deno.test("encoder backward rejects a scratch buffer that is too small", async () => {
  const gpu = await testGpu();
  const s = { B: 2, T: 4, C: 3, V: 5 };
  const f = (n: number) => createStorage(gpu, "b", n * 4);
  const scratch = createStorage(gpu, "scratch", encoderScratchBytes(s) - 4);
  let threw = false;
  try {
    await encoderBackward(gpu, { dwte: f(15), dwpe: f(12), dout: f(24), tokens: f(8), scratch }, s);
  } catch (e) {
    threw = /scratch/.test((e as Error).message);
  }
  if (!threw) throw new Error("expected a scratch-size error");
});

Deno.test("encoder by vocabulary slices (a split wte) equals the whole: forward bit for bit, dwte by rows", async () => {
  // V = 300 in slices of 128, 128 and 44 rows (two radix passes); B*T = 270 spans segments of the sort.
  const gpu = await testGpu();
  const s = { B: 3, T: 90, C: 4, V: 300 };
  const { B, T, C, V } = s, N = B * T, rows = [[0, 128], [128, 128], [256, 44]];
  const rng = new Rng(31);
  const tok = makeTokens(rng, N, V);
  for (let i = 0; i < N; i += 11) tok[i] = V + (i % 2); // out of range: zero embedding, no dwte row
  const wteH = rng.uniformArray(V * C), wpeH = rng.uniformArray(T * C), doutH = rng.uniformArray(N * C);
  const dwte0 = rng.uniformArray(V * C, -2, 2);
  const tokens = upload(gpu, "tokens", tok),
    wpe = upload(gpu, "wpe", wpeH),
    dout = upload(gpu, "dout", doutH);
  // Each slice in a buffer of its own, as a split arena holds them.
  const part = (h: Float32Array, [r0, n]: number[]) => h.slice(r0 * C, (r0 + n) * C);
  const forward = async (slices: number[][]) => {
    const out = upload(gpu, "out", new Float32Array(N * C).fill(12345));
    const ds = [];
    for (const [r0, n] of slices) {
      const wte = upload(gpu, "wte", part(wteH, [r0, n]));
      const slice = slices.length > 1 ? { slice: { row0: r0, rows: n } } : {};
      ds.push(await encoderForward(gpu, { out, tokens, wte, wpe }, { ...s, ...slice }));
    }
    submitDispatches(gpu, ds, "test");
    return await readF32(gpu, out);
  };
  sameBits("forward by slices", await forward(rows), await forward([[0, V]]));

  const backward = async (slices: number[][]) => {
    const bufs = slices.map((r) => upload(gpu, "dwte", part(dwte0, r)));
    const dwte = slices.map(([row0, rows], k) => ({ dwte: bufs[k] as GPUBuffer, row0, rows }));
    const dwpe = createStorage(gpu, "dwpe", T * C * 4);
    const scratch = createStorage(gpu, "scratch", encoderScratchBytes(s));
    const bound = slices.length > 1 ? dwte : dwte[0].dwte;
    submitDispatches(
      gpu,
      await encoderBackward(gpu, { dwte: bound, dwpe, dout, tokens, scratch }, s),
      "test",
    );
    const out = new Float32Array(V * C);
    for (const [k, [r0]] of slices.entries()) out.set(await readF32(gpu, bufs[k]), r0 * C);
    return out;
  };
  const whole = await backward([[0, V]]);
  sameBits("dwte by slices", await backward(rows), whole);
  const g = ref.encoderBackward(doutH, tok, B, T, C, V);
  assertClose("dwte by slices vs reference", whole, g.dwte.map((x, i) => x + dwte0[i]), {
    atol: 1e-5,
    rtol: 1e-5,
  });
});
