import { rejects, throws } from "node:assert/strict";
import { assertClose, dot, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, readF16, roundF16, upload, uploadF16 } from "../src/gpu/buffers.ts";
import { reflectBindings } from "../src/gpu/kernel.ts";
import {
  matmulBackwardBias,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulBackwardWeightScratchBytes,
  matmulBackwardWeightSplit,
  matmulForward,
  type MatmulOptions,
  matmulSource,
  type MatmulSplitOptions,
  type MatmulTypes,
} from "../src/kernels/matmul.ts";
import * as ref from "../src/reference/matmul.ts";
import { gelu, geluGrad, geluTanh, geluTanhGrad } from "../src/reference/gelu.ts";
import { residualDropoutForward } from "../src/reference/residual.ts";
import { Rng } from "../src/util/rng.ts";

/** f32 dot products of length n: error grows like sqrt(n) times the terms' size. */
const tol = (n: number) => ({ atol: 2e-6 * Math.sqrt(n), rtol: 1e-5 * Math.sqrt(n) });

const add = (a: ArrayLike<number>, b: ArrayLike<number>, times = 1) =>
  Float64Array.from(a, (x, i) => x + times * b[i]);

Deno.test("reference forward matches a hand-computed product", () => {
  // inp [2, 3], weight [2, 3] (N = 2), bias [2]
  const inp = [1, 2, 3, 4, 5, 6], weight = [1, 0, -1, 2, 1, 0.5], bias = [0.25, -1];
  assertClose("hand fwd", ref.matmulForward(inp, weight, bias, 2, 3, 2), [-1.75, 4.5, -1.75, 15], {
    atol: 0,
    rtol: 0,
  });
  assertClose("hand fwd nobias", ref.matmulForward(inp, weight, null, 2, 3, 2), [-2, 5.5, -2, 16], {
    atol: 0,
    rtol: 0,
  });
});

for (const [M, K, N] of [[1, 1, 1], [2, 3, 4], [3, 5, 2], [4, 2, 3]]) {
  Deno.test(`reference backward equals finite differences of its forward, M=${M} K=${K} N=${N}`, () => {
    const rng = new Rng(100 + M * 31 + K * 7 + N);
    const inp = rng.uniformArray(M * K), weight = rng.uniformArray(N * K), bias = rng.uniformArray(N);
    const w = rng.uniformArray(M * N); // loss = dot(out, w), so dout = w
    const g = ref.matmulBackward(w, inp, weight, M, K, N);
    const o = { atol: 1e-8, rtol: 1e-7 };
    assertClose(
      "fd dinp",
      g.dinp,
      finiteDiff((p) => dot(ref.matmulForward(p, weight, bias, M, K, N), w), inp),
      o,
    );
    assertClose(
      "fd dweight",
      g.dweight,
      finiteDiff((p) => dot(ref.matmulForward(inp, p, bias, M, K, N), w), weight),
      o,
    );
    assertClose(
      "fd dbias",
      g.dbias,
      finiteDiff((p) => dot(ref.matmulForward(inp, weight, p, M, K, N), w), bias),
      o,
    );
  });
}

Deno.test("matmulSource keeps one branch per flag and the line numbering", () => {
  const vec = matmulSource({ K4: true, N4: true }), scalar = matmulSource({ K4: false, N4: false });
  const n = vec.split("\n").length;
  // One tile loop; each entry point's text keeps only its product's operand loads.
  const loads = (entry: string) =>
    /fn load_a[^}]*}/.exec(matmulSource({ K4: true, N4: true }, entry))?.[0] ?? "";
  const checks: [string, boolean][] = [
    ["same line count", scalar.split("\n").length === n],
    ["forward loads inp", loads("matmul_forward_gelu").includes("ld_inp(r0 + r, t0 + t)")],
    ["backward input loads dout", loads("matmul_backward_input").includes("ld_dout(r0 + r, t0 + t)")],
    [
      "backward weight loads dout by t",
      loads("matmul_backward_weight_split").includes("ld_dout(t0 + t, r0 + r)"),
    ],
    ["one load_a per text", vec.match(/^fn load_a\(/gm)?.length === 1],
    ["vec4 KV", vec.includes("alias KV = vec4<f32>;") && !vec.includes("alias KV = f32;")],
    ["scalar NV", scalar.includes("alias NV = f32;") && !scalar.includes("alias NV = vec4<f32>;")],
    ["no directives left", !/^\s*\/\/\s*#(if|else|endif)/m.test(vec + scalar)],
  ];
  const bad = checks.filter(([, ok]) => !ok).map(([what]) => what);
  if (bad.length) throw new Error(`matmulSource: ${bad.join(", ")}`);
  throws(() => matmulSource({ K4: true, N4: true }, "matmul_nosuch"), /no entry point 'matmul_nosuch'/);
});

Deno.test("each entry point declares exactly its bindings (no dummy buffers)", () => {
  const expect: Record<string, string[]> = {
    matmul_forward: ["out", "inp", "weight", "dims"],
    matmul_forward_bias: ["out", "inp", "weight", "bias", "dims"],
    matmul_forward_gelu: ["out", "inp", "weight", "dims", "act"],
    matmul_forward_gelu_bias: ["out", "inp", "weight", "bias", "dims", "act"],
    matmul_backward_input_gelu: ["dinp", "weight", "dout", "dims", "pre"],
    matmul_forward_residual: ["out", "inp", "weight", "dims", "resid"],
    matmul_forward_residual_bias: ["out", "inp", "weight", "bias", "dims", "resid"],
    matmul_forward_residual_dropout: ["out", "inp", "weight", "dims", "resid", "rng"],
    matmul_forward_residual_dropout_bias: ["out", "inp", "weight", "bias", "dims", "resid", "rng"],
    matmul_backward_input: ["dinp", "weight", "dout", "dims"],
    matmul_backward_weight: ["dweight", "inp", "dout", "dims"],
    matmul_backward_bias: ["dbias", "dout", "dims"],
    matmul_backward_weight_split: ["scratch", "inp", "dout", "dims"],
    matmul_backward_weight_reduce: ["dweight", "partials", "dims"],
  };
  for (const flags of [{ K4: true, N4: true }, { K4: false, N4: false }, { K4: true, N4: false }]) {
    for (const [entry, names] of Object.entries(expect)) {
      const got = reflectBindings(matmulSource(flags, entry), entry).map((b) => b.name).join(",");
      if (got !== names.join(",")) throw new Error(`${entry}: binds ${got}, expected ${names.join(",")}`);
    }
  }
});

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [2, 4, 8],
  [64, 64, 64],
  [67, 129, 33],
  [130, 96, 260],
  [37, 20, 65], // K % 4 == 0, N odd (like the tied LM head)
  [45, 66, 36], // K % 4 != 0, N % 4 == 0
  [256, 64, 192], // model-like
];
// Every variant (the default is "cpu" or "cpu-wide" on llvmpipe, "tiled" elsewhere), both tile sizes,
// both storage forms.
const OPTIONS: MatmulOptions[] = [
  {},
  { tile: 128 },
  { tile: 64, vec4: false },
  { tile: 128, vec4: false },
  { variant: "cpu" },
  { variant: "cpu", vec4: false },
  { variant: "cpu-wide" },
  { variant: "tiled" },
];
const SPLITS: MatmulSplitOptions[] = [
  { splits: 3 },
  { splits: 2, tile: 64, vec4: false },
  { splits: 3, variant: "cpu" },
  { splits: 2, variant: "cpu", vec4: false },
  { splits: 3, variant: "cpu-wide" },
  { splits: 3, variant: "tiled" },
];
/** The fused-epilogue tests run on every variant. */
const VARIANTS = ["tiled", "cpu", "cpu-wide"] as const;

for (const [M, K, N] of SHAPES) {
  Deno.test(`matmul forward and backward match reference, M=${M} K=${K} N=${N}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(M * 1000003 + K * 1009 + N);
    const x = rng.uniformArray(M * K), w = rng.uniformArray(N * K), b = rng.uniformArray(N);
    const dy = rng.uniformArray(M * N);
    const inp = upload(gpu, "inp", x), weight = upload(gpu, "weight", w), bias = upload(gpu, "bias", b);
    const dout = upload(gpu, "dout", dy);
    const garbage = (n: number) => new Float32Array(n).fill(12345);
    const fwdRef = ref.matmulForward(x, w, b, M, K, N);
    const fwdRefNoBias = ref.matmulForward(x, w, null, M, K, N);
    const g = ref.matmulBackward(dy, x, w, M, K, N);
    for (const o of OPTIONS) {
      const tag = `M=${M} K=${K} N=${N} ${JSON.stringify(o)}`;
      const out = upload(gpu, "out", garbage(M * N));
      const y = await runAndRead(
        gpu,
        [await matmulForward(gpu, { out, inp, weight, bias }, { M, K, N }, o)],
        out,
      );
      assertClose(`fwd+bias ${tag}`, y, fwdRef, tol(K));
      const out2 = upload(gpu, "out2", garbage(M * N));
      const y2 = await runAndRead(
        gpu,
        [await matmulForward(gpu, { out: out2, inp, weight }, { M, K, N }, o)],
        out2,
      );
      assertClose(`fwd ${tag}`, y2, fwdRefNoBias, tol(K));

      const dinp = upload(gpu, "dinp", garbage(M * K));
      const dx = await runAndRead(gpu, [
        await matmulBackwardInput(gpu, { dinp, dout, weight }, { M, K, N }, o),
      ], dinp);
      assertClose(`bwd input ${tag}`, dx, g.dinp, tol(N));

      const pre = rng.uniformArray(N * K);
      const dweight = upload(gpu, "dweight", pre);
      const dw = await runAndRead(gpu, [
        await matmulBackwardWeight(gpu, { dweight, dout, inp }, { M, K, N }, o),
      ], dweight);
      assertClose(`bwd weight (+= prefill) ${tag}`, dw, add(pre, g.dweight), tol(M));
    }
    for (const o of SPLITS) {
      const tag = `M=${M} K=${K} N=${N} ${JSON.stringify(o)}`;
      const pre = rng.uniformArray(N * K);
      const dweight = upload(gpu, "dweight", pre);
      const bytes = matmulBackwardWeightScratchBytes({ M, K, N }, o);
      const scratch = upload(gpu, "scratch", garbage(Math.max(1, bytes / 4)));
      const ds = await matmulBackwardWeightSplit(gpu, { dweight, dout, inp, scratch }, { M, K, N }, o);
      if (ds.length !== (bytes > 0 ? 2 : 1)) {
        throw new Error(`${tag}: ${ds.length} dispatches, scratch ${bytes}`);
      }
      const dw = await runAndRead(gpu, ds, dweight);
      assertClose(`bwd weight split x${ds.length} (+= prefill) ${tag}`, dw, add(pre, g.dweight), tol(M));
    }
    const preB = rng.uniformArray(N);
    const dbias = upload(gpu, "dbias", preB);
    const db = await runAndRead(gpu, [await matmulBackwardBias(gpu, { dbias, dout }, { M, N })], dbias);
    assertClose(`bwd bias (+= prefill) M=${M} N=${N}`, db, add(preB, g.dbias), tol(M));
  });
}

// f16 storage: operands rounded to f16 on the host, the reference computed on the rounded values. An f32
// output must then match as tightly as in the f32 tests (only the storage of the inputs changed); an f16
// output carries one more rounding, relative error <= 2^-11 ~ 4.9e-4, so rtol gets 1e-3 on top.
const F16_SHAPES: [number, number, number][] = [[37, 20, 65], [45, 66, 36], [67, 129, 33], [256, 64, 192]];
const half16 = (t: { atol: number; rtol: number }) => ({ atol: t.atol, rtol: t.rtol + 1e-3 });

for (const [M, K, N] of F16_SHAPES) {
  Deno.test(`matmul with f16 operands matches reference on rounded inputs, M=${M} K=${K} N=${N}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(M * 7919 + K * 31 + N);
    const x = roundF16(rng.uniformArray(M * K)), w = roundF16(rng.uniformArray(N * K));
    const dy = roundF16(rng.uniformArray(M * N)), b = rng.uniformArray(N);
    const x16 = uploadF16(gpu, "inp16", x), w16 = uploadF16(gpu, "weight16", w);
    const dy16 = uploadF16(gpu, "dout16", dy), dy32 = upload(gpu, "dout", Float32Array.from(dy));
    const bias = upload(gpu, "bias", b);
    const fwd = ref.matmulForward(x, w, b, M, K, N);
    const g = ref.matmulBackward(dy, x, w, M, K, N);
    const read = async (
      buf: GPUBuffer,
      type: string | undefined,
      n: number,
      ds: Parameters<typeof runAndRead>[1],
    ) =>
      type === "f16"
        ? (await runAndRead(gpu, ds, buf), await readF16(gpu, buf, 0, n))
        : await runAndRead(gpu, ds, buf);
    for (
      const [vec4, variant] of [[true, "tiled"], [false, "tiled"], [true, "cpu"], [false, "cpu"], [
        true,
        "cpu-wide",
      ]] as const
    ) {
      for (const out of ["f16", "f32"] as const) {
        const types: MatmulTypes = { inp: "f16", weight: "f16", out };
        const tag = `M=${M} K=${K} N=${N} vec4=${vec4} ${variant} ${JSON.stringify(types)}`;
        const o = out === "f16"
          ? uploadF16(gpu, "out", new Float32Array(M * N).fill(12345))
          : upload(gpu, "out", new Float32Array(M * N).fill(12345));
        const d = await matmulForward(gpu, { out: o, inp: x16, weight: w16, bias }, { M, K, N }, {
          vec4,
          types,
          variant,
        });
        const y = await read(o, out, M * N, [d]);
        assertClose(`fwd ${tag}`, y, fwd, out === "f16" ? half16(tol(K)) : tol(K));
      }
      for (const [dtype, dout] of [["f16", dy16], ["f32", dy32]] as const) {
        for (const out of ["f32", "f16"] as const) {
          const types: MatmulTypes = { dout: dtype, weight: "f16", out };
          const tag = `M=${M} K=${K} N=${N} vec4=${vec4} ${variant} ${JSON.stringify(types)}`;
          const dinp = out === "f16"
            ? uploadF16(gpu, "dinp", new Float32Array(M * K).fill(12345))
            : upload(gpu, "dinp", new Float32Array(M * K).fill(12345));
          const d = await matmulBackwardInput(gpu, { dinp, dout, weight: w16 }, { M, K, N }, {
            vec4,
            types,
            variant,
          });
          assertClose(
            `bwd input ${tag}`,
            await read(dinp, out, M * K, [d]),
            g.dinp,
            out === "f16" ? half16(tol(N)) : tol(N),
          );
        }
        const types: MatmulTypes = { dout: dtype, inp: "f16" };
        const tag = `M=${M} K=${K} N=${N} vec4=${vec4} ${variant} ${JSON.stringify(types)}`;
        const pre = rng.uniformArray(N * K);
        const dweight = upload(gpu, "dweight", pre);
        const dw = await matmulBackwardWeight(gpu, { dweight, dout, inp: x16 }, { M, K, N }, {
          vec4,
          types,
          variant,
        });
        assertClose(`bwd weight ${tag}`, await runAndRead(gpu, [dw], dweight), add(pre, g.dweight), tol(M));
        const dweight2 = upload(gpu, "dweight2", pre);
        const split = { vec4, types, splits: 2, variant };
        const scratch = createStorage(
          gpu,
          "scratch",
          matmulBackwardWeightScratchBytes({ M, K, N }, split) || 4,
        );
        const ds = await matmulBackwardWeightSplit(gpu, { dweight: dweight2, dout, inp: x16, scratch }, {
          M,
          K,
          N,
        }, split);
        assertClose(
          `bwd weight split ${tag}`,
          await runAndRead(gpu, ds, dweight2),
          add(pre, g.dweight),
          tol(M),
        );
        const preB = rng.uniformArray(N);
        const dbias = upload(gpu, "dbias", preB);
        const db = await matmulBackwardBias(gpu, { dbias, dout }, { M, N }, { types: { dout: dtype } });
        assertClose(`bwd bias ${tag}`, await runAndRead(gpu, [db], dbias), add(preB, g.dbias), tol(M));
      }
    }
  });
}

// f16 math (HALF_MATH): products and per-tile sums in f16, widened per tile of BK = 16 into f32. Positive
// operands make every partial sum grow, so an f16 accumulation over the whole reduction (K = 2048, sums
// ~512 where the f16 spacing is 0.5) would be off by whole units, while per-tile sums (~4, spacing 2^-9)
// keep the error within 16 * 2^-11 (7.8e-3) of each tile's sum, measured 1.7e-4 (forward, 128 tiles) to
// 1.6e-3 (input gradient, 3 tiles) relative: held to 4e-3 relative of the result.
Deno.test("matmul with f16 math: f16 within a tile, f32 across tiles, every product form", async () => {
  const gpu = await testGpu();
  const [M, K, N] = [67, 2048, 36];
  const rng = new Rng(99);
  const x = roundF16(rng.uniformArray(M * K, 0, 1)), w = roundF16(rng.uniformArray(N * K, 0, 1));
  const dy = roundF16(rng.uniformArray(M * N, 0, 1));
  const x16 = uploadF16(gpu, "inp16", x),
    w16 = uploadF16(gpu, "weight16", w),
    dy16 = uploadF16(gpu, "dout16", dy);
  const fwd = ref.matmulForward(x, w, null, M, K, N);
  const rel = { atol: 0, rtol: 4e-3 };
  for (const vec4 of [true, false]) {
    const o = {
      vec4,
      math: "f16" as const,
      types: { inp: "f16", weight: "f16", dout: "f16" } as const,
    };
    const out = upload(gpu, "out", new Float32Array(M * N).fill(12345));
    const y = await runAndRead(gpu, [
      await matmulForward(gpu, { out, inp: x16, weight: w16 }, { M, K, N }, o),
    ], out);
    assertClose(`f16 math fwd vec4=${vec4}`, y, fwd, rel);
    // The input gradient reduces over N = 36 (3 tiles), the weight gradient over M = 67 (5 tiles).
    const g = ref.matmulBackward(dy, x, w, M, K, N);
    const dinp = upload(gpu, "dinp", new Float32Array(M * K).fill(12345));
    const dx = await runAndRead(gpu, [
      await matmulBackwardInput(gpu, { dinp, dout: dy16, weight: w16 }, { M, K, N }, o),
    ], dinp);
    assertClose(`f16 math bwd input vec4=${vec4}`, dx, g.dinp, rel);
    const dweight = upload(gpu, "dweight", new Float32Array(N * K));
    const dw = await runAndRead(gpu, [
      await matmulBackwardWeight(gpu, { dweight, dout: dy16, inp: x16 }, { M, K, N }, o),
    ], dweight);
    assertClose(`f16 math bwd weight vec4=${vec4}`, dw, g.dweight, rel);
  }
});

// Fused GELU: the forward writes out and gelu(out); the input gradient multiplies by gelu'(pre). Checked
// against the reference matmul composed with the reference GELU (erf to 1e-15; the shader's erf is within
// 1.5e-7), in f32 and with the model's f16 storage (one more rounding of each output: rtol + 1e-3); and
// GPT-2's gelu_new in f32.
const GELU_CASES = [
  { activation: "gelu", f: gelu, df: geluGrad, halves: [false, true] },
  { activation: "gelu_new", f: geluTanh, df: geluTanhGrad, halves: [false] },
] as const;
for (const [M, K, N] of [[67, 129, 33], [45, 66, 36], [130, 96, 260]]) {
  Deno.test(`matmul with fused GELU matches matmul then GELU, M=${M} K=${K} N=${N}`, async () => {
    for (const c of GELU_CASES) await fusedGeluCase(M, K, N, c);
  });
}

async function fusedGeluCase(M: number, K: number, N: number, c: (typeof GELU_CASES)[number]) {
  const gpu = await testGpu();
  const rng = new Rng(M * 31 + K * 7 + N);
  const x = roundF16(rng.uniformArray(M * K)), w = roundF16(rng.uniformArray(N * K));
  const dy = roundF16(rng.uniformArray(M * N)), b = rng.uniformArray(N);
  const pre = roundF16(rng.uniformArray(M * K, -3, 3));
  const fwd = ref.matmulForward(x, w, b, M, K, N);
  const act = fwd.map(c.f);
  const dinpRef = ref.matmulBackward(dy, x, w, M, K, N).dinp.map((v, i) => v * c.df(pre[i]));
  for (const half of c.halves) {
    const up = (label: string, a: ArrayLike<number>) =>
      half ? uploadF16(gpu, label, a) : upload(gpu, label, Float32Array.from(a));
    const read = async (buf: GPUBuffer, n: number) =>
      half ? await readF16(gpu, buf, 0, n) : await runAndRead(gpu, [], buf);
    const T = half ? "f16" as const : "f32" as const;
    const o = { types: { inp: T, weight: T, dout: T, out: T, pre: T }, activation: c.activation };
    const t = half ? half16(tol(K)) : tol(K);
    for (const [vec4, variant] of VARIANTS.flatMap((v) => [[true, v], [false, v]] as const)) {
      const tag = `M=${M} K=${K} N=${N} ${T} vec4=${vec4} ${variant} ${c.activation}`;
      const garbage = (n: number) => new Float32Array(n).fill(12345);
      const out = up("out", garbage(M * N)), a = up("act", garbage(M * N));
      const inp = up("inp", x), weight = up("weight", w), bias = upload(gpu, "bias", b);
      await runAndRead(gpu, [
        await matmulForward(gpu, { out, act: a, inp, weight, bias }, { M, K, N }, { ...o, vec4, variant }),
      ], bias);
      assertClose(`fused fwd out ${tag}`, await read(out, M * N), fwd, t);
      // gelu of the f32 product, then one rounding: compare with gelu(ref) at the output's precision.
      assertClose(`fused fwd act ${tag}`, await read(a, M * N), act, t);
      const dinp = up("dinp", garbage(M * K)), dout = up("dout", dy), p = up("pre", pre);
      await runAndRead(gpu, [
        await matmulBackwardInput(gpu, { dinp, dout, weight, pre: p }, { M, K, N }, { ...o, vec4, variant }),
      ], bias);
      assertClose(
        `fused bwd input ${tag}`,
        await read(dinp, M * K),
        dinpRef,
        half ? half16(tol(N)) : tol(N),
      );
    }
  }
}

// Fused residual: out = resid + inp · weightᵀ (+ bias), resid f32; with the model's f16 operands too; and
// with dropout of the product, whose mask must be the residual kernels' (same hash, flat index, stream).
for (const [M, K, N] of [[67, 129, 33], [45, 66, 36], [130, 96, 260]]) {
  Deno.test(`matmul with fused residual add matches resid + matmul, M=${M} K=${K} N=${N}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(M * 17 + K * 3 + N);
    const x = roundF16(rng.uniformArray(M * K)), w = roundF16(rng.uniformArray(N * K));
    const r = rng.uniformArray(M * N, -4, 4), b = rng.uniformArray(N);
    const resid = upload(gpu, "resid", r), bias = upload(gpu, "bias", b);
    const seed = 1234 + M, stream = 7, p = 0.3;
    const rngBuf = createStorage(gpu, "rng", 16, new Uint32Array([seed, 0, 0, 0]));
    for (const half of [false, true]) {
      const up = (label: string, a: ArrayLike<number>) =>
        half ? uploadF16(gpu, label, a) : upload(gpu, label, Float32Array.from(a));
      const T = half ? "f16" as const : "f32" as const;
      const inp = up("inp", x), weight = up("weight", w);
      for (const withBias of [false, true]) {
        const want = add(r, ref.matmulForward(x, w, withBias ? b : null, M, K, N));
        for (const [vec4, variant] of VARIANTS.flatMap((v) => [[true, v], [false, v]] as const)) {
          const tag = `${T} bias=${withBias} vec4=${vec4} ${variant}`;
          const out = upload(gpu, "out", new Float32Array(M * N).fill(12345));
          const d = await matmulForward(gpu, { out, inp, weight, resid, ...(withBias ? { bias } : {}) }, {
            M,
            K,
            N,
          }, { vec4, variant, types: { inp: T, weight: T } });
          assertClose(
            `fused residual ${tag}`,
            await runAndRead(gpu, [d], out),
            want,
            tol(K),
          );
          const prod = ref.matmulForward(x, w, withBias ? b : null, M, K, N);
          const wantDrop = residualDropoutForward(r, prod, p, seed, stream);
          const outD = upload(gpu, "out_drop", new Float32Array(M * N).fill(12345));
          const dd = await matmulForward(
            gpu,
            { out: outD, inp, weight, resid, rng: rngBuf, ...(withBias ? { bias } : {}) },
            { M, K, N, dropout: { p, stream } },
            { vec4, variant, types: { inp: T, weight: T } },
          );
          const got = await runAndRead(gpu, [dd], outD);
          const t = tol(K);
          assertClose(`fused residual dropout ${tag}`, got, wantDrop, {
            atol: t.atol / (1 - p),
            rtol: t.rtol,
          });
          // The mask was applied: about p of the elements equal resid exactly.
          const dropped = got.filter((v, i) => v === Math.fround(r[i])).length / got.length;
          if (Math.abs(dropped - p) > 0.08) throw new Error(`dropped fraction ${dropped}, expected ~${p}`);
        }
      }
    }
  });
}

Deno.test("weight and bias gradients accumulate across two dispatches", async () => {
  const gpu = await testGpu();
  const [M, K, N] = [75, 36, 44];
  const rng = new Rng(7);
  const x = rng.uniformArray(M * K), dy = rng.uniformArray(M * N);
  const preW = rng.uniformArray(N * K), preB = rng.uniformArray(N);
  const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy);
  const dweight = upload(gpu, "dweight", preW), dbias = upload(gpu, "dbias", preB);
  const g = ref.matmulBackward(dy, x, rng.uniformArray(N * K), M, K, N); // weight: unused by dweight, dbias
  const dw = await matmulBackwardWeight(gpu, { dweight, dout, inp }, { M, K, N });
  assertClose("dweight x2", await runAndRead(gpu, [dw, dw], dweight), add(preW, g.dweight, 2), tol(2 * M));
  const db = await matmulBackwardBias(gpu, { dbias, dout }, { M, N });
  assertClose("dbias x2", await runAndRead(gpu, [db, db], dbias), add(preB, g.dbias, 2), tol(2 * M));
});

Deno.test("split-K weight gradient: default plan, accumulation, scratch checks", async () => {
  const gpu = await testGpu();
  const [M, K, N] = [1024, 36, 44];
  // One 128x128 output tile: the default plan splits M into 1024 / 256 = 4 slices.
  const bytes = matmulBackwardWeightScratchBytes({ M, K, N });
  if (bytes !== 4 * N * K * 4) throw new Error(`scratch bytes ${bytes}, expected ${4 * N * K * 4}`);
  const rng = new Rng(23);
  const x = rng.uniformArray(M * K), dy = rng.uniformArray(M * N), pre = rng.uniformArray(N * K);
  const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy), dweight = upload(gpu, "dweight", pre);
  const scratch = createStorage(gpu, "scratch", bytes);
  const g = ref.matmulBackward(dy, x, rng.uniformArray(N * K), M, K, N);
  const ds = await matmulBackwardWeightSplit(gpu, { dweight, dout, inp, scratch }, { M, K, N });
  assertClose(
    "split default x2",
    await runAndRead(gpu, [...ds, ...ds], dweight),
    add(pre, g.dweight, 2),
    tol(2 * M),
  );
  await rejects(
    matmulBackwardWeightSplit(gpu, { dweight, dout, inp }, { M, K, N }),
    /^Error: matmul_backward_weight_split: a scratch of matmulBackwardWeightScratchBytes\(\{"M":\d+,"K":\d+,"N":\d+\}\) = \d+ bytes is required$/,
  );
  await rejects(
    matmulBackwardWeightSplit(gpu, { dweight, dout, inp, scratch: createStorage(gpu, "small", bytes - 4) }, {
      M,
      K,
      N,
    }),
    {
      message: `matmul_backward_weight_split: a scratch of matmulBackwardWeightScratchBytes(${
        JSON.stringify({ M, K, N })
      }) = ${bytes} bytes is required`,
    },
  );
  // Outputs that fill the GPU alone are not split.
  if (matmulBackwardWeightScratchBytes({ M: 16384, K: 2048, N: 2048 }) !== 0) {
    throw new Error("split a big output");
  }
});

Deno.test("bias backward sums long columns (unrolled loop and remainder)", async () => {
  const gpu = await testGpu();
  const [M, N] = [1000, 13];
  const rng = new Rng(11);
  const dy = rng.uniformArray(M * N), pre = rng.uniformArray(N);
  const dout = upload(gpu, "dout", dy), dbias = upload(gpu, "dbias", pre);
  const g = ref.matmulBackward(dy, rng.uniformArray(M), rng.uniformArray(N), M, 1, N);
  const db = await runAndRead(gpu, [await matmulBackwardBias(gpu, { dbias, dout }, { M, N })], dbias);
  assertClose("dbias M=1000", db, add(pre, g.dbias), tol(M));
});

Deno.test("matmul dispatchers reject bad shapes", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 64);
  await rejects(
    matmulForward(gpu, { out: buf, inp: buf, weight: buf }, { M: 0, K: 1, N: 1 }),
    /^Error: matmul_forward: M must be a positive integer \(got 0\)$/,
  );
  await rejects(
    matmulForward(gpu, { out: buf, inp: buf, weight: buf }, { M: 2, K: 1.5, N: 1 }),
    /^Error: matmul_forward: K must be a positive integer \(got 1\.5\)$/,
  );
});
