/**
 * Training modes: the token kernels against their CPU references, the successive-gradient probe, the ε
 * schedules against Bengio et al.'s formulas, one submission per free-running step, scheduled sampling at
 * ε = 1 equal to teacher forcing bit for bit, and one-line errors for bad mode settings.
 */
import assert from "node:assert/strict";
import { assertClose, testGpu, watchSubmits } from "./helpers.ts";
import { createStorage, readF32, readU32, upload, writeArray } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { rolloutBegin, rolloutEnd, scheduledMix } from "../src/kernels/modes.ts";
import { gradCosine, gradCosineScratchBytes } from "../src/kernels/gradstats.ts";
import * as ref from "../src/reference/modes.ts";
import { cosineOf, gradCosineStats } from "../src/reference/gradstats.ts";
import { Rng } from "../src/util/rng.ts";
import { hostOf, randomWeights, tinyGPT, tinyTrain } from "./fixtures.ts";
import { ConfigError, DEFAULT_TRAIN, type TrainConfig, validateTrainConfig } from "../src/train/config.ts";
import { errorLine } from "../src/cli/errors.ts";
import { buildModeStep, epsilon, epsilonSchedule, inverseSigmoidK, STREAMS } from "../src/train/modes.ts";
import { train } from "../src/train/trainer.ts";
import { main } from "../cli.ts";
import type { Gpu } from "../src/gpu/device.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { GPT } from "../src/model/gpt.ts";
import { gptForward } from "../src/reference/gpt.ts";
import { argmax } from "../src/reference/sample.ts";

const IGNORE = 0xfffffff0;

function ids(rng: Rng, n: number, V: number, ignoreEvery = 0): Uint32Array {
  return Uint32Array.from(
    { length: n },
    (_, i) => ignoreEvery > 0 && i % ignoreEvery === 3 ? IGNORE : rng.int(V),
  );
}

for (const [B, T, maxT] of [[1, 2, 2], [3, 7, 9], [5, 33, 40], [2, 300, 300]]) {
  Deno.test(`rollout_begin / rollout_end / ss_mix = reference, B=${B} T=${T} maxT=${maxT}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(B * 1000 + T);
    const V = 50, N = B * T;
    const tokensH = ids(rng, N, V), targetsH = ids(rng, N, V, 5), predH = ids(rng, N, V);
    const seqH = new Uint32Array(B * maxT).fill(12345);
    const seed = rng.nextU32(), stream = 0x7e570004;
    // rollout_begin
    const tokens = upload(gpu, "tokens", tokensH), seq = upload(gpu, "seq", seqH);
    const rollState = upload(gpu, "roll_state", Uint32Array.of(9, 9, 9, 9));
    const rollRng = upload(gpu, "roll_rng", Uint32Array.of(777));
    const rngBuf = upload(gpu, "rng", Uint32Array.of(seed));
    submitDispatches(gpu, [
      await rolloutBegin(gpu, { seq, rollState, rollRng, tokens, rng: rngBuf }, { B, T, maxT, stream }),
    ]);
    assert.deepEqual(await readU32(gpu, seq), ref.rolloutBegin(tokensH, seqH, B, T, maxT));
    assert.deepEqual(await readU32(gpu, rollState), new Uint32Array(4));
    assert.deepEqual(await readU32(gpu, rollRng, 0, 1), Uint32Array.of(ref.rolloutSeed(seed, stream)));
    // rollout_end, from a rollout row that differs everywhere
    const rolled = ids(rng, B * maxT, V);
    const seq2 = upload(gpu, "seq2", rolled), targets = upload(gpu, "targets", targetsH);
    for (const prefix of [1, Math.max(1, Math.floor(T / 2)), T]) {
      const tok2 = upload(gpu, "tokens2", tokensH);
      submitDispatches(gpu, [
        await rolloutEnd(gpu, { tokens: tok2, seq: seq2, targets }, { B, T, maxT, prefix, ignoreId: IGNORE }),
      ]);
      assert.deepEqual(
        await readU32(gpu, tok2),
        ref.rolloutEnd(tokensH, rolled, targetsH, B, T, maxT, prefix, IGNORE),
        `rollout_end prefix ${prefix}`,
      );
    }
    // ss_mix at several eps
    const pred = upload(gpu, "pred", predH);
    for (const eps of [0, 0.3, 0.999, 1]) {
      const tok3 = upload(gpu, "tokens3", tokensH);
      submitDispatches(gpu, [
        await scheduledMix(gpu, { tokens: tok3, targets, pred, rng: rngBuf }, {
          B,
          T,
          eps,
          stream,
          ignoreId: IGNORE,
        }),
      ]);
      const want = ref.scheduledMix(tokensH, targetsH, predH, B, T, eps, seed, stream, IGNORE);
      assert.deepEqual(await readU32(gpu, tok3), want, `ss_mix eps ${eps}`);
    }
  });
}

Deno.test("ss_mix keeps a gold token with probability eps (and never touches position 0 or padding)", async () => {
  const gpu = await testGpu();
  const B = 64, T = 128, N = B * T, rng = new Rng(11);
  // Gold tokens < 100, predictions >= 100: every replacement is visible.
  const tokensH = Uint32Array.from({ length: N }, () => rng.int(100));
  const predH = Uint32Array.from({ length: N }, () => 100 + rng.int(100));
  const targetsH = ids(rng, N, 100, 7);
  const targets = upload(gpu, "targets", targetsH), pred = upload(gpu, "pred", predH);
  const seedBuf = upload(gpu, "rng", Uint32Array.of(99));
  for (const eps of [0.1, 0.5, 0.9]) {
    const tokens = upload(gpu, "tokens", tokensH);
    submitDispatches(gpu, [
      await scheduledMix(gpu, { tokens, targets, pred, rng: seedBuf }, {
        B,
        T,
        eps,
        stream: 5,
        ignoreId: IGNORE,
      }),
    ]);
    const out = await readU32(gpu, tokens);
    let eligible = 0, replaced = 0;
    for (let b = 0; b < B; b++) {
      assert.equal(out[b * T], tokensH[b * T], "position 0 changed");
      for (let t = 1; t < T; t++) {
        const i = b * T + t;
        if (targetsH[i - 1] === IGNORE) {
          assert.equal(out[i], tokensH[i], "padding changed");
          continue;
        }
        eligible++;
        if (out[i] >= 100) {
          assert.equal(out[i], predH[i - 1], "replacement is not the prediction made at t - 1");
          replaced++;
        }
      }
    }
    const frac = replaced / eligible, sd = Math.sqrt(eps * (1 - eps) / eligible);
    console.log(
      `eps ${eps}: replaced ${frac.toFixed(4)} of ${eligible} (want ${(1 - eps).toFixed(4)} ± ${
        sd.toFixed(4)
      })`,
    );
    assert.ok(Math.abs(frac - (1 - eps)) < 5 * sd, `replaced fraction ${frac} is not 1 - eps = ${1 - eps}`);
  }
});

for (const n of [1, 999, 70_001]) {
  Deno.test(`grad_cosine = reference and keeps the gradient for the next step, n=${n}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n);
    const g1 = rng.normalArray(n), g2 = rng.normalArray(n);
    for (let i = 0; i < n; i++) g2[i] += 0.5 * g1[i]; // correlated successive gradients
    const prev = upload(gpu, "prev", rng.normalArray(n)); // garbage: overwritten below
    const grads = upload(gpu, "grads", g1);
    const scratch = createStorage(gpu, "scratch", gradCosineScratchBytes(n));
    const gstats = upload(gpu, "gstats", Float32Array.of(12345, 12345, 12345, 12345));
    const probe = await gradCosine(gpu, { prev, grads, scratch, gstats }, { n });
    const prevH = await readF32(gpu, prev);
    submitDispatches(gpu, probe);
    assertClose(
      `first step stats n=${n}`,
      (await readF32(gpu, gstats)).subarray(0, 3),
      gradCosineStats(g1, prevH),
      {
        atol: 1e-4,
        rtol: 2e-5,
      },
    );
    assert.deepEqual(await readF32(gpu, prev), g1, "prev does not hold the gradient");
    writeArray(gpu, grads, g2);
    submitDispatches(gpu, probe);
    const s = await readF32(gpu, gstats);
    const want = gradCosineStats(g2, g1);
    assertClose(`second step stats n=${n}`, s.subarray(0, 3), want, { atol: 1e-4, rtol: 2e-5 });
    assertClose(`cosine n=${n}`, [cosineOf(s)], [cosineOf(want)], { atol: 1e-5, rtol: 1e-5 });
  });
}

Deno.test("epsilon schedules match Bengio et al.'s formulas (with the ss_min floor) and their defaults", () => {
  const cfg = (o: Partial<TrainConfig>): TrainConfig => ({ ...DEFAULT_TRAIN, steps: 400, ...o });
  const steps = [0, 1, 7, 50, 199, 200, 399, 1000];
  const lin = epsilonSchedule(cfg({ ss_schedule: "linear", ss_k: 0.9, ss_c: 0.003, ss_min: 0.2 }));
  for (const i of steps) assert.equal(epsilon(i, lin), Math.max(0.2, 0.9 - 0.003 * i));
  const exp = epsilonSchedule(cfg({ ss_schedule: "exponential", ss_k: 0.99, ss_min: 0.05 }));
  for (const i of steps) assert.equal(epsilon(i, exp), Math.max(0.05, 0.99 ** i));
  const inv = epsilonSchedule(cfg({ ss_schedule: "inverse-sigmoid", ss_k: 40, ss_min: 0 }));
  for (const i of steps) {
    assertClose(`inverse sigmoid ${i}`, [epsilon(i, inv)], [40 / (40 + Math.exp(i / 40))], {
      quiet: true,
      atol: 0,
      rtol: 1e-15,
    });
  }
  // Defaults: linear from 1 to ss_min over the run, exponential to 0.01, inverse sigmoid 1/2 at mid-run.
  const dl = epsilonSchedule(cfg({ ss_schedule: "linear", ss_min: 0.1 }));
  assert.equal(epsilon(0, dl), 1);
  assertClose("linear default end", [epsilon(400, dl)], [0.1], { quiet: true, atol: 1e-12 });
  assertClose("linear default mid", [epsilon(200, dl)], [0.55], { quiet: true, atol: 1e-12 });
  const de = epsilonSchedule(cfg({ ss_schedule: "exponential" }));
  assertClose("exponential default end", [epsilon(400, de)], [0.01], { quiet: true, atol: 1e-12 });
  const di = epsilonSchedule(cfg({ ss_schedule: "inverse-sigmoid" }));
  const k = inverseSigmoidK(400);
  assertClose("k ln k = steps / 2", [k * Math.log(k)], [200], { quiet: true, atol: 1e-9 });
  assertClose("inverse sigmoid mid-run", [epsilon(200, di)], [k / (k + k)], { quiet: true, atol: 1e-12 });
  assert.ok(epsilon(0, di) > 0.95 && epsilon(400, di) < 0.2, "inverse sigmoid does not decay");
  // Monotone non-increasing, within [ss_min, 1].
  for (const s of [lin, exp, inv, dl, de, di]) {
    for (let i = 1; i < 500; i++) {
      assert.ok(epsilon(i, s) <= epsilon(i - 1, s) && epsilon(i, s) >= s.min && epsilon(i, s) <= 1);
    }
  }
});

Deno.test("bad mode settings are one-line errors (config and command line)", async () => {
  const bad: [Partial<TrainConfig>, RegExp][] = [
    [{ mode: "teacher" as never }, /--mode must be teacher-forcing, free-running or scheduled-sampling/],
    [{ ss_schedule: "cosine" as never }, /--ss-schedule must be linear, exponential or inverse-sigmoid/],
    [{ fr_decode: "beam" as never }, /--fr-decode must be argmax or sample/],
    [{ prefix: 64, block_size: 64 }, /--prefix must be an integer in \[1, block_size = 64\) \(got 64\)/],
    [{ prefix: 0 }, /--prefix must be an integer/],
    [{ ss_min: 1.5 }, /--ss-min must be in \[0, 1\]/],
    [{ ss_schedule: "linear", ss_k: 1.2 }, /--ss-k must be in \[0, 1\] for the linear schedule/],
    [{ ss_schedule: "exponential", ss_k: 0 }, /--ss-k must be in \(0, 1\] for the exponential schedule/],
    [{ ss_schedule: "inverse-sigmoid", ss_k: 0.5 }, /--ss-k must be >= 1 for the inverse-sigmoid schedule/],
    [{ ss_schedule: "exponential", ss_c: 0.1 }, /--ss-c applies to the linear schedule only/],
    [{ ss_c: -1 }, /--ss-c must be >= 0/],
  ];
  for (const [o, re] of bad) {
    // The library names settings by their keys; the command line words them as flags.
    assert.throws(() => validateTrainConfig({ ...DEFAULT_TRAIN, ...o }), (e: Error) => {
      assert.ok(e instanceof ConfigError && !e.message.includes("--"), e.message);
      assert.match(errorLine(e), re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  validateTrainConfig({ ...DEFAULT_TRAIN, mode: "free-running", prefix: 63 });
  // The command line turns them into one stderr line and exit code 1.
  const err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = () => {};
  try {
    for (
      const [args, re] of [
        [["train", "--mode", "greedy"], /--mode must be/],
        [["train", "--ss-schedule", "step"], /--ss-schedule must be/],
        [
          ["train", "--mode", "free-running", "--prefix", "8", "--block-size", "8"],
          /--prefix must be an integer in \[1, block_size = 8\)/,
        ],
        [["train", "--ss-min=-0.1"], /--ss-min must be in \[0, 1\]/],
        [["train", "--ss-k", "abc"], /--ss-k expects a number/],
      ] as [string[], RegExp][]
    ) {
      err.length = 0;
      const code = await main(args);
      assert.notEqual(code, 0);
      assert.equal(err.length, 1, JSON.stringify(err));
      assert.match(err[0], re);
    }
  } finally {
    console.error = orig;
    console.log = origLog;
  }
});

const tiny: TrainConfig = { ...tinyTrain, log_interval: 1 };

Deno.test("scheduled sampling at eps = 1 equals teacher forcing bit for bit (losses, norms, weights); eps < 1 does not", async () => {
  const gpu = await testGpu();
  const cfg = { ...tiny, dropout: 0.1, grad_accum: 2 };
  const run = async (o: Partial<TrainConfig>) => {
    const r = await train({ ...cfg, ...o }, { gpu, noSave: true });
    return {
      hist: r.history.map((h) => [h.step, h.train_loss, h.val_loss, h.grad_norm]),
      params: await readF32(gpu, r.model.params.buffer),
    };
  };
  const tf = await run({ mode: "teacher-forcing" });
  for (const ss_decode of ["argmax", "sample"] as const) {
    const ss = await run({ mode: "scheduled-sampling", ss_schedule: "linear", ss_k: 1, ss_c: 0, ss_decode });
    assert.deepEqual(ss.hist, tf.hist, `${ss_decode}: histories differ`);
    assert.deepEqual(ss.params, tf.params, `${ss_decode}: weights differ`);
  }
  const exp1 = await run({ mode: "scheduled-sampling", ss_schedule: "exponential", ss_k: 1 });
  assert.deepEqual(exp1.params, tf.params, "exponential k = 1 differs");
  const mixed = await run({ mode: "scheduled-sampling", ss_schedule: "linear", ss_k: 0.5, ss_c: 0 });
  assert.notDeepEqual(mixed.params, tf.params, "eps = 0.5 trained exactly like teacher forcing");
});

Deno.test("free running and scheduled sampling train in float16 as in float32 (same losses within 0.02)", async () => {
  const gpu = await testGpu();
  for (const mode of ["free-running", "scheduled-sampling"] as const) {
    const cfg = { ...tiny, mode, steps: 12, lr_decay_steps: 12, eval_interval: 12 };
    const run = (dtype: "float32" | "float16") => train({ ...cfg, dtype }, { gpu, noSave: true });
    const [a, b] = [await run("float32"), await run("float16")];
    const losses = (r: typeof a) => r.history.filter((h) => h.train_loss !== null).map((h) => h.train_loss!);
    const gap = Math.max(...losses(a).map((x, i) => Math.abs(x - losses(b)[i])));
    console.log(`${mode}: float16 vs float32 train loss gap ${gap.toExponential(2)} over 12 steps`);
    assert.equal(b.stopped, "done");
    assert.ok(gap < 0.02, `${mode}: float16 differs from float32 by ${gap}`);
    assert.ok(losses(b).at(-1)! < losses(b)[0], `${mode}: float16 loss did not fall`);
  }
});

Deno.test("free-running and scheduled-sampling steps are still one submission each", async () => {
  const gpu = await testGpu();
  const labels: string[] = [];
  const runs: Record<string, number[]> = {};
  for (const mode of ["free-running", "scheduled-sampling"] as const) {
    labels.length = 0;
    const cfg = { ...tiny, steps: 4, eval_interval: 4, mode, prefix: 5, ss_k: 0.5, ss_c: 0 };
    const r = await watchSubmits(gpu, (l) => labels.push(l), () => train(cfg, { gpu, noSave: true }));
    assert.deepEqual(labels.filter((l) => l.startsWith("step ")), ["step 0", "step 1", "step 2", "step 3"]);
    runs[mode] = r.history.filter((h) => h.train_loss !== null).map((h) => h.train_loss!);
    assert.ok(runs[mode].every(Number.isFinite), `${mode}: ${runs[mode]}`);
  }
  // Free-running from step 1 on differs from teacher forcing on the same windows (same first step: the
  // untrained model's rollout changes the inputs, so even step 1's loss differs).
  const tf = (await train({ ...tiny, steps: 4, eval_interval: 4 }, { gpu, noSave: true })).history
    .filter((h) => h.train_loss !== null).map((h) => h.train_loss!);
  assert.notDeepEqual(runs["free-running"], tf);
});

/** A GPT with random (non-tiny) weights on the GPU and the same weights for the CPU reference. */
async function randomModel(gpu: Gpu, c: GPTConfig, B: number, seed: number, headRows?: number) {
  const w = randomWeights(c, seed);
  const model = await GPT.create(gpu, c, { B, T: c.block_size, headRows });
  writeArray(gpu, model.params.buffer, hostOf(c, w));
  return { model, w };
}

Deno.test("mode dispatches: free-running inputs = reference greedy rollout; scheduled-sampling inputs = reference mix", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ n_layer: 2, block_size: 9, vocab_size: 13, bias: true });
  const B = 3, T = c.block_size, V = c.vocab_size, N = B * T, rng = new Rng(21);
  const { model, w } = await randomModel(gpu, c, B, 8);
  const gold = Uint32Array.from({ length: N }, () => rng.int(V));
  const targets = Uint32Array.from({ length: N }, () => rng.int(V));
  const seed = 0xabcdef;
  const runMode = async (cfg: TrainConfig, step = 0) => {
    const m = await buildModeStep(gpu, cfg, model);
    m.update(step);
    writeArray(gpu, model.tokens, gold);
    writeArray(gpu, model.targets, targets);
    writeArray(gpu, model.seed, Uint32Array.of(seed, 0, 0, 0));
    submitDispatches(gpu, m.dispatches);
    return await readU32(gpu, model.tokens);
  };
  for (const prefix of [1, 4, 8]) {
    const got = await runMode({ ...DEFAULT_TRAIN, mode: "free-running", prefix, block_size: T });
    const want = ref.greedyRollout(c, w, gold, B, T, prefix);
    assert.deepEqual(got, want, `free-running prefix ${prefix}`);
  }
  // Scheduled sampling: pass 1 on the gold tokens, argmax per position, then the mix at eps(step).
  const f = gptForward(c, w, gold, targets, B, T);
  const pred = argmax(f.logits, N, V);
  const ssCfg: TrainConfig = {
    ...DEFAULT_TRAIN,
    mode: "scheduled-sampling",
    ss_schedule: "linear",
    ss_k: 1,
    ss_c: 0.1,
    block_size: T,
  };
  for (const step of [0, 3, 7, 12]) {
    const eps = epsilon(step, epsilonSchedule(ssCfg));
    const got = await runMode(ssCfg, step);
    const want = ref.scheduledMix(gold, targets, pred, B, T, eps, seed, STREAMS.ssMix, 0xffffffff);
    assert.deepEqual(got, want, `scheduled sampling step ${step} (eps ${eps})`);
  }
});

Deno.test("scheduled sampling with the head in chunks picks the same tokens as with the whole head", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ block_size: 9, vocab_size: 29 });
  // 8 x 9 = 72 rows: chunks of 64 and 8.
  const B = 8, T = c.block_size, V = c.vocab_size, N = B * T, rng = new Rng(5);
  const gold = Uint32Array.from({ length: N }, () => rng.int(V));
  const targets = Uint32Array.from({ length: N }, () => rng.int(V));
  for (const decode of ["argmax", "sample"] as const) {
    const cfg: TrainConfig = {
      ...DEFAULT_TRAIN,
      mode: "scheduled-sampling",
      ss_decode: decode,
      ss_schedule: "linear",
      ss_k: 0.3, // mostly the model's own tokens
      block_size: T,
    };
    const picked: Uint32Array[] = [];
    for (const headRows of [N, 64]) {
      const { model } = await randomModel(gpu, c, B, 8, headRows);
      assert.equal(model.headChunks.length, headRows === N ? 1 : 2);
      const m = await buildModeStep(gpu, cfg, model);
      m.update(0);
      writeArray(gpu, model.tokens, gold);
      writeArray(gpu, model.targets, targets);
      writeArray(gpu, model.seed, Uint32Array.of(0x5eed, 0, 0, 0));
      submitDispatches(gpu, m.dispatches);
      picked.push(await readU32(gpu, model.tokens));
    }
    assert.deepEqual(picked[1], picked[0], `${decode}: chunked vs whole`);
    const changed = picked[0].filter((t, i) => t !== gold[i]).length;
    assert.ok(changed > N / 4, `${decode}: only ${changed} of ${N} inputs are the model's own`);
  }
});
