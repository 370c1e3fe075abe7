/**
 * Exposure-bias measurement: the GPU curves equal the float64 reference model's (teacher-forced losses,
 * greedy free-running continuations, their losses and KL divergence), a teacher-forced model's
 * free-running loss exceeds its teacher-forced loss on a synthetic language, and `eval --exposure` prints
 * its JSON last and writes its plot, with one-line errors for bad input.
 */
import assert from "node:assert/strict";
import { assertClose, testGpu } from "./helpers.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { paramLayout } from "../src/model/params.ts";
import { gptForward } from "../src/reference/gpt.ts";
import { greedyRollout } from "../src/reference/modes.ts";
import { measureExposure } from "../src/train/exposure.ts";
import { DEFAULT_TRAIN } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";
import { saveModel } from "../src/model/checkpoint.ts";
import { trainTokenizer } from "../src/data/tokenizer.ts";
import { main } from "../cli.ts";
import { runExperiment } from "../src/train/experiment.ts";
import { Rng } from "../src/util/rng.ts";
import { Gpu } from "../src/gpu/device.ts";
import { hostOf, randomWeights } from "./fixtures.ts";

function logSoftmax(row: ArrayLike<number>): Float64Array {
  const m = Math.max(...Array.from(row));
  const lse = m + Math.log(Array.from(row).reduce((s, x) => s + Math.exp(x - m), 0));
  return Float64Array.from(row, (x) => x - lse);
}

Deno.test("exposure curves equal the reference model: TF losses, greedy continuations, FR losses, KL", async () => {
  const gpu = await testGpu();
  const c: GPTConfig = {
    n_layer: 2,
    n_head: 2,
    n_embd: 16,
    block_size: 8,
    vocab_size: 11,
    bias: true,
    dropout: 0,
  };
  const w = randomWeights(c, 12);
  const rng = new Rng(5);
  const ids = Uint32Array.from({ length: 120 }, () => rng.int(c.vocab_size));
  const P = 3, W = 5, T = c.block_size, V = c.vocab_size;
  // 5 windows in batches of 2: the last batch is partial.
  const r = await measureExposure(c, hostOf(c, w), ids, {
    prefix: P,
    windows: W,
    batchSize: 2,
    gpu,
    keepRollouts: true,
  });
  assert.equal(r.windows, W);
  assert.equal(r.positions, T);
  const tf = new Float64Array(T), fr = new Float64Array(T), kl = new Float64Array(T);
  for (let k = 0; k < W; k++) {
    const o = Math.floor(k * (ids.length - T - 1) / (W - 1));
    const gold = ids.slice(o, o + T), next = ids.slice(o + 1, o + T + 1);
    const own = greedyRollout(c, w, gold, 1, T, P);
    assert.deepEqual(r.rollouts![k], Array.from(own), `window ${k}: continuation differs from the reference`);
    const a = gptForward(c, w, gold, next, 1, T).logits, b = gptForward(c, w, own, next, 1, T).logits;
    for (let t = 0; t < T; t++) {
      const la = logSoftmax(a.subarray(t * V, (t + 1) * V)), lb = logSoftmax(b.subarray(t * V, (t + 1) * V));
      tf[t] -= la[next[t]] / W;
      fr[t] -= lb[next[t]] / W;
      let d = 0;
      for (let v = 0; v < V; v++) d += Math.exp(la[v]) * (la[v] - lb[v]);
      kl[t] += d / W;
    }
  }
  assertClose("teacher-forced per position", r.teacher_forced, tf, { atol: 2e-5, rtol: 1e-4 });
  assertClose("free-running per position", r.free_running, fr, { atol: 2e-5, rtol: 1e-4 });
  assertClose("KL per position", r.divergence, kl, { atol: 2e-5, rtol: 1e-3 });
  // Inside the gold prefix both passes see the same inputs: identical losses, zero divergence.
  for (let t = 0; t < P; t++) {
    assert.equal(r.free_running[t], r.teacher_forced[t]);
    assert.equal(r.divergence[t], 0);
  }
  const mean = (x: ArrayLike<number>) => Array.from(x).slice(P).reduce((s, v) => s + v, 0) / (T - P);
  assertClose("means", [r.teacher_forced_mean, r.free_running_mean], [mean(tf), mean(fr)], { atol: 2e-5 });
});

/** A first-order Markov chain over `k` letters with sparse random rows (as tests/train.test.ts). */
function markovText(k: number, n: number, seed: number): string {
  const rng = new Rng(seed);
  const letters = "abcdefghijklmnopqrstuvwxyz".slice(0, k);
  const P: number[][] = [];
  for (let i = 0; i < k; i++) {
    const w = Array.from({ length: k }, () => rng.uniform() < 0.4 ? rng.uniform() + 0.05 : 0);
    w[(i + 1) % k] += 0.5;
    w[i] += 0.05;
    const s = w.reduce((a, b) => a + b, 0);
    P.push(w.map((x) => x / s));
  }
  let s = 0, text = "";
  for (let t = 0; t < n; t++) {
    let u = rng.uniform(), j = 0;
    while (j < k - 1 && u >= P[s][j]) u -= P[s][j++];
    s = j;
    text += letters[s];
  }
  return text;
}

Deno.test("a teacher-forced model's free-running loss exceeds its teacher-forced loss on a synthetic language", async () => {
  const gpu = await testGpu();
  const text = markovText(8, 60_000, 7);
  const r = await train({
    ...DEFAULT_TRAIN,
    n_layer: 1,
    n_head: 2,
    n_embd: 32,
    block_size: 16,
    batch_size: 16,
    steps: 150,
    lr: 1e-2,
    min_lr: 1e-3,
    warmup: 10,
    eval_interval: 150,
    eval_iters: 4,
    log_interval: 50,
    sample_chars: 0,
  }, { gpu, noSave: true, text });
  const val = r.corpus.val.tokens;
  for (const decode of ["argmax", "sample"] as const) {
    const e = await measureExposure(r.model.config, r.model.params, val, {
      prefix: 4,
      windows: 64,
      decode,
      gpu,
    });
    console.log(
      `${decode}: teacher-forced ${e.teacher_forced_mean.toFixed(4)}, free-running ${
        e.free_running_mean.toFixed(4)
      }, KL ${e.divergence_mean.toFixed(4)} (val loss ${r.finalValLoss.toFixed(4)})`,
    );
    // The model learned the chain (uniform would be ln 8 = 2.08) ...
    assert.ok(
      e.teacher_forced_mean < Math.log(8) - 0.5,
      `teacher-forced ${e.teacher_forced_mean}: not trained`,
    );
    // ... and pays clearly more for the gold next token after its own history than after the gold one.
    assert.ok(
      e.free_running_mean > e.teacher_forced_mean + 0.2,
      `free-running ${e.free_running_mean} does not exceed teacher-forced ${e.teacher_forced_mean}`,
    );
    assert.ok(e.divergence_mean > 0.1, `KL ${e.divergence_mean}`);
  }
});

Deno.test("eval --exposure: JSON last, plot written; one-line errors for bad input", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-exposure-" });
  const text = "the quick brown fox jumps over the lazy dog. ".repeat(20);
  const tok = trainTokenizer("char", text);
  const c: GPTConfig = {
    n_layer: 1,
    n_head: 2,
    n_embd: 16,
    block_size: 8,
    vocab_size: tok.vocabSize,
    bias: false,
    dropout: 0,
  };
  await saveModel(`${dir}/m.safetensors`, c, tok, paramLayout(c).layout, hostOf(c, randomWeights(c, 1)));
  await Deno.writeTextFile(`${dir}/data.txt`, text);
  const out: string[] = [], err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    const args = ["eval", "--checkpoint", `${dir}/m.safetensors`, "--data", `${dir}/data.txt`, "--exposure"];
    assert.equal(await main([...args, "--prefix", "2", "--windows", "6"]), 0, err.join("\n"));
    const j = JSON.parse(out[out.length - 1]);
    assert.equal(j.prefix, 2);
    assert.equal(j.windows, 6);
    assert.equal(j.teacher_forced.length, 8);
    assert.equal(j.free_running.length, 8);
    assert.ok(Number.isFinite(j.teacher_forced_mean) && Number.isFinite(j.free_running_mean));
    const svg = await Deno.readTextFile(`${dir}/m.exposure.svg`);
    assert.match(svg, /^<svg[^>]*>/);
    assert.match(svg, /free-running loss/);
    assert.equal(await main([...args, "--plot", `${dir}/p.svg`, "--fr-decode", "sample"]), 0);
    assert.match(await Deno.readTextFile(`${dir}/p.svg`), /teacher-forced loss/);
    for (
      const [extra, re] of [
        [["--prefix", "8"], /--prefix must be an integer in \[1, block_size = 8\) \(got 8\)/],
        [["--prefix", "0"], /--prefix must be an integer/],
        [["--fr-decode", "beam"], /--fr-decode must be argmax or sample/],
        [["--windows", "0"], /--windows must be a positive integer/],
      ] as [string[], RegExp][]
    ) {
      err.length = 0;
      assert.notEqual(await main([...args, ...extra]), 0);
      assert.equal(err.length, 1, JSON.stringify(err));
      assert.match(err[0], re);
    }
    err.length = 0;
    assert.equal(
      await main([
        "eval",
        "--checkpoint",
        `${dir}/m.safetensors`,
        "--data",
        `${dir}/data.txt`,
        "--prefix",
        "2",
      ]),
      2,
    );
    assert.match(err[0], /--prefix needs --exposure/);
  } finally {
    console.error = orig;
    console.log = origLog;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the experiment trains the three modes and writes a report with its plots", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce-experiment-" });
  try {
    const r = await runExperiment({
      base: {
        ...DEFAULT_TRAIN,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        block_size: 16,
        batch_size: 4,
        steps: 8,
        eval_interval: 4,
        eval_iters: 1,
      },
      report: dir,
      windows: 4,
      text: markovText(6, 5_000, 3),
      gpu,
    });
    assert.deepEqual(r.runs.map((x) => x.mode), ["teacher-forcing", "free-running", "scheduled-sampling"]);
    for (const x of r.runs) {
      assert.equal(x.history.filter((h) => h.train_loss !== null).length, 8, `${x.mode}: a loss per step`);
      assert.equal(x.cosine.length, 8);
      assert.ok(Number.isNaN(x.cosine[0].cos) && x.cosine.slice(1).every((c) => Math.abs(c.cos) <= 1));
      assert.ok(x.tokensPerS > 0 && x.exposure.positions === 16);
    }
    const md = await Deno.readTextFile(`${dir}/report.md`);
    for (let k = 1; k <= 5; k++) {
      assert.match(md, new RegExp(`### ${k}\\. Teacher forcing .*: (held|did not hold|held only in part)`));
    }
    for (const f of ["loss", "loss-time", "grad-norm", "grad-cosine", "exposure", "exposure-kl"]) {
      assert.match(await Deno.readTextFile(`${dir}/${f}.svg`), /^<svg/);
      assert.ok(md.includes(`(${f}.svg)`), `${f}.svg not linked`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exposure: by default a batch holds as many windows as one binding of their logits allows", async () => {
  const real = await testGpu();
  const c: GPTConfig = {
    n_layer: 1,
    n_head: 2,
    n_embd: 16,
    block_size: 8,
    vocab_size: 2000,
    bias: false,
    dropout: 0,
  };
  // A window's logits are 8 x 2000 floats (62.5 KiB); a binding limit of 200 KiB takes 3 of them (the
  // parameters, 2000 x 16 floats for wte plus one block, still fit).
  const limit = 200 * 1024;
  const limits: Record<string, number> = {};
  for (const k in real.limits) limits[k] = (real.limits as unknown as Record<string, number>)[k]; // getters
  limits.maxStorageBufferBindingSize = limit;
  // The same device seen through a Gpu that reports the smaller limit.
  const gpu = new Gpu(real.device, real.description, real.software);
  Object.defineProperty(gpu, "limits", { value: limits });
  const w = randomWeights(c, 3);
  const rng = new Rng(8);
  const ids = Uint32Array.from({ length: 200 }, () => rng.int(c.vocab_size));
  const opts = { prefix: 2, windows: 7, gpu };
  const auto = await measureExposure(c, hostOf(c, w), ids, opts);
  const three = await measureExposure(c, hostOf(c, w), ids, { ...opts, batchSize: 3 });
  assert.deepEqual(auto, three);
  // Asked for 16 windows a batch (so all 7), the logits (437.5 KiB) are refused in one line.
  await assert.rejects(
    measureExposure(c, hostOf(c, w), ids, { ...opts, batchSize: 16 }),
    /needs 437\.50 KiB in one buffer \(logits \[56 x 2000\]\) but the adapter allows 200 KiB/,
  );
});
