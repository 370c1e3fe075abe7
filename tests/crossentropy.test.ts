import { rejects } from "node:assert/strict";
import { assertClose, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, readF16, readF32, upload, uploadF16 } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import type { StorageType } from "../src/gpu/source.ts";
import {
  accumulateLoss,
  crossEntropyForwardBackward,
  crossEntropyLoss,
} from "../src/kernels/crossentropy.ts";
import * as ref from "../src/reference/crossentropy.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;
const IGNORE = 0xffffffff;

function garbage(n: number): Float32Array<ArrayBuffer> {
  return new Float32Array(n).fill(GARBAGE);
}

function randomTargets(rng: Rng, N: number, V: number, ignoreEvery = 0, ignore = IGNORE): Uint32Array {
  const t = new Uint32Array(N);
  for (let n = 0; n < N; n++) t[n] = ignoreEvery > 0 && n % ignoreEvery === 1 ? ignore : rng.int(V);
  return t;
}

// The source material's worked example, checked against the literal true values.
const EX_LOGITS = [0.1, 0.2, 3.0, 0.1, 0.05];
const EX_PROBS = [0.0450, 0.0497, 0.8175, 0.0450, 0.0428];
const EX_LOSS = 0.20147;
const EX_GRAD = EX_PROBS.map((p, i) => p - (i === 2 ? 1 : 0));

Deno.test("reference cross-entropy: worked example gives the true probabilities and loss", () => {
  const { losses, dlogits } = ref.crossEntropy(EX_LOGITS, [2], 1, 5, 1);
  assertClose("example loss", losses, [EX_LOSS], { atol: 5e-6, rtol: 0 });
  assertClose("example dlogits", dlogits, EX_GRAD, { atol: 5e-5, rtol: 0 });
});

Deno.test("gpu cross-entropy: worked example gives the true probabilities and loss", async () => {
  const gpu = await testGpu();
  const logits = upload(gpu, "logits", new Float32Array(EX_LOGITS));
  const losses = upload(gpu, "losses", garbage(1));
  const targets = upload(gpu, "targets", new Uint32Array([2]));
  const fwd = await crossEntropyLoss(gpu, { losses, logits, targets }, { N: 1, V: 5 });
  assertClose("gpu example loss (forward only)", await runAndRead(gpu, [fwd], losses), [EX_LOSS], {
    atol: 5e-6,
    rtol: 0,
  });
  const fb = await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { N: 1, V: 5, scale: 1 });
  const dl = await runAndRead(gpu, [fb], logits);
  assertClose("gpu example loss", await readF32(gpu, losses), [EX_LOSS], { atol: 5e-6, rtol: 0 });
  assertClose("gpu example dlogits", dl, EX_GRAD, { atol: 5e-5, rtol: 0 });
});

Deno.test("reference cross-entropy gradient equals finite differences of the mean loss", () => {
  for (const [N, V, ignoreEvery] of [[3, 5, 0], [4, 7, 3], [1, 1, 0], [5, 2, 2]]) {
    const rng = new Rng(100 + N * V);
    const x = rng.uniformArray(N * V, -3, 3);
    const t = randomTargets(rng, N, V, ignoreEvery);
    const count = Array.from(t).filter((v) => v !== IGNORE).length;
    const scale = 1 / count;
    const { dlogits } = ref.crossEntropy(x, t, N, V, scale, IGNORE);
    const fd = finiteDiff((p) => {
      const { losses } = ref.crossEntropy(p, t, N, V, 0, IGNORE);
      return losses.reduce((a, b) => a + b, 0) / count;
    }, x);
    assertClose(`ce fd N=${N} V=${V}`, dlogits, fd, { atol: 1e-8, rtol: 1e-6 });
  }
});

Deno.test("reference cross-entropy: huge logits stay finite and V=1 gives zero loss", () => {
  const { losses, dlogits } = ref.crossEntropy([1e4, -1e4, 0, -1e4, 1e4, 0], [1, 0], 2, 3, 1);
  if (![...losses, ...dlogits].every(Number.isFinite)) throw new Error("non-finite values");
  // loss = (max - x[t]) + log(1 + exp(-1e4) + exp(-2e4)) = 2e4 for both rows.
  assertClose("huge losses", losses, [2e4, 2e4], { atol: 1e-9, rtol: 1e-12 });
  const one = ref.crossEntropy([3.5, -2], [0, 0], 2, 1, 1);
  assertClose("V=1", [...one.losses, ...one.dlogits], [0, 0, 0, 0], { atol: 0, rtol: 0 });
});

interface Case {
  N: number;
  V: number;
  lo: number;
  hi: number;
  ignoreEvery: number;
  ignore?: number;
}

const cases: Case[] = [
  { N: 1, V: 1, lo: -2, hi: 2, ignoreEvery: 0 },
  { N: 3, V: 1, lo: -2, hi: 2, ignoreEvery: 0 },
  { N: 5, V: 65, lo: -4, hi: 4, ignoreEvery: 0 },
  { N: 33, V: 65, lo: -4, hi: 4, ignoreEvery: 4 },
  { N: 7, V: 1000, lo: -6, hi: 6, ignoreEvery: 3, ignore: 2 },
  { N: 9, V: 4099, lo: -8, hi: 8, ignoreEvery: 5 },
  { N: 3, V: 50304, lo: -5, hi: 5, ignoreEvery: 0 },
  { N: 70001, V: 2, lo: -3, hi: 3, ignoreEvery: 7 },
];

// Each case at 8 threads a row (a software adapter's default) and at 64 and 256 (a GPU's).
for (const c of cases) {
  const { N, V } = c;
  Deno.test(`gpu cross-entropy matches reference, N=${N} V=${V}, 8, 64 and 256 threads a row`, async () => {
    for (const threads of [8, 64, 256]) await checkCase(c, threads);
  });
}

/** A case's seeded random logits x [N, V], targets t (every ignoreEvery-th ignored), ignore id and 1 / N. */
function caseInputs(c: typeof cases[number], seed: number) {
  const rng = new Rng(seed);
  const x = rng.uniformArray(c.N * c.V, c.lo, c.hi);
  const ignore = c.ignore ?? IGNORE;
  return { x, t: randomTargets(rng, c.N, c.V, c.ignoreEvery, ignore), ignore, scale: 1 / c.N };
}

/** One cross-entropy case at `threads` threads a row: forward-only, then fused, against the reference. */
async function checkCase(c: typeof cases[number], threads: number): Promise<void> {
  const { N, V } = c;
  const gpu = await testGpu();
  const { x, t, ignore, scale } = caseInputs(c, N * 7919 + V);
  const want = ref.crossEntropy(x, t, N, V, scale, ignore);
  const logits = upload(gpu, "logits", x);
  const losses = upload(gpu, "losses", garbage(N));
  const targets = upload(gpu, "targets", t);
  const s = { N, V, ignoreIndex: c.ignore };

  // Forward only: losses written, logits bitwise untouched.
  const lossOnly = await runAndRead(
    gpu,
    [await crossEntropyLoss(gpu, { losses, logits, targets }, s, { threads })],
    losses,
  );
  assertClose(`ce loss N=${N} V=${V}`, lossOnly, want.losses, { atol: 2e-5, rtol: 2e-6 });
  const after = await readF32(gpu, logits);
  if (!after.every((v, i) => v === x[i])) throw new Error("crossEntropyLoss modified the logits");

  // Fused: losses and dlogits in place.
  gpu.device.queue.writeBuffer(losses, 0, garbage(N));
  const fb = await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { ...s, scale }, {
    threads,
  });
  const dl = await runAndRead(gpu, [fb], logits);
  assertClose(`ce fused loss N=${N} V=${V}`, await readF32(gpu, losses), want.losses, {
    atol: 2e-5,
    rtol: 2e-6,
  });
  // Gradient entries are O(scale * p): compare with an absolute floor relative to the scale.
  assertClose(`ce dlogits N=${N} V=${V}`, dl, want.dlogits, { atol: 1e-7 * scale, rtol: 2e-5 });
  for (let n = 0; n < N; n++) {
    if (t[n] !== ignore) continue;
    if (lossOnly[n] !== 0) throw new Error(`ignored row ${n}: loss ${lossOnly[n]}`);
    for (let v = 0; v < V; v++) {
      if (dl[n * V + v] !== 0) throw new Error(`ignored row ${n}: dlogits[${v}] = ${dl[n * V + v]}`);
    }
  }
  for (const b of [logits, losses, targets]) b.destroy();
}

// Separate gradient output (f32 or f16) and a dynamic loss scale read from a GPU buffer. The reference
// gradient is computed with scale * lossScale; the losses are unscaled. Tolerance of an f16 dlogits: one
// rounding to f16 is at most half an ulp, 2^-11 = 4.9e-4 relative for normal values (rtol 1e-3 leaves
// room for the f32 arithmetic), and at most 2^-14 = 6.1e-5 absolute near zero if the GPU flushes f16
// subnormals; the f32 arithmetic's own error is the f32 test's (atol 1e-7 and rtol 2e-5 of the scale).
interface Variant {
  out: boolean;
  type: StorageType;
  lossScale: number | null;
}
const variants: Variant[] = [
  { out: true, type: "f16", lossScale: 1024 }, // the model's mixed-precision step
  { out: true, type: "f16", lossScale: null },
  { out: true, type: "f32", lossScale: null },
  { out: true, type: "f32", lossScale: 8 },
  { out: false, type: "f32", lossScale: 1024 }, // in place, scaled
];

for (const c of cases.filter((c) => c.V > 1 || c.N > 1)) {
  const { N, V } = c;
  Deno.test(`gpu cross-entropy into a separate dlogits (f32, f16) with a loss scale, N=${N} V=${V}`, async () => {
    const gpu = await testGpu();
    const { x, t, ignore, scale } = caseInputs(c, N * 31 + V);
    const targets = upload(gpu, "targets", t);
    for (const v of variants) {
      const tag = `N=${N} V=${V} out=${v.out} ${v.type} lossScale=${v.lossScale}`;
      const ls = v.lossScale ?? 1;
      const want = ref.crossEntropy(x, t, N, V, scale * ls, ignore);
      const logits = upload(gpu, "logits", x), losses = upload(gpu, "losses", garbage(N));
      const dlogits = v.type === "f16"
        ? uploadF16(gpu, "dlogits", garbage(N * V))
        : upload(gpu, "dlogits", garbage(N * V));
      // The scale sits at index 2 of a small buffer, between other values.
      const lossScale = upload(gpu, "lossScale", new Float32Array([3, -7, ls, 11]));
      const fb = await crossEntropyForwardBackward(gpu, {
        logits,
        losses,
        targets,
        ...(v.out ? { dlogits } : {}),
        ...(v.lossScale !== null ? { lossScale } : {}),
      }, { N, V, scale, ignoreIndex: c.ignore, lossScaleIndex: 2, types: { dlogits: v.type } });
      submitDispatches(gpu, [fb]);
      assertClose(`ce losses ${tag}`, await readF32(gpu, losses), want.losses, { atol: 2e-5, rtol: 2e-6 });
      const sc = scale * ls;
      let dl: Float32Array;
      if (v.out) {
        dl = v.type === "f16" ? await readF16(gpu, dlogits, 0, N * V) : await readF32(gpu, dlogits);
        const after = await readF32(gpu, logits);
        if (!after.every((e, i) => e === x[i])) throw new Error(`${tag}: the logits were modified`);
      } else dl = await readF32(gpu, logits);
      const tol = v.type === "f16"
        ? { atol: 2 ** -14 + 1e-7 * sc, rtol: 1e-3 }
        : { atol: 1e-7 * sc, rtol: 2e-5 };
      assertClose(`ce dlogits ${tag}`, dl, want.dlogits, tol);
      for (let n = 0; n < N; n++) {
        if (t[n] !== ignore) continue;
        for (let j = 0; j < V; j++) {
          if (dl[n * V + j] !== 0) {
            throw new Error(`${tag}: ignored row ${n}: dlogits[${j}] = ${dl[n * V + j]}`);
          }
        }
      }
    }
  });
}

Deno.test("gpu cross-entropy: a loss-scaled gradient beyond the f16 range is +-Inf in an f16 dlogits", async () => {
  const gpu = await testGpu();
  const N = 5, V = 4;
  // Row 0: two equal top logits, target one of them: gradient -0.5 / +0.5 there, x1e6 = -+5e5 (> f16 max
  // 65504). Row 1: a confident row whose gradients x1e6 stay finite (~ -91, 45). Row 2: ignored (zeros).
  // Row 3: random. Row 4: a row with small gradients and one beyond the range.
  const x = new Float32Array([
    ...[3, 3, -40, -40],
    ...[10, 0, 0, -30],
    ...[1, 2, 3, 4],
    ...new Rng(8).uniformArray(4, -2, 2),
    ...[0, -12, -12, -40],
  ]);
  const t = new Uint32Array([0, 0, IGNORE, 2, 1]);
  const lossScaleValue = 1e6;
  const want = ref.crossEntropy(x, t, N, V, lossScaleValue, IGNORE);
  const wantLoss = ref.crossEntropy(x, t, N, V, 1, IGNORE).losses;
  const logits = upload(gpu, "logits", x), losses = upload(gpu, "losses", garbage(N));
  const targets = upload(gpu, "targets", t);
  const dlogits = uploadF16(gpu, "dlogits", garbage(N * V));
  const lossScale = upload(gpu, "lossScale", new Float32Array([1, lossScaleValue]));
  submitDispatches(gpu, [
    await crossEntropyForwardBackward(gpu, { logits, losses, targets, dlogits, lossScale }, {
      N,
      V,
      scale: 1,
      lossScaleIndex: 1,
      types: { dlogits: "f16" },
    }),
  ]);
  const dl = await readF16(gpu, dlogits, 0, N * V);
  assertClose("ce overflow losses (unscaled)", await readF32(gpu, losses), wantLoss, {
    atol: 2e-5,
    rtol: 2e-6,
  });
  let infs = 0, finite = 0;
  for (let i = 0; i < N * V; i++) {
    const r = want.dlogits[i], g = dl[i];
    if (Number.isNaN(g)) throw new Error(`dlogits[${i}] is NaN (want ${r})`);
    if (Math.abs(r) >= 65536) {
      // At or beyond 2^16 an f16 conversion must give the infinity of the value's sign.
      if (g !== Math.sign(r) * Infinity) {
        throw new Error(`dlogits[${i}] = ${g}, want ${Math.sign(r)}Inf (${r})`);
      }
      infs++;
    } else if (Math.abs(r) < 65504 * (1 - 2e-3)) {
      if (!(Math.abs(g - r) <= 2 ** -14 + 1e-3 * Math.abs(r))) {
        throw new Error(`dlogits[${i}] = ${g}, want ${r}`);
      }
      finite++;
    } else throw new Error(`test data: ${r} is too close to the f16 limit to judge`);
  }
  console.log(`ce overflow: ${infs} infinities, ${finite} finite values as expected`);
  if (infs < 3 || finite < 8) throw new Error(`test data: ${infs} infinities, ${finite} finite values`);
});

Deno.test("crossEntropyForwardBackward: an f16 gradient in place is refused", async () => {
  const gpu = await testGpu();
  const b = createStorage(gpu, "b", 16), l = createStorage(gpu, "l", 16), t = createStorage(gpu, "t", 16);
  const s = { N: 1, V: 2, scale: 1, types: { dlogits: "f16" as const } };
  await rejects(crossEntropyForwardBackward(gpu, { logits: b, losses: l, targets: t }, s), /dlogits/);
});

Deno.test("gpu cross-entropy: logits of +-1e4 stay finite and match the reference", async () => {
  const gpu = await testGpu();
  const N = 6, V = 300;
  const rng = new Rng(4242);
  const x = rng.uniformArray(N * V, -1e4, 1e4);
  // Row 0: two equal maxima; row 1: all -1e4 but one; row 2: constant 1e4.
  x[5] = 1e4, x[17] = 1e4;
  for (let v = 0; v < V; v++) x[V + v] = -1e4;
  x[V + 3] = 1e4;
  for (let v = 0; v < V; v++) x[2 * V + v] = 1e4;
  const t = new Uint32Array([5, 4, 7, rng.int(V), rng.int(V), rng.int(V)]);
  const want = ref.crossEntropy(x, t, N, V, 0.5);
  const logits = upload(gpu, "logits", x), losses = upload(gpu, "losses", garbage(N));
  const targets = upload(gpu, "targets", t);
  const fb = await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { N, V, scale: 0.5 });
  const dl = await runAndRead(gpu, [fb], logits);
  const l = await readF32(gpu, losses);
  if (![...l, ...dl].every(Number.isFinite)) throw new Error("non-finite loss or gradient for +-1e4 logits");
  assertClose("ce 1e4 losses", l, want.losses, { atol: 2e-5, rtol: 1e-6 });
  assertClose("ce 1e4 dlogits", dl, want.dlogits, { atol: 1e-7, rtol: 2e-5 });
});

Deno.test("gpu accumulateLoss adds loss sums and counts over two dispatches onto a prefilled acc", async () => {
  const gpu = await testGpu();
  const rng = new Rng(77);
  const prefill = new Float32Array([rng.uniform() * 10, 3]);
  const acc = upload(gpu, "acc", prefill);
  const sizes = [1037, 300];
  const ignore = 5;
  let wantSum = prefill[0], wantCount = prefill[1];
  const dispatches = [];
  for (const N of sizes) {
    const l = rng.uniformArray(N, 0, 4);
    const t = randomTargets(rng, N, 10, 6, ignore);
    for (let i = 0; i < N; i++) wantSum += l[i];
    wantCount += Array.from(t).filter((v) => v !== ignore).length;
    const losses = upload(gpu, "losses", l), targets = upload(gpu, "targets", t);
    dispatches.push(await accumulateLoss(gpu, { acc, losses, targets }, { N, ignoreIndex: ignore }));
  }
  const got = await runAndRead(gpu, dispatches, acc);
  assertClose("acc sum", [got[0]], [wantSum], { atol: 0, rtol: 2e-6 });
  assertClose("acc count", [got[1]], [wantCount], { atol: 0, rtol: 0 });
  // Determinism: the same dispatches from the same prefill give bitwise the same sums.
  gpu.device.queue.writeBuffer(acc, 0, prefill);
  const again = await runAndRead(gpu, dispatches, acc);
  if (again[0] !== got[0] || again[1] !== got[1]) throw new Error(`not deterministic: ${again} vs ${got}`);
});

Deno.test("gpu cross-entropy feeds accumulateLoss on the GPU (default: nothing ignored)", async () => {
  const gpu = await testGpu();
  const N = 37, V = 65;
  const rng = new Rng(9);
  const x = rng.uniformArray(N * V, -4, 4), t = randomTargets(rng, N, V);
  const want = ref.crossEntropy(x, t, N, V, 1 / N);
  const logits = upload(gpu, "logits", x), losses = upload(gpu, "losses", garbage(N));
  const targets = upload(gpu, "targets", t);
  const acc = createStorage(gpu, "acc", 8);
  const got = await runAndRead(gpu, [
    await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { N, V, scale: 1 / N }),
    await accumulateLoss(gpu, { acc, losses, targets }, { N }),
  ], acc);
  assertClose("acc of ce", got, [want.losses.reduce((a, b) => a + b, 0), N], { atol: 0, rtol: 2e-6 });
});

Deno.test("crossentropy dispatchers reject bad shapes and thread counts", async () => {
  const gpu = await testGpu();
  const b = createStorage(gpu, "b", 16);
  await rejects(crossEntropyLoss(gpu, { losses: b, logits: b, targets: b }, { N: 1, V: 0 }), {
    message: "crossentropy_forward: V=0 must be a positive integer",
  });
  await rejects(
    crossEntropyLoss(gpu, { losses: b, logits: b, targets: b }, { N: 1, V: 4 }, { threads: 48 }),
    {
      message: "crossentropy_forward: threads must be a power of two up to 256 (got 48)",
    },
  );
});
