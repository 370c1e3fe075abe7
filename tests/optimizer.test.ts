import { rejects } from "node:assert/strict";
import { assertClose, testGpu } from "./helpers.ts";
import { ArenaLayout, createStorage, readF32, upload } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { type Dispatch, submitDispatches } from "../src/gpu/kernel.ts";
import {
  adamw,
  adamwUniforms,
  createLossScaler,
  gradNorm,
  gradNormScratchBytes,
} from "../src/kernels/optimizer.ts";
import * as ref from "../src/reference/optimizer.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;

function assert(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function assertBitwise(label: string, a: Float32Array, b: Float32Array): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert(x.length === y.length, `${label}: lengths ${x.length} != ${y.length}`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) throw new Error(`${label}: not bitwise equal at [${i}]: ${a[i]} vs ${b[i]}`);
  }
}

/**
 * Runs the norm on `g` with `maxNorm` and `threads` per partial-sum workgroup (default: the adapter's); stats
 * and scratch pre-filled with garbage. Returns [norm, scale].
 */
async function gpuNorm(
  gpu: Gpu,
  grads: GPUBuffer,
  n: number,
  maxNorm: number,
  threads?: 8 | 256,
): Promise<Float32Array> {
  const stats = upload(gpu, "stats", new Float32Array([GARBAGE, GARBAGE, GARBAGE, GARBAGE]));
  const scratch = upload(gpu, "scratch", new Float32Array(gradNormScratchBytes(n) / 4).fill(GARBAGE));
  submitDispatches(gpu, await gradNorm(gpu, { stats, grads, scratch }, { n, maxNorm, threads }), "test");
  const out = await readF32(gpu, stats);
  stats.destroy();
  scratch.destroy();
  return out;
}

Deno.test("reference norm, clip scale and AdamW against hand-computed values", () => {
  assert(ref.globalNorm([3, -4]) === 5, "norm of (3, -4)");
  assert(ref.globalNorm([]) === 0, "norm of nothing");
  assert(ref.clipScale(5, 1) === 1 / (5 + 1e-6), "clips above max");
  assert(ref.clipScale(0.5, 1) === 1, "no clip below max");
  assert(ref.clipScale(5, 0) === 1, "max 0 disables");
  assert(ref.clipScale(NaN, 1) === 1 && ref.clipScale(Infinity, 1) === 1, "non-finite norm: scale 1");
  // Step 1 from zero moments: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps), after decay.
  const p = new Float32Array([0.5, -0.25, 2, 0]), m = new Float32Array(4), v = new Float32Array(4);
  const g = [0.3, -2, 1e-3, 0];
  const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1, decayEnd: 2 };
  ref.adamwStep(p, g, m, v, { ...h, gradScale: 2 });
  const want = [0.5 * 0.95 - 0.1 * 0.6 / (0.6 + 1e-8), -0.25 * 0.95 + 0.1 * 4 / (4 + 1e-8), 2 - 0.1, 0];
  assertClose("ref adamw step 1", p, want, { atol: 1e-6, rtol: 1e-6 });
  assertClose("ref adamw m", m, [0.1 * 0.6, -0.1 * 4, 0.1 * 2e-3, 0], { atol: 1e-9, rtol: 1e-6 });
  assertClose("ref adamw v", v, [1e-3 * 0.36, 1e-3 * 16, 1e-3 * 4e-6, 0], { atol: 1e-12, rtol: 1e-6 });
  // Step 2 with the same gradient: moments are still exact after bias correction, update unchanged.
  ref.adamwStep(p, g, m, v, { ...h, step: 2, gradScale: 2 });
  const want2 = [
    want[0] * 0.95 - 0.1 * 0.6 / (0.6 + 1e-8),
    want[1] * 0.95 + 0.1 * 4 / (4 + 1e-8),
    want[2] - 0.1,
    0,
  ];
  assertClose("ref adamw step 2", p, want2, { atol: 1e-6, rtol: 1e-6 });
});

for (
  const [n, threads] of [1, 100, 65537, 1_000_000, 3_000_001].flatMap((n) => [[n, 256], [n, 8]] as const)
) {
  Deno.test(`grad norm and clip scale match reference, n=${n}, ${threads} threads per partial`, async () => {
    const gpu = await testGpu();
    const g = new Rng(n).normalArray(n, 0.5);
    g[0] = -3;
    const grads = upload(gpu, "grads", g);
    const norm = ref.globalNorm(g);
    // max_norm 0 (off), above the norm (no clip), below it (clip).
    for (const maxNorm of [0, 2 * norm, 0.25 * norm]) {
      const [gn, scale] = await gpuNorm(gpu, grads, n, maxNorm, threads);
      const want = ref.clipScale(norm, maxNorm);
      assert((want < 1) === (maxNorm === 0.25 * norm), "test precondition: clipping branch");
      assertClose(`norm n=${n} max=${maxNorm.toPrecision(3)}`, [gn, scale], [norm, want], {
        atol: 0,
        rtol: 1e-5,
      });
    }
    grads.destroy();
  });
}

Deno.test("clip scale keeps torch's + 1e-6: visible on a small norm", async () => {
  const gpu = await testGpu();
  const g = new Rng(4).normalArray(100, 1e-5); // norm ~1e-4: 1e-6 is a 1% effect
  const norm = ref.globalNorm(g), maxNorm = norm / 3;
  const [gn, scale] = await gpuNorm(gpu, upload(gpu, "grads", g), g.length, maxNorm);
  assert(Math.abs(ref.clipScale(norm, maxNorm) * 3 - 1) > 1e-3, "test precondition: epsilon matters");
  assertClose("small norm", [gn, scale], [norm, ref.clipScale(norm, maxNorm)], { atol: 0, rtol: 1e-5 });
});

Deno.test("grad norm: non-finite norm is reported with scale 1; scratch size is checked", async () => {
  const gpu = await testGpu();
  const g = new Rng(5).normalArray(3000);
  g[1234] = NaN;
  const [n1, s1] = await gpuNorm(gpu, upload(gpu, "grads", g), g.length, 1);
  assert(Number.isNaN(n1) && s1 === 1, `NaN grad: got norm ${n1} scale ${s1}`);
  g[1234] = 3e20; // square overflows f32
  const [n2, s2] = await gpuNorm(gpu, upload(gpu, "grads", g), g.length, 1);
  assert(n2 === Infinity && s2 === 1, `overflow: got norm ${n2} scale ${s2}`);
  const tiny = createStorage(gpu, "tiny", 4), stats = createStorage(gpu, "stats", 16);
  const big = createStorage(gpu, "big", 400_000);
  await gradNorm(gpu, { stats, grads: big, scratch: tiny }, { n: 1000, maxNorm: 1 }); // 1 part: fits
  for (
    const [b, n, message] of [
      [{ stats, grads: big, scratch: tiny }, 100_000, "'scratch' holds 4 bytes, needs 392"],
      [{ stats: tiny, grads: big, scratch: big }, 1000, "'stats' holds 4 bytes, needs 16"],
      [{ stats, grads: tiny, scratch: big }, 1000, "'grads' holds 4 bytes, needs 4000"],
    ] as const
  ) {
    await rejects(gradNorm(gpu, b, { n, maxNorm: 1 }), { message: `grad_norm: ${message}` });
  }
});

Deno.test("grad norm over several buffers equals the norm of their concatenation", async () => {
  const gpu = await testGpu();
  // Three buffers of an arena spread over several: partial sums of each, one finish.
  const sizes = [300_000, 1_000, 70_001];
  const parts = sizes.map((n, k) => new Rng(20 + k).normalArray(n, 0.5));
  const all = new Float32Array(sizes.reduce((a, b) => a + b));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  const norm = ref.globalNorm(all), maxNorm = 0.5 * norm;
  const stats = createStorage(gpu, "stats", 16);
  const scratch = upload(gpu, "scratch", new Float32Array(gradNormScratchBytes(sizes) / 4).fill(GARBAGE));
  const grads = parts.map((p) => upload(gpu, "grads", p));
  for (const threads of [256, 8] as const) {
    const ds = await gradNorm(gpu, { stats, grads, scratch }, { n: sizes, maxNorm, threads });
    assert(ds.length === 4, `${ds.length} dispatches, want a partial per buffer and one finish`);
    submitDispatches(gpu, ds, "test");
    const [gn, scale] = await readF32(gpu, stats);
    assertClose(`norm of 3 buffers, ${threads} threads`, [gn, scale], [norm, ref.clipScale(norm, maxNorm)], {
      atol: 0,
      rtol: 1e-5,
    });
  }
});

/** A small GPT-like arena: decayed matrices first, then biases and LayerNorm weights; odd sizes -> padding. */
function testArena(): { layout: ArenaLayout; decayEnd: number; inTensor: Uint8Array } {
  const layout = new ArenaLayout([
    { name: "wte", shape: [67, 24] },
    { name: "h0.attn.w", shape: [24, 72] },
    { name: "h0.mlp.w", shape: [72, 25] },
    { name: "h0.attn.b", shape: [72] },
    { name: "ln.w", shape: [24] },
    { name: "ln.b", shape: [23] },
  ]);
  const decayEnd = layout.get("h0.attn.b").offset;
  const inTensor = new Uint8Array(layout.totalFloats);
  for (const e of layout.entries) inTensor.fill(1, e.offset, e.offset + e.size);
  return { layout, decayEnd, inTensor };
}

/** Random values inside tensors, zero in the padding. */
function fill(rng: Rng, inTensor: Uint8Array, gen: (r: Rng) => number): Float32Array<ArrayBuffer> {
  const a = new Float32Array(inTensor.length);
  for (let i = 0; i < a.length; i++) if (inTensor[i]) a[i] = gen(rng);
  return a;
}

interface State {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

function initState(seed: number, inTensor: Uint8Array): State {
  const rng = new Rng(seed);
  return {
    p: fill(rng, inTensor, (r) => 0.2 * r.normal()),
    m: fill(rng, inTensor, (r) => 0.01 * r.normal()),
    v: fill(rng, inTensor, (r) => 1e-4 * r.uniform()),
  };
}

const HYPER = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 }; // nanoGPT shakespeare_char
const TORCH_DEFAULT = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
const LRS = [1e-2, 6e-3, 2e-3];

/**
 * Runs 3 steps of [gradNorm, adamw] on the GPU from `init`, one submission per step, rewriting the AdamW
 * uniforms with Dispatch.update in between. Returns the states and stats after each step.
 */
async function gpuSteps(
  gpu: Gpu,
  init: State,
  gradsPerStep: Float32Array[],
  decayEnd: number,
  maxNorm: number,
): Promise<{ states: State[]; stats: Float32Array[] }> {
  const n = init.p.length;
  const params = upload(gpu, "params", init.p), m = upload(gpu, "m", init.m), v = upload(gpu, "v", init.v);
  const grads = createStorage(gpu, "grads", 4 * n);
  const stats = upload(gpu, "stats", new Float32Array([GARBAGE, GARBAGE, GARBAGE, GARBAGE]));
  const scratch = upload(gpu, "scratch", new Float32Array(gradNormScratchBytes(n) / 4).fill(GARBAGE));
  const norm = await gradNorm(gpu, { stats, grads, scratch }, { n, maxNorm });
  const step = await adamw(gpu, { params, m, v, grads, stats }, {
    n,
    decayEnd,
    lr: LRS[0],
    ...HYPER,
    step: 1,
  });
  const states: State[] = [], statsOut: Float32Array[] = [];
  for (let t = 1; t <= gradsPerStep.length; t++) {
    gpu.device.queue.writeBuffer(grads, 0, gradsPerStep[t - 1] as Float32Array<ArrayBuffer>);
    step.update(adamwUniforms({ lr: LRS[t - 1], beta1: HYPER.beta1, beta2: HYPER.beta2, step: t }));
    const dispatches: Dispatch[] = [...norm, step];
    submitDispatches(gpu, dispatches, "test");
    states.push({ p: await readF32(gpu, params), m: await readF32(gpu, m), v: await readF32(gpu, v) });
    statsOut.push(await readF32(gpu, stats));
  }
  for (const b of [params, m, v, grads, stats, scratch]) b.destroy();
  return { states, stats: statsOut };
}

const maxAbs = (a: Float32Array): number => a.reduce((x, y) => Math.max(x, Math.abs(y)), 0);

/**
 * p, m and v against the reference. m = b1 m + (1 - b1) g and p = decay p - lr u can cancel, so their
 * absolute tolerance is 1e-6 of the array's magnitude (a few f32 ulps of the terms), on top of rtol 1e-5;
 * v adds non-negative terms and is held to rtol 1e-5 alone.
 */
function compareState(label: string, got: State, want: State): void {
  assertClose(`${label} params`, got.p, want.p, { atol: 1e-6 * maxAbs(want.p), rtol: 1e-5 });
  assertClose(`${label} m`, got.m, want.m, { atol: 1e-6 * maxAbs(want.m), rtol: 1e-5 });
  assertClose(`${label} v`, got.v, want.v, { atol: 1e-8 * maxAbs(want.v), rtol: 1e-5 }); // sum of terms >= 0
}

function assertPaddingZero(label: string, s: State, inTensor: Uint8Array): void {
  for (const [k, a] of Object.entries(s)) {
    for (let i = 0; i < a.length; i++) {
      if (!inTensor[i] && !Object.is(a[i], 0)) throw new Error(`${label}: padding ${k}[${i}] = ${a[i]}`);
    }
  }
}

for (const variant of ["scalar", "vec4"] as const) {
  Deno.test(`adamw alone: 3 steps with per-step uniforms match reference (torch defaults); scale read from stats, ${variant}`, async () => {
    const gpu = await testGpu();
    const { layout, decayEnd, inTensor } = testArena();
    const n = layout.totalFloats;
    assert(decayEnd > 0 && decayEnd < n, "test precondition: decay on part of the arena");
    const init = initState(11, inTensor);
    const rng = new Rng(12);
    const gradsPerStep = LRS.map(() => fill(rng, inTensor, (r) => 0.05 * r.normal()));
    const scale = 0.75;
    const params = upload(gpu, "params", init.p), m = upload(gpu, "m", init.m), v = upload(gpu, "v", init.v);
    const grads = createStorage(gpu, "grads", 4 * n);
    const stats = upload(gpu, "stats", new Float32Array([GARBAGE, scale, 0, 1]));
    const step = await adamw(gpu, { params, m, v, grads, stats }, {
      n,
      decayEnd,
      lr: LRS[0],
      ...TORCH_DEFAULT,
      step: 1,
      variant,
    });
    const want: State = { p: init.p.slice(), m: init.m.slice(), v: init.v.slice() };
    let prev = init;
    for (let t = 1; t <= 3; t++) {
      gpu.device.queue.writeBuffer(grads, 0, gradsPerStep[t - 1] as Float32Array<ArrayBuffer>);
      step.update(
        adamwUniforms({ lr: LRS[t - 1], beta1: TORCH_DEFAULT.beta1, beta2: TORCH_DEFAULT.beta2, step: t }),
      );
      submitDispatches(gpu, [step], "test");
      const got = { p: await readF32(gpu, params), m: await readF32(gpu, m), v: await readF32(gpu, v) };
      const hyper = { ...TORCH_DEFAULT, lr: LRS[t - 1], step: t, decayEnd, gradScale: scale };
      ref.adamwStep(want.p, gradsPerStep[t - 1], want.m, want.v, hyper);
      compareState(`adamw step ${t}`, got, want);
      // The update itself (p_new - p_old, ~lr) to relative precision, one reference step from the GPU's
      // previous state so that earlier rounding differences do not count; atol ~2 f32 ulps of |p| < 1.
      const one: State = { p: prev.p.slice(), m: prev.m.slice(), v: prev.v.slice() };
      ref.adamwStep(one.p, gradsPerStep[t - 1], one.m, one.v, hyper);
      assertClose(
        `adamw step ${t} update`,
        got.p.map((x, i) => x - prev.p[i]),
        one.p.map((x, i) => x - prev.p[i]),
        { atol: 1.2e-7, rtol: 1e-4 },
      );
      prev = got;
      assertPaddingZero(`adamw step ${t}`, got, inTensor);
      // Gradients are read, not cleared.
      assertBitwise("grads untouched", await readF32(gpu, grads), gradsPerStep[t - 1]);
    }
  });
}

Deno.test("grad norm refuses a partial-sum workgroup size other than 8 or 256, in one line", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 4 * 64);
  const b = { stats: buf, grads: buf, scratch: buf };
  await rejects(gradNorm(gpu, b, { n: 64, maxNorm: 1, threads: 64 as 8 }), {
    message: "grad_norm: threads must be 8 or 256 (got 64)",
  });
  buf.destroy();
});

Deno.test("adamw's vec4 variant refuses n or decayEnd not a multiple of 4, in one line", async () => {
  const gpu = await testGpu();
  const buf = createStorage(gpu, "x", 4 * 64);
  const h = { lr: 1e-3, ...HYPER, step: 1, variant: "vec4" as const };
  const b = { params: buf, m: buf, v: buf, grads: buf, stats: buf };
  await rejects(adamw(gpu, b, { n: 62, decayEnd: 0, ...h }), {
    message: "adamw: the vec4 variant needs n (62) and decayEnd (0) multiples of 4",
  });
  await rejects(adamw(gpu, b, { n: 64, decayEnd: 10, ...h }), {
    message: "adamw: the vec4 variant needs n (64) and decayEnd (10) multiples of 4",
  });
  buf.destroy();
});

Deno.test("norm + clip + adamw: clipped steps equal AdamW on grads * scale; padding stays zero", async () => {
  const gpu = await testGpu();
  const { decayEnd, inTensor } = testArena();
  const init = initState(21, inTensor);
  const rng = new Rng(22);
  // Step 1 below max_norm, steps 2 and 3 far above it.
  const gradsPerStep = [0.01, 1, 3].map((s) => fill(rng, inTensor, (r) => s * r.normal()));
  const maxNorm = 2;
  const { states, stats } = await gpuSteps(gpu, init, gradsPerStep, decayEnd, maxNorm);
  const want: State = { p: init.p.slice(), m: init.m.slice(), v: init.v.slice() };
  const unclipped: State = { p: init.p.slice(), m: init.m.slice(), v: init.v.slice() };
  for (let t = 1; t <= 3; t++) {
    const g = gradsPerStep[t - 1];
    const norm = ref.globalNorm(g), scale = ref.clipScale(norm, maxNorm);
    assert(t === 1 ? scale === 1 : scale < 0.1, `test precondition: step ${t} scale ${scale}`);
    assertClose(`step ${t} stats`, stats[t - 1], [norm, scale, 0, 1], { atol: 0, rtol: 1e-5 });
    const h = { ...HYPER, lr: LRS[t - 1], step: t, decayEnd };
    ref.adamwStep(want.p, g, want.m, want.v, { ...h, gradScale: scale });
    ref.adamwStep(unclipped.p, g, unclipped.m, unclipped.v, { ...h, gradScale: 1 });
    compareState(`clipped step ${t}`, states[t - 1], want);
    assertPaddingZero(`clipped step ${t}`, states[t - 1], inTensor);
  }
  // The clipping mattered: the unclipped trajectory's second moments are far from what the GPU produced
  // (steps 2 and 3 scale the gradient by < 0.1, so v differs by a large factor, far beyond the 1e-5 above).
  let worst = 0;
  for (let i = 0; i < unclipped.v.length; i++) {
    if (inTensor[i]) worst = Math.max(worst, Math.abs(states[2].v[i] - unclipped.v[i]) / maxAbs(unclipped.v));
  }
  assert(worst > 0.1, `clipping had no effect: worst relative difference of v ${worst}`);
});

Deno.test("norm and adamw are bitwise deterministic across runs", async () => {
  const gpu = await testGpu();
  const n = 3_000_001;
  const grads = upload(gpu, "grads", new Rng(31).normalArray(n));
  const a = await gpuNorm(gpu, grads, n, 1), b = await gpuNorm(gpu, grads, n, 1);
  assertBitwise("norm", a, b);
  grads.destroy();
  const { decayEnd, inTensor } = testArena();
  const init = initState(32, inTensor);
  const rng = new Rng(33);
  const gs = [0.5, 0.5, 0.5].map((s) => fill(rng, inTensor, (r) => s * r.normal()));
  const r1 = await gpuSteps(gpu, init, gs, decayEnd, 1);
  const r2 = await gpuSteps(gpu, init, gs, decayEnd, 1);
  for (let t = 0; t < 3; t++) {
    assertBitwise(`stats step ${t + 1}`, r1.stats[t], r2.stats[t]);
    for (const k of ["p", "m", "v"] as const) {
      assertBitwise(`${k} step ${t + 1}`, r1.states[t][k], r2.states[t][k]);
    }
  }
});

Deno.test("adamw over more than 65535 workgroups (folded grid), n = 65535 * 256 + 777", async () => {
  const gpu = await testGpu();
  const n = 65535 * 256 + 777;
  const rng = new Rng(41);
  const p = rng.uniformArray(n), g = rng.uniformArray(n, -0.1, 0.1);
  const mm = rng.uniformArray(n, -0.01, 0.01), vv = rng.uniformArray(n, 0, 1e-3);
  const params = upload(gpu, "params", p), m = upload(gpu, "m", mm), v = upload(gpu, "v", vv);
  const grads = upload(gpu, "grads", g), stats = upload(gpu, "stats", new Float32Array([GARBAGE, 1, 0, 1]));
  const decayEnd = n - 1000;
  const h = { ...HYPER, lr: 1e-2, step: 7, decayEnd };
  submitDispatches(gpu, [await adamw(gpu, { params, m, v, grads, stats }, { n, ...h })], "test");
  const got = { p: await readF32(gpu, params), m: await readF32(gpu, m), v: await readF32(gpu, v) };
  ref.adamwStep(p, g, mm, vv, { ...h, gradScale: 1 });
  compareState(`adamw n=${n}`, got, { p, m: mm, v: vv });
  for (const b of [params, m, v, grads, stats]) b.destroy();
});

Deno.test("loss scaling: scaled grads give the unscaled step; overflow skips it and halves S; S grows", async () => {
  const gpu = await testGpu();
  const { layout, decayEnd, inTensor } = testArena();
  const n = layout.totalFloats;
  const init = initState(31, inTensor);
  const rng = new Rng(32);
  const g = fill(rng, inTensor, (r) => 3 * r.normal()); // clipped at maxNorm 2
  const S = 1024, maxNorm = 2;
  const params = upload(gpu, "params", init.p), m = upload(gpu, "m", init.m), v = upload(gpu, "v", init.v);
  const grads = upload(gpu, "grads", g.map((x) => x * S));
  const stats = upload(gpu, "stats", new Float32Array([GARBAGE, GARBAGE, GARBAGE, GARBAGE]));
  const scratch = createStorage(gpu, "scratch", gradNormScratchBytes(n));
  const scaler = createLossScaler(gpu, S);
  const norm = await gradNorm(gpu, { stats, grads, scratch, scaler }, { n, maxNorm, growthInterval: 2 });
  const step = await adamw(gpu, { params, m, v, grads, stats }, {
    n,
    decayEnd,
    lr: LRS[0],
    ...HYPER,
    step: 1,
  });
  const run = async () => {
    submitDispatches(gpu, [...norm, step], "test");
    return {
      stats: await readF32(gpu, stats),
      scaler: await readF32(gpu, scaler),
      state: { p: await readF32(gpu, params), m: await readF32(gpu, m), v: await readF32(gpu, v) },
    };
  };
  // Step 1: finite. Unscaled norm and the same update as AdamW on the unscaled, clipped gradient.
  const r1 = await run();
  const gn = ref.globalNorm(g), clip = ref.clipScale(gn, maxNorm);
  assertClose("scaled stats", r1.stats, [gn, clip / S, 0, S], { atol: 0, rtol: 1e-5 });
  assertClose("scaler after 1 good step", r1.scaler, [S, 1], { atol: 0, rtol: 0 });
  const want: State = { p: init.p.slice(), m: init.m.slice(), v: init.v.slice() };
  ref.adamwStep(want.p, g, want.m, want.v, { ...HYPER, lr: LRS[0], step: 1, decayEnd, gradScale: clip });
  compareState("scaled step", r1.state, want);
  // Step 2: an Inf in the gradients (an f16 overflow): nothing changes, S halves, the count restarts.
  gpu.device.queue.writeBuffer(grads, 4 * 5, new Float32Array([Infinity]));
  const r2 = await run();
  assert(
    r2.stats[0] === Infinity && r2.stats[1] === 0 && r2.stats[2] === 1 && r2.stats[3] === S,
    `stats ${r2.stats}`,
  );
  assertClose("scaler after overflow", r2.scaler, [S / 2, 0], { atol: 0, rtol: 0 });
  for (const k of ["p", "m", "v"] as const) {
    assertBitwise(`skipped step leaves ${k}`, r2.state[k], r1.state[k]);
  }
  // NaN is skipped the same way.
  gpu.device.queue.writeBuffer(grads, 4 * 5, new Float32Array([NaN]));
  const r3 = await run();
  assert(r3.stats[2] === 1 && r3.scaler[0] === S / 4, `NaN: stats ${r3.stats}, scaler ${r3.scaler}`);
  // Two finite steps in a row (growthInterval 2): S doubles and the count restarts.
  gpu.device.queue.writeBuffer(grads, 0, g.map((x) => x * S / 4) as Float32Array<ArrayBuffer>);
  const r4 = await run();
  assertClose("scaler after 1 good", r4.scaler, [S / 4, 1], { atol: 0, rtol: 0 });
  assertClose("unscaled norm at S/4", [r4.stats[0]], [gn], { atol: 0, rtol: 1e-5 });
  const r5 = await run();
  assertClose("scaler after 2 good: doubled", r5.scaler, [S / 2, 0], { atol: 0, rtol: 0 });
  for (const b of [params, m, v, grads, stats, scratch, scaler]) b.destroy();
});
