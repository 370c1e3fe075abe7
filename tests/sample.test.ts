import assert, { rejects } from "node:assert/strict";
import { assertClose, testGpu } from "./helpers.ts";
import { createStorage, readU32, upload } from "../src/gpu/buffers.ts";
import { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { argmax, keepThreshold, sample } from "../src/kernels/sample.ts";
import { hash3, uniform01 } from "../src/util/hash.ts";
import * as ref from "../src/reference/sample.ts";
import { Rng } from "../src/util/rng.ts";
import { byteToUnicode } from "../src/data/gpt2.ts";
import { encodeSafetensors } from "../src/io/safetensors.ts";
import { SAMPLE_SEPARATOR } from "../src/train/sample.ts";
import { generatorOf, randomWeights, tinyGPT } from "./fixtures.ts";
import { expectCliError } from "./cli_run.ts";
import { Generator } from "../src/model/generate.ts";
import { trainTokenizer } from "../src/data/tokenizer.ts";

const GARBAGE = 0xdeadbeef;

/** Runs argmax or sample on logits [N, V] with seed `seed`; returns the tokens. */
async function gpuTokens(
  gpu: Gpu,
  x: Float32Array,
  N: number,
  V: number,
  opts: { seed: number; temperature: number; topK: number; stream: number; topP?: number } | null,
  stride = V,
): Promise<Uint32Array> {
  const logits = upload(gpu, "logits", x);
  const out = upload(gpu, "out", new Uint32Array(N).fill(GARBAGE));
  const d = opts === null ? await argmax(gpu, { out, logits }, { N, V, stride }) : await sample(
    gpu,
    { out, logits, rng: upload(gpu, "rng", new Uint32Array([opts.seed])) },
    { N, V, stride, temperature: opts.temperature, topK: opts.topK, topP: opts.topP, stream: opts.stream },
  );
  submitDispatches(gpu, [d], "test");
  const got = await readU32(gpu, out);
  logits.destroy();
  out.destroy();
  return got;
}

/**
 * 50 rows of 2000 seeded random logits (unique maxima): sampling with `opts` at each temperature must pick
 * their argmax. Returns the logits and the device for further checks.
 */
async function picksArgmax(
  seed: number,
  temperatures: number[],
  opts: { seed: number; topK: number; topP?: number; stream: number },
): Promise<{ gpu: Gpu; x: Float32Array; N: number; V: number; want: Uint32Array }> {
  const gpu = await testGpu();
  const N = 50, V = 2000;
  const x = new Rng(seed).normalArray(N * V, 2);
  const want = ref.argmax(x, N, V);
  for (const temperature of temperatures) {
    const got = await gpuTokens(gpu, x, N, V, { ...opts, temperature });
    assertClose(`argmax: ${JSON.stringify({ ...opts, temperature })}`, got, want, { atol: 0, rtol: 0 });
  }
  return { gpu, x, N, V, want };
}

function row(x: Float32Array, n: number, V: number): Float32Array {
  return x.subarray(n * V, (n + 1) * V);
}

Deno.test("reference argmax and sampleRow on hand-worked rows", () => {
  const a = ref.argmax([1, 3, 3, 2, -1, -1, -5, -1], 2, 4);
  assertClose("argmax ties -> first", a, [1, 0], { atol: 0, rtol: 0 });
  // p = [1, 2, 3, 4] / 10: cumulative 0.1, 0.3, 0.6, 1.0.
  const l = [0, Math.log(2), Math.log(3), Math.log(4)];
  const got = [0, 0.05, 0.1 - 1e-9, 0.15, 0.35, 0.65, 0.999].map((u) => ref.sampleRow(l, 1, 0, u));
  assertClose("sampleRow T=1", got, [0, 0, 0, 1, 2, 3, 3], { atol: 0, rtol: 0 });
  // top-k 2 keeps [3, 4] / 7: boundary at 3/7 = 0.4286.
  const k2 = [0, 0.42, 0.43, 0.99].map((u) => ref.sampleRow(l, 1, 2, u));
  assertClose("sampleRow K=2", k2, [2, 2, 3, 3], { atol: 0, rtol: 0 });
  // T = 0.5 squares the odds: [1, 4, 9, 16] / 30, cumulative 1/30, 5/30, 14/30.
  const t = [0.03, 0.034, 0.16, 0.17, 0.46, 0.47].map((u) => ref.sampleRow(l, 0.5, 0, u));
  assertClose("sampleRow T=0.5", t, [0, 1, 1, 2, 2, 3], { atol: 0, rtol: 0 });
  // K=1 with a tie at the maximum keeps both tied tokens, equally likely.
  const tie = [0.2, 0.49, 0.51, 0.9].map((u) => ref.sampleRow([1, 3, 3, 2], 1, 1, u));
  assertClose("sampleRow tie", tie, [1, 1, 2, 2], { atol: 0, rtol: 0 });
  // -0 and +0 are the same value: K=3 of [-1, -0, 0, 0.5, -2] keeps -0, 0, 0.5.
  const w = ref.sampleWeights([-1, -0, 0, 0.5, -2], 1, 3);
  assertClose("weights -0", w, [0, Math.exp(-0.5), Math.exp(-0.5), 1, 0], { atol: 1e-15, rtol: 0 });
});

Deno.test("gpu argmax matches reference, ties included", async () => {
  const gpu = await testGpu();
  for (const [N, V] of [[1, 1], [3, 2], [7, 65], [33, 1000], [3, 50304]]) {
    const rng = new Rng(N * 31 + V);
    const x = rng.normalArray(N * V, 3);
    for (let n = 0; n < N; n++) {
      const r = row(x, n, V);
      if (n % 3 === 1) { for (let v = 0; v < V; v++) r[v] = rng.int(4) - 2; // many ties of the max
       }
      if (n % 3 === 2 && V > 2) {
        const i = rng.int(V), j = rng.int(V); // two equal maxima anywhere, e.g. in different threads
        r[i] = r[j] = 100;
      }
    }
    if (N >= 3) row(x, 0, V).fill(-7); // an all-equal row -> 0
    const got = await gpuTokens(gpu, x, N, V, null);
    assertClose(`argmax N=${N} V=${V}`, got, ref.argmax(x, N, V), { atol: 0, rtol: 0 });
  }
});

interface SampleCase {
  N: number;
  V: number;
  temperature: number;
  topK: number;
  integer?: boolean; // integer-valued logits: many ties, also at the top-k threshold
  narrow?: boolean; // logits in [1, 1.001): equal top radix digits, the low digits decide top-k
  tail?: boolean; // V > 256^2: mass on the ids past the first 256 of each thread's chunk (2nd walk tile)
  topP?: number; // nucleus sampling (default 1: off)
}

const sampleCases: SampleCase[] = [
  { N: 301, V: 65, temperature: 1, topK: 0 },
  { N: 101, V: 1000, temperature: 0.7, topK: 50 },
  { N: 200, V: 300, temperature: 2, topK: 17, integer: true },
  { N: 50, V: 1000, temperature: 1, topK: 100, narrow: true }, // near-uniform over exactly the kept set
  { N: 40, V: 4099, temperature: 1.3, topK: 0 },
  { N: 40, V: 4099, temperature: 1, topK: 4098 },
  { N: 12, V: 50304, temperature: 1, topK: 0 },
  { N: 12, V: 50304, temperature: 0.8, topK: 40 },
  { N: 6, V: 50304, temperature: 1.5, topK: 30000 },
  { N: 6, V: 50304, temperature: 1, topK: 1234, narrow: true },
  { N: 3, V: 1, temperature: 1, topK: 0 },
  { N: 10, V: 70001, temperature: 1, topK: 0, tail: true },
  { N: 10, V: 70001, temperature: 1, topK: 5000, tail: true },
  { N: 301, V: 65, temperature: 1, topK: 0, topP: 0.3 },
  { N: 101, V: 1000, temperature: 0.7, topK: 50, topP: 0.9 },
  { N: 200, V: 300, temperature: 2, topK: 17, integer: true, topP: 0.5 },
  { N: 200, V: 300, temperature: 1, topK: 0, integer: true, topP: 0.8 },
  { N: 50, V: 1000, temperature: 1, topK: 0, narrow: true, topP: 0.5 },
  { N: 12, V: 50304, temperature: 0.8, topK: 0, topP: 0.95 },
  { N: 10, V: 70001, temperature: 1, topK: 0, tail: true, topP: 0.7 },
];

for (const c of sampleCases) {
  const { N, V, temperature, topK, topP = 1 } = c;
  const name = `N=${N} V=${V} T=${temperature} K=${topK}${c.topP === undefined ? "" : ` P=${topP}`}`;
  Deno.test(`gpu sample matches sampleRow with the same u, ${name}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(V * 13 + topK);
    const x = c.integer
      ? Float32Array.from({ length: N * V }, () => rng.int(40) - 20)
      : c.narrow
      ? rng.uniformArray(N * V, 1, 1.001)
      : rng.normalArray(N * V, 3);
    if (c.tail) {
      const chunk = Math.ceil(V / 256); // ids per thread in the shader's chunk walk
      for (let i = 0; i < N * V; i++) if ((i % V) % chunk >= 256) x[i] += 8;
    }
    const seed = rng.nextU32(), stream = 7;
    const got = await gpuTokens(gpu, x, N, V, { seed, temperature, topK, topP, stream });
    const r = { temperature, topK, topP };
    const thresholds = topP < 1 ? await gpuThresholds(gpu, x, N, V, r) : null;
    let excluded = 0, nucleusNear = 0;
    for (let n = 0; n < N; n++) {
      const l = row(x, n, V);
      const u = uniform01(hash3(seed, stream, n));
      let p = ref.sampleWeights(l, temperature, topK);
      if (thresholds !== null) {
        // Top-p: the kernel's kept set, checked against the reference's (equal but within the
        // fixed-point tolerance of a boundary), is the one the draw is made from.
        if (checkThreshold(nucleusRef(l, temperature, topK), V, r, thresholds[n], `row ${n}`)) nucleusNear++;
        p = p.map((w, i) => fkey(l[i]) >= thresholds[n] ? w : 0);
      }
      const want = ref.drawIndex(p, u);
      // Cumulative boundaries (float64): token i owns [cum[i] - p[i], cum[i]).
      const cum = new Float64Array(V);
      let total = 0;
      for (let i = 0; i < V; i++) cum[i] = total += p[i];
      // f32 sums of <= 256 exp terms are good to ~1e-6 relative (measured: no mismatch with margins
      // down to 2e-7); rows whose u * total lies closer than that to a boundary may go either way.
      const goal = u * total, delta = 2e-6 * total;
      const near = Math.min(goal - (cum[want] - p[want]), cum[want] - goal) < delta;
      if (!near) {
        if (got[n] !== want) throw new Error(`row ${n}: gpu ${got[n]} want ${want} (u=${u})`);
        continue;
      }
      // Within float rounding of a boundary: any kept token touching [goal - delta, goal + delta] is right.
      excluded++;
      const i = got[n];
      const ok = i < V && p[i] > 0 && cum[i] - p[i] <= goal + delta && cum[i] >= goal - delta;
      if (!ok) throw new Error(`row ${n} (near a boundary): gpu ${i} is not a neighbour of ${want}`);
    }
    const nucleus = thresholds === null
      ? ""
      : `; ${nucleusNear} kept sets within the tolerance of a boundary`;
    console.log(`sample ${name}: ${N - excluded} rows exact, ${excluded} near a boundary${nucleus}`);
    if (excluded > Math.max(2, 0.05 * N)) throw new Error(`too many rows near a boundary: ${excluded}/${N}`);
  });
}

Deno.test("gpu sample with top-k 1 equals argmax (unique maxima)", async () => {
  const { gpu, x, N, V, want } = await picksArgmax(5, [0.1, 1, 50], { seed: 99, topK: 1, stream: 0 });
  assertClose("argmax kernel", await gpuTokens(gpu, x, N, V, null), want, { atol: 0, rtol: 0 });
});

Deno.test("gpu sample never leaves the top k over many seeds, and reaches every tied token", async () => {
  const gpu = await testGpu();
  const V = 1000, K = 10, N = 500;
  const rng = new Rng(11);
  const base = rng.uniformArray(V, -4, 0);
  // Nine clear winners, then three tokens tied at the 10th value: 12 tokens are kept.
  const top = [3, 100, 257, 258, 511, 640, 700, 901, 999];
  top.forEach((i, j) => base[i] = 1 + 0.1 * j);
  const ties = [0, 256, 777];
  for (const i of ties) base[i] = 0.5;
  const kept = new Set([...top, ...ties]);
  const x = new Float32Array(N * V);
  for (let n = 0; n < N; n++) x.set(base, n * V);
  const seen = new Map<number, number>();
  for (let s = 0; s < 4; s++) {
    const got = await gpuTokens(gpu, x, N, V, { seed: 1000 + s, temperature: 3, topK: K, stream: s });
    for (const t of got) {
      if (!kept.has(t)) throw new Error(`picked token ${t} outside the top ${K}`);
      seen.set(t, (seen.get(t) ?? 0) + 1);
    }
  }
  for (const t of kept) if (!seen.has(t)) throw new Error(`kept token ${t} never picked in ${4 * N} draws`);
  console.log(`top-k support: ${4 * N} draws over ${seen.size} tokens`);
  // V = 50304, K = 40: a few rows, many seeds.
  const Vb = 50304, Kb = 40, Nb = 2;
  const xb = new Rng(12).normalArray(Nb * Vb, 1);
  const allowed = Array.from({ length: Nb }, (_, n) => new Set(topIndices(row(xb, n, Vb), Kb)));
  for (let s = 0; s < 3; s++) {
    const got = await gpuTokens(gpu, xb, Nb, Vb, { seed: 77 + s, temperature: 10, topK: Kb, stream: 1 });
    got.forEach((t, n) => {
      if (!allowed[n].has(t)) throw new Error(`V=50304: token ${t} of row ${n} outside the top ${Kb}`);
    });
  }
});

function topIndices(l: ArrayLike<number>, k: number): number[] {
  return Array.from(l, (v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, k).map((e) => e[1]);
}

Deno.test("gpu sample: empirical frequencies match the probabilities", async () => {
  const gpu = await testGpu();
  const V = 10, N = 12000;
  const base = Float32Array.from([0.3, -1, 2, 0.5, -0.2, 1.1, 0, -3, 0.9, 1.7]);
  const x = new Float32Array(N * V);
  for (let n = 0; n < N; n++) x.set(base, n * V);
  const cases = [[1, 0, 1], [0.6, 4, 1], [2.5, 0, 1], [1, 0, 0.7], [0.6, 0, 0.5], [2.5, 6, 0.8], [
    1,
    0,
    0.95,
  ]];
  for (const [temperature, topK, topP] of cases) {
    const seed = 4321 + topK + (topP < 1 ? Math.round(topP * 100) : 0);
    const got = await gpuTokens(gpu, x, N, V, { seed, temperature, topK, topP, stream: 2 });
    const counts = new Float64Array(V);
    for (const t of got) counts[t]++;
    // The renormalised nucleus distribution; the boundary must be clear of the fixed-point tolerance.
    const nr = nucleusRef(base, temperature, topK);
    if (topP < 1 && nucleusMargin(nr, topP) < 100 * massTolerance(nr, V)) {
      throw new Error("ambiguous case");
    }
    const p = ref.sampleWeights(base, temperature, topK, topP);
    const total = p.reduce((a, b) => a + b, 0);
    let chi2 = 0;
    for (let i = 0; i < V; i++) {
      const e = N * p[i] / total;
      if (e === 0) {
        if (counts[i] !== 0) throw new Error(`token ${i} has probability 0 but was drawn ${counts[i]} times`);
        continue;
      }
      const sd = Math.sqrt(e * (1 - p[i] / total));
      if (Math.abs(counts[i] - e) > 5 * sd) {
        throw new Error(
          `T=${temperature} K=${topK} P=${topP} token ${i}: ${counts[i]} draws, expected ${e.toFixed(1)}`,
        );
      }
      chi2 += (counts[i] - e) ** 2 / e;
    }
    // Degrees of freedom <= 9: chi2 > 33 has p < 1e-4.
    console.log(`T=${temperature} K=${topK} P=${topP}: chi2 ${chi2.toFixed(2)}`);
    if (chi2 > 33) throw new Error(`chi-square ${chi2} too large`);
  }
});

Deno.test("a padded vocabulary's rows (stride > V): its padding never chosen, the rest as unpadded", async () => {
  const gpu = await testGpu();
  const N = 40, V = 300, S = 320; // as GPT-2's 50257 tokens in nanoGPT's 50304 rows, smaller
  const compact = new Rng(11).normalArray(N * V, 2);
  const padded = new Float32Array(N * S).fill(1e30); // padding that would win every selection if it were seen
  for (let n = 0; n < N; n++) padded.set(compact.subarray(n * V, n * V + V), n * S);
  const settings = [
    null,
    { seed: 5, temperature: 1, topK: 0, stream: 0 },
    { seed: 6, temperature: 0.7, topK: 20, stream: 1 },
    { seed: 7, temperature: 1.3, topK: 0, stream: 2, topP: 0.8 },
  ];
  // Greedy picks against the float64 reference's argmax; the sampled ones against the unpadded rows' (whose
  // sampler the tests above check against the reference's sampleRow).
  assert.deepEqual(
    Array.from(await gpuTokens(gpu, padded, N, V, null, S)),
    Array.from(ref.argmax(compact, N, V)),
  );
  for (const o of settings) {
    const want = await gpuTokens(gpu, compact, N, V, o);
    const got = await gpuTokens(gpu, padded, N, V, o, S);
    assert.deepEqual(Array.from(got), Array.from(want), JSON.stringify(o));
    assert.ok(got.every((t) => t < V));
  }
  const r = { temperature: 1, topK: 30, topP: 0.5 };
  const logits = upload(gpu, "logits", padded), out = upload(gpu, "out", new Uint32Array(N));
  submitDispatches(gpu, [await keepThreshold(gpu, { out, logits }, { N, V, stride: S, ...r })], "test");
  assert.deepEqual(
    Array.from(await readU32(gpu, out)),
    Array.from(await gpuThresholds(gpu, compact, N, V, r)),
  );
  await rejects(argmax(gpu, { out, logits }, { N, V, stride: V - 1 }), {
    message: `argmax: stride=${V - 1} must be an integer >= V=${V}`,
  });
});

Deno.test("sample rejects temperature 0 and bad top-k", async () => {
  const gpu = await testGpu();
  const b = createStorage(gpu, "b", 64);
  const cases = [
    [0, 0, "temperature 0 must be finite and > 0 (use argmax for 0)"],
    [-1, 0, "temperature -1 must be finite and > 0 (use argmax for 0)"],
    [Infinity, 0, "temperature Infinity must be finite and > 0 (use argmax for 0)"],
    [1, -1, "topK=-1 must be an integer >= 0"],
    [1, 2.5, "topK=2.5 must be an integer >= 0"],
  ] as const;
  for (const [temperature, topK, message] of cases) {
    await rejects(
      sample(gpu, { out: b, logits: b, rng: b }, { N: 1, V: 4, temperature, topK, stream: 0 }),
      { message: `sample: ${message}` },
    );
  }
  for (const topP of [0, -0.5, 1.5, NaN]) {
    const s = { N: 1, V: 4, temperature: 1, topK: 0, topP };
    await rejects(sample(gpu, { out: b, logits: b, rng: b }, { ...s, stream: 0 }), {
      message: `sample: topP=${topP} must be in (0, 1]`,
    });
    await rejects(keepThreshold(gpu, { out: b, logits: b }, s), {
      message: `keepThreshold: topP=${topP} must be in (0, 1]`,
    });
  }
  b.destroy();
});

// ---- top-p (nucleus) ----

/** The order-preserving u32 key of an f32, as shaders/sample.wgsl's fkey (-0 as +0). */
function fkey(x: number): number {
  let b = new Uint32Array(Float32Array.of(x).buffer)[0];
  if (b === 0x80000000) b = 0;
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/**
 * The reference's view of a row's nucleus for any P: the logit values top-k keeps (p > 0), largest first;
 * after each, the normalised cumulative probability and the count of tokens so far (a tied value's tokens
 * together); and `e`, the part of the kernel's error bound that does not grow with the tokens summed.
 */
interface NucleusRef {
  values: number[];
  cum: number[];
  tokens: number[];
  e: number;
}

function nucleusRef(l: ArrayLike<number>, temperature: number, topK: number): NucleusRef {
  const p = ref.sampleWeights(l, temperature, topK);
  const total = p.reduce((a, b) => a + b, 0);
  const mass = new Map<number, number>(), count = new Map<number, number>();
  let m = -Infinity, zMean = 0;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  for (let i = 0; i < l.length; i++) {
    if (p[i] === 0) continue;
    mass.set(l[i], (mass.get(l[i]) ?? 0) + p[i] / total);
    count.set(l[i], (count.get(l[i]) ?? 0) + 1);
    zMean += (p[i] / total) * ((m - l[i]) / temperature);
  }
  const values = [...mass.keys()].sort((a, b) => b - a);
  let run = 0, tokens = 0;
  // shaders/sample.wgsl, step 2b: e = (C + 12) 2^-24 + the relative error of the f32 p_i (2|z_i| ulp from
  // rounding the argument z_i = (l_i - max) / T, 4 ulp for exp, averaged over the probabilities), plus
  // P's f32 rounding 2^-24.
  const C = Math.ceil(l.length / 256);
  return {
    values,
    cum: values.map((v) => run += mass.get(v)!),
    tokens: values.map((v) => tokens += count.get(v)!),
    e: (C + 12 + 2 * zMean + 4) * 2 ** -24 + 2 ** -24,
  };
}

/** The kernel's bound on the error of the mass of n tokens, P's rounding included: e + (n + 1) 2^-31. */
function massTolerance(r: NucleusRef, n: number): number {
  return r.e + (n + 1) * 2 ** -31;
}

/** The kernel's keep threshold (a key) of each row of x [N, V]. */
async function gpuThresholds(gpu: Gpu, x: Float32Array, N: number, V: number, r: Restriction) {
  const logits = upload(gpu, "logits", x);
  const out = upload(gpu, "out", new Uint32Array(N).fill(GARBAGE));
  submitDispatches(gpu, [await keepThreshold(gpu, { out, logits }, { N, V, ...r })], "test");
  const t = await readU32(gpu, out);
  logits.destroy();
  out.destroy();
  return t;
}

/** The index of the last value the reference keeps at top-p P: the first whose cumulative reaches P. */
function referenceCut(cum: number[], topP: number): number {
  const g = cum.findIndex((c) => c >= topP);
  return topP >= 1 || g < 0 ? cum.length - 1 : g;
}

/** How far P lies from the reference's nucleus boundary: the mass above the cut and with it. */
function nucleusMargin(r: NucleusRef, topP: number): number {
  const g = referenceCut(r.cum, topP);
  return Math.min(r.cum[g] - topP, topP - (g > 0 ? r.cum[g - 1] : 0));
}

/**
 * Checks the kernel's keep threshold `t` (a key) of a row of V logits against the float64 reference
 * `nr`. The kept sets must be equal, except that every nucleus boundary between the two cuts may lie
 * within the documented tolerance of P. Returns whether the row was such a near case; throws on a wrong
 * threshold.
 */
function checkThreshold(nr: NucleusRef, V: number, r: Restriction, t: number, what: string): boolean {
  const { topK, topP } = r;
  if (t === 0) {
    if ((topK > 0 && topK < V) || topP < 1) throw new Error(`${what}: threshold 0 keeps all`);
    return false;
  }
  const h = nr.values.findIndex((v) => fkey(v) === t);
  if (h < 0) throw new Error(`${what}: threshold key ${t} is no kept logit's`);
  const g = referenceCut(nr.cum, topP);
  if (h === g) return false;
  for (let b = Math.min(h, g); b < Math.max(h, g); b++) {
    const tol = massTolerance(nr, nr.tokens[b]), off = Math.abs(nr.cum[b] - topP);
    if (off > tol) {
      throw new Error(
        `${what}: kernel keeps ${h + 1} values, reference ${g + 1}; cumulative ${nr.cum[b]} vs P ${topP} ` +
          `is ${off.toExponential(2)} away (tolerance ${tol.toExponential(2)})`,
      );
    }
  }
  return true;
}

interface Restriction {
  temperature: number;
  topK: number;
  topP: number;
}

Deno.test("reference top-p on hand-worked rows: the smallest nucleus, ties kept, after top-k", () => {
  // p = [1, 2, 3, 4] / 10, largest first 0.4, 0.7, 0.9, 1.
  const l = [0, Math.log(2), Math.log(3), Math.log(4)];
  const kept = (topK: number, topP: number, row: number[] = l) =>
    Array.from(ref.sampleWeights(row, 1, topK, topP), (p, i) => p > 0 ? i : -1).filter((i) => i >= 0);
  assert.deepEqual(kept(0, 0.39), [3]);
  assert.deepEqual(kept(0, 0.41), [2, 3]);
  assert.deepEqual(kept(0, 0.69), [2, 3]);
  assert.deepEqual(kept(0, 0.71), [1, 2, 3]);
  assert.deepEqual(kept(0, 0.95), [0, 1, 2, 3]);
  assert.deepEqual(kept(0, 1e-9), [3]);
  // Top-k 3 first: [2, 3, 4] / 9, largest first 0.444, 0.778: P = 0.43 keeps one, 0.45 two.
  assert.deepEqual(kept(3, 0.43), [3]);
  assert.deepEqual(kept(3, 0.45), [2, 3]);
  // Ties at the boundary are all kept: [1, 3, 3, 2] at a tiny P keeps both 3s.
  assert.deepEqual(kept(0, 1e-6, [1, 3, 3, 2]), [1, 2]);
  // Renormalised: P = 0.41 keeps [3, 4] / 7; u = 0.5 falls in 4's share [3/7, 1).
  assertClose("sampleRow P", [0.42, 0.43].map((u) => ref.sampleRow(l, 1, 0, u, 0.41)), [2, 3], {
    atol: 0,
    rtol: 0,
  });
});

Deno.test("gpu top-p keeps the reference's nucleus on random rows and P (tolerance only at boundaries)", async () => {
  const gpu = await testGpu();
  const shapes = [
    { N: 200, V: 65, temperature: 1, topKs: [0, 10], kind: "normal" },
    { N: 100, V: 1000, temperature: 0.7, topKs: [0, 50], kind: "normal" },
    { N: 100, V: 300, temperature: 2, topKs: [0, 17], kind: "integer" }, // ties everywhere
    { N: 30, V: 1000, temperature: 1, topKs: [0], kind: "narrow" }, // near-uniform, equal top digits
    { N: 8, V: 50304, temperature: 0.8, topKs: [0, 40], kind: "normal" },
  ];
  let rows = 0, near = 0, negatives = 0;
  for (const sh of shapes) {
    const { N, V, temperature } = sh;
    const rng = new Rng(V + N);
    const x = sh.kind === "integer"
      ? Float32Array.from({ length: N * V }, () => rng.int(40) - 20)
      : sh.kind === "narrow"
      ? rng.uniformArray(N * V, 1, 1.001)
      : rng.normalArray(N * V, 3);
    const logits = upload(gpu, "logits", x);
    const out = upload(gpu, "out", new Uint32Array(N));
    const ps = [1e-4, 0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1, rng.uniform(), rng.uniform()];
    for (const topK of sh.topKs) {
      const refs = Array.from({ length: N }, (_, n) => nucleusRef(row(x, n, V), temperature, topK));
      for (const topP of ps) {
        const r = { temperature, topK, topP };
        submitDispatches(gpu, [await keepThreshold(gpu, { out, logits }, { N, V, ...r })], "test");
        const t = await readU32(gpu, out);
        for (let n = 0; n < N; n++) {
          const nr = refs[n], what = `V=${V} K=${topK} P=${topP} row ${n}`;
          rows++;
          if (checkThreshold(nr, V, r, t[n], what)) {
            near++;
            continue;
          }
          // The check can fail: one more value kept is refused where the boundary is clear of P.
          const g = referenceCut(nr.cum, topP);
          if (topP < 1 && g + 1 < nr.values.length && nr.cum[g] - topP > massTolerance(nr, nr.tokens[g])) {
            assert.throws(() => checkThreshold(nr, V, r, fkey(nr.values[g + 1]), what));
            negatives++;
          }
        }
      }
    }
    logits.destroy();
    out.destroy();
  }
  console.log(
    `top-p threshold: ${rows} rows, ${near} within the tolerance of a boundary, ${negatives} negatives`,
  );
  assert.ok(near <= 0.01 * rows, `too many rows near a boundary: ${near}/${rows}`);
  assert.ok(negatives > 0.5 * rows, `too few negative checks: ${negatives}/${rows}`);
});

Deno.test("gpu top-p: a tiny P is argmax (unique maxima); P = 1 is bit for bit no top-p", async () => {
  const { gpu, x, N, V } = await picksArgmax(6, [0.5, 1, 20], { seed: 3, topK: 0, topP: 1e-7, stream: 0 });
  for (const topK of [0, 30]) {
    const opts = { seed: 17, temperature: 0.9, topK, stream: 4 };
    const a = await gpuTokens(gpu, x, N, V, opts);
    const b = await gpuTokens(gpu, x, N, V, { ...opts, topP: 1 });
    assertClose(`P=1 K=${topK}`, b, a, { atol: 0, rtol: 0 });
  }
});

// ---- the Generator and the `sample` command ----

Deno.test("Generator: topP is checked; a tiny topP is greedy decoding", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ block_size: 16, vocab_size: 40, bias: true });
  const gen = await generatorOf(gpu, c, randomWeights(c, 21), 2);
  for (const topP of [0, -0.1, 1.5, NaN]) {
    await rejects(gen.generate([1, 2], 4, { topP }), {
      message: `generate: topP must be in (0, 1] (got ${topP})`,
    });
  }
  await rejects(gen.generate([1], 4, { firstRow: -1 }), {
    message: "generate: firstRow must be an integer >= 0 (got -1)",
  });
  const greedy = await gen.generate([1, 2], 30, { temperature: 0 });
  assert.deepEqual(await gen.generate([1, 2], 30, { temperature: 1.3, topP: 1e-7, seed: 5 }), greedy);
  // Rows draw from the streams of rows firstRow + b.
  const a = await gen.generate([1, 2], 30, { temperature: 1, seed: 8 });
  const b = await gen.generate([1, 2], 30, { temperature: 1, seed: 8, firstRow: 2 });
  assert.notDeepEqual(a, b);
  assert.deepEqual(await gen.generate([1, 2], 30, { temperature: 1, seed: 8, topP: 1 }), a);
});

Deno.test("sample refuses a bad --top-p or --num-samples in one line, exit 2", async () => {
  const sm = ["sample", "--checkpoint", "/nonexistent/none.safetensors"];
  const cases: [string[], string][] = [
    [["--top-p", "0"], "--top-p must be in (0, 1] (got 0)"],
    [["--top-p", "1.5"], "--top-p must be in (0, 1] (got 1.5)"],
    [["--top-p", "-0.2"], "--top-p must be in (0, 1] (got -0.2)"],
    [["--top-p=nan"], "--top-p expects a number (got 'nan')"],
    [["--num-samples", "0"], "--num-samples must be a positive integer (got 0)"],
    [["--num-samples", "-2"], "--num-samples must be a positive integer (got -2)"],
    [["--num-samples", "1.5"], "--num-samples must be a positive integer (got 1.5)"],
  ];
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  for (const [args, msg] of cases) {
    await expectCliError([...sm, ...args], new RegExp(`^tforce sample: ${esc(msg)}$`));
  }
});

/**
 * Writes a small random GPT-2 in Hugging Face's layout into `dir`: config.json, model.safetensors
 * (GPT2LMHeadModel's names, Conv1D weights [in, out], the attention-mask buffers), vocab.json and
 * merges.txt (GPT-2's 256 byte tokens, three merges, <|endoftext|>).
 */
async function writeHfGpt2(dir: string): Promise<void> {
  const C = 16, L = 2, H = 2, T = 32;
  // GPT-2's byte token order: the printable bytes first, then the rest.
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  const order = [...Array(256).keys()].sort((a, b) => Number(printable(b)) - Number(printable(a)) || a - b);
  const vocab: Record<string, number> = {};
  order.forEach((b, id) => vocab[byteToUnicode(b)] = id);
  const merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"]];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  vocab["<|endoftext|>"] = Object.keys(vocab).length;
  const V = Object.keys(vocab).length;
  const rng = new Rng(77);
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const add = (name: string, shape: number[], one = 0) => {
    const data = rng.normalArray(shape.reduce((a, b) => a * b, 1), 0.3).map((x) => x + one);
    tensors.push({ name: `transformer.${name}`, shape, data });
    return data;
  };
  const wte = add("wte.weight", [V, C]);
  add("wpe.weight", [T, C]);
  for (let i = 0; i < L; i++) {
    const p = `h.${i}.`;
    for (const ln of ["ln_1", "ln_2"]) add(`${p}${ln}.weight`, [C], 1), add(`${p}${ln}.bias`, [C]);
    for (
      const [name, nin, nout] of [["attn.c_attn", C, 3 * C], ["attn.c_proj", C, C], ["mlp.c_fc", C, 4 * C], [
        "mlp.c_proj",
        4 * C,
        C,
      ]] as const
    ) {
      add(`${p}${name}.weight`, [nin, nout]);
      add(`${p}${name}.bias`, [nout]);
    }
    const mask = Float32Array.from({ length: T * T }, (_, j) => (j % T) <= Math.floor(j / T) ? 1 : 0);
    tensors.push({ name: `transformer.${p}attn.bias`, shape: [1, 1, T, T], data: mask });
  }
  add("ln_f.weight", [C], 1);
  add("ln_f.bias", [C]);
  tensors.push({ name: "lm_head.weight", shape: [V, C], data: wte });
  const config = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    activation_function: "gelu_new",
    n_layer: L,
    n_head: H,
    n_embd: C,
    n_positions: T,
    n_ctx: T,
    vocab_size: V,
    layer_norm_epsilon: 1e-5,
    n_inner: null,
    tie_word_embeddings: true,
  };
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  await Deno.writeFile(`${dir}/model.safetensors`, encodeSafetensors(tensors, { format: "pt" }));
  await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(vocab));
  await Deno.writeTextFile(
    `${dir}/merges.txt`,
    `#version: 0.2\n${merges.map((m) => m.join(" ")).join("\n")}\n`,
  );
}

/** `deno task sample ARGS` as a child process: its exit status, stdout and stderr. */
async function runSample(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command("deno", {
    args: ["run", "--allow-read", "cli.ts", "sample", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, out: text(r.stdout), err: text(r.stderr) };
}

Deno.test("sample from a Hugging Face GPT-2 folder with a prompt, --top-p and --num-samples", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-sample-hf-" });
  try {
    await writeHfGpt2(dir);
    const prompt = "the quick brown fox";
    const base = ["--checkpoint", dir, "--prompt", prompt, "--max-tokens", "40"]; // past the 32-token window
    const ok = async (args: string[]) => {
      const r = await runSample([...base, ...args]);
      assert.equal(r.code, 0, `sample ${args.join(" ")}: exit ${r.code}, ${r.err}`);
      assert.equal(r.err, "");
      return r.out;
    };
    // One sample: streamed, the prompt first, then a newline.
    const greedy = await ok(["--temperature", "0"]);
    assert.ok(
      greedy.startsWith(prompt) && greedy.endsWith("\n") && greedy.length > prompt.length + 1,
      greedy,
    );
    // A tiny nucleus holds only the likeliest token: greedy decoding at any temperature.
    assert.equal(await ok(["--temperature", "1.5", "--top-p", "1e-7"]), greedy);
    // Several samples: each whole, prompt included, then nanoGPT's line of dashes; independent draws.
    const out = await ok(["--temperature", "1", "--top-p", "0.9", "--num-samples", "3", "--seed", "7"]);
    const samples = out.split(`\n${SAMPLE_SEPARATOR}\n`);
    assert.equal(samples.pop(), "", `output ends with the separator line: ${JSON.stringify(out.slice(-40))}`);
    assert.equal(samples.length, 3, out);
    for (const s of samples) assert.ok(s.startsWith(prompt) && s.length > prompt.length, s);
    assert.equal(new Set(samples).size, 3, "three independent samples differ");
    assert.equal(
      await ok(["--temperature", "1", "--top-p", "0.9", "--num-samples", "3", "--seed", "7"]),
      out,
    );
    // At temperature 0 every sample is the greedy one.
    const two = await ok(["--temperature", "0", "--num-samples", "2"]);
    const g = greedy.slice(0, -1);
    assert.equal(two, `${g}\n${SAMPLE_SEPARATOR}\n${g}\n${SAMPLE_SEPARATOR}\n`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Generator over a token embedding split across buffers picks the tokens of the one-buffer model", async () => {
  // wte [50257 x 16] (3.1 MiB) under a 1 MiB binding limit: the decode network embeds and computes the
  // head in 4 vocabulary slices. Each logit is the same dot product either way, so the picks agree exactly.
  const real = await testGpu();
  const gpu = new Gpu(real.device, real.description, real.software, { maxStorageBufferBindingSize: 2 ** 20 });
  const c = tinyGPT({ vocab_size: 50257, block_size: 16 });
  const w = randomWeights(c, 23);
  const [one, many] = [await generatorOf(real, c, w, 2), await generatorOf(gpu, c, w, 2)];
  const prompt = [50256, 17, 40000];
  assert.deepEqual(
    await many.generate(prompt, 6, { temperature: 0 }),
    await one.generate(prompt, 6, { temperature: 0 }),
  );
  const sampled = { temperature: 1, seed: 3 };
  assert.deepEqual(await many.generate(prompt, 6, sampled), await one.generate(prompt, 6, sampled));
  // Generator.fromCheckpoint lays the weights out the same way; a tokenizer of 5 characters makes the 50257
  // rows a padded vocabulary, so only ids 0..4 can be drawn, and greedy decoding is one-buffer argmax of those.
  const tokenizer = trainTokenizer("char", "abcde");
  const ck = { config: c, tokenizer, weights: new Map(Object.entries(w)), metadata: {} };
  const fromCk = await Generator.fromCheckpoint(ck, { gpu, batch: 2 });
  const drawn = (await fromCk.generate([0, 1, 2], 8, { temperature: 1, seed: 5 })).flat();
  assert.ok(drawn.every((t) => t < 5), `ids ${drawn} beyond the tokenizer's 5`);
  const fewIds = await generatorOf(real, c, w, 1, { tokens: 5 });
  assert.deepEqual(
    (await fromCk.generate([0, 1, 2], 6, { temperature: 0 }))[0],
    (await fewIds.generate([0, 1, 2], 6, { temperature: 0 }))[0],
  );
});
