import { rejects } from "node:assert/strict";
import { assertClose, dot, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, upload } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import {
  addInPlace,
  dropoutBackward,
  dropoutForward,
  residualDropoutForward,
  residualForward,
} from "../src/kernels/residual.ts";
import * as ref from "../src/reference/residual.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;
const f = Math.fround;

/** Nonzero values of both signs, |x| in [0.5, 1.5), so a dropped element (0) is never ambiguous. */
function nonzero(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng.uniform() < 0.5 ? -1 : 1) * (0.5 + rng.uniform());
  return x;
}

/** Asserts bitwise equality (as f32) and prints the count compared. */
function assertExact(label: string, got: Float32Array, want: ArrayLike<number>): void {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length} != ${want.length}`);
  const bad: string[] = [];
  let nBad = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], f(want[i]))) {
      nBad++;
      if (bad.length < 6) bad.push(`[${i}] got ${got[i]} want ${f(want[i])}`);
    }
  }
  if (nBad) throw new Error(`${label}: ${nBad} of ${got.length} differ: ${bad.join(", ")}`);
  console.log(`${label}: n=${got.length} bitwise equal`);
}

/** What the GPU computes for a dropout in f32: x * f32(scale) where kept (correctly rounded), else 0. */
function dropoutF32(x: ArrayLike<number>, p: number, seed: number, stream: number): Float32Array {
  const scale = f(p < 1 ? 1 / (1 - p) : 0);
  return Float32Array.from(x, (v, i) => ref.dropoutKeep(p, seed, stream, i) ? f(v * scale) : 0);
}

/** The u32 rng buffer the trainer keeps: the step's seed in element 0. */
const seedBuf = (gpu: Gpu, seed: number) => upload(gpu, "rng", Uint32Array.of(seed, 0, 0, 0));

Deno.test("reference dropout backward equals finite differences of its forward", () => {
  const rng = new Rng(3);
  const x = rng.uniformArray(50), w = rng.uniformArray(50);
  for (const p of [0, 0.3]) {
    const g = ref.dropoutBackward(w, p, 0xdeadbeef, 9);
    const fd = finiteDiff((q) => dot(ref.dropoutForward(q, p, 0xdeadbeef, 9), w), x);
    assertClose(`dropout fd p=${p}`, g, fd, { atol: 1e-8, rtol: 1e-7 });
  }
  const fdRes = finiteDiff((q) => dot(ref.residualDropoutForward(x, q, 0.3, 1, 2), w), x);
  assertClose("residual+dropout fd (b)", ref.dropoutBackward(w, 0.3, 1, 2), fdRes, {
    atol: 1e-8,
    rtol: 1e-7,
  });
  const fdA = finiteDiff((q) => dot(ref.residualForward(q, x), w), x);
  assertClose("residual fd (a)", w, fdA, { atol: 1e-8, rtol: 1e-7 });
  const acc = Float64Array.from(x);
  assertClose("addInPlace", ref.addInPlace(acc, w), Float64Array.from(x, (v, i) => v + w[i]), {
    atol: 0,
    rtol: 0,
    quiet: true,
  });
});

for (const n of [1, 7, 1000, 70_001]) {
  Deno.test(`residual add and addInPlace match reference, n=${n}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n + 11);
    const av = rng.uniformArray(n, -3, 3), bv = rng.uniformArray(n, -3, 3);
    const a = upload(gpu, "a", av), b = upload(gpu, "b", bv);
    const out = upload(gpu, "out", new Float32Array(n).fill(GARBAGE));
    const y = await runAndRead(gpu, [await residualForward(gpu, { out, a, b }, n)], out);
    assertClose(`residual n=${n}`, y, ref.residualForward(av, bv), { atol: 1e-6, rtol: 1e-7 });
    assertExact(`residual f32 n=${n}`, y, Float32Array.from(av, (v, i) => v + bv[i]));
    const acc = upload(gpu, "acc", av);
    const z = await runAndRead(gpu, [await addInPlace(gpu, { acc, inp: b }, n)], acc);
    assertClose(`addInPlace n=${n}`, z, ref.addInPlace(Float64Array.from(av), bv), {
      atol: 1e-6,
      rtol: 1e-7,
    });
  });
}

for (
  const [n, p] of [[1, 0.5], [7, 0.2], [1000, 0.2], [70_001, 0.2], [5000, 0.75], [4000, 1 / 3], [3000, 1]]
) {
  Deno.test(`dropout forward/backward masks equal the CPU twin bit for bit, n=${n} p=${p.toFixed(3)}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n * 7 + 1);
    const seed = 0x9e3779b9 ^ n, stream = 3 + n;
    const x = nonzero(rng, n), dy = nonzero(rng, n), base = rng.uniformArray(n, -2, 2);
    const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy), a = upload(gpu, "a", base);
    const rngBuf = seedBuf(gpu, seed);
    const out = upload(gpu, "out", new Float32Array(n).fill(GARBAGE));
    const dinp = upload(gpu, "dinp", new Float32Array(n).fill(GARBAGE));
    const s = { n, p, stream };
    const y = await runAndRead(gpu, [await dropoutForward(gpu, { out, inp, rng: rngBuf }, s)], out);
    const dx = await runAndRead(gpu, [await dropoutBackward(gpu, { dinp, dout, rng: rngBuf }, s)], dinp);
    const tag = `n=${n} p=${p.toFixed(3)}`;
    // The mask: exactly the reference's keep decisions (inputs are never 0).
    let mismatches = 0, kept = 0;
    for (let i = 0; i < n; i++) {
      const k = ref.dropoutKeep(p, seed, stream, i);
      if ((y[i] !== 0) !== k || (dx[i] !== 0) !== k) mismatches++;
      if (k) kept++;
    }
    if (mismatches) throw new Error(`${tag}: ${mismatches} mask mismatches`);
    assertExact(`dropout fwd ${tag}`, y, dropoutF32(x, p, seed, stream));
    assertExact(`dropout bwd ${tag}`, dx, dropoutF32(dy, p, seed, stream));
    assertClose(`dropout fwd vs f64 ${tag}`, y, ref.dropoutForward(x, p, seed, stream), {
      atol: 0,
      rtol: 1e-7,
    });
    assertClose(`dropout bwd vs f64 ${tag}`, dx, ref.dropoutBackward(dy, p, seed, stream), {
      atol: 0,
      rtol: 1e-7,
    });
    // The fused residual + dropout uses the same mask.
    const out2 = upload(gpu, "out2", new Float32Array(n).fill(GARBAGE));
    const z = await runAndRead(gpu, [
      await residualDropoutForward(gpu, { out: out2, a, b: inp, rng: rngBuf }, s),
    ], out2);
    const drop = dropoutF32(x, p, seed, stream);
    assertExact(`residual+dropout ${tag}`, z, Float32Array.from(base, (v, i) => v + drop[i]));
    assertClose(`residual+dropout vs f64 ${tag}`, z, ref.residualDropoutForward(base, x, p, seed, stream), {
      atol: 1e-6,
      rtol: 1e-6,
    });
    console.log(`${tag}: kept ${kept}`);
  });
}

Deno.test("dropout p=0 is the identity", async () => {
  const gpu = await testGpu();
  const n = 3001;
  const x = new Rng(8).uniformArray(n, -4, 4);
  const inp = upload(gpu, "inp", x), out = upload(gpu, "out", new Float32Array(n).fill(GARBAGE));
  const y = await runAndRead(gpu, [
    await dropoutForward(gpu, { out, inp, rng: seedBuf(gpu, 77) }, { n, p: 0, stream: 1 }),
  ], out);
  assertExact("p=0 forward", y, x);
  assertExact("p=0 reference", Float32Array.from(ref.dropoutForward(x, 0, 77, 1)), x);
});

Deno.test("dropout keeps a fraction 1-p of a large array (6 sigma), reference and GPU", async () => {
  const gpu = await testGpu();
  const n = 1 << 20;
  const inp = upload(gpu, "ones", new Float32Array(n).fill(1));
  const out = createStorage(gpu, "out", n * 4);
  for (const [p, seed, stream] of [[0.2, 1, 0], [0.5, 0xffffffff, 12], [0.9, 42, 7]]) {
    const y = await runAndRead(gpu, [
      await dropoutForward(gpu, { out, inp, rng: seedBuf(gpu, seed) }, { n, p, stream }),
    ], out);
    let kept = 0;
    for (let i = 0; i < n; i++) if (y[i] !== 0) kept++;
    const frac = kept / n, sigma = Math.sqrt(p * (1 - p) / n);
    console.log(`p=${p}: kept ${frac.toFixed(5)} (expect ${1 - p}, sigma ${sigma.toExponential(2)})`);
    if (Math.abs(frac - (1 - p)) > 6 * sigma) {
      throw new Error(`p=${p}: kept fraction ${frac} too far from ${1 - p}`);
    }
    // The expectation is preserved: mean of dropout(ones) ~ 1.
    let sum = 0;
    for (let i = 0; i < n; i++) sum += y[i];
    const meanTol = 6 * Math.sqrt(p / (1 - p) / n);
    if (Math.abs(sum / n - 1) > meanTol) throw new Error(`p=${p}: mean ${sum / n} not ~1`);
  }
});

Deno.test("different seeds and streams give different masks; a new seed in rng[0] takes effect", async () => {
  const gpu = await testGpu();
  const n = 20_000, p = 0.5;
  const inp = upload(gpu, "ones", new Float32Array(n).fill(1));
  const out = createStorage(gpu, "out", n * 4);
  const rngBuf = seedBuf(gpu, 1000);
  const d = await dropoutForward(gpu, { out, inp, rng: rngBuf }, { n, p, stream: 5 });
  const maskOf = (y: Float32Array) => Array.from(y, (v) => v !== 0);
  const m1 = maskOf(await runAndRead(gpu, [d], out));
  // The trainer's per-step seed update: one writeBuffer, same dispatch.
  gpu.device.queue.writeBuffer(rngBuf, 0, Uint32Array.of(1001));
  const m2 = maskOf(await runAndRead(gpu, [d], out));
  const d3 = await dropoutForward(gpu, { out, inp, rng: rngBuf }, { n, p, stream: 6 });
  const m3 = maskOf(await runAndRead(gpu, [d3], out));
  const want = (seed: number, stream: number) =>
    Array.from({ length: n }, (_, i) => ref.dropoutKeep(p, seed, stream, i));
  const same = (x: boolean[], y: boolean[]) => x.every((v, i) => v === y[i]);
  if (!same(m1, want(1000, 5)) || !same(m2, want(1001, 5)) || !same(m3, want(1001, 6))) {
    throw new Error("GPU mask differs from the reference mask");
  }
  const frac = (x: boolean[], y: boolean[]) => x.filter((v, i) => v !== y[i]).length / n;
  // Independent masks disagree on 2p(1-p) = 0.5 of the elements.
  for (const [label, fr] of [["seed", frac(m1, m2)], ["stream", frac(m2, m3)]] as const) {
    console.log(`masks differing by ${label}: ${fr.toFixed(4)} of elements differ`);
    if (Math.abs(fr - 0.5) > 6 * Math.sqrt(0.25 / n)) throw new Error(`${label}: masks not independent`);
  }
});

Deno.test("dropout rejects p outside [0, 1] and a non-u32 stream", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "b", 16);
  const cases = [
    [{ n: 4, p: -0.1, stream: 0 }, "dropout p must be in [0, 1] (got -0.1)"],
    [{ n: 4, p: 1.5, stream: 0 }, "dropout p must be in [0, 1] (got 1.5)"],
    [{ n: 4, p: 0.1, stream: -1 }, "stream must be a u32 (got -1)"],
  ] as const;
  for (const [s, message] of cases) {
    await rejects(async () => await dropoutForward(gpu, { out: buf, inp: buf, rng: buf }, s), {
      message: `dropout_forward: ${message}`,
    });
  }
});
