import assert from "node:assert/strict";
import { generateLanguage, LanguageChain } from "../src/data/language.ts";

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
  assert.equal(g.text, generateLanguage({ seed: 1337, chars: 300_000 }).text);
  assert.ok(g.text.length >= 300_000 && g.text.length < 300_040, `length ${g.text.length}`);
  assert.match(g.text, /^[A-Za-z .\n]+$/);
  assert.match(g.text, /^[A-Z]/);
  assert.doesNotMatch(g.text, / {2}|\n\n|\.\.|[a-z][A-Z]/);
  assert.ok(g.text.includes(".\n") && g.text.includes(". "));
  assert.ok(g.entropyRate >= 0.5 && g.entropyRate <= 1.0, `entropy rate ${g.entropyRate}`);
  assert.ok(!g.description.includes("\n"));
  const words = new Set(g.text.toLowerCase().match(/[a-z]+/g));
  assert.ok(words.size >= 100 && words.size <= 300, `${words.size} distinct words`);
});

for (const [seed, chars] of [[1337, 300_000], [1, 300_000], [99, 300_000]]) {
  Deno.test(`generated language: oracle per-character entropy matches entropyRate, seed ${seed}`, () => {
    const g = generateLanguage({ seed, chars });
    const chain = new LanguageChain(seed);
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
  const chain = new LanguageChain(5);
  const { text } = generateLanguage({ seed: 5, chars: 30_000 });
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
  const ids = parseStates(chain, generateLanguage({ seed: 1337, chars: 600_000 }).text);
  const freq = new Float64Array(n);
  for (const s of ids) freq[s] += 1 / ids.length;
  let tv = 0;
  for (let i = 0; i < n; i++) tv += Math.abs(freq[i] - pi[i]) / 2;
  console.log(`total variation(empirical, pi) = ${tv.toFixed(4)} over ${ids.length} states`);
  assert.ok(tv < 0.06, `total variation ${tv}`);
});

Deno.test("generated language: bad options give one-line errors", () => {
  assert.throws(() => generateLanguage({ chars: 0 }), /chars must be a positive integer/);
  assert.throws(() => generateLanguage({ seed: 1.5 }), /seed must be an integer/);
});
