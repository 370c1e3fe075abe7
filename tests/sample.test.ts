import { rejects } from "node:assert/strict";
import { assertClose, testGpu } from "./helpers.ts";
import { createStorage, readU32, upload } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { argmax, sample } from "../src/kernels/sample.ts";
import { hash3, uniform01 } from "../src/util/hash.ts";
import * as ref from "../src/reference/sample.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 0xdeadbeef;

/** Runs argmax or sample on logits [N, V] with seed `seed`; returns the tokens. */
async function gpuTokens(
  gpu: Gpu,
  x: Float32Array,
  N: number,
  V: number,
  opts: { seed: number; temperature: number; topK: number; stream: number } | null,
): Promise<Uint32Array> {
  const logits = upload(gpu, "logits", x);
  const out = upload(gpu, "out", new Uint32Array(N).fill(GARBAGE));
  const d = opts === null ? await argmax(gpu, { out, logits }, { N, V }) : await sample(
    gpu,
    { out, logits, rng: upload(gpu, "rng", new Uint32Array([opts.seed])) },
    { N, V, temperature: opts.temperature, topK: opts.topK, stream: opts.stream },
  );
  submitDispatches(gpu, [d], "test");
  const got = await readU32(gpu, out);
  logits.destroy();
  out.destroy();
  return got;
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
];

for (const c of sampleCases) {
  const { N, V, temperature, topK } = c;
  Deno.test(`gpu sample matches sampleRow with the same u, N=${N} V=${V} T=${temperature} K=${topK}`, async () => {
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
    const got = await gpuTokens(gpu, x, N, V, { seed, temperature, topK, stream });
    let excluded = 0;
    for (let n = 0; n < N; n++) {
      const l = row(x, n, V);
      const u = uniform01(hash3(seed, stream, n));
      const want = ref.sampleRow(l, temperature, topK, u);
      // Cumulative boundaries (float64): token i owns [cum[i] - p[i], cum[i]).
      const p = ref.sampleWeights(l, temperature, topK);
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
    console.log(`sample N=${N} V=${V}: ${N - excluded} rows exact, ${excluded} near a boundary`);
    if (excluded > Math.max(2, 0.05 * N)) throw new Error(`too many rows near a boundary: ${excluded}/${N}`);
  });
}

Deno.test("gpu sample with top-k 1 equals argmax (unique maxima)", async () => {
  const gpu = await testGpu();
  const N = 50, V = 2000;
  const x = new Rng(5).normalArray(N * V, 2);
  const want = ref.argmax(x, N, V);
  for (const temperature of [0.1, 1, 50]) {
    const got = await gpuTokens(gpu, x, N, V, { seed: 99, temperature, topK: 1, stream: 0 });
    assertClose(`top-1 T=${temperature}`, got, want, { atol: 0, rtol: 0 });
  }
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
  for (const [temperature, topK] of [[1, 0], [0.6, 4], [2.5, 0]]) {
    const got = await gpuTokens(gpu, x, N, V, { seed: 4321 + topK, temperature, topK, stream: 2 });
    const counts = new Float64Array(V);
    for (const t of got) counts[t]++;
    const p = ref.sampleWeights(base, temperature, topK);
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
          `T=${temperature} K=${topK} token ${i}: ${counts[i]} draws, expected ${e.toFixed(1)}`,
        );
      }
      chi2 += (counts[i] - e) ** 2 / e;
    }
    // Degrees of freedom <= 9: chi2 > 33 has p < 1e-4.
    console.log(`T=${temperature} K=${topK}: chi2 ${chi2.toFixed(2)}`);
    if (chi2 > 33) throw new Error(`chi-square ${chi2} too large`);
  }
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
  b.destroy();
});
