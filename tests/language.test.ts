import assert from "node:assert/strict";
import { generateLanguage, LanguageChain } from "../src/data/language.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * Parses generated text back into chain states with a regex of its own (word, then " ", ". " or ".\n"),
 * checking capitalisation against the previous suffix; returns the state ids.
 */
function parseStates(chain: LanguageChain, text: string): number[] {
  const id = new Map<string, number>();
  chain.states.forEach((s, i) => id.set(s.word + "|" + s.suffix, i));
  const ids: number[] = [];
  let consumed = 0;
  let sentenceStart = true;
  for (const m of text.matchAll(/([A-Za-z]+)( |\. |\.\n)/g)) {
    assert.equal(
      m.index,
      consumed,
      `unparsed text at ${consumed}: ${JSON.stringify(text.slice(consumed, consumed + 20))}`,
    );
    const word: string = m[1];
    const lower: string = word.toLowerCase();
    const expected: string = sentenceStart ? lower[0].toUpperCase() + lower.slice(1) : lower;
    assert.equal(word, expected, `capitalisation of ${JSON.stringify(word)} at ${m.index}`);
    const s = id.get(lower + "|" + m[2]);
    assert.ok(s !== undefined, `${JSON.stringify(m[0])} at ${m.index} is not a state`);
    ids.push(s);
    sentenceStart = m[2] !== " ";
    consumed += m[0].length;
  }
  assert.equal(consumed, text.length, "text ends with a partial state");
  return ids;
}

/** Mean -log P(transition) per character, from the chain's transition probabilities. */
function oracleEntropy(chain: LanguageChain, text: string): number {
  const ids = parseStates(chain, text);
  let nll = 0;
  let prev: number | null = null;
  for (const s of ids) {
    const p = chain.prob(prev, s);
    assert.ok(p > 0, `transition ${prev} -> ${s} has probability ${p}`);
    nll -= Math.log(p);
    prev = s;
  }
  return nll / text.length;
}

Deno.test("generated language: deterministic for a seed, and different seeds differ", () => {
  const a = generateLanguage({ seed: 7, chars: 20_000 });
  const b = generateLanguage({ seed: 7, chars: 20_000 });
  assert.equal(a.text, b.text);
  assert.equal(a.entropyRate, b.entropyRate);
  assert.equal(a.description, b.description);
  const c = generateLanguage({ seed: 8, chars: 20_000 });
  assert.notEqual(a.text, c.text);
  assert.notEqual(a.entropyRate, c.entropyRate);
  assert.notEqual(a.text.slice(0, 200), c.text.slice(0, 200));
  // A longer text of the same seed starts with the shorter one.
  const d = generateLanguage({ seed: 7, chars: 40_000 });
  assert.ok(d.text.startsWith(a.text));
});

Deno.test("generated language: default is seed 1337, ~300k readable characters, fast", () => {
  const t0 = performance.now();
  const g = generateLanguage();
  const ms = performance.now() - t0;
  console.log(`generateLanguage() ${ms.toFixed(1)} ms: ${g.description}`);
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.equal(g.text, generateLanguage({ seed: 1337, chars: 300_000, typoRate: 1e-3 }).text);
  assert.ok(g.text.length >= 300_000 && g.text.length < 300_040, `length ${g.text.length}`);
  assert.match(g.text, /^[A-Za-z .\n]+$/);
  assert.match(g.text, /^[A-Z]/);
  // Typos (rate 1e-3) make a few double spaces, doubled dots, stray capitals; without them there are none.
  const odd = g.text.match(/ {2}|\n\n|\.\.|[a-z][A-Z]/g)?.length ?? 0;
  assert.ok(odd > 0 && odd < 1e-3 * g.text.length, `${odd} odd pairs`);
  assert.doesNotMatch(generateLanguage({ typoRate: 0 }).text, / {2}|\n\n|\.\.|[a-z][A-Z]/);
  assert.ok(g.text.includes(".\n") && g.text.includes(". "));
  assert.ok(g.entropyRate >= 0.5 && g.entropyRate <= 1.0, `entropy rate ${g.entropyRate}`);
  // Every character of the text is in the alphabet, in code point order.
  assert.deepEqual(g.alphabet, [...g.alphabet].sort());
  assert.ok([...new Set(g.text)].every((ch) => g.alphabet.includes(ch)));
  assert.ok(!g.description.includes("\n"));
  // Distinct words seen at least 3 times (a typo makes a word that is seen about once).
  const seen = new Map<string, number>();
  for (const w of g.text.toLowerCase().match(/[a-z]+/g)!) seen.set(w, (seen.get(w) ?? 0) + 1);
  const words = [...seen.values()].filter((n) => n >= 3).length;
  assert.ok(words >= 100 && words <= 300, `${words} distinct words`);
});

// Without typos (typoRate 0) the text parses into word-chain states; the typo process is tested in
// tests/oracle.test.ts through its exact next-character distributions.
for (const [seed, chars] of [[1337, 300_000], [1, 300_000], [99, 300_000]]) {
  Deno.test(`generated language: oracle per-character entropy matches entropyRate, seed ${seed}`, () => {
    const g = generateLanguage({ seed, chars, typoRate: 0 });
    const chain = new LanguageChain(seed, 0);
    assert.equal(chain.entropyRate, g.entropyRate);
    const emp = oracleEntropy(chain, g.text);
    const rel = Math.abs(emp - g.entropyRate) / g.entropyRate;
    console.log(
      `seed ${seed}: oracle ${emp.toFixed(5)} nats/char vs entropyRate ${g.entropyRate.toFixed(5)} ` +
        `(rel err ${(100 * rel).toFixed(3)}%)`,
    );
    assert.ok(rel < 0.02, `relative error ${rel}`);
  });
}

Deno.test("generated language: the text and the state sequence determine each other", () => {
  const chain = new LanguageChain(5, 0);
  const { text } = generateLanguage({ seed: 5, chars: 30_000, typoRate: 0 });
  const ids = parseStates(chain, text);
  let prev: number | null = null;
  const rebuilt = ids.map((s) => {
    const piece = chain.emit(prev, s);
    prev = s;
    return piece;
  }).join("");
  assert.equal(rebuilt, text);
  // Distinct words, none empty, and state (word, suffix) pairs distinct.
  const keys = new Set(chain.states.map((s) => s.word + "|" + s.suffix));
  assert.equal(keys.size, chain.states.length);
  assert.ok(chain.states.every((s) => /^[a-z]{2,}$/.test(s.word)));
});

Deno.test("generated language: stationary distribution is stationary and matches state frequencies", () => {
  const chain = new LanguageChain(1337);
  const n = chain.states.length;
  const pi = chain.stationary;
  let sum = 0;
  for (const p of pi) sum += p;
  assert.ok(Math.abs(sum - 1) < 1e-12, `sum ${sum}`);
  // pi P computed densely through prob(i, j), independent of the row-type shortcut.
  let maxRes = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += pi[i] * chain.prob(i, j);
    maxRes = Math.max(maxRes, Math.abs(s - pi[j]));
  }
  console.log(`|pi P - pi|max = ${maxRes.toExponential(2)}`);
  assert.ok(maxRes < 1e-13);
  // Every row is a distribution.
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let j = 0; j < n; j++) r += chain.prob(i, j);
    assert.ok(Math.abs(r - 1) < 1e-12);
  }
  // Empirical state frequencies over a long text: total variation distance to pi.
  const ids = parseStates(chain, generateLanguage({ seed: 1337, chars: 600_000, typoRate: 0 }).text);
  const freq = new Float64Array(n);
  for (const s of ids) freq[s] += 1 / ids.length;
  let tv = 0;
  for (let i = 0; i < n; i++) tv += Math.abs(freq[i] - pi[i]) / 2;
  console.log(`total variation(empirical, pi) = ${tv.toFixed(4)} over ${ids.length} states`);
  assert.ok(tv < 0.06, `total variation ${tv}`);
});

Deno.test("generated language: bad options give one-line errors", () => {
  assert.throws(
    () => generateLanguage({ chars: 0 }),
    /^InputError: generateLanguage: chars must be a positive integer, got 0$/,
  );
  assert.throws(
    () => generateLanguage({ seed: 1.5 }),
    /^InputError: generateLanguage: seed must be an integer, got 1.5$/,
  );
  for (const bad of [-0.1, 1, NaN]) {
    assert.throws(
      () => generateLanguage({ typoRate: bad }),
      new RegExp(`^InputError: generated language: typoRate must be in \\[0, 1\\), got ${bad}$`),
    );
  }
});

Deno.test("generated language: without typos the automaton's entropy rate is the word chain's formula", () => {
  for (const seed of [1337, 1, 99, 5, 7]) {
    const c0 = new LanguageChain(seed, 0);
    assert.ok(
      Math.abs(c0.entropyRate - c0.chainEntropyRate) < 1e-12,
      `seed ${seed}: ${c0.entropyRate} vs ${c0.chainEntropyRate}`,
    );
    // Typos add entropy: about eps (log(|A| / eps) + 1) nats per character at eps = 1e-3, and the rate is
    // continuous as eps goes to 0.
    const c = new LanguageChain(seed);
    assert.ok(c.entropyRate > c0.entropyRate && c.entropyRate < c0.entropyRate + 0.02, `${c.entropyRate}`);
    const tiny = new LanguageChain(seed, 1e-12);
    assert.ok(Math.abs(tiny.entropyRate - c0.entropyRate) < 1e-9, `${tiny.entropyRate}`);
    if (seed === 1337) {
      console.log(
        `seed 1337: ${c.entropyRate.toFixed(6)} nats/char with typo rate 1e-3, ${
          c0.entropyRate.toFixed(6)
        } without`,
      );
      assert.equal(c0.chainEntropyRate.toFixed(4), "0.6047");
      assert.equal(c.entropyRate.toFixed(4), "0.6216");
    }
  }
});

Deno.test("generated language: the automaton's stationary distribution is stationary, its rows distributions", () => {
  for (const eps of [1e-3, 0.2, 0]) {
    const a = new LanguageChain(1337, eps).automaton, A = a.alphabet.length;
    let sum = 0;
    for (const p of a.stationary) sum += p;
    assert.ok(Math.abs(sum - 1) < 1e-12, `sum ${sum}`);
    // pi Q from the dense tables, independent of the renewal computation.
    const piQ = new Float64Array(a.size);
    for (let s = 0; s < a.size; s++) {
      let row = 0;
      for (let c = 0; c < A; c++) {
        piQ[a.next[s * A + c]] += a.stationary[s] * a.probs[s * A + c];
        row += a.probs[s * A + c];
        if (eps > 0) assert.ok(a.probs[s * A + c] >= eps / A * (1 - 1e-12));
      }
      assert.ok(Math.abs(row - 1) < 1e-12, `row ${s} sums to ${row}`);
    }
    let res = 0;
    for (let s = 0; s < a.size; s++) res = Math.max(res, Math.abs(piQ[s] - a.stationary[s]));
    console.log(`eps ${eps}: ${a.size} states, |pi Q - pi|max = ${res.toExponential(2)}`);
    assert.ok(res < 1e-15, `residual ${res}`);
  }
});

Deno.test("generated language: the text is the automaton's walk, with typos at the expected rate", () => {
  const chain = new LanguageChain(1337), a = chain.automaton, A = a.alphabet.length;
  const text = chain.sample(3, 400_000);
  const index = new Map(a.alphabet.map((ch, i) => [ch, i]));
  const boundary = new Uint8Array(a.size);
  for (const r of a.boundaries) boundary[r] = 1;
  // Walk the text from the start state; count typos (characters that continue no string of the trie)
  // and their expected number sum_t P(typo | s_t).
  let s = a.start, typos = 0, expected = 0, variance = 0;
  for (const ch of text) {
    const c = index.get(ch)!;
    let pTypo = 0;
    for (let c2 = 0; c2 < A; c2++) if (a.typo[s * A + c2]) pTypo += a.probs[s * A + c2];
    expected += pTypo;
    variance += pTypo * (1 - pTypo);
    if (a.typo[s * A + c]) typos++;
    s = a.next[s * A + c];
  }
  assert.ok(boundary[s], "the text ends inside a word");
  const z = (typos - expected) / Math.sqrt(variance);
  console.log(
    `${typos} typos in ${text.length} characters, expected ${expected.toFixed(1)} (z = ${z.toFixed(2)})`,
  );
  assert.ok(Math.abs(z) < 4, `z = ${z}`);
  assert.ok(typos > 100);
});

Deno.test("generated language: a garbage word ends within a few characters (samples conditioned on a typo)", () => {
  // A high typo rate for many typos; the garbage law does not depend on it but through the eps floor.
  const chain = new LanguageChain(1337, 0.05), a = chain.automaton, A = a.alphabet.length;
  const boundary = new Uint8Array(a.size);
  for (const r of a.boundaries) boundary[r] = 1;
  // Exact expected characters from a garbage word state to the next word boundary: t(g) = 1 + sum_c q(c|g)
  // t(next(g, c)), t = 0 at a root; its garbage-"." state d likewise (a 2 x 2 system per row type).
  const exact = new Map<number, number>();
  for (let g = 0; g < a.size; g++) {
    if (a.garbage[g] !== 1) continue;
    let d = -1;
    for (let c = 0; c < A; c++) if (a.garbage[a.next[g * A + c]] === 2) d = a.next[g * A + c];
    const stay = (from: number, to: number): number => {
      let p = 0;
      for (let c = 0; c < A; c++) if (a.next[from * A + c] === to) p += a.probs[from * A + c];
      return p;
    };
    for (const s of [g, d]) {
      for (let c = 0; c < A; c++) {
        const t = a.next[s * A + c];
        assert.ok(t === g || t === d || boundary[t], "a garbage state leads only to its pair or a root");
      }
    }
    const [gg, gd, dg, dd] = [stay(g, g), stay(g, d), stay(d, g), stay(d, d)];
    // (1 - gg) tg - gd td = 1, -dg tg + (1 - dd) td = 1.
    const det = (1 - gg) * (1 - dd) - gd * dg;
    exact.set(g, ((1 - dd) + gd) / det);
  }
  assert.equal(exact.size, chain.rows.length + 2, "a garbage word per word-chain row and free-word row");
  // Sample: walk the process; at each typo that starts a garbage word, count the characters from there to
  // the next word boundary.
  const rng = new Rng(17), cdf = new Float64Array(A);
  let s = a.start, open = -1, since = 0, n = 0, sum = 0, sumSq = 0, want = 0;
  for (let step = 0; step < 600_000; step++) {
    let acc = 0;
    for (let c = 0; c < A; c++) cdf[c] = acc += a.probs[s * A + c];
    const u = rng.uniform() * acc;
    let c = 0;
    while (c < A - 1 && cdf[c] <= u) c++;
    const t = a.next[s * A + c];
    if (open >= 0) {
      since++;
      if (boundary[t]) {
        n++;
        sum += since;
        sumSq += since * since;
        want += exact.get(open)!;
        open = -1;
      }
    } else if (a.typo[s * A + c] && a.garbage[t] === 1) {
      open = t;
      since = 0;
    }
    s = t;
  }
  const mean = sum / n, sd = Math.sqrt(sumSq / n - mean * mean), z = (mean - want / n) / (sd / Math.sqrt(n));
  console.log(
    `${n} garbage words: ${mean.toFixed(3)} characters to the next word boundary after the typo ` +
      `(exact ${(want / n).toFixed(3)}, z = ${z.toFixed(2)})`,
  );
  assert.ok(n > 1000, `${n} garbage words`);
  assert.ok(Math.abs(z) < 4, `z = ${z}`);
  // About 2 letters and a separator, a little more where a "." comes before the space.
  assert.ok(mean > 2.5 && mean < 4, `mean ${mean}`);
  const [e0] = exact.values();
  assert.ok(e0 > 2.9 && e0 < 3.5, `exact ${e0}`);
});
