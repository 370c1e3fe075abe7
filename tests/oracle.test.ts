/**
 * Oracles (src/data/oracle.ts): the built-in language's exact next-character distributions against the
 * text it samples, full support, exactness against a dense forward computation; order-k chain files:
 * conditionals, entropy rate, sampler, and every refusal's one-line message.
 */
import assert from "node:assert/strict";
import {
  ChainOracle,
  type CharOracle,
  languageOracle,
  loadOracleFile,
  orderKEntropyRate,
  parseOracle,
  sampleOracle,
} from "../src/data/oracle.ts";
import { generateLanguage, LanguageChain } from "../src/data/language.ts";
import { loadCorpus } from "../src/train/data.ts";
import { InputError } from "../src/util/errors.ts";
import { Rng } from "../src/util/rng.ts";

const oracle1337 = languageOracle(1337);

function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
  return h;
}

/**
 * Next-character counts after histories of length `len` at `draws` random window starts of `text`,
 * compared with p*: a z-score for every character with n p* >= 10, the rest pooled. Returns the largest
 * |z| and how many comparisons were made.
 */
function compareFrequencies(
  o: CharOracle,
  text: string,
  lengths: number[],
  draws: number,
  minCount: number,
  seed: number,
): { maxZ: number; comparisons: number; histories: number; worst: string } {
  const rng = new Rng(seed), A = o.alphabet.length, index = new Map(o.alphabet.map((c, i) => [c, i]));
  let maxZ = 0, comparisons = 0, histories = 0, worst = "";
  for (const len of lengths) {
    const counts = new Map<string, Float64Array>();
    for (let d = 0; d < draws; d++) {
      const i = rng.int(text.length - len);
      const h = text.slice(i, i + len);
      let row = counts.get(h);
      if (!row) counts.set(h, row = new Float64Array(A));
      row[index.get(text[i + len])!]++;
    }
    for (const [h, row] of counts) {
      const n = row.reduce((a, b) => a + b, 0);
      if (n < minCount) continue;
      histories++;
      const p = o.conditionals([...h])[len - 1]!;
      let restObs = 0, restP = 0;
      const test = (obs: number, q: number, what: string): void => {
        const z = Math.abs(obs - n * q) / Math.sqrt(n * q * (1 - q));
        comparisons++;
        if (z > maxZ) {
          maxZ = z;
          worst = `${JSON.stringify(h)} -> ${what}: ${obs} of ${n}, p* ${q.toExponential(3)}`;
        }
      };
      for (let c = 0; c < A; c++) {
        if (n * p[c] >= 10) test(row[c], p[c], JSON.stringify(o.alphabet[c]));
        else {
          restObs += row[c];
          restP += p[c];
        }
      }
      if (n * restP >= 10) test(restObs, restP, "the rare characters");
    }
  }
  return { maxZ, comparisons, histories, worst };
}

Deno.test("language oracle: p* after short histories matches next-character frequencies of sampled text", () => {
  const text = sampleOracle(oracle1337, 1_500_000, 11);
  const r = compareFrequencies(oracle1337, text, [1, 2, 3, 6], 150_000, 2000, 12);
  console.log(
    `${r.histories} histories, ${r.comparisons} comparisons, max |z| ${r.maxZ.toFixed(2)} (${r.worst})`,
  );
  assert.ok(
    r.histories >= 20 && r.comparisons >= 200,
    `${r.histories} histories, ${r.comparisons} comparisons`,
  );
  assert.ok(r.maxZ < 5, `max |z| ${r.maxZ}: ${r.worst}`);
  // The same comparison fails for an oracle of another seed: it can tell.
  const other = compareFrequencies(languageOracle(1338), text, [1, 2], 150_000, 2000, 12);
  assert.ok(other.maxZ > 10, `another language's p* fits too well: ${other.maxZ}`);
});

Deno.test("language oracle: the training text's typos follow p* too (generateLanguage samples the same process)", () => {
  // generateLanguage's text starts at a sentence start, not the stationary law; after the first few
  // hundred characters the difference is lost in the sampling noise.
  const text = generateLanguage({ seed: 1337, chars: 1_200_000 }).text.slice(1000);
  const r = compareFrequencies(oracle1337, text, [1, 2, 4], 120_000, 2000, 13);
  console.log(
    `${r.histories} histories, ${r.comparisons} comparisons, max |z| ${r.maxZ.toFixed(2)} (${r.worst})`,
  );
  assert.ok(r.maxZ < 5, `max |z| ${r.maxZ}: ${r.worst}`);
});

Deno.test("language oracle: mean -log p*(next) along a long text is the entropy rate", () => {
  const o = languageOracle(99);
  const text = [...sampleOracle(o, 150_000, 21)];
  const t0 = performance.now();
  const ps = o.conditionals(text);
  const ms = performance.now() - t0;
  const index = new Map(o.alphabet.map((c, i) => [c, i]));
  // Calibration of the rare characters (p* < 1e-3: mostly typos): how often the next character is one of
  // them, against the sum of their p*, a sum of independent Bernoulli trials given the history.
  let nll = 0, rareSeen = 0, rareWant = 0, rareVar = 0;
  for (let t = 0; t + 1 < text.length; t++) {
    const p = ps[t]!, next = index.get(text[t + 1])!;
    nll -= Math.log(p[next]);
    let rare = 0;
    for (const x of p) if (x < 1e-3) rare += x;
    rareWant += rare;
    rareVar += rare * (1 - rare);
    if (p[next] < 1e-3) rareSeen++;
  }
  nll /= text.length - 1;
  const z = (rareSeen - rareWant) / Math.sqrt(rareVar);
  console.log(
    `rare next characters: ${rareSeen} seen, ${rareWant.toFixed(1)} expected (z = ${z.toFixed(2)})`,
  );
  assert.ok(Math.abs(z) < 4, `rare characters: ${rareSeen} seen, ${rareWant} expected`);
  const rel = Math.abs(nll - o.entropyRate) / o.entropyRate;
  console.log(
    `seed 99: mean -log p* ${nll.toFixed(5)} vs entropy rate ${o.entropyRate.toFixed(5)} (rel ${
      (100 * rel).toFixed(2)
    }%), ${text.length} characters in ${ms.toFixed(0)} ms`,
  );
  assert.ok(rel < 0.02, `relative error ${rel}`);
});

Deno.test("language oracle: conditionals equal a dense forward computation of P(history, next) / P(history)", () => {
  const o = languageOracle(5, 0.01), a = o.chain.automaton, A = o.alphabet.length;
  const index = new Map(o.alphabet.map((c, i) => [c, i]));
  const rng = new Rng(3);
  const real = generateLanguage({ seed: 5, chars: 5000, typoRate: 0.01 }).text;
  for (let trial = 0; trial < 12; trial++) {
    const junk = trial % 2 === 1;
    const len = 1 + rng.int(40);
    const start = rng.int(real.length - len);
    const h = junk
      ? Array.from({ length: len }, () => o.alphabet[rng.int(A)])
      : [...real.slice(start, start + len)];
    const ps = o.conditionals(h);
    // alpha(s) = P(text so far, state s), never normalised (histories are short enough not to underflow).
    let alpha = Float64Array.from(a.stationary);
    for (let t = 0; t < h.length; t++) {
      const c = index.get(h[t])!, next = new Float64Array(a.size);
      for (let s = 0; s < a.size; s++) next[a.next[s * A + c]] += alpha[s] * a.probs[s * A + c];
      alpha = next;
      const joint = new Float64Array(A);
      let total = 0;
      for (let s = 0; s < a.size; s++) {
        total += alpha[s];
        for (let c2 = 0; c2 < A; c2++) joint[c2] += alpha[s] * a.probs[s * A + c2];
      }
      for (let c2 = 0; c2 < A; c2++) {
        const want = joint[c2] / total, got = ps[t]![c2];
        assert.ok(
          Math.abs(got - want) <= 1e-12 * want,
          `trial ${trial}, t ${t}, ${o.alphabet[c2]}: ${got} vs ${want}`,
        );
      }
    }
  }
});

Deno.test("language oracle: every character has p* > 0 after any history (full support)", () => {
  const o = oracle1337, A = o.alphabet.length, floor = 1e-3 / A;
  const rng = new Rng(9);
  const real = generateLanguage({ seed: 1337, chars: 20_000 }).text;
  let minP = 1;
  for (let trial = 0; trial < 30; trial++) {
    const len = 1 + rng.int(256);
    let h: string[];
    if (trial % 3 === 0) h = Array.from({ length: len }, () => o.alphabet[rng.int(A)]);
    else if (trial % 3 === 1) h = Array.from({ length: len }, () => rng.uniform() < 0.5 ? "Q" : "\n"); // runs of odd characters
    else {
      // Real text with every 5th character replaced by a random one.
      const s = rng.int(real.length - len);
      h = [...real.slice(s, s + len)].map((ch, i) => i % 5 === 4 ? o.alphabet[rng.int(A)] : ch);
    }
    if (!o.alphabet.includes("Q")) h = h.map((ch) => ch === "Q" ? "Z" : ch);
    const ps = o.conditionals(h);
    assert.equal(ps.length, h.length);
    for (const p of ps) {
      assert.ok(p !== null && p.length === A);
      const sum = p.reduce((x, y) => x + y, 0);
      assert.ok(Math.abs(sum - 1) < 1e-12, `sum ${sum}`);
      for (const x of p) minP = Math.min(minP, x);
    }
  }
  console.log(
    `smallest p* over junk histories ${minP.toExponential(4)} (typo floor eps/|A| = ${
      floor.toExponential(4)
    })`,
  );
  assert.ok(minP >= floor * (1 - 1e-9), `p* ${minP} below the typo floor ${floor}`);
  // A character outside the alphabet: the history is unknown from there on.
  const ps = o.conditionals([..."The", "#", ..."cat"]);
  assert.deepEqual(ps.map((p) => p === null), [false, false, false, true, true, true, true]);
  assert.deepEqual(o.conditionals([]), []);
  assert.equal(o.order, 0);
  assert.match(
    o.description,
    /^generated language \(seed 1337\), typo rate 0\.001: .*entropy rate 0\.6216 nats\/char/,
  );
});

/** Total variation distance between two distributions. */
function tv(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < p.length; i++) d += Math.abs(p[i] - q[i]) / 2;
  return d;
}

/**
 * Histories of 80 characters of a typo-free text of seed 1337 that end at a word boundary inside a
 * sentence (a lowercase letter, then " "), about every 400 characters.
 */
function midSentenceHistories(text: string, count: number): { end: number; h: string[] }[] {
  const out: { end: number; h: string[] }[] = [];
  for (let t = 300; t < text.length && out.length < count; t++) {
    if (text[t] === " " && /[a-z]/.test(text[t - 1]) && (out.length === 0 || t - out.at(-1)!.end > 400)) {
      out.push({ end: t, h: [...text.slice(t - 79, t + 1)] });
    }
  }
  return out;
}

Deno.test("language oracle: after an invented word and a space p* is back on the grammar (a filler)", () => {
  const o = oracle1337, A = o.alphabet.length;
  const text = generateLanguage({ seed: 1337, chars: 30_000, typoRate: 0 }).text;
  const words = [...new Set(o.chain.states.map((s) => s.word))];
  const letters = o.alphabet.filter((ch) => /[a-z]/.test(ch));
  const histories = midSentenceHistories(text, 25);
  assert.equal(histories.length, 25);
  let worst = 0, worstSpelling = 0, minOnStarts = 1;
  for (const { h } of histories) {
    const p0 = o.conditionals(h).at(-1)!;
    // The garbage word: the likeliest first letter of the row, then a letter that no word of the lexicon
    // continues it with (a garbage word, not a word of another class), then two more letters.
    let c1 = letters[0];
    for (const l of letters) if (p0[o.alphabet.indexOf(l)] > p0[o.alphabet.indexOf(c1)]) c1 = l;
    const c2 = letters.find((l) => !words.some((w) => w.startsWith(c1 + l)))!;
    const after = (junk: string) => o.conditionals([...h, ...junk, " "]).at(-1)!;
    const p1 = after(c1 + c2 + "kv"), p2 = after(c1 + c2 + "vk"), p3 = after(c1 + c2 + "kkkkkk");
    // The same law as before the garbage word, whatever its spelling and length (exactly so here: ". "
    // leads every state to the sentence-start root, so the belief after these histories is one state).
    worst = Math.max(worst, tv(p0, p1), tv(p0, p3));
    worstSpelling = Math.max(worstSpelling, tv(p1, p2));
    // Its mass is on the row's word starts (what p* gave at least 1e-3 before), not on finishing a word.
    let onStarts = 0;
    for (let c = 0; c < A; c++) if (p0[c] >= 1e-3) onStarts += p1[c];
    minOnStarts = Math.min(minOnStarts, onStarts);
  }
  console.log(
    `after "<history> <garbage> ": total variation to p* after "<history> " at most ${
      worst.toExponential(2)
    }, ` +
      `between two spellings ${worstSpelling.toExponential(2)}; mass on the row's word starts >= ${
        minOnStarts.toFixed(5)
      }`,
  );
  assert.ok(worst < 1e-9, `total variation ${worst}`);
  assert.ok(worstSpelling < 1e-9, `spellings differ by ${worstSpelling}`);
  assert.ok(minOnStarts > 0.99, `${minOnStarts}`);
  // Inside the garbage word p* is the garbage law: a separator about a third of the time, never 0.999 on
  // the letter that would have continued the intended word.
  const { h } = histories[0];
  const inside = o.conditionals([...h, ..."zkv"]).at(-1)!;
  assert.ok(Math.max(...inside) < 0.4, `p* inside a garbage word peaks at ${Math.max(...inside)}`);
  const sep = inside[o.alphabet.indexOf(" ")] + inside[o.alphabet.indexOf(".")];
  assert.ok(sep > 0.3 && sep < 0.34, `p*(separator) ${sep}`);
});

Deno.test("language oracle: after a word of the wrong class the grammar continues from that word", () => {
  const o = oracle1337;
  const text = generateLanguage({ seed: 1337, chars: 30_000, typoRate: 0 }).text;
  const histories = midSentenceHistories(text, 12);
  let checked = 0, worst = 0;
  for (const { h } of histories) {
    // A word the row cannot write here (p* of it and a space below 1e-4) that the text has mid-sentence.
    for (const w of new Set(o.chain.states.map((s) => s.word))) {
      const own = o.conditionals([...h, ...w, " "]);
      const index = new Map(o.alphabet.map((c, i) => [c, i]));
      let logp = 0;
      const unlikely: number[] = [];
      for (let i = 0; i <= w.length; i++) {
        const p = own[h.length - 1 + i]![index.get(i < w.length ? w[i] : " ")!];
        logp += Math.log(p);
        if (p < 1e-3) unlikely.push(i);
      }
      const at = text.indexOf(` ${w} `, 100);
      if (logp > Math.log(1e-4) || at < 0) continue;
      // p* after it equals p* after the same word where the language wrote it: its class's row.
      const there = o.conditionals([...text.slice(at - 79 + w.length + 1, at + w.length + 2)]).at(-1)!;
      worst = Math.max(worst, tv(own.at(-1)!, there));
      // It costs one unlikely character, where the word leaves the row's; the rest is a free word.
      assert.equal(unlikely.length, 1, `"${w}" after ${JSON.stringify(h.join(""))}: unlikely at ${unlikely}`);
      checked++;
      break;
    }
  }
  console.log(
    `${checked} wrong-class words: total variation to p* after the word in place ${worst.toExponential(2)}`,
  );
  assert.ok(checked >= 10, `${checked} checked`);
  assert.ok(worst < 1e-9, `total variation ${worst}`);
});

Deno.test("language oracle: without typos p* gives zero to what the language cannot write", () => {
  const o = languageOracle(1337, 0), A = o.alphabet.length;
  const text = [...generateLanguage({ seed: 1337, chars: 3000, typoRate: 0 }).text];
  const ps = o.conditionals(text);
  // Along its own text every next character has p* > 0, and most characters have p* = 0 after a long history.
  const index = new Map(o.alphabet.map((c, i) => [c, i]));
  for (let t = 0; t + 1 < text.length; t++) assert.ok(ps[t]![index.get(text[t + 1])!] > 0, `t ${t}`);
  const zeros = ps.at(-1)!.filter((p) => p === 0).length;
  assert.ok(zeros > A / 2, `${zeros} zeros`);
  assert.ok(Math.abs(o.entropyRate - new LanguageChain(1337, 0).chainEntropyRate) < 1e-12);
  // A typo leaves the language: the history is impossible, so p* is undefined from there on.
  const typo = o.conditionals([..."xq.Z  "]);
  assert.ok(typo.some((p) => p === null));
});

Deno.test("language oracle: 64 windows x 2 histories x 256 characters take under a few seconds", () => {
  const o = oracle1337;
  const text = generateLanguage({ seed: 1337, chars: 40_000 }).text;
  const rng = new Rng(4);
  const t0 = performance.now();
  let n = 0;
  for (let w = 0; w < 64; w++) {
    const s = rng.int(text.length - 300);
    const gold = [...text.slice(s, s + 256)];
    // The second history: gold prefix, then characters of a different place (a model's continuation).
    const s2 = rng.int(text.length - 300);
    const own = [...gold.slice(0, 64), ...text.slice(s2, s2 + 192)];
    n += o.conditionals(gold).length + o.conditionals(own).length;
  }
  const ms = performance.now() - t0;
  console.log(`${n} conditionals in ${ms.toFixed(0)} ms (${(1000 * ms / n).toFixed(1)} us per character)`);
  assert.equal(n, 64 * 2 * 256);
  assert.ok(ms < 10_000, `${ms} ms`);
});

Deno.test("loadCorpus: a char vocabulary of the generated language is its alphabet", async () => {
  const c = await loadCorpus({ tokenizerType: "char", examples: "stream", blockSize: 16, seed: 1337 });
  const { alphabet } = generateLanguage({ seed: 1337, chars: 10 });
  assert.equal(c.tokenizer.vocabSize, alphabet.length);
  assert.deepEqual([...c.tokenizer.encode(alphabet.join(""))], alphabet.map((_, i) => i));
  assert.equal(c.entropyRate, oracle1337.entropyRate);
});

// ---------------------------------------------------------------- order-k chains

const ORDER2 = {
  order: 2,
  alphabet: ["a", "b"],
  probs: { aa: [0.9, 0.1], ab: [0.3, 0.7], ba: [0.5, 0.5], bb: [0.2, 0.8] },
};

Deno.test("order-k oracle: conditionals are the rows of the last k characters; entropy rate by hand", () => {
  const o = parseOracle(ORDER2, "test");
  assert.equal(o.order, 2);
  assert.deepEqual(o.alphabet, ["a", "b"]);
  const ps = o.conditionals(["a", "b", "b", "a", "x", "a", "b", "a"]);
  const rows = ps.map((p) => p === null ? null : [...p]);
  assert.deepEqual(rows, [null, [0.3, 0.7], [0.2, 0.8], [0.5, 0.5], null, null, [0.3, 0.7], [0.5, 0.5]]);
  // Stationary over contexts (aa, ab, ba, bb): pi(aa) = 5 pi(ba), pi(ab) = pi(ba), pi(bb) = 3.5 pi(ab).
  const pi = [5, 1, 1, 3.5].map((x) => x / 10.5);
  const h = (p: number) => -p * Math.log(p) - (1 - p) * Math.log(1 - p);
  const want = pi[0] * h(0.9) + pi[1] * h(0.3) + pi[2] * h(0.5) + pi[3] * h(0.2);
  assert.ok(Math.abs(o.entropyRate! - want) < 1e-14, `${o.entropyRate} vs ${want}`);
  o.stationary!.forEach((p, i) => assert.ok(Math.abs(p - pi[i]) < 1e-14));
  assert.equal(
    o.description,
    `order-2 chain over 2 characters (4 contexts) from test; entropy rate ${want.toFixed(4)} nats/char ` +
      `(${(want / Math.LN2).toFixed(4)} bits/char)`,
  );
  // Order 0: the one row everywhere, even after a character outside the alphabet.
  const iid = parseOracle({ order: 0, alphabet: ["x", "y", "z"], probs: { "": [0.5, 0.25, 0.25] } }, "iid");
  assert.deepEqual(iid.conditionals(["x", "?"]).map((p) => [...p!]), [[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]);
  assert.ok(Math.abs(iid.entropyRate! - entropy([0.5, 0.25, 0.25])) < 1e-15);
  // Order 1, two states: pi = (b, a) / (a + b).
  const [a, b] = [0.2, 0.05];
  const two = parseOracle(
    { order: 1, alphabet: ["0", "1"], probs: { "0": [1 - a, a], "1": [b, 1 - b] } },
    "two",
  );
  const want2 = (b * h(a) + a * h(b)) / (a + b);
  assert.ok(Math.abs(two.entropyRate! - want2) < 1e-14);
  assert.deepEqual(two.conditionals(["1"]).map((p) => [...p!]), [[b, 1 - b]]);
});

Deno.test("order-k oracle: reducible and periodic chains; the power-iteration path agrees with a dense one", () => {
  // Two closed classes: no unique stationary law, so no entropy rate.
  const red = parseOracle({ order: 1, alphabet: ["a", "b"], probs: { a: [1, 0], b: [0, 1] } }, "red");
  assert.equal(red.entropyRate, undefined);
  assert.equal(red.stationary, null);
  assert.match(red.description, /entropy rate unknown: the chain has 2 closed classes of contexts/);
  // Periodic: a -> b -> c -> a, entropy rate 0; a transient context gets pi = 0.
  const per = parseOracle({
    order: 1,
    alphabet: ["a", "b", "c", "d"],
    probs: { a: [0, 1, 0, 0], b: [0, 0, 1, 0], c: [1, 0, 0, 0], d: [0.5, 0.5, 0, 0] },
  }, "per");
  assert.equal(per.entropyRate, 0);
  assert.deepEqual(
    [...per.stationary!].map((p) => +p.toFixed(12)),
    [1 / 3, 1 / 3, 1 / 3, 0].map((p) => +p.toFixed(12)),
  );
  // 1089 contexts (order 2 over 33 characters) take the power-iteration path; compare with a plain loop.
  const A = 33, m = A * A, rng = new Rng(17), probs = new Float64Array(m * A);
  for (let x = 0; x < m; x++) {
    let s = 0;
    for (let c = 0; c < A; c++) s += probs[x * A + c] = rng.uniform() < 0.3 ? rng.uniform() : 0;
    if (s === 0) s = probs[x * A] = 1;
    for (let c = 0; c < A; c++) probs[x * A + c] /= s;
  }
  const r = orderKEntropyRate(2, A, probs);
  let pi = new Float64Array(m).fill(1 / m);
  for (let it = 0; it < 300; it++) {
    const next = new Float64Array(m);
    for (let x = 0; x < m; x++) for (let c = 0; c < A; c++) next[(x * A + c) % m] += pi[x] * probs[x * A + c];
    pi = next;
  }
  let want = 0;
  for (let x = 0; x < m; x++) want += pi[x] * entropy(probs.subarray(x * A, (x + 1) * A));
  assert.ok(
    r.entropyRate !== undefined && Math.abs(r.entropyRate - want) < 1e-12,
    `${r.entropyRate} vs ${want}`,
  );
});

Deno.test("order-k oracle: the sampler's transition frequencies match its rows", () => {
  const alphabet = ["x", "y", "z"], rng = new Rng(5), probs: Record<string, number[]> = {};
  for (const a of alphabet) {
    for (const b of alphabet) {
      const w = alphabet.map(() => 0.05 + rng.uniform());
      const s = w.reduce((p, q) => p + q, 0);
      probs[a + b] = w.map((v) => v / s);
    }
  }
  probs["zz"] = [0.999, 0.001, 0]; // a near-deterministic row and a zero
  const o = parseOracle({ order: 2, alphabet, probs }, "sampler");
  const n = 300_000, text = sampleOracle(o, n, 8);
  assert.equal(text.length, n);
  assert.equal(sampleOracle(o, n, 8), text);
  assert.equal(sampleOracle(o, 1, 8), text[0]);
  const counts = new Map<string, number[]>();
  for (let t = 2; t < n; t++) {
    const ctx = text.slice(t - 2, t);
    const row = counts.get(ctx) ?? [0, 0, 0];
    row[alphabet.indexOf(text[t])]++;
    counts.set(ctx, row);
  }
  let maxZ = 0;
  for (const [ctx, row] of counts) {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((k, c) => {
      const p = probs[ctx][c];
      if (p === 0) assert.equal(k, 0, `${ctx} -> ${alphabet[c]} has probability 0`);
      else if (total * p >= 10) {
        maxZ = Math.max(maxZ, Math.abs(k - total * p) / Math.sqrt(total * p * (1 - p)));
      }
    });
    // Context frequencies match the stationary distribution.
    const x = alphabet.indexOf(ctx[0]) * 3 + alphabet.indexOf(ctx[1]);
    const pi = o.stationary![x], se = Math.sqrt(pi * (1 - pi) / n) * 10; // generous: the samples are correlated
    assert.ok(Math.abs(total / n - pi) < 5 * se, `context ${ctx}: ${total / n} vs ${pi}`);
  }
  console.log(`order-2 sampler: max |z| ${maxZ.toFixed(2)} over ${counts.size} contexts`);
  assert.equal(counts.size, 9);
  assert.ok(maxZ < 5, `max |z| ${maxZ}`);
  assert.throws(
    () => sampleOracle(o, -1, 0),
    /^InputError: sampleOracle: n must be a non-negative integer, got -1$/,
  );
});

Deno.test("order-k oracle: a bad table is refused with a one-line message naming the field", () => {
  const W = "oracle file 'o.json'";
  const bad: [unknown, string][] = [
    [[1, 2], `expected a JSON object with "order", "alphabet" and "probs", got an array`],
    [null, `expected a JSON object with "order", "alphabet" and "probs", got null`],
    [{ ...ORDER2, extra: 1 }, `unknown field "extra" (the fields are "order", "alphabet" and "probs")`],
    [{ alphabet: ["a"], probs: {} }, `"order" is missing`],
    [{ ...ORDER2, order: -1 }, `"order" must be a non-negative integer, got -1`],
    [{ ...ORDER2, order: 1.5 }, `"order" must be a non-negative integer, got 1.5`],
    [{ ...ORDER2, order: "2" }, `"order" must be a non-negative integer, got "2"`],
    [{ ...ORDER2, alphabet: [] }, `"alphabet" must be a non-empty array of single characters, got []`],
    [{ ...ORDER2, alphabet: ["a", "bc"] }, `alphabet[1] must be one character (one code point), got "bc"`],
    [{ ...ORDER2, alphabet: ["a", 3] }, `alphabet[1] must be one character (one code point), got 3`],
    [{ ...ORDER2, alphabet: ["a", "b", "a"] }, `alphabet[2] "a" repeats alphabet[0]`],
    [
      { order: 5, alphabet: [..."abcdefghijklmnopq"], probs: {} },
      "order 5 over 17 characters has 1,419,857 contexts, more than 1,000,000",
    ],
    [
      { ...ORDER2, probs: [] },
      `"probs" must be an object mapping each 2-character context to a row, got an array`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: [0.3, 0.6] } },
      `probs["ab"] sums to 0.8999999999999999, not 1 (within 1e-9)`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: [1.2, -0.2] } },
      `probs["ab"][1] must be a finite non-negative number, got -0.2`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: [NaN, 1] } },
      `probs["ab"][0] must be a finite non-negative number, got NaN`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: [0.5, "0.5"] } },
      `probs["ab"][1] must be a finite non-negative number, got "0.5"`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: [0.3, 0.3, 0.4] } },
      `probs["ab"] has 3 entries, expected 2 (one per alphabet character)`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, ab: 1 } },
      `probs["ab"] must be an array of 2 probabilities, got number 1`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, abc: [0.5, 0.5] } },
      `probs["abc"]: the context must be 2 characters, it has 3`,
    ],
    [
      { ...ORDER2, probs: { ...ORDER2.probs, "a\n": [0.5, 0.5] } },
      `probs["a\\n"]: the context has "\\n", which is not in the alphabet`,
    ],
    [
      { ...ORDER2, probs: { aa: [1, 0], ab: [1, 0], bb: [1, 0] } },
      `"probs" has no row for context "ba" (every one of the 4 2-character contexts over the alphabet needs one)`,
    ],
  ];
  for (const [json, msg] of bad) {
    assert.throws(() => parseOracle(json, W), (e: Error) => {
      assert.ok(e instanceof InputError, `${e}`);
      assert.equal(e.message, `${W}: ${msg}`);
      return true;
    });
  }
  // Within the tolerance a row is accepted and renormalised.
  const ok = parseOracle({ ...ORDER2, probs: { ...ORDER2.probs, ab: [0.3, 0.7 + 5e-10] } }, W);
  assert.ok(Math.abs(ok.probs[2] + ok.probs[3] - 1) < 1e-15);
});

Deno.test("order-k oracle: loadOracleFile reads a file; a missing file or non-JSON is a one-line error", async () => {
  const dir = await Deno.makeTempDir();
  const good = `${dir}/good.json`, bad = `${dir}/bad.json`, gone = `${dir}/missing.json`;
  await Deno.writeTextFile(good, JSON.stringify(ORDER2));
  await Deno.writeTextFile(bad, `{"order": 2, "alphabet": ["a", "b"], probs: {}}`);
  const o = await loadOracleFile(good);
  assert.ok(o instanceof ChainOracle);
  assert.deepEqual(o.conditionals(["b", "b"]).map((p) => p && [...p]), [null, [0.2, 0.8]]);
  assert.match(o.description, new RegExp(`from oracle file '${good}'; entropy rate 0\\.\\d{4} nats/char`));
  const refused = async (path: string, re: RegExp): Promise<void> => {
    const e = await loadOracleFile(path).then(() => null, (e: Error) => e);
    assert.ok(e instanceof InputError, `${path}: ${e}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), e.message);
  };
  await refused(gone, new RegExp(`^oracle file '${gone}': no such file$`));
  await refused(bad, new RegExp(`^oracle file '${bad}' is not JSON: `));
  await Deno.writeTextFile(bad, "");
  await refused(bad, new RegExp(`^oracle file '${bad}' is not JSON: `));
  await Deno.writeFile(bad, new Uint8Array([0x7b, 0xff, 0x7d]));
  await refused(bad, new RegExp(`^oracle file '${bad}' is not valid UTF-8$`));
  await Deno.writeTextFile(bad, JSON.stringify({ ...ORDER2, order: 3 }));
  await refused(
    bad,
    new RegExp(`^oracle file '${bad}': probs\\["aa"\\]: the context must be 3 characters, it has 2$`),
  );
  await Deno.remove(dir, { recursive: true });
});
