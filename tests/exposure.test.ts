/**
 * Exposure-bias measurement. Against float64 references computed here: the GPU curves (gold-token losses
 * after the gold and the own history, greedy continuations, drift KL) and the oracle figures KL(p* ‖ model)
 * with an order-2 chain (nulls for t + 1 < 2, skipped positions counted). A "model" equal to the oracle
 * has zero excess loss under both histories while its drift figures are not zero. Sampled continuations
 * are draws from the model (mean NLL of the drawn tokens = mean entropy within sampling error). Refusals:
 * a tokenizer that is not char-level, an alphabet character the model cannot emit. `eval --exposure`
 * prints its JSON last, writes its plot and --rollouts, from which an oracle figure is recomputed; one-line
 * errors for bad input. Also: a trained model's curves on a synthetic language, batching (the experiment:
 * tests/experiment.test.ts).
 */
import assert from "node:assert/strict";
import { assertClose, refuses, testGpu } from "./helpers.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { gptForward } from "../src/reference/gpt.ts";
import { greedyRollout } from "../src/reference/modes.ts";
import { bindOracle, ExposureTally, measureExposure } from "../src/train/exposure.ts";
import { DEFAULT_TRAIN } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";
import { type Tokenizer, trainTokenizer } from "../src/data/tokenizer.ts";
import { main } from "../cli.ts";
import { Rng } from "../src/util/rng.ts";
import { Gpu } from "../src/gpu/device.ts";
import { generateLanguage } from "../src/data/language.ts";
import { languageOracle, sampleOracle } from "../src/data/oracle.ts";
import {
  hostOf,
  markovChain,
  markovText,
  markovTrain,
  randomWeights,
  saveWeights,
  tinyGPT,
} from "./fixtures.ts";

type Oracle = Parameters<typeof bindOracle>[0];

function logSoftmax(row: ArrayLike<number>): Float64Array {
  const m = Math.max(...Array.from(row));
  const lse = m + Math.log(Array.from(row).reduce((s, x) => s + Math.exp(x - m), 0));
  return Float64Array.from(row, (x) => x - lse);
}

/**
 * An order-k chain over `alphabet` for tests: the row after a context is drawn from a hash of it,
 * weights exp(sharp * N(0, 1)) (full support, peaked for a large `sharp`); null where t + 1 < k or the
 * context holds a character outside the alphabet.
 */
class TestChain implements Oracle {
  readonly description: string;
  readonly #rows = new Map<string, Float64Array>();
  constructor(
    readonly alphabet: readonly string[],
    readonly order: number,
    readonly seed: number,
    readonly sharp = 1.5,
  ) {
    this.description = `test chain of order ${order} over ${alphabet.length} characters (seed ${seed})`;
  }
  row(context: string): Float64Array {
    let p = this.#rows.get(context);
    if (!p) {
      let h = this.seed;
      for (const ch of context) h = Math.imul(h ^ ch.codePointAt(0)!, 0x9e3779b1) >>> 0;
      const rng = new Rng(h);
      const w = this.alphabet.map(() => Math.exp(this.sharp * rng.normal()));
      const s = w.reduce((a, b) => a + b, 0);
      p = Float64Array.from(w, (x) => x / s);
      this.#rows.set(context, p);
    }
    return p;
  }
  conditionals(text: readonly string[]): (Float64Array | null)[] {
    return text.map((_, t) => {
      if (t + 1 < this.order) return null;
      const ctx = text.slice(t + 1 - this.order, t + 1);
      return ctx.every((c) => this.alphabet.includes(c)) ? this.row(ctx.join("")) : null;
    });
  }
  /** The order-k chain JSON file `--oracle` reads: every context's row. */
  toJSON(): unknown {
    const contexts: string[][] = [[]];
    for (let i = 0; i < this.order; i++) {
      contexts.splice(0, contexts.length, ...contexts.flatMap((c) => this.alphabet.map((a) => [...c, a])));
    }
    return {
      alphabet: this.alphabet,
      order: this.order,
      probs: Object.fromEntries(contexts.map((c) => [c.join(""), Array.from(this.row(c.join("")))])),
    };
  }
}

/** KL(p ‖ q) over the alphabet, q the model's log-probabilities indexed by the model's ids. */
function refKl(p: Float64Array, logq: Float64Array, id: (i: number) => number): number {
  let d = 0;
  p.forEach((pi, i) => {
    if (pi > 0) d += pi * (Math.log(pi) - logq[id(i)]);
  });
  return d;
}

const small = tinyGPT({ n_layer: 2, bias: true });

Deno.test("exposure curves and oracle KL equal float64 references: gold/own losses, greedy continuations, drift, nulls, skips", async () => {
  const gpu = await testGpu();
  const c = small;
  const w = randomWeights(c, 12);
  const rng = new Rng(5);
  // 11 characters; the oracle's alphabet leaves out "k", which the data holds (skips) and p* never gives.
  const tok = trainTokenizer("char", "abcdefghijk");
  const oracle = new TestChain([..."abcdefghij"], 2, 9);
  const ids = Uint32Array.from({ length: 120 }, () => rng.uniform() < 0.08 ? 10 : rng.int(10));
  const P = 3, W = 5, T = c.block_size, V = c.vocab_size;
  // 5 windows in batches of 2: the last batch is partial.
  const r = await measureExposure(c, hostOf(c, w), ids, {
    prefix: P,
    windows: W,
    batchSize: 2,
    decode: "argmax",
    gpu,
    keepRollouts: true,
    oracle,
    tokenizer: tok,
  });
  assert.equal(r.windows, W);
  assert.equal(r.positions, T);
  assert.equal(r.decode, "argmax");
  assert.equal(r.oracle, oracle.description);
  assert.equal(r.oracle_order, 2);
  const lg = new Float64Array(T), lo = new Float64Array(T), drift = new Float64Array(T);
  const klG = new Float64Array(T),
    klO = new Float64Array(T),
    nG = new Float64Array(T),
    nO = new Float64Array(T);
  let skipped = 0;
  const chars = (a: ArrayLike<number>) => Array.from(a, (id) => "abcdefghijk"[id]);
  for (let k = 0; k < W; k++) {
    const o = Math.floor(k * (ids.length - T - 1) / (W - 1));
    assert.equal(r.starts[k], o);
    const gold = ids.slice(o, o + T), next = ids.slice(o + 1, o + T + 1);
    const own = greedyRollout(c, w, gold, 1, T, P);
    assert.deepEqual(r.rollouts![k], Array.from(own.slice(P)), `window ${k}: continuation differs`);
    const a = gptForward(c, w, gold, next, 1, T).logits, b = gptForward(c, w, own, next, 1, T).logits;
    for (let t = 0; t < T; t++) {
      const la = logSoftmax(a.subarray(t * V, (t + 1) * V)), lb = logSoftmax(b.subarray(t * V, (t + 1) * V));
      lg[t] -= la[next[t]] / W;
      lo[t] -= lb[next[t]] / W;
      let d = 0;
      for (let v = 0; v < V; v++) d += Math.exp(la[v]) * (la[v] - lb[v]);
      drift[t] += d / W;
      // The oracle's figure: none for t = 0 (order 2); skipped if x_{t-1} or x_t is "k".
      for (const [hist, lq, sum, n] of [[gold, la, klG, nG], [own, lb, klO, nO]] as const) {
        if (t < 1) continue;
        const ctx = chars(hist.slice(t - 1, t + 1));
        if (ctx.includes("k")) {
          skipped++;
          continue;
        }
        sum[t] += refKl(oracle.row(ctx.join("")), lq, (i) => i);
        n[t]++;
      }
    }
  }
  assertClose("gold loss after gold history", r.gold_loss_after_gold, lg, { atol: 2e-5, rtol: 1e-4 });
  assertClose("gold loss after own history", r.gold_loss_after_own, lo, { atol: 2e-5, rtol: 1e-4 });
  assertClose("drift KL", r.drift_kl, drift, { atol: 2e-5, rtol: 1e-3 });
  const perT = (s: Float64Array, n: Float64Array) => Array.from(s, (x, t) => n[t] > 0 ? x / n[t] : null);
  const [eg, eo] = [perT(klG, nG), perT(klO, nO)];
  assert.ok(skipped > 0, "the data should hold some 'k'");
  assert.equal(r.oracle_skipped, skipped);
  assert.equal(r.oracle_kl_gold![0], null);
  assert.equal(r.oracle_kl_own![0], null);
  for (const [name, got, want] of [["gold", r.oracle_kl_gold!, eg], ["own", r.oracle_kl_own!, eo]] as const) {
    assert.deepEqual(got.map((x) => x === null), want.map((x) => x === null), `${name}: nulls`);
    assertClose(
      `oracle KL, ${name} history`,
      got.map((x) => x ?? 0),
      want.map((x) => x ?? 0),
      { atol: 2e-5, rtol: 1e-4 },
    );
  }
  // Inside the gold prefix both histories are the same: equal figures, zero drift.
  for (let t = 0; t < P; t++) {
    assert.equal(r.gold_loss_after_own[t], r.gold_loss_after_gold[t]);
    assert.equal(r.drift_kl[t], 0);
    assert.equal(r.oracle_kl_own![t], r.oracle_kl_gold![t]);
  }
  const mean = (x: ArrayLike<number | null>) => {
    const f = Array.from(x).slice(P).filter((v): v is number => v !== null);
    return f.reduce((s, v) => s + v, 0) / f.length;
  };
  assertClose(
    "means",
    [r.gold_loss_after_gold_mean, r.gold_loss_after_own_mean, r.drift_kl_mean],
    [mean(lg), mean(lo), mean(drift)],
    { atol: 2e-5 },
  );
  assertClose("oracle means", [r.oracle_kl_gold_mean!, r.oracle_kl_own_mean!], [mean(eg), mean(eo)], {
    atol: 2e-5,
  });
});

/** A character drawn from p*(. | text) (the oracle's last entry after `text`, which must exist). */
function drawNext(oracle: Oracle, text: readonly string[], rng: Rng): string {
  const p = oracle.conditionals(text)[text.length - 1]!;
  let u = rng.uniform(), i = 0;
  while (i < p.length - 1 && u >= p[i]) u -= p[i++];
  return oracle.alphabet[i];
}

/**
 * The figures of a "model" whose log-scores are log p* itself, on W windows of `gold(w)` (T + 1 characters
 * of the oracle's language), its own continuation drawn from p* after the own history. The model's
 * vocabulary is the alphabet plus `extra`, which p* never gives (log-score -Infinity: never emitted).
 */
function perfectModel(
  oracle: Oracle,
  extra: string,
  gold: (w: number) => string[],
  T: number,
  P: number,
  W: number,
) {
  const tok = trainTokenizer("char", oracle.alphabet.join("") + extra);
  const V = tok.vocabSize;
  const idOf = (ch: string) => tok.encode(ch)[0];
  const rng = new Rng(11);
  const logp = (text: readonly string[]) =>
    oracle.conditionals(text).map((p) => {
      // No row (t + 1 < order): any scores do there, the oracle figure is null.
      const row = new Float64Array(V).fill(p ? -Infinity : 0);
      p?.forEach((pi, i) => row[idOf(oracle.alphabet[i])] = Math.log(pi));
      return row;
    });
  const tally = new ExposureTally({ positions: T, prefix: P, vocab: V }, bindOracle(oracle, tok, V));
  for (let w = 0; w < W; w++) {
    const x = gold(w);
    const own = x.slice(0, P);
    while (own.length < T) own.push(drawNext(oracle, own, rng));
    const [lg, lo] = [logp(x.slice(0, T)), logp(own)];
    tally.add({ gold: x.map(idOf), own: own.map(idOf), goldScores: (t) => lg[t], ownScores: (t) => lo[t] });
  }
  return tally.figures();
}

Deno.test("a model equal to the oracle has zero excess loss after gold and own histories; its drift is not zero", () => {
  const T = 16, P = 4;
  const chain = new TestChain([..."abcdef"], 2, 3, 2);
  const rng = new Rng(12);
  const chainText = () => {
    const x = [chain.alphabet[rng.int(6)], chain.alphabet[rng.int(6)]];
    while (x.length < T + 1) x.push(drawNext(chain, x, rng));
    return x;
  };
  // The built-in language (order 0: p* after the whole window), windows of one stationary text.
  const lang = languageOracle(1337);
  const text = [...sampleOracle(lang, 100 * (T + 1), 5)];
  const cases = [
    { name: "order-2 chain", r: perfectModel(chain, "z", chainText, T, P, 200) },
    {
      name: "built-in language",
      r: perfectModel(lang, "~", (w) => text.slice(w * (T + 1), (w + 1) * (T + 1)), T, P, 100),
    },
  ];
  for (const { name, r } of cases) {
    assert.equal(r.oracle_skipped, 0);
    const first = name === "order-2 chain" ? 1 : 0; // order 2: no figure at t = 0
    for (let t = 0; t < T; t++) {
      if (t < first) {
        assert.equal(r.oracle_kl_gold![t], null);
        continue;
      }
      assert.ok(r.oracle_kl_gold![t]! <= 1e-12, `${name}, gold history, t = ${t}: ${r.oracle_kl_gold![t]}`);
      assert.ok(r.oracle_kl_own![t]! <= 1e-12, `${name}, own history, t = ${t}: ${r.oracle_kl_own![t]}`);
    }
    assert.ok(r.oracle_kl_gold_mean! <= 1e-12 && r.oracle_kl_own_mean! <= 1e-12);
    // The drift figures of the same perfect model are far from zero: they measure drift, not error.
    console.log(
      `perfect model of the ${name}: drift KL ${r.drift_kl_mean.toFixed(4)}, gold-token loss after the ` +
        `gold history ${r.gold_loss_after_gold_mean.toFixed(4)}, after its own ${
          r.gold_loss_after_own_mean.toFixed(4)
        }`,
    );
    assert.ok(r.drift_kl_mean > 0.1, `${name}: drift KL ${r.drift_kl_mean}`);
    assert.ok(r.gold_loss_after_own_mean > r.gold_loss_after_gold_mean + 0.1, name);
  }
});

Deno.test("sampled continuations are draws from the model: mean NLL of the drawn tokens = mean entropy", async () => {
  const gpu = await testGpu();
  const c: GPTConfig = { ...small, n_layer: 1, vocab_size: 13 };
  // Next-token entropy about 1.7 nats of ln 13 = 2.56: neither near-uniform nor near-deterministic, so
  // argmax's bias is large against the sampling error.
  const w = randomWeights(c, 21);
  const rng = new Rng(4);
  const ids = Uint32Array.from({ length: 2000 }, () => rng.int(c.vocab_size));
  const T = c.block_size, V = c.vocab_size, P = 2, W = 200;
  // d = -log p(y_{t+1} | h_t) - H(p(.|h_t)) at each drawn token: mean 0 given the past for true draws (a
  // martingale difference), so the sample standard error holds; W (T - P) = 1200 draws put it near 0.035
  // nats (it shrinks as 1 / sqrt(W)), against argmax's bias of about -0.96 nats here.
  const stat = async (decode: "sample" | "argmax") => {
    const r = await measureExposure(c, hostOf(c, w), ids, {
      prefix: P,
      windows: W,
      decode,
      gpu,
      keepRollouts: true,
    });
    const d: number[] = [];
    r.rollouts!.forEach((y, k) => {
      const own = [...ids.slice(r.starts[k], r.starts[k] + P), ...y];
      const logits = gptForward(c, w, own, own, 1, T).logits;
      for (let t = P - 1; t < T - 1; t++) {
        const l = logSoftmax(logits.subarray(t * V, (t + 1) * V));
        const h = -l.reduce((s, x) => s + Math.exp(x) * x, 0);
        d.push(-l[own[t + 1]] - h);
      }
    });
    const m = d.reduce((s, x) => s + x, 0) / d.length;
    const sd = Math.sqrt(d.reduce((s, x) => s + (x - m) ** 2, 0) / (d.length - 1));
    return { m, se: sd / Math.sqrt(d.length), n: d.length };
  };
  const s = await stat("sample"), g = await stat("argmax");
  console.log(
    `NLL - entropy over ${s.n} draws: sample ${s.m.toFixed(4)} ± ${s.se.toFixed(4)}, argmax ${
      g.m.toFixed(4)
    }`,
  );
  assert.equal(s.n, W * (T - P));
  assert.ok(Math.abs(s.m) < 4 * s.se, `sampled: ${s.m} is ${(s.m / s.se).toFixed(1)} standard errors from 0`);
  // The check can tell: greedy picks are likelier than draws, so their NLL sits well below the entropy.
  assert.ok(g.m < -10 * s.se, `argmax: ${g.m}`);
});

Deno.test("the oracle measure refuses a tokenizer that is not char-level and an alphabet character the model cannot emit", async () => {
  const word = trainTokenizer("word", "a b c a b c");
  const oracle = new TestChain([..."abc"], 1, 1);
  await refuses(
    () => bindOracle(oracle, word, word.vocabSize),
    /^oracle: the model's tokenizer is word, not char; an oracle of next characters needs a char-level model$/,
  );
  const chars: Tokenizer = trainTokenizer("char", "ab");
  await refuses(
    () => bindOracle(oracle, chars, chars.vocabSize),
    /^oracle: the model cannot emit the alphabet character "c" \(U\+0063\): it is not in its vocabulary of 2 characters$/,
  );
});

/** markovText's chain as an order-1 oracle. */
function markovOracle(k: number, seed: number): Oracle {
  const { letters, P } = markovChain(k, seed);
  return {
    alphabet: letters,
    order: 1,
    description: `first-order chain over ${k} letters (seed ${seed})`,
    conditionals: (text) =>
      text.map((ch) => letters.includes(ch) ? Float64Array.from(P[letters.indexOf(ch)]) : null),
  };
}

Deno.test("a teacher-forced model on a synthetic language: drift figures and the oracle's excess loss", async () => {
  const gpu = await testGpu();
  const { text } = markovText(8, 60_000, 7);
  const r = await train({ ...markovTrain, eval_iters: 4 }, { gpu, noSave: true, text });
  const val = r.corpus.val.tokens;
  for (const decode of ["argmax", "sample"] as const) {
    const e = await measureExposure(r.model.config, r.model.params, val, {
      prefix: 4,
      windows: 64,
      decode,
      gpu,
      oracle: markovOracle(8, 7),
      tokenizer: r.corpus.tokenizer,
    });
    console.log(
      `${decode}: gold-token loss after gold ${e.gold_loss_after_gold_mean.toFixed(4)}, after own ${
        e.gold_loss_after_own_mean.toFixed(4)
      }, drift KL ${e.drift_kl_mean.toFixed(4)}; KL(p* || model) after gold ${
        e.oracle_kl_gold_mean!.toFixed(4)
      }, after own ${e.oracle_kl_own_mean!.toFixed(4)} (val loss ${r.finalValLoss.toFixed(4)})`,
    );
    // The model learned the chain (uniform would be ln 8 = 2.08) ...
    assert.ok(
      e.gold_loss_after_gold_mean < Math.log(8) - 0.5,
      `gold loss after gold history ${e.gold_loss_after_gold_mean}: not trained`,
    );
    // ... and its predictions after its own history drift from those after the gold one.
    assert.ok(
      e.gold_loss_after_own_mean > e.gold_loss_after_gold_mean + 0.2,
      `after own ${e.gold_loss_after_own_mean} does not exceed after gold ${e.gold_loss_after_gold_mean}`,
    );
    assert.ok(e.drift_kl_mean > 0.1, `drift KL ${e.drift_kl_mean}`);
    // Against the true law the same model is close after either history: it learned the chain.
    assert.equal(e.oracle_skipped, 0);
    assert.ok(e.oracle_kl_gold_mean! < 0.05 && e.oracle_kl_own_mean! < 0.05, JSON.stringify(e.oracle_kl_own));
  }
});

Deno.test("eval --exposure: JSON last, plot and --rollouts written; one-line errors for bad input", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-exposure-" });
  const text = "the quick brown fox jumps over the lazy dog. ".repeat(20);
  const tok = trainTokenizer("char", text);
  const c = tinyGPT({ vocab_size: tok.vocabSize });
  const w = randomWeights(c, 1);
  await saveWeights(`${dir}/m.safetensors`, c, tok, w);
  await Deno.writeTextFile(`${dir}/data.txt`, text);
  // An order-2 oracle over the text's characters but "z" (which the model can emit: p* = 0 there).
  const alphabet = (tok as unknown as { vocab: string[] }).vocab.filter((ch) => ch !== "z");
  const oracle = new TestChain(alphabet, 2, 5);
  await Deno.writeTextFile(`${dir}/oracle.json`, JSON.stringify(oracle));
  const out: string[] = [], err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    const ck = ["eval", "--checkpoint", `${dir}/m.safetensors`];
    const args = [...ck, "--data", `${dir}/data.txt`, "--exposure"];
    assert.equal(await main([...args, "--prefix", "2", "--windows", "6"]), 0, err.join("\n"));
    let j = JSON.parse(out[out.length - 1]);
    assert.equal(j.prefix, 2);
    assert.equal(j.windows, 6);
    assert.equal(j.decode, "sample");
    assert.equal(j.oracle, null);
    assert.equal(j.starts.length, 6);
    assert.equal(j.gold_loss_after_gold.length, 8);
    assert.equal(j.gold_loss_after_own.length, 8);
    assert.ok(Number.isFinite(j.gold_loss_after_gold_mean) && Number.isFinite(j.gold_loss_after_own_mean));
    assert.match(
      out[out.length - 2],
      /^drift, not error \(positions 2\.\.7, 6 windows, sample continuation\)/,
    );
    const svg = await Deno.readTextFile(`${dir}/m.exposure.svg`);
    assert.match(svg, /^<svg[^>]*>/);
    assert.match(svg, /m\.safetensors: drift, not error \(no oracle\)/);
    assert.match(svg, /gold-token loss, own history/);

    // With an oracle and --rollouts: recompute oracle_kl_own at the last position from the file.
    out.length = 0;
    const extra = ["--prefix", "3", "--windows", "5", "--oracle", `${dir}/oracle.json`];
    assert.equal(
      await main([...args, ...extra, "--plot", `${dir}/p.svg`, "--rollouts", `${dir}/roll.json`]),
      0,
      err.join("\n"),
    );
    j = JSON.parse(out[out.length - 1]);
    assert.equal(j.rollouts, undefined);
    assert.match(
      out.join("\n"),
      /^excess loss KL\(p\* \|\| model\), nats\/char \(positions 3\.\.7, 5 windows/m,
    );
    const plot = await Deno.readTextFile(`${dir}/p.svg`);
    assert.match(plot, /KL\(p\* ‖ model\), own history/);
    assert.match(plot, /end of the gold prefix \(3\)/);
    const rollouts: number[][] = JSON.parse(await Deno.readTextFile(`${dir}/roll.json`));
    assert.equal(rollouts.length, 5);
    assert.ok(rollouts.every((y) => y.length === 8 - 3));
    const ids = tok.encode(text), T = 8, V = c.vocab_size;
    let sum = 0, n = 0;
    rollouts.forEach((y, k) => {
      const own = [...ids.slice(j.starts[k], j.starts[k] + 3), ...y];
      const logits = gptForward(c, w, own, own, 1, T).logits;
      const ctx = [own[T - 2], own[T - 1]].map((id) => tok.decode([id]));
      if (ctx.includes("z")) return;
      const lq = logSoftmax(logits.subarray((T - 1) * V, T * V));
      sum += refKl(oracle.row(ctx.join("")), lq, (i) => tok.encode(alphabet[i])[0]);
      n++;
    });
    assertClose("oracle_kl_own[T-1] from the rollouts file", [j.oracle_kl_own[T - 1]], [sum / n], {
      atol: 2e-5,
      rtol: 1e-4,
    });

    for (
      const [more, message] of [
        [["--prefix", "8"], "--prefix must be an integer in [1, block_size = 8) (got 8)"],
        [["--prefix", "0"], "--prefix must be an integer >= 1 (got 0)"],
        [["--fr-decode", "beam"], "--fr-decode must be argmax or sample (got beam)"],
        [["--windows", "0"], "--windows must be a positive integer (got 0)"],
      ] as [string[], string][]
    ) {
      err.length = 0;
      assert.equal(await main([...args, ...more]), 2);
      assert.deepEqual(err, [`tforce eval: ${message}`]);
    }
    const refusals: [string[], string][] = [
      [
        [...ck, "--exposure", "--oracle", `${dir}/oracle.json`],
        `--oracle ${dir}/oracle.json needs --data FILE (a text of the oracle's language)`,
      ],
      // Without --data a checkpoint that records no training run has no held-out text.
      [
        [...ck, "--exposure"],
        `${dir}/m.safetensors does not record the data it was trained on: give --data FILE`,
      ],
      [[...ck, "--prefix", "2"], "--prefix needs --exposure"],
      [[...ck, "--oracle", `${dir}/oracle.json`], "--oracle needs --exposure"],
      [[...ck, "--rollouts", `${dir}/r.json`], "--rollouts needs --exposure"],
    ];
    // An oracle whose alphabet holds a character the model cannot emit.
    await Deno.writeTextFile(`${dir}/wide.json`, JSON.stringify(new TestChain([...alphabet, "Q"], 1, 5)));
    refusals.push([
      [...args, "--oracle", `${dir}/wide.json`],
      'oracle: the model cannot emit the alphabet character "Q" (U+0051): it is not in its vocabulary of ' +
      `${tok.vocabSize} characters`,
    ]);
    // A model whose tokenizer is not char-level.
    const word = trainTokenizer("word", text);
    const cw = { ...c, vocab_size: word.vocabSize };
    await saveWeights(`${dir}/w.safetensors`, cw, word, randomWeights(cw, 2));
    refusals.push([
      [
        "eval",
        "--checkpoint",
        `${dir}/w.safetensors`,
        "--data",
        `${dir}/data.txt`,
        "--exposure",
        "--oracle",
        `${dir}/oracle.json`,
      ],
      "oracle: the model's tokenizer is word, not char; an oracle of next characters needs a char-level model",
    ]);
    for (const [argv, message] of refusals) {
      err.length = 0;
      assert.equal(await main(argv), 2, argv.join(" "));
      assert.deepEqual(err, [`tforce eval: ${message}`]);
    }
  } finally {
    console.error = orig;
    console.log = origLog;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval --exposure of a char model of the built-in language: the language is the oracle, --data optional", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-exposure-" });
  // As a run on the built-in language writes it: train_config without "data", the language's alphabet.
  const tok = trainTokenizer("char", generateLanguage({ seed: 1337, chars: 100 }).alphabet.join(""));
  const c: GPTConfig = { ...small, n_layer: 1, vocab_size: tok.vocabSize };
  const run = { ...DEFAULT_TRAIN, n_layer: 1, n_head: 2, n_embd: 16, block_size: 8 };
  await saveWeights(`${dir}/m.safetensors`, c, tok, randomWeights(c, 6), {
    train_config: JSON.stringify(run),
  });
  const out: string[] = [], err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    const argv = ["eval", "--checkpoint", `${dir}/m.safetensors`, "--exposure", "--windows", "6"];
    assert.equal(await main(argv), 0, err.join("\n"));
    const j = JSON.parse(out[out.length - 1]);
    assert.equal(j.oracle, languageOracle(1337).description);
    assert.equal(j.oracle_order, 0);
    assert.equal(j.decode, "sample");
    assert.equal(j.oracle_skipped, 0);
    for (const k of ["oracle_kl_gold", "oracle_kl_own"]) {
      assert.equal(j[k].length, 8);
      assert.ok(j[k].every((x: number | null) => x !== null && x > 0), `${k}: ${j[k]}`);
    }
    assert.ok(j.oracle_kl_gold_mean > 0 && j.oracle_kl_own_mean > 0);
    assert.match(
      out[out.length - 3],
      /^excess loss KL\(p\* \|\| model\), nats\/char \(positions 2\.\.7, 6 windows/,
    );
  } finally {
    console.error = orig;
    console.log = origLog;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exposure: by default a batch holds as many windows as one binding of their logits allows", async () => {
  const real = await testGpu();
  const c = tinyGPT({ vocab_size: 2000 });
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
