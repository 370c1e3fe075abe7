import { rejects } from "node:assert/strict";
import { assertClose, dot, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, readF16, readF32, upload, uploadF16 } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import {
  layernormBackward,
  layernormForward,
  type LayernormOptions,
  layernormScratchBytes,
} from "../src/kernels/layernorm.ts";
import * as ref from "../src/reference/layernorm.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;
const filled = (n: number, v: number) => new Float32Array(n).fill(v);

/** Rows with a random offset and scale each, so the mean and the variance vary across rows. */
function inputRows(rng: Rng, N: number, C: number): Float32Array {
  const x = new Float32Array(N * C);
  for (let n = 0; n < N; n++) {
    const off = rng.uniform() * 20 - 10, sc = 0.1 + 3 * rng.uniform();
    for (let c = 0; c < C; c++) x[n * C + c] = off + sc * rng.normal();
  }
  return x;
}

/**
 * Seeded random LayerNorm inputs of N x C and the forward's buffers, out (f32 or f16) and the saved
 * statistics pre-filled with garbage so unwritten elements show; `rng` continues the inputs' stream.
 */
function forwardCase(gpu: Gpu, seed: number, N: number, C: number, withBias: boolean, out: "f32" | "f16") {
  const rng = new Rng(seed);
  const x = inputRows(rng, N, C);
  const w = rng.uniformArray(C, -1.5, 1.5), bvals = rng.uniformArray(C);
  const b = {
    out: (out === "f16" ? uploadF16 : upload)(gpu, "out", filled(N * C, GARBAGE)),
    mean: upload(gpu, "mean", filled(N, GARBAGE)),
    rstd: upload(gpu, "rstd", filled(N, GARBAGE)),
    inp: upload(gpu, "inp", x),
    weight: upload(gpu, "weight", w),
    ...(withBias ? { bias: upload(gpu, "bias", bvals) } : {}),
  };
  return { rng, x, w, bias: withBias ? bvals : null, b };
}

for (const [N, C] of [[2, 1], [3, 5], [4, 3]]) {
  Deno.test(`reference layernorm backward equals finite differences, N=${N} C=${C}`, () => {
    const rng = new Rng(100 + N * C);
    const x = inputRows(rng, N, C);
    const w = rng.uniformArray(C, -1.5, 1.5), bias = rng.uniformArray(C);
    const W = rng.uniformArray(N * C); // loss = <out, W>, so dout = W
    const f = ref.layernormForward(x, w, bias, N, C);
    const g = ref.layernormBackward(W, x, w, f.mean, f.rstd, N, C);
    const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
      dot(ref.layernormForward(xx, ww, bb, N, C).out, W);
    const tol = { atol: 1e-7, rtol: 1e-6 };
    assertClose("fd dinp", g.dinp, finiteDiff((p) => loss(p, w, bias), x), tol);
    assertClose("fd dweight", g.dweight, finiteDiff((p) => loss(x, p, bias), w), tol);
    assertClose("fd dbias", g.dbias, finiteDiff((p) => loss(x, w, p), bias), tol);
    // bias=null gives the same normalisation, minus the bias term.
    const f0 = ref.layernormForward(x, w, null, N, C);
    const diff = f.out.map((v, i) => v - f0.out[i]);
    assertClose("nobias", diff, Float64Array.from({ length: N * C }, (_, i) => bias[i % C]), {
      atol: 1e-12,
      rtol: 1e-12,
      quiet: true,
    });
  });
}

Deno.test("reference layernorm: C=1 has zero variance, out = bias, rstd = 1/sqrt(eps), dinp = 0", () => {
  const f = ref.layernormForward([3, -2], [2], [0.5], 2, 1, 1e-5);
  assertClose("out", f.out, [0.5, 0.5], { atol: 0, rtol: 0, quiet: true });
  assertClose("rstd", f.rstd, [1 / Math.sqrt(1e-5), 1 / Math.sqrt(1e-5)], {
    atol: 0,
    rtol: 1e-15,
    quiet: true,
  });
  const g = ref.layernormBackward([1, 4], [3, -2], [2], f.mean, f.rstd, 2, 1);
  assertClose("dinp", g.dinp, [0, 0], { atol: 0, rtol: 0, quiet: true });
  assertClose("dbias", g.dbias, [5], { atol: 0, rtol: 0, quiet: true });
});

const shapes: [number, number][] = [[1, 1], [1, 4], [5, 7], [64, 48], [33, 384], [40, 130]];

/**
 * Both variants: the teams form at every team size (the default 32, 8 on a software adapter, 4), and the cpu
 * form where C is a multiple of 4 (which it needs).
 */
const FORMS: { opts: LayernormOptions; tag: string }[] = [
  ...([32, 8, 4] as const).map((team) => ({
    opts: { variant: "teams" as const, team },
    tag: `team=${team}`,
  })),
  { opts: { variant: "cpu" }, tag: "cpu" },
];

for (const [N, C] of shapes) {
  for (const withBias of [true, false]) {
    for (const { opts, tag: form } of FORMS.filter((f) => f.opts.variant === "teams" || C % 4 === 0)) {
      Deno.test(`layernorm forward and backward match reference, N=${N} C=${C} bias=${withBias} ${form}`, async () => {
        const gpu = await testGpu();
        const { rng, x, w, bias, b } = forwardCase(
          gpu,
          N * 1000 + C + (withBias ? 7 : 0),
          N,
          C,
          withBias,
          "f32",
        );
        const dy = rng.uniformArray(N * C);
        const eps = 1e-5;
        const tag = `N=${N} C=${C} bias=${withBias} ${form}`;

        const fwd = await layernormForward(gpu, b, { N, C, eps }, opts);
        const y = await runAndRead(gpu, [fwd], b.out);
        const r = ref.layernormForward(x, w, bias, N, C, eps);
        assertClose(`ln fwd out ${tag}`, y, r.out, { atol: 2e-5, rtol: 1e-5 });
        assertClose(`ln fwd mean ${tag}`, await readF32(gpu, b.mean), r.mean, { atol: 1e-5, rtol: 1e-6 });
        assertClose(`ln fwd rstd ${tag}`, await readF32(gpu, b.rstd), r.rstd, { atol: 0, rtol: 1e-5 });

        // Backward, from the reference's mean and rstd (so this checks the backward alone).
        // The reference backward sees the same f32-rounded mean and rstd as the GPU.
        const m32 = Float32Array.from(r.mean), r32 = Float32Array.from(r.rstd);
        const g = ref.layernormBackward(dy, x, w, m32, r32, N, C);
        const dout = upload(gpu, "dout", dy);
        const smean = upload(gpu, "smean", m32), srstd = upload(gpu, "srstd", r32);
        const scratch = upload(gpu, "scratch", filled(layernormScratchBytes({ N, C }) / 4, GARBAGE));
        for (const accumulate of [false, true]) {
          const dinpInit = accumulate ? rng.uniformArray(N * C) : filled(N * C, GARBAGE);
          const dwInit = rng.uniformArray(C), dbInit = rng.uniformArray(C);
          const dinp = upload(gpu, "dinp", dinpInit);
          const dweight = upload(gpu, "dweight", dwInit), dbias = upload(gpu, "dbias", dbInit);
          const ds = await layernormBackward(
            gpu,
            {
              dinp,
              dweight,
              ...(withBias ? { dbias } : {}),
              dout,
              inp: b.inp,
              weight: b.weight,
              mean: smean,
              rstd: srstd,
              scratch,
            },
            { N, C, accumulate },
            opts,
          );
          const dx = await runAndRead(gpu, ds, dinp);
          const want = accumulate ? g.dinp.map((v, i) => v + dinpInit[i]) : g.dinp;
          const t2 = `${tag} acc=${accumulate}`;
          assertClose(`ln bwd dinp ${t2}`, dx, want, { atol: 1e-5, rtol: 1e-4 });
          const dwWant = g.dweight.map((v, i) => v + dwInit[i]);
          assertClose(`ln bwd dweight ${t2}`, await readF32(gpu, dweight), dwWant, {
            atol: 5e-5,
            rtol: 1e-5,
          });
          const dbWant = withBias ? g.dbias.map((v, i) => v + dbInit[i]) : dbInit;
          assertClose(`ln bwd dbias ${t2}`, await readF32(gpu, dbias), dbWant, { atol: 5e-5, rtol: 1e-5 });
        }
      });
    }
  }
}

// f16 storage of the forward's out (the model's choice: out feeds a matmul). inp, weight and bias stay
// f32, so the reference runs on the same inputs. Tolerance of the f16 out: one rounding to f16 is at
// most half an ulp, 2^-11 = 4.9e-4 relative for normal values (rtol 1e-3 leaves room for the f32
// result's own error), and at most 2^-14 = 6.1e-5 absolute near zero if the GPU flushes f16
// subnormals; atol 1e-4 covers that plus the f32 result's ~2e-5 (see the f32 test above).
// mean and rstd stay f32 and are held to the f32 test's tolerances.
for (const [N, C] of [[1, 1], [5, 7], [33, 384], [40, 130]] as [number, number][]) {
  for (const withBias of [true, false]) {
    for (const form of C % 4 === 0 ? ["teams", "cpu"] as const : ["teams"] as const) {
      Deno.test(`layernorm forward with f16 out matches reference, N=${N} C=${C} bias=${withBias} ${form}`, async () => {
        const gpu = await testGpu();
        const { x, w, bias, b } = forwardCase(
          gpu,
          N * 1000 + C + (withBias ? 7 : 0) + 31,
          N,
          C,
          withBias,
          "f16",
        );
        const tag = `N=${N} C=${C} bias=${withBias} ${form}`;
        const fwd = await layernormForward(gpu, b, { N, C, types: { out: "f16" } }, { variant: form });
        submitDispatches(gpu, [fwd]);
        const r = ref.layernormForward(x, w, bias, N, C);
        assertClose(`ln fwd f16 out ${tag}`, await readF16(gpu, b.out, 0, N * C), r.out, {
          atol: 1e-4,
          rtol: 1e-3,
        });
        assertClose(`ln fwd f16 mean ${tag}`, await readF32(gpu, b.mean), r.mean, { atol: 1e-5, rtol: 1e-6 });
        assertClose(`ln fwd f16 rstd ${tag}`, await readF32(gpu, b.rstd), r.rstd, { atol: 0, rtol: 1e-5 });
      });
    }
  }
}

Deno.test("layernorm forward: f16 out at an offset leaves its neighbours alone; f32 out unchanged by types", async () => {
  const gpu = await testGpu();
  // An odd element count at an odd row offset: f16 values share 32-bit words with their neighbours.
  const N = 3, C = 5, eps = 1e-5;
  const rng = new Rng(909);
  const x = inputRows(rng, N, C), w = rng.uniformArray(C, -1.5, 1.5);
  const r = ref.layernormForward(x, w, null, N, C, eps);
  const inp = upload(gpu, "inp", x), weight = upload(gpu, "weight", w);
  const mean = createStorage(gpu, "mean", N * 4), rstd = createStorage(gpu, "rstd", N * 4);
  // out lives at f16 elements [128, 143) of a 256-element buffer (binding offset 256 bytes). WebGPU wants
  // binding sizes in multiples of 4 bytes, so the binding of 15 halves covers 16: the 16th is inside the
  // binding and must still be left alone.
  const total = 256, at = 128;
  const big = uploadF16(gpu, "big", filled(total, GARBAGE));
  const fwd = await layernormForward(gpu, {
    out: { buffer: big, offset: at * 2, size: Math.ceil(N * C / 2) * 4 },
    mean,
    rstd,
    inp,
    weight,
  }, { N, C, eps, types: { out: "f16" } });
  submitDispatches(gpu, [fwd]);
  const all = await readF16(gpu, big);
  assertClose("ln f16 out at offset", all.slice(at, at + N * C), r.out, { atol: 1e-4, rtol: 1e-3 });
  const rest = [...all.slice(0, at), ...all.slice(at + N * C)];
  if (!rest.every((v) => v === 12344)) throw new Error("f16 out wrote outside its binding"); // 12345 in f16
  // types: { out: "f32" } is the plain f32 path.
  const out32 = upload(gpu, "out32", filled(N * C, GARBAGE));
  const f32 = await layernormForward(gpu, { out: out32, mean, rstd, inp, weight }, {
    N,
    C,
    eps,
    types: { out: "f32" },
  });
  assertClose("ln explicit f32 out", await runAndRead(gpu, [f32], out32), r.out, { atol: 2e-5, rtol: 1e-5 });
});

Deno.test("layernorm backward: parameter gradients are deterministic and add up over calls", async () => {
  const gpu = await testGpu();
  const N = 77, C = 96;
  const rng = new Rng(5);
  const x = inputRows(rng, N, C), w = rng.uniformArray(C, -1.5, 1.5), dy = rng.uniformArray(N * C);
  const r = ref.layernormForward(x, w, null, N, C);
  const m32 = Float32Array.from(r.mean), r32 = Float32Array.from(r.rstd);
  const g = ref.layernormBackward(dy, x, w, m32, r32, N, C);
  const inp = upload(gpu, "inp", x), weight = upload(gpu, "weight", w), dout = upload(gpu, "dout", dy);
  const mean = upload(gpu, "mean", m32), rstd = upload(gpu, "rstd", r32);
  const scratch = createStorage(gpu, "scratch", layernormScratchBytes({ N, C }));
  const results: Float32Array[] = [];
  for (let t = 0; t < 2; t++) {
    const dinp = createStorage(gpu, "dinp", N * C * 4);
    const dweight = createStorage(gpu, "dweight", C * 4), dbias = createStorage(gpu, "dbias", C * 4);
    const ds = await layernormBackward(
      gpu,
      { dinp, dweight, dbias, dout, inp, weight, mean, rstd, scratch },
      {
        N,
        C,
      },
    );
    // Three backward calls in one pass: dweight and dbias must hold three times the sum.
    submitDispatches(gpu, [...ds, ...ds, ...ds]);
    const dw = await readF32(gpu, dweight);
    assertClose("3x dweight", dw, g.dweight.map((v) => 3 * v), { atol: 1e-4, rtol: 1e-5 });
    assertClose("3x dbias", await readF32(gpu, dbias), g.dbias.map((v) => 3 * v), { atol: 1e-4, rtol: 1e-5 });
    results.push(dw);
  }
  assertClose("bitwise repeat", results[1], results[0], { atol: 0, rtol: 0 });
});

Deno.test("layernorm's cpu variant refuses C not a multiple of 4, and an unknown variant, in one line", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 4 * 64);
  const b = { out: buf, mean: buf, rstd: buf, inp: buf, weight: buf };
  await rejects(layernormForward(gpu, b, { N: 2, C: 6 }, { variant: "cpu" }), {
    message: "layernorm_forward_nobias: the cpu variant needs C a multiple of 4 (got 6)",
  });
  await rejects(layernormForward(gpu, b, { N: 2, C: 8 }, { variant: "fast" as "cpu" }), {
    message: "layernorm_forward_nobias: variant must be teams or cpu (got fast)",
  });
  buf.destroy();
});

Deno.test("layernorm backward without a scratch buffer throws", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "b", 64);
  const b = { dinp: buf, dweight: buf, dout: buf, inp: buf, weight: buf, mean: buf, rstd: buf };
  await rejects(layernormBackward(gpu, b, { N: 2, C: 2 }), /scratch/);
});

// The cpu variant needs C a multiple of 4; at 8 rows per workgroup, its grid folds from 524,288 rows.
for (const [form, N, C] of [["teams", 66_000, 3], ["cpu", 528_000, 4]] as const) {
  Deno.test(`layernorm with more rows than one grid dimension holds (folded grid), N=${N} C=${C} ${form}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(66);
    // No large row offsets here: with C=3 some of 66000 rows would have a spread far below the f32
    // resolution of their mean, which tests f32 itself rather than the grid.
    const x = rng.uniformArray(N * C, -2, 2), w = rng.uniformArray(C, -1.5, 1.5), bv = rng.uniformArray(C);
    const dy = rng.uniformArray(N * C);
    const inp = upload(gpu, "inp", x), weight = upload(gpu, "weight", w), bias = upload(gpu, "bias", bv);
    const out = upload(gpu, "out", filled(N * C, GARBAGE));
    const mean = upload(gpu, "mean", filled(N, GARBAGE)), rstd = upload(gpu, "rstd", filled(N, GARBAGE));
    const y = await runAndRead(gpu, [
      await layernormForward(gpu, { out, mean, rstd, inp, weight, bias }, { N, C }, { variant: form }),
    ], out);
    const r = ref.layernormForward(x, w, bv, N, C);
    assertClose(`ln fwd folded ${form}`, y, r.out, { atol: 2e-5, rtol: 1e-5 });
    const m32 = Float32Array.from(r.mean), r32 = Float32Array.from(r.rstd);
    const g = ref.layernormBackward(dy, x, w, m32, r32, N, C);
    const dout = upload(gpu, "dout", dy), dinp = upload(gpu, "dinp", filled(N * C, GARBAGE));
    const dweight = createStorage(gpu, "dweight", C * 4), dbias = createStorage(gpu, "dbias", C * 4);
    const scratch = createStorage(gpu, "scratch", layernormScratchBytes({ N, C }));
    // The reference's mean and rstd, so the backward is checked alone.
    const smean = upload(gpu, "smean", m32), srstd = upload(gpu, "srstd", r32);
    const ds = await layernormBackward(
      gpu,
      {
        dinp,
        dweight,
        dbias,
        dout,
        inp,
        weight,
        mean: smean,
        rstd: srstd,
        scratch,
      },
      { N, C },
      { variant: form },
    );
    // dinp carries a factor rstd (up to ~1e3 for near-constant rows of 3): compare dinp / rstd.
    const dx = await runAndRead(gpu, ds, dinp);
    const perRstd = (v: ArrayLike<number>) => Float64Array.from(v, (e, i) => e / r.rstd[Math.floor(i / C)]);
    assertClose(`ln bwd folded dinp/rstd ${form}`, perRstd(dx), perRstd(g.dinp), { atol: 1e-6, rtol: 1e-4 });
    assertClose(`ln bwd folded dweight ${form}`, await readF32(gpu, dweight), g.dweight, {
      atol: 2e-3,
      rtol: 1e-5,
    });
    assertClose(`ln bwd folded dbias ${form}`, await readF32(gpu, dbias), g.dbias, {
      atol: 2e-3,
      rtol: 1e-5,
    });
  });
}
