/**
 * Training end to end on lavapipe: one submission per step with no readback inside it, learning a
 * synthetic language to near its entropy, exact resume, evaluation and generation against the CPU
 * reference model, deterministic sampling, and a diverging run that keeps its last good checkpoint.
 */
import assert from "node:assert/strict";
import { assertClose, testGpu, watchSubmits } from "./helpers.ts";
import type { TrainConfig } from "../src/train/config.ts";
import { train, TrainingDiverged } from "../src/train/trainer.ts";
import { decodeModel, loadModel } from "../src/model/checkpoint.ts";
import { evaluateCheckpoint } from "../src/train/evaluate.ts";
import { trainTokenizer } from "../src/data/tokenizer.ts";
import { gptForward } from "../src/reference/gpt.ts";
import { readF32 } from "../src/gpu/buffers.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.ts";
import {
  generatorOf,
  markovText,
  markovTrain,
  randomWeights,
  saveWeights,
  tinyGPT,
  tinyTrain,
} from "./fixtures.ts";
import { Gpu, GpuError } from "../src/gpu/device.ts";
import { initParams } from "../src/model/init.ts";
import { TrainStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";

const tiny: TrainConfig = { ...tinyTrain };

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "tforce-test-" });
}

Deno.test("each step is one queue submission and nothing is mapped while steps are in flight", async () => {
  const gpu = await testGpu();
  const events: string[] = [];
  const mapAsync = GPUBuffer.prototype.mapAsync;
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...a: Parameters<GPUBuffer["mapAsync"]>) {
    events.push(`map:${this.label}`);
    return mapAsync.apply(this, a);
  };
  try {
    const cfg = { ...tiny, steps: 8, eval_interval: 8, log_interval: 4, grad_accum: 2 };
    await watchSubmits(gpu, (l) => events.push(`submit:${l}`), () => train(cfg, { gpu, noSave: true }));
  } finally {
    GPUBuffer.prototype.mapAsync = mapAsync;
  }
  const steps = events.filter((e) => e.startsWith("submit:step "));
  assert.deepEqual(steps, Array.from({ length: 8 }, (_, i) => `submit:step ${i}`));
  const first = events.indexOf("submit:step 0"), last = events.indexOf("submit:step 7");
  const between = events.slice(first, last).filter((e) => e.startsWith("map:") || e.startsWith("submit:"));
  // Only the asynchronous loss ring is mapped between step submissions (and only at log steps).
  for (const e of between) {
    assert.ok(/^submit:step \d$|^map:stats_ring\d$/.test(e), `unexpected ${e} during steps`);
  }
  assert.equal(between.filter((e) => e.startsWith("map:")).length, 1); // after step 3
});

Deno.test("a tiny model learns a Markov language to within 0.1 nats of its entropy rate", async () => {
  const gpu = await testGpu();
  const { text, entropy } = markovText(8, 60_000, 7);
  const r = await train(markovTrain, { gpu, noSave: true, text });
  console.log(`val loss ${r.finalValLoss.toFixed(4)} vs entropy rate ${entropy.toFixed(4)}`);
  assert.ok(r.finalValLoss < entropy + 0.1, `val loss ${r.finalValLoss} not within 0.1 of ${entropy}`);
  assert.ok(r.finalValLoss > entropy - 0.05, `val loss ${r.finalValLoss} below the entropy rate ${entropy}?`);
  // A model that learned nothing would sit at the uniform loss ln(8) = 2.08.
  assert.ok(r.finalValLoss < Math.log(8) - 0.5, "the loss did not fall");
});

Deno.test("float16 mixed precision follows the float32 loss curve within seed-to-seed noise", async () => {
  const gpu = await testGpu();
  const { text, entropy } = markovText(8, 60_000, 7);
  const cfg = { ...markovTrain, log_interval: 10 };
  const run = (seed: number, dtype: "float32" | "float16") =>
    train({ ...cfg, seed, dtype }, { gpu, noSave: true, text });
  const [a32, b32, a16] = [await run(1, "float32"), await run(2, "float32"), await run(1, "float16")];
  const curve = (r: typeof a32) => r.history.filter((h) => h.train_loss !== null).map((h) => h.train_loss!);
  const gap = (x: number[], y: number[]) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
  const noise = gap(curve(a32), curve(b32)), precision = gap(curve(a32), curve(a16));
  console.log(
    `float32 seeds 1 vs 2: max train-loss gap ${noise.toFixed(4)}; float32 vs float16 (seed 1): ${
      precision.toExponential(2)
    }; val ${a32.finalValLoss.toFixed(4)} / ${a16.finalValLoss.toFixed(4)} (entropy ${entropy.toFixed(4)})`,
  );
  assert.ok(precision <= noise, `float16 curve is ${precision} from float32, more than seed noise ${noise}`);
  assert.ok(
    Math.abs(a16.finalValLoss - a32.finalValLoss) < 0.02,
    "float16 final val loss differs from float32",
  );
  const scales = a16.history.filter((h) => h.train_loss !== null).map((h) => h.loss_scale);
  assert.ok(scales.every((x) => x !== undefined && x >= 1), `loss scales logged: ${scales}`);
  assert.ok(a32.history.every((h) => h.loss_scale === undefined), "float32 logs no loss scale");
});

Deno.test("float16 overflow skips steps and halves the loss scale until it fits; training goes on", async () => {
  const gpu = await testGpu();
  // 2^40: the loss gradient times the scale overflows f16 until about 2^20 (|dlogits| <= 1/(B*T) = 1/64).
  const r = await train({ ...tiny, dtype: "float16", steps: 30, log_interval: 1, eval_interval: 30 }, {
    gpu,
    noSave: true,
    lossScaleInit: 2 ** 40,
  });
  const logged = r.history.filter((h) => h.train_loss !== null);
  const skipped = logged.filter((h) => h.skipped);
  console.log(`${skipped.length} steps skipped; loss scale settled at 2^${40 - skipped.length}`);
  assert.equal(r.stopped, "done");
  assert.ok(skipped.length >= 10, `only ${skipped.length} steps skipped`);
  // Skipped steps come first, each at half the previous scale; then every step is finite.
  assert.deepEqual(skipped.map((h) => h.step), skipped.map((_, i) => i + 1));
  assert.deepEqual(skipped.map((h) => h.loss_scale), skipped.map((_, i) => 2 ** (40 - i)));
  const after = logged.slice(skipped.length);
  assert.ok(after.length > 5 && after.every((h) => !h.skipped && Number.isFinite(h.grad_norm)));
  assert.equal(after[0].loss_scale, 2 ** (40 - skipped.length));
  // Skipped steps leave the weights alone: their losses stay at the initial loss.
  const first = skipped[0].train_loss!;
  for (const h of skipped) {
    assert.ok(Math.abs(h.train_loss! - first) < 0.2, `loss moved in a skipped step: ${h.train_loss}`);
  }
  assert.ok(logged.at(-1)!.train_loss! < first - 0.1, "the loss did not fall after the scale settled");
});

Deno.test("a float16 run resumed at step 6 continues exactly, loss scale included", async () => {
  const gpu = await testGpu();
  const cfg = { ...tiny, dtype: "float16" as const, lr_decay_steps: 12 };
  const a = await tempDir(), b = await tempDir();
  await train({ ...cfg, steps: 6, out: a }, { gpu });
  const resumed = await train({ ...cfg, steps: 12, out: a, resume: true }, { gpu });
  const straight = await train({ ...cfg, steps: 12, out: b }, { gpu });
  const after6 = (h: typeof resumed.history) =>
    h.filter((r) => r.train_loss !== null && r.step > 6).map((r) => [r.step, r.train_loss, r.loss_scale]);
  assert.deepEqual(after6(resumed.history), after6(straight.history));
  const wa = (await loadModel(`${a}/model.safetensors`)).weights;
  const wb = (await loadModel(`${b}/model.safetensors`)).weights;
  for (const [name, t] of wa) assert.deepEqual(t, wb.get(name), `${name} differs after resume`);
  await Deno.remove(a, { recursive: true });
  await Deno.remove(b, { recursive: true });
});

Deno.test("a run resumed at step 6 continues exactly like an uninterrupted 12-step run", async () => {
  const gpu = await testGpu();
  const cfg = { ...tiny, dropout: 0.1, lr_decay_steps: 12, grad_accum: 2 };
  const a = await tempDir(), b = await tempDir();
  await train({ ...cfg, steps: 6, out: a }, { gpu });
  const resumed = await train({ ...cfg, steps: 12, out: a, resume: true }, { gpu });
  const straight = await train({ ...cfg, steps: 12, out: b }, { gpu });
  const losses = (h: typeof resumed.history) => h.filter((r) => r.train_loss !== null && r.step > 6);
  assert.deepEqual(
    losses(resumed.history).map((r) => [r.step, r.train_loss]),
    losses(straight.history).map((r) => [r.step, r.train_loss]),
  );
  const wa = (await loadModel(`${a}/model.safetensors`)).weights;
  const wb = (await loadModel(`${b}/model.safetensors`)).weights;
  for (const [name, t] of wa) assert.deepEqual(t, wb.get(name), `${name} differs after resume`);
  // The log holds both halves of the resumed run.
  const log = (await Deno.readTextFile(`${a}/log.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(log.filter((r) => r.train_loss !== null).map((r) => r.step), [2, 4, 6, 8, 10, 12]);
  // Evaluation seconds: part of the wall clock, growing at each evaluation, carried across the resume.
  for (const [i, r] of log.entries()) {
    assert.ok(r.eval_s >= (log[i - 1]?.eval_s ?? 0) && r.eval_s <= r.elapsed_s, JSON.stringify(r));
  }
  const evals = log.filter((r) => r.val_loss !== null);
  assert.ok(evals.length >= 2 && evals.every((r, i) => i === 0 || r.eval_s > evals[i - 1].eval_s));
  await Deno.remove(a, { recursive: true });
  await Deno.remove(b, { recursive: true });
});

Deno.test("eval of a checkpoint equals the CPU reference model under the window rule", async () => {
  const gpu = await testGpu();
  const text = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n";
  const tok = trainTokenizer("char", text);
  const c = tinyGPT({ n_layer: 2, vocab_size: tok.vocabSize, bias: true });
  const w = randomWeights(c, 3);
  const dir = await tempDir();
  await saveWeights(`${dir}/m.safetensors`, c, tok, w);
  await Deno.writeTextFile(`${dir}/data.txt`, text);
  const r = await evaluateCheckpoint(`${dir}/m.safetensors`, `${dir}/data.txt`, { gpu, batchSize: 3 });
  const ids = tok.encode(text);
  const params = w;
  let sum = 0, count = 0;
  for (let o = 0; o < ids.length - 1; o += c.block_size) {
    const T = Math.min(c.block_size, ids.length - 1 - o);
    const f = gptForward(c, params, ids.slice(o, o + T), ids.slice(o + 1, o + T + 1), 1, T);
    sum += f.loss * T;
    count += T;
  }
  assert.equal(r.tokens, ids.length - 1);
  assert.equal(count, ids.length - 1);
  assertClose("eval loss", [r.loss, r.perplexity], [sum / count, Math.exp(sum / count)], {
    atol: 0,
    rtol: 1e-5,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("KV-cache generation equals greedy decoding of the reference model, across the window slide", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ n_layer: 2 });
  const w = randomWeights(c, 5);
  const gen = await generatorOf(gpu, c, w, 1);
  const prompt = [3, 1, 4];
  const got = (await gen.generate(prompt, 12, { temperature: 0 }))[0];
  // Reference: the same policy (context of the last block_size-1 tokens at first; when the window is
  // full, restart from its last block_size/2 tokens), each next token the argmax of the last logits.
  const p = w;
  const seq = [...prompt];
  let start = 0, ctxLen = prompt.length;
  const want: number[] = [];
  while (want.length < 12) {
    if (ctxLen === c.block_size) {
      start = seq.length - c.block_size / 2;
      ctxLen = c.block_size / 2;
    }
    const ctx = seq.slice(start);
    const f = gptForward(c, p, ctx, ctx, 1, ctx.length);
    const last = f.logits.subarray((ctx.length - 1) * c.vocab_size, ctx.length * c.vocab_size);
    let best = 0;
    for (let v = 1; v < c.vocab_size; v++) if (last[v] > last[best]) best = v;
    seq.push(best);
    want.push(best);
    ctxLen++;
  }
  assert.deepEqual(got, want);
});

Deno.test("sampling is deterministic for a seed and differs across seeds", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ block_size: 16, vocab_size: 20, bias: true });
  const gen = await generatorOf(gpu, c, randomWeights(c, 9), 2);
  const a = await gen.generate([1, 2], 30, { temperature: 1, topK: 10, seed: 42 });
  const b = await gen.generate([1, 2], 30, { temperature: 1, topK: 10, seed: 42 });
  const d = await gen.generate([1, 2], 30, { temperature: 1, topK: 10, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, d);
  assert.notDeepEqual(a[0], a[1], "two rows of one batch should draw different samples");
});

Deno.test("a NaN loss stops training with a message and leaves the last checkpoint untouched", async () => {
  const gpu = await testGpu();
  const dir = await tempDir();
  await train({ ...tiny, steps: 4, eval_interval: 4, out: dir }, { gpu });
  // Poison one AdamW moment in the resumable state (a NaN weight is refused at load): the first step's
  // update makes that weight NaN, and the loss is NaN from the next step.
  const statePath = `${dir}/train_state.safetensors`;
  const f = decodeSafetensors(await Deno.readFile(statePath));
  const tensors = [...f.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
  tensors.find((t) => t.name === "exp_avg.transformer.ln_f.weight")!.data[0] = NaN;
  await Deno.writeFile(statePath, encodeSafetensors(tensors, f.metadata));
  const before = await Deno.readFile(`${dir}/model.safetensors`);
  await assert.rejects(
    train({ ...tiny, steps: 8, eval_interval: 4, out: dir, resume: true }, { gpu }),
    (e: unknown) =>
      e instanceof TrainingDiverged && /loss is NaN/.test(e.message) && !e.message.includes("\n"),
  );
  assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), before);
  decodeModel(before); // still a valid checkpoint
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--examples lines: short lines are padded, padding is ignored, and the model learns them", async () => {
  const gpu = await testGpu();
  const lines = Array.from({ length: 400 }, (_, i) => "ab".repeat(1 + i % 5) + "c");
  const r = await train(
    { ...tiny, examples: "lines", steps: 60, eval_interval: 60, log_interval: 10, lr: 1e-2, warmup: 5 },
    { gpu, noSave: true, text: lines.join("\n") },
  );
  assert.equal(r.corpus.tokenizer.padId, r.corpus.tokenizer.vocabSize - 1);
  const first = r.history.find((h) => h.train_loss !== null)!.train_loss!;
  console.log(`lines mode: first logged loss ${first.toFixed(3)}, final val ${r.finalValLoss.toFixed(3)}`);
  assert.ok(Number.isFinite(r.finalValLoss) && r.finalValLoss < 0.6, `val loss ${r.finalValLoss}`);
});

Deno.test("the same seed gives the identical loss sequence and weights (dropout and grad accumulation on)", async () => {
  const gpu = await testGpu();
  const cfg = { ...tiny, steps: 10, eval_interval: 10, dropout: 0.2, grad_accum: 2, log_interval: 1 };
  const a = await train(cfg, { gpu, noSave: true });
  const pa = await readF32(gpu, a.model.params.buffer);
  const b = await train(cfg, { gpu, noSave: true });
  const pb = await readF32(gpu, b.model.params.buffer);
  const losses = (r: typeof a) => r.history.map((h) => [h.step, h.train_loss, h.val_loss, h.grad_norm]);
  assert.deepEqual(losses(a), losses(b));
  assert.deepEqual(pa, pb);
  const c = await train({ ...cfg, seed: 7 }, { gpu, noSave: true });
  assert.notDeepEqual(losses(c), losses(a));
});

Deno.test("--init-from fine-tunes from a checkpoint: its weights, shape and tokenizer, a fresh optimizer", async () => {
  const gpu = await testGpu();
  const dir = await tempDir();
  await train({ ...tiny, steps: 4, eval_interval: 4, out: dir }, { gpu });
  const base = await loadModel(`${dir}/model.safetensors`);
  // A vanishing learning rate: after one step the weights are still the checkpoint's.
  const r = await train(
    {
      ...tiny,
      n_embd: 32,
      steps: 1,
      eval_interval: 1,
      lr: 1e-12,
      min_lr: 0,
      init_from: `${dir}/model.safetensors`,
    },
    { gpu, noSave: true },
  );
  assert.equal(r.model.config.n_embd, 16, "the checkpoint's shape wins over --n-embd");
  assert.deepEqual(r.corpus.tokenizer.toJSON(), base.tokenizer.toJSON());
  const w = await readF32(gpu, r.model.params.buffer);
  for (const e of r.model.params.layout.entries) {
    assertClose(e.name, w.subarray(e.offset, e.offset + e.size), base.weights.get(e.name)!, {
      atol: 1e-9,
      rtol: 1e-6,
      quiet: true,
    });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a WebGPU validation error mid-run stops training with the step, the kernel and the kept checkpoint", async () => {
  const gpu = await testGpu();
  const dir = await tempDir();
  await assert.rejects(
    train({ ...tiny, steps: 8, eval_interval: 2, out: dir }, {
      gpu,
      // Break the model after the first checkpoint: the next step's submission fails validation.
      onEval: ({ step, model }) => {
        if (step === 2) model.logits.destroy();
      },
    }),
    (e: unknown) => {
      const m = (e as Error).message;
      assert.ok(e instanceof GpuError, `not a GpuError: ${m}`);
      assert.match(
        m,
        /^matmul_forward: GPU error in kernel matmul_forward \(dispatch \d+ of \d+\) at training step \d+: /,
      );
      assert.match(m, /has been destroyed; the last checkpoint \(step 2\) is kept in /);
      assert.ok(!m.includes("\n"), m);
      return true;
    },
  );
  decodeModel(await Deno.readFile(`${dir}/model.safetensors`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("arenas over several buffers: a resumed run continues exactly; the run matches the one-buffer run", async () => {
  // Two layers of 128 channels (an arena of 1.6 MB) under a 1.25 MiB binding limit (the corpus's 1.03 MiB
  // fits): every arena in two buffers.
  const real = await testGpu();
  const limit = 1.25 * 2 ** 20;
  const gpu = new Gpu(real.device, real.description, real.software, { maxStorageBufferBindingSize: limit });
  const cfg = { ...tiny, n_layer: 2, n_embd: 128, lr_decay_steps: 12, grad_clip: 0.5 };
  const a = await tempDir(), b = await tempDir(), c = await tempDir();
  await train({ ...cfg, steps: 6, out: a }, { gpu });
  const resumed = await train({ ...cfg, steps: 12, out: a, resume: true }, { gpu });
  const split = await train({ ...cfg, steps: 12, out: b }, { gpu });
  const whole = await train({ ...cfg, steps: 12, out: c }, { gpu: real });
  const losses = (h: typeof resumed.history, from = 0) =>
    h.filter((r) => r.train_loss !== null && r.step > from).map((r) => [r.step, r.train_loss!]);
  assert.deepEqual(losses(resumed.history, 6), losses(split.history, 6));
  const [ls, lw] = [losses(split.history), losses(whole.history)];
  assertClose("losses, two buffers vs one", ls.flat(), lw.flat(), { atol: 0, rtol: 1e-5 });
  const weights = async (dir: string) => (await loadModel(`${dir}/model.safetensors`)).weights;
  const [wa, wb, wc] = [await weights(a), await weights(b), await weights(c)];
  for (const [name, t] of wa) {
    assert.deepEqual(t, wb.get(name), `${name} differs after resume`);
    assertClose(name, t, wc.get(name)!, { atol: 1e-5, rtol: 1e-4, quiet: true });
  }
  for (const d of [a, b, c]) await Deno.remove(d, { recursive: true });
});

Deno.test("training steps with the token embedding in vocabulary slices follow the one-buffer steps", async () => {
  // Vocabulary 50257 at C 64 (wte 12.9 MB) under a 4 MiB binding limit (logits [16 x 50257] fit whole):
  // arenas in 4 buffers, wte in 4 slices.
  const real = await testGpu();
  const gpu = new Gpu(real.device, real.description, real.software, { maxStorageBufferBindingSize: 2 ** 22 });
  const config = tinyGPT({ vocab_size: 50257, n_embd: 64, block_size: 16, bias: true });
  const rng = new Rng(5);
  const corpus = { tokens: Uint32Array.from({ length: 4096 }, () => rng.int(config.vocab_size)) };
  // A weight decay large enough to see (lr·wd·|p| ~ 6e-4 a step, 0.2 lr) on a wrong range of a buffer.
  const optimizer = { lr: 3e-3, beta1: 0.9, beta2: 0.99, weightDecay: 10, gradClip: 1 };
  // Three steps; the gradients and moments of the first, the weights and losses of all.
  const run = async (g: Gpu) => {
    const step = await TrainStep.create(g, config, { B: 1, T: 16, corpus, optimizer, gradProbe: true });
    step.load({ params: initParams(config, step.model.params.layout, 1) });
    const draws = new Rng(9), losses: number[] = [];
    let first: { grads: Float32Array; m: Float32Array; v: Float32Array } | null = null;
    for (let i = 0; i < 3; i++) {
      step.prepare({ step: i, lr: optimizer.lr, batch: step.drawBatch(draws, { seed: 1, step: i }) });
      g.device.queue.submit([step.encode("step").finish()]);
      const [sum, count] = await readF32(g, step.model.lossAcc, 0, 2);
      losses.push(sum / count, ...await readF32(g, step.stats, 0, 1));
      first ??= { grads: await step.model.grads.read(g), ...await step.snapshot() };
    }
    return { step, losses, first: first!, params: await step.model.params.read(g) };
  };
  const one = await run(real), many = await run(gpu);
  assert.equal(one.step.model.params.buffers.length, 1);
  assert.equal(many.step.model.params.layout.buffers.length, 4);
  assert.equal(many.step.model.params.layout.slices("transformer.wte.weight").length, 4);
  assertClose("losses and grad norms, slices vs whole", many.losses, one.losses, { atol: 0, rtol: 1e-5 });
  // The first step's gradient and moments agree to rounding; later, AdamW's normalised update turns the
  // rounding of near-zero gradients into differences of a fraction of lr in the weights.
  for (const k of ["grads", "m", "v"] as const) {
    const scale = one.first[k].reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    assertClose(k, many.first[k], one.first[k], { atol: 1e-5 * scale, rtol: 0 });
  }
  assertClose("params", many.params, one.params, { atol: 0.1 * optimizer.lr, rtol: 0 });
});
