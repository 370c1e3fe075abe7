import { assertClose, dot, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, readF16, readF32, roundF16, upload, uploadF16 } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import type { StorageType } from "../src/gpu/source.ts";
import { geluBackward, geluForward } from "../src/kernels/gelu.ts";
import * as ref from "../src/reference/gelu.ts";
import { matmulBackwardInput, matmulForward } from "../src/kernels/matmul.ts";
import * as refMatmul from "../src/reference/matmul.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("reference erf matches known values to 1e-14", () => {
  const known: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
    [-1.5, -0.9661051464753108],
  ];
  assertClose("erf", known.map(([x]) => ref.erf(x)), known.map(([, y]) => y), { atol: 1e-14, rtol: 0 });
});

Deno.test("reference gelu backward equals finite differences of its forward", () => {
  const x = new Rng(1).uniformArray(40, -5, 5);
  const w = new Rng(2).uniformArray(40);
  const g = ref.geluBackward(x, w);
  const fd = finiteDiff((p) => dot(ref.geluForward(p), w), x);
  assertClose("gelu fd", g, fd, { atol: 1e-8, rtol: 1e-6 });
});

for (const n of [1, 7, 256, 1000, 70_001]) {
  Deno.test(`gelu forward and backward match reference, n=${n}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n);
    const x = rng.uniformArray(n, -6, 6);
    x[0] = 0;
    const dy = rng.uniformArray(n);
    const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy);
    const out = createStorage(gpu, "out", n * 4), dinp = createStorage(gpu, "dinp", n * 4);
    const y = await runAndRead(gpu, [await geluForward(gpu, { out, inp }, n)], out);
    assertClose(`gelu fwd n=${n}`, y, ref.geluForward(x), { atol: 3e-7, rtol: 1e-6 });
    const dx = await runAndRead(gpu, [await geluBackward(gpu, { dinp, inp, dout }, n)], dinp);
    assertClose(`gelu bwd n=${n}`, dx, ref.geluBackward(x, dy), { atol: 1e-6, rtol: 1e-5 });
  });
}

// f16 storage. Inputs are rounded to f16 (what an f16 buffer holds) and the reference runs on the rounded
// values, so only the kernel's own error shows. An f16 output is compared with the error of one rounding
// to f16: at most half an ulp, 2^-11 = 4.9e-4 relative for normal values (rtol 1e-3 leaves room for the
// f32 arithmetic), and at most 2^-14 = 6.1e-5 absolute for values near zero if the GPU flushes f16
// subnormals (atol 2^-14 + 1e-6, the 1e-6 for the f32 arithmetic). An f32 output computed from f16
// inputs is held to the f32 tests' tolerances.
const F16_OUT = { atol: 2 ** -14 + 1e-6, rtol: 1e-3 };
const GARBAGE = 12345;

/** An array of `n` values in `type`: f16 (rounded) or f32, plus the values a reference should see. */
function stored(gpu: Awaited<ReturnType<typeof testGpu>>, label: string, type: StorageType, v: Float32Array) {
  return type === "f16"
    ? { buffer: uploadF16(gpu, label, v), values: roundF16(v) }
    : { buffer: upload(gpu, label, v), values: Float64Array.from(v) };
}

async function read(gpu: Awaited<ReturnType<typeof testGpu>>, b: GPUBuffer, type: StorageType, n: number) {
  return type === "f16" ? await readF16(gpu, b, 0, n) : await readF32(gpu, b, 0, n);
}

const fwdCombos: { inp: StorageType; out: StorageType }[] = [
  { inp: "f16", out: "f16" }, // the model's forward
  { inp: "f32", out: "f16" },
  { inp: "f16", out: "f32" },
];
const bwdCombos: { inp: StorageType; dout: StorageType; dinp: StorageType }[] = [
  { inp: "f16", dout: "f32", dinp: "f16" }, // the model's backward
  { inp: "f16", dout: "f16", dinp: "f16" },
  { inp: "f16", dout: "f16", dinp: "f32" },
  { inp: "f32", dout: "f32", dinp: "f16" },
];

for (const n of [1, 7, 1001, 70_001]) {
  Deno.test(`gelu with f16 storage matches reference on f16-rounded inputs, n=${n}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n + 5);
    const x = rng.uniformArray(n, -6, 6);
    x[0] = 0.25;
    const dy = rng.uniformArray(n);
    for (const t of fwdCombos) {
      const tag = `n=${n} inp=${t.inp} out=${t.out}`;
      const inp = stored(gpu, "inp", t.inp, x);
      const prefill = new Float32Array(n).fill(GARBAGE);
      const out = t.out === "f16" ? uploadF16(gpu, "out", prefill) : upload(gpu, "out", prefill);
      submitDispatches(gpu, [await geluForward(gpu, { out, inp: inp.buffer }, n, t)]);
      const tol = t.out === "f16" ? F16_OUT : { atol: 3e-7, rtol: 1e-6 };
      assertClose(`gelu fwd ${tag}`, await read(gpu, out, t.out, n), ref.geluForward(inp.values), tol);
    }
    for (const t of bwdCombos) {
      const tag = `n=${n} inp=${t.inp} dout=${t.dout} dinp=${t.dinp}`;
      const inp = stored(gpu, "inp", t.inp, x), dout = stored(gpu, "dout", t.dout, dy);
      const prefill = new Float32Array(n).fill(GARBAGE);
      const dinp = t.dinp === "f16" ? uploadF16(gpu, "dinp", prefill) : upload(gpu, "dinp", prefill);
      submitDispatches(gpu, [await geluBackward(gpu, { dinp, inp: inp.buffer, dout: dout.buffer }, n, t)]);
      const tol = t.dinp === "f16" ? F16_OUT : { atol: 1e-6, rtol: 1e-5 };
      const want = ref.geluBackward(inp.values, dout.values);
      assertClose(`gelu bwd ${tag}`, await read(gpu, dinp, t.dinp, n), want, tol);
    }
  });
}

Deno.test("gelu f16: an odd-length f16 output at an offset leaves its neighbours alone", async () => {
  const gpu = await testGpu();
  const n = 301, at = 256; // f16 elements [256, 557) of a 1024-element buffer
  const x = new Rng(3).uniformArray(n, -4, 4);
  const inp = uploadF16(gpu, "inp", x);
  const big = uploadF16(gpu, "big", new Float32Array(1024).fill(GARBAGE));
  // Binding sizes must be multiples of 4 bytes: 301 halves are bound as 302.
  const out = { buffer: big, offset: at * 2, size: Math.ceil(n / 2) * 4 };
  submitDispatches(gpu, [await geluForward(gpu, { out, inp }, n, { inp: "f16", out: "f16" })]);
  const all = await readF16(gpu, big);
  assertClose("gelu f16 at offset", all.slice(at, at + n), ref.geluForward(roundF16(x)), F16_OUT);
  const rest = [...all.slice(0, at), ...all.slice(at + n)];
  if (!rest.every((v) => v === 12344)) throw new Error("f16 out wrote outside its range"); // 12345 in f16
});

// GPT-2's tanh approximation ("gelu_new"): the reference against known values and its own finite
// differences, the GELU kernels and the matmul epilogues that fuse it against the reference.
Deno.test("reference gelu_new matches PyTorch's values and its finite differences", () => {
  // torch.nn.functional.gelu(x, approximate="tanh") in float64.
  const known: [number, number][] = [
    [-3, -0.0036373920817729943],
    [-1, -0.15880800939172324],
    [0.5, 0.34571400982514394],
    [2, 1.954597694087775],
  ];
  assertClose("gelu_new", known.map(([x]) => ref.geluTanh(x)), known.map(([, y]) => y), { atol: 1e-15 });
  const x = new Rng(3).uniformArray(40, -5, 5), w = new Rng(4).uniformArray(40);
  const fd = finiteDiff((p) => dot(ref.geluForward(p, "gelu_new"), w), x);
  assertClose("gelu_new fd", ref.geluBackward(x, w, "gelu_new"), fd, { atol: 1e-8, rtol: 1e-6 });
  // The two forms differ by up to ~5e-4: a kernel computing the wrong one fails the tests below.
  const gap = Math.max(...Array.from(x, (v) => Math.abs(ref.gelu(v) - ref.geluTanh(v))));
  if (!(gap > 1e-4)) throw new Error(`exact and tanh GELU differ by only ${gap}`);
});

Deno.test("gelu_new forward and backward kernels match the reference (and differ from exact GELU)", async () => {
  const gpu = await testGpu(), n = 5000, rng = new Rng(5);
  const x = rng.uniformArray(n, -6, 6), dy = rng.uniformArray(n);
  x[0] = 0, x[1] = 1e30, x[2] = -1e30; // tanh's argument overflows f32 at these
  const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy);
  const out = createStorage(gpu, "out", n * 4), dinp = createStorage(gpu, "dinp", n * 4);
  const y = await runAndRead(gpu, [await geluForward(gpu, { out, inp }, n, {}, "gelu_new")], out);
  assertClose("gelu_new fwd", y, ref.geluForward(x, "gelu_new"), { atol: 3e-7, rtol: 1e-6 });
  const dx = await runAndRead(gpu, [await geluBackward(gpu, { dinp, inp, dout }, n, {}, "gelu_new")], dinp);
  assertClose("gelu_new bwd", dx, ref.geluBackward(x, dy, "gelu_new"), { atol: 1e-6, rtol: 1e-5 });
});

Deno.test("matmul's fused GELU epilogues take gelu_new: forward act and backward-input pre", async () => {
  const gpu = await testGpu(), rng = new Rng(6);
  const M = 37, K = 24, N = 52;
  const a = rng.uniformArray(M * K, -1, 1), w = rng.uniformArray(N * K, -1, 1);
  const inp = upload(gpu, "inp", a), weight = upload(gpu, "weight", w);
  const out = createStorage(gpu, "out", M * N * 4), act = createStorage(gpu, "act", M * N * 4);
  const opts = { activation: "gelu_new" as const };
  const fwd = await matmulForward(gpu, { out, inp, weight, act }, { M, K, N }, opts);
  const pre = refMatmul.matmulForward(a, w, null, M, K, N);
  assertClose("fused act", await runAndRead(gpu, [fwd], act), ref.geluForward(pre, "gelu_new"), {
    atol: 1e-5,
    rtol: 1e-4,
  });
  // The input gradient of a layer [K2, N] whose input is gelu_new(pre), pre [M, N]:
  // dinp[M, N] = (dout[M, K2] · W2[K2, N]) * gelu_new'(pre).
  const K2 = 20, w2 = rng.uniformArray(K2 * N, -1, 1), dout = rng.uniformArray(M * K2);
  const dinp = createStorage(gpu, "dinp", M * N * 4);
  const bwd = await matmulBackwardInput(
    gpu,
    {
      dinp,
      dout: upload(gpu, "dout", dout),
      weight: upload(gpu, "w2", w2),
      pre: upload(gpu, "pre", Float32Array.from(pre)),
    },
    { M, K: N, N: K2 },
    opts,
  );
  const want = ref.geluBackward(
    pre,
    refMatmul.matmulBackward(dout, new Float64Array(M * N), w2, M, N, K2).dinp,
    "gelu_new",
  );
  assertClose("fused pre", await runAndRead(gpu, [bwd], dinp), want, { atol: 1e-5, rtol: 1e-4 });
});
