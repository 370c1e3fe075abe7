import { assertClose, testGpu } from "./helpers.ts";
import { createStorage, readF32, readU32, upload } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { type Dispatch, encodeDispatches, submitDispatches } from "../src/gpu/kernel.ts";
import { attentionDecode, commit, decodeEmbed, kvAppend } from "../src/kernels/decode.ts";
import { argmax, sample } from "../src/kernels/sample.ts";
import * as ref from "../src/reference/decode.ts";
import { attentionForward } from "../src/reference/attention.ts";
import { hash3, pcgHash, uniform01 } from "../src/util/hash.ts";
import { sampleWeights } from "../src/reference/sample.ts";
import { Rng } from "../src/util/rng.ts";

const GARBAGE = 12345;

/** Bitwise equality of two u32 or f32 arrays (NaN payloads included). */
function assertSameBits(label: string, a: Uint32Array | Float32Array, b: Uint32Array | Float32Array): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length),
    ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) throw new Error(`${label}: length ${ua.length} != ${ub.length}`);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) throw new Error(`${label}: [${i}] ${a[i]} != ${b[i]}`);
  }
  console.log(`${label}: ${ua.length} values bitwise equal`);
}

function setPos(gpu: Gpu, state: GPUBuffer, pos: number): void {
  gpu.device.queue.writeBuffer(state, 0, Uint32Array.of(pos));
}

function nanArray(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

/** Naive causal attention, independent of both references: no max subtraction, normalised last. */
function naiveCausal(qkv: ArrayLike<number>, B: number, T: number, C: number, NH: number): Float64Array {
  const HS = C / NH;
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const w: number[] = [];
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let d = 0; d < HS; d++) {
            s += qkv[(b * T + t) * 3 * C + h * HS + d] * qkv[(b * T + j) * 3 * C + C + h * HS + d];
          }
          w.push(Math.exp(s / Math.sqrt(HS)));
        }
        const total = w.reduce((a, c) => a + c, 0);
        for (let d = 0; d < HS; d++) {
          let acc = 0;
          for (let j = 0; j <= t; j++) acc += w[j] * qkv[(b * T + j) * 3 * C + 2 * C + h * HS + d];
          out[(b * T + t) * C + h * HS + d] = acc / total;
        }
      }
    }
  }
  return out;
}

/** Caches [B, NH, maxT, HS] holding the k and v of qkv [B, T, 3C] at positions < T (NaN beyond). */
function cachesOf(qkv: ArrayLike<number>, B: number, T: number, C: number, NH: number, maxT: number) {
  const HS = C / NH;
  const k = new Float64Array(B * NH * maxT * HS).fill(NaN), v = new Float64Array(k.length).fill(NaN);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let j = 0; j < T; j++) {
        for (let d = 0; d < HS; d++) {
          const dst = ((b * NH + h) * maxT + j) * HS + d, src = (b * T + j) * 3 * C + h * HS + d;
          k[dst] = qkv[src + C];
          v[dst] = qkv[src + 2 * C];
        }
      }
    }
  }
  return { k, v };
}

/** Row `pos` of each sequence of x [B, T, W] -> [B, W]. */
function rowsAt(x: ArrayLike<number>, B: number, T: number, W: number, pos: number): Float64Array {
  const r = new Float64Array(B * W);
  for (let b = 0; b < B; b++) for (let c = 0; c < W; c++) r[b * W + c] = x[(b * T + pos) * W + c];
  return r;
}

Deno.test("reference attentionDecode equals naive causal attention and attentionForward rows", () => {
  for (const [B, T, NH, HS, std] of [[2, 9, 3, 4, 1], [1, 13, 2, 8, 3]]) {
    const C = NH * HS, maxT = T + 3;
    const qkv = new Rng(T).normalArray(B * T * 3 * C, std);
    const naive = naiveCausal(qkv, B, T, C, NH);
    const full = attentionForward(qkv, B, T, C, NH).out;
    assertClose(`attentionForward vs naive T=${T}`, full, naive, { atol: 1e-12, rtol: 1e-10 });
    const { k, v } = cachesOf(qkv, B, T, C, NH, maxT);
    for (let pos = 0; pos < T; pos++) {
      const q = rowsAt(qkv, B, T, 3 * C, pos).filter((_, i) => i % (3 * C) < C);
      const y = ref.attentionDecode(q, k, v, pos, B, NH, maxT, HS);
      assertClose(`ref decode pos=${pos}`, y, rowsAt(naive, B, T, C, pos), {
        atol: 1e-12,
        rtol: 1e-10,
        quiet: true,
      });
    }
  }
});

Deno.test("reference decodeEmbed equals a direct gather", () => {
  const B = 2, maxT = 5, C = 3, V = 4;
  const seq = [0, 3, 9, 1, 2, 4, 1, 1, 0, 2]; // 9 and 4 are >= V
  const wte = new Rng(1).normalArray(V * C), wpe = new Rng(2).normalArray(maxT * C);
  const x = ref.decodeEmbed(seq, wte, wpe, 2, B, maxT, C, V);
  const want = [0, 1, 2].map((c) => wpe[2 * C + c]).concat(
    [0, 1, 2].map((c) => wte[1 * C + c] + wpe[2 * C + c]),
  );
  assertClose("decodeEmbed", x, want, { atol: 0, rtol: 0 });
});

Deno.test("decode_embed matches reference at several pos, out-of-range tokens, pos >= maxT", async () => {
  const gpu = await testGpu();
  const B = 3, maxT = 20, C = 12, V = 7;
  const rng = new Rng(5);
  const tokens = Uint32Array.from({ length: B * maxT }, () => rng.int(V));
  tokens[1 * maxT + 5] = V;
  tokens[2 * maxT + 19] = 0xffffffff;
  const wteH = rng.normalArray(V * C), wpeH = rng.normalArray(maxT * C);
  const seq = upload(gpu, "seq", tokens), wte = upload(gpu, "wte", wteH), wpe = upload(gpu, "wpe", wpeH);
  const x = createStorage(gpu, "x", B * C * 4), state = upload(gpu, "state", new Uint32Array(4));
  const d = await decodeEmbed(gpu, { x, seq, wte, wpe, state }, { B, maxT, C, V });
  for (const pos of [0, 5, 11, 19]) {
    gpu.device.queue.writeBuffer(x, 0, new Float32Array(B * C).fill(GARBAGE));
    setPos(gpu, state, pos);
    submitDispatches(gpu, [d]);
    const got = await readF32(gpu, x);
    assertClose(`decode_embed pos=${pos}`, got, ref.decodeEmbed(tokens, wteH, wpeH, pos, B, maxT, C, V), {
      atol: 1e-6,
      rtol: 1e-6,
    });
  }
  gpu.device.queue.writeBuffer(x, 0, new Float32Array(B * C).fill(GARBAGE));
  setPos(gpu, state, maxT);
  submitDispatches(gpu, [d]);
  assertClose(
    "decode_embed pos=maxT writes nothing",
    await readF32(gpu, x),
    new Float32Array(B * C).fill(GARBAGE),
    {
      atol: 0,
      rtol: 0,
    },
  );
});

// kv_append + attention_decode one position at a time (the qkv row of `pos` written between submissions)
// against the full causal attention of the whole sequence. Caches start as NaN, so any read of a position
// not yet appended poisons the result.
const stepShapes = [
  { B: 1, NH: 4, HS: 16, maxT: 40, T: 40, std: 1 },
  { B: 3, NH: 2, HS: 64, maxT: 70, T: 67, std: 2 },
  { B: 1, NH: 2, HS: 128, maxT: 256, T: 256, std: 1 },
  { B: 3, NH: 3, HS: 12, maxT: 300, T: 290, std: 3 }, // HS/4 = 3; pos >= 256: several tiles
];
for (const { B, NH, HS, maxT, T, std } of stepShapes) {
  Deno.test(`kv_append + attention_decode stepwise = causal attention B=${B} NH=${NH} HS=${HS} T=${T}`, async () => {
    const gpu = await testGpu();
    const dev = gpu.device;
    const C = NH * HS;
    const qkvAll = new Rng(1000 + HS).normalArray(B * T * 3 * C, std);
    const cacheN = B * NH * maxT * HS;
    const kcache = upload(gpu, "kcache", nanArray(cacheN)), vcache = upload(gpu, "vcache", nanArray(cacheN));
    const qkv = createStorage(gpu, "qkv", B * 3 * C * 4);
    const y = upload(gpu, "y", new Float32Array(B * C).fill(GARBAGE));
    const yAll = createStorage(gpu, "yAll", T * B * C * 4);
    const state = upload(gpu, "state", new Uint32Array(4));
    const kv = await kvAppend(gpu, { kcache, vcache, qkv, state }, { B, maxT, C, NH });
    const att = await attentionDecode(gpu, { y, qkv, kcache, vcache, state }, { B, maxT, C, NH });
    for (let pos = 0; pos < T; pos++) {
      dev.queue.writeBuffer(qkv, 0, Float32Array.from(rowsAt(qkvAll, B, T, 3 * C, pos)));
      setPos(gpu, state, pos);
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass();
      encodeDispatches(pass, [kv, att]);
      pass.end();
      enc.copyBufferToBuffer(y, 0, yAll, pos * B * C * 4, B * C * 4);
      dev.queue.submit([enc.finish()]);
    }
    const got = await readF32(gpu, yAll);
    const full = attentionForward(qkvAll, B, T, C, NH).out;
    const want = new Float64Array(T * B * C);
    for (let pos = 0; pos < T; pos++) want.set(rowsAt(full, B, T, C, pos), pos * B * C);
    assertClose(`attention_decode steps B=${B} NH=${NH} HS=${HS} T=${T}`, got, want, {
      atol: 2e-5,
      rtol: 1e-4,
    });
    // The caches hold exactly the appended k and v, and positions >= T were never written.
    const { k, v } = cachesOf(qkvAll, B, T, C, NH, maxT);
    const [kg, vg] = [await readF32(gpu, kcache), await readF32(gpu, vcache)];
    for (const [name, g, w] of [["kcache", kg, k], ["vcache", vg, v]] as const) {
      for (let i = 0; i < cacheN; i++) {
        const same = Number.isNaN(w[i]) ? Number.isNaN(g[i]) : g[i] === w[i];
        if (!same) throw new Error(`${name}[${i}] = ${g[i]}, want ${w[i]}`);
      }
    }
  });
}

for (const { std, HS } of [{ std: 1, HS: 32 }, { std: 4, HS: 64 }]) {
  Deno.test(`attention_decode near pos 1000 matches reference, HS=${HS} std=${std}`, async () => {
    const gpu = await testGpu();
    const B = 2, NH = 3, maxT = 1024, C = NH * HS;
    const rng = new Rng(77 + std);
    const qkvH = rng.normalArray(B * 3 * C, std);
    const kH = rng.normalArray(B * NH * maxT * HS, std), vH = rng.normalArray(B * NH * maxT * HS);
    const kcache = upload(gpu, "kcache", kH), vcache = upload(gpu, "vcache", vH);
    const qkv = upload(gpu, "qkv", qkvH), y = createStorage(gpu, "y", B * C * 4);
    const state = upload(gpu, "state", new Uint32Array(4));
    const att = await attentionDecode(gpu, { y, qkv, kcache, vcache, state }, { B, maxT, C, NH });
    const q = qkvH.filter((_, i) => i % (3 * C) < C);
    for (const pos of [999, 1023]) {
      // Positions after pos are NaN: reading them would poison y.
      const kp = kH.slice(), vp = vH.slice();
      for (let bh = 0; bh < B * NH; bh++) {
        kp.fill(NaN, (bh * maxT + pos + 1) * HS, (bh + 1) * maxT * HS);
        vp.fill(NaN, (bh * maxT + pos + 1) * HS, (bh + 1) * maxT * HS);
      }
      gpu.device.queue.writeBuffer(kcache, 0, kp);
      gpu.device.queue.writeBuffer(vcache, 0, vp);
      gpu.device.queue.writeBuffer(y, 0, new Float32Array(B * C).fill(GARBAGE));
      setPos(gpu, state, pos);
      submitDispatches(gpu, [att]);
      const got = await readF32(gpu, y);
      assertClose(
        `attention_decode pos=${pos} HS=${HS} std=${std}`,
        got,
        ref.attentionDecode(q, kp, vp, pos, B, NH, maxT, HS),
        {
          atol: 2e-5,
          rtol: 1e-4,
        },
      );
    }
  });
}

/** What commit should do, step by step, on the CPU. */
function simulateCommits(
  seq: Uint32Array,
  state: Uint32Array,
  rng: number,
  sampledPerStep: Uint32Array[],
  B: number,
  maxT: number,
  forcedLen: number,
): { seq: Uint32Array; state: Uint32Array; rng: number } {
  const s = seq.slice(), st = state.slice();
  for (const sampled of sampledPerStep) {
    const pos = st[0];
    if (pos + 1 < maxT && pos + 1 >= forcedLen) {
      for (let b = 0; b < B; b++) s[b * maxT + pos + 1] = sampled[b];
    }
    if (pos + 1 >= maxT) st[1]++;
    st[0] = Math.min(pos + 1, maxT);
    rng = pcgHash((rng ^ st[0]) >>> 0);
  }
  return { seq: s, state: st, rng };
}

for (const forcedLen of [0, 3, 8]) {
  Deno.test(`commit keeps forced, writes free tokens, advances pos and rng, forcedLen=${forcedLen}`, async () => {
    const gpu = await testGpu();
    const B = 3, maxT = 8, steps = maxT + 2; // runs 3 commits past the end of the rows
    const gold = Uint32Array.from({ length: B * maxT }, (_, i) => 1000 + i);
    const state0 = Uint32Array.of(0, 0, 777, 888), rng0 = 0xdeadbeef;
    const seq = upload(gpu, "seq", gold), state = upload(gpu, "state", state0);
    const rngBuf = upload(gpu, "rng", Uint32Array.of(rng0, 4242));
    const sampledBuf = createStorage(gpu, "sampled", B * 4);
    const d = await commit(gpu, { seq, state, rng: rngBuf, sampled: sampledBuf }, { B, maxT, forcedLen });
    const sampledPerStep: Uint32Array[] = [];
    for (let k = 0; k < steps; k++) {
      const sampled = Uint32Array.from({ length: B }, (_, b) => 10 * k + b);
      sampledPerStep.push(sampled);
      gpu.device.queue.writeBuffer(sampledBuf, 0, sampled);
      submitDispatches(gpu, [d]);
      const st = await readU32(gpu, state);
      const want = simulateCommits(gold, state0, rng0, sampledPerStep, B, maxT, forcedLen);
      assertClose(`state after ${k + 1} commits`, st, want.state, { atol: 0, rtol: 0, quiet: true });
      const r = await readU32(gpu, rngBuf);
      assertClose(`rng after ${k + 1} commits`, r, [want.rng, 4242], { atol: 0, rtol: 0, quiet: true });
    }
    const got = await readU32(gpu, seq);
    const want = simulateCommits(gold, state0, rng0, sampledPerStep, B, maxT, forcedLen);
    assertClose(`commit seq forcedLen=${forcedLen}`, got, want.seq, { atol: 0, rtol: 0 });
    // Independently of the simulation: given tokens kept, free ones from the step before, pos saturated.
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < maxT; t++) {
        const w = t < Math.max(forcedLen, 1) ? gold[b * maxT + t] : 10 * (t - 1) + b;
        if (got[b * maxT + t] !== w) throw new Error(`seq[${b},${t}] = ${got[b * maxT + t]}, want ${w}`);
      }
    }
    const st = await readU32(gpu, state);
    if (st[0] !== maxT || st[1] !== steps - (maxT - 1) || st[2] !== 777 || st[3] !== 888) {
      throw new Error(`state ${st}`);
    }
  });
}

/**
 * A closed decode loop with no matmuls: decode_embed writes an embedding of width 3C straight into qkv,
 * the attention output y [B, C] serves as logits over a vocabulary of V = C tokens, argmax or sample picks
 * the next token, commit stores it. Returns the dispatches of one step and the buffers.
 */
async function decodeLoop(gpu: Gpu, mode: "argmax" | "sample", seed: number) {
  const B = 3, NH = 2, HS = 8, C = NH * HS, V = C, maxT = 24, forcedLen = 5, stream = 7;
  const rng = new Rng(seed);
  const wteH = rng.normalArray(V * 3 * C), wpeH = rng.normalArray(maxT * 3 * C, 0.5);
  const seqH = new Uint32Array(B * maxT).fill(99999); // free positions: an id >= V until committed
  for (let b = 0; b < B; b++) for (let t = 0; t < forcedLen; t++) seqH[b * maxT + t] = rng.int(V);
  const seed0 = 0x1234567;
  const cacheN = B * NH * maxT * HS;
  const buf = {
    seq: upload(gpu, "seq", seqH),
    state: upload(gpu, "state", new Uint32Array(4)),
    rng: upload(gpu, "rng", Uint32Array.of(seed0)),
    wte: upload(gpu, "wte", wteH),
    wpe: upload(gpu, "wpe", wpeH),
    qkv: createStorage(gpu, "qkv", B * 3 * C * 4),
    kcache: upload(gpu, "kcache", nanArray(cacheN)),
    vcache: upload(gpu, "vcache", nanArray(cacheN)),
    y: createStorage(gpu, "y", B * C * 4),
    sampled: createStorage(gpu, "sampled", B * 4),
  };
  const pick = mode === "argmax"
    ? await argmax(gpu, { out: buf.sampled, logits: buf.y }, { N: B, V })
    : await sample(gpu, { out: buf.sampled, logits: buf.y, rng: buf.rng }, {
      N: B,
      V,
      temperature: 1,
      topK: 0,
      stream,
    });
  const step: Dispatch[] = [
    await decodeEmbed(gpu, { x: buf.qkv, seq: buf.seq, wte: buf.wte, wpe: buf.wpe, state: buf.state }, {
      B,
      maxT,
      C: 3 * C,
      V,
    }),
    await kvAppend(gpu, { kcache: buf.kcache, vcache: buf.vcache, qkv: buf.qkv, state: buf.state }, {
      B,
      maxT,
      C,
      NH,
    }),
    await attentionDecode(gpu, {
      y: buf.y,
      qkv: buf.qkv,
      kcache: buf.kcache,
      vcache: buf.vcache,
      state: buf.state,
    }, { B, maxT, C, NH }),
    pick,
    await commit(gpu, { seq: buf.seq, state: buf.state, rng: buf.rng, sampled: buf.sampled }, {
      B,
      maxT,
      forcedLen,
    }),
  ];
  const read = async () => ({
    seq: await readU32(gpu, buf.seq),
    state: await readU32(gpu, buf.state),
    rng: await readU32(gpu, buf.rng),
    kcache: await readF32(gpu, buf.kcache),
    vcache: await readF32(gpu, buf.vcache),
    y: await readF32(gpu, buf.y),
  });
  return { B, NH, HS, C, V, maxT, forcedLen, stream, seed0, wteH, wpeH, seqH, step, read, buf };
}

for (const mode of ["argmax", "sample"] as const) {
  Deno.test(`${mode}: steps replayed in ONE compute pass = step-by-step submits = CPU rollout`, async () => {
    const gpu = await testGpu();
    // A: all maxT - 1 steps recorded into one pass of one submission; pos advances on the GPU.
    const a = await decodeLoop(gpu, mode, 3);
    const steps = a.maxT - 1;
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < steps; i++) encodeDispatches(pass, a.step);
    pass.end();
    gpu.device.queue.submit([enc.finish()]);
    const ra = await a.read();
    // B: the same, one submission per step with a CPU round trip in between.
    const b = await decodeLoop(gpu, mode, 3);
    for (let i = 0; i < steps; i++) {
      submitDispatches(gpu, b.step);
      await readU32(gpu, b.buf.state, 0, 1); // wait for the step (a CPU round trip per token)
    }
    const rb = await b.read();
    for (const k of ["seq", "state", "rng", "kcache", "vcache", "y"] as const) {
      assertSameBits(`${mode} one pass vs step by step: ${k}`, ra[k], rb[k]);
    }
    // CPU rollout along the GPU's tokens: every free token is the argmax (or a valid draw) of the reference
    // logits, the forced prefix is untouched, and the attention output of the last step matches.
    const { B, NH, HS, C, V, maxT, forcedLen, stream, seed0, wteH, wpeH, seqH } = a;
    const seq = ra.seq;
    const kc = new Float64Array(B * NH * maxT * HS), vc = new Float64Array(kc.length);
    let seedAt = seed0;
    let y: Float64Array = new Float64Array(0);
    for (let pos = 0; pos < steps; pos++) {
      const qkv = ref.decodeEmbed(seq, wteH, wpeH, pos, B, maxT, 3 * C, V);
      for (let bb = 0; bb < B; bb++) {
        for (let c = 0; c < C; c++) {
          const h = Math.floor(c / HS), d = c % HS, dst = ((bb * NH + h) * maxT + pos) * HS + d;
          kc[dst] = qkv[bb * 3 * C + C + c];
          vc[dst] = qkv[bb * 3 * C + 2 * C + c];
        }
      }
      const q = qkv.filter((_, i) => i % (3 * C) < C);
      y = ref.attentionDecode(q, kc, vc, pos, B, NH, maxT, HS);
      for (let bb = 0; bb < B; bb++) {
        const tok = seq[bb * maxT + pos + 1];
        if (pos + 1 < forcedLen) {
          if (tok !== seqH[bb * maxT + pos + 1]) {
            throw new Error(`forced token [${bb},${pos + 1}] overwritten`);
          }
          continue;
        }
        if (!(tok < V)) throw new Error(`seq[${bb},${pos + 1}] = ${tok} was not committed`);
        const row = y.subarray(bb * V, (bb + 1) * V);
        if (mode === "argmax") {
          const best = Math.max(...row);
          if (!(row[tok] >= best - 1e-5)) {
            throw new Error(`step ${pos}: token ${tok} (${row[tok]}) is not the max ${best}`);
          }
        } else {
          const p = sampleWeights(row, 1, 0);
          const total = p.reduce((s, x) => s + x, 0);
          const goal = uniform01(hash3(seedAt, stream, bb)) * total;
          let before = 0;
          for (let i = 0; i < tok; i++) before += p[i];
          if (!(before <= goal + 1e-5 && before + p[tok] >= goal - 1e-5)) {
            throw new Error(
              `step ${pos}: token ${tok} is not the draw at ${goal} (interval ${before}..${before + p[tok]})`,
            );
          }
        }
      }
      seedAt = pcgHash((seedAt ^ (pos + 1)) >>> 0);
    }
    assertClose(`${mode} last-step y vs CPU rollout`, ra.y, y, { atol: 2e-5, rtol: 1e-4 });
    assertClose(`${mode} final state`, ra.state, [steps, 0, 0, 0], { atol: 0, rtol: 0 });
    assertClose(`${mode} final rng`, ra.rng, [seedAt], { atol: 0, rtol: 0 });
  });
}
