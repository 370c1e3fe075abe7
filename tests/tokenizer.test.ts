import assert from "node:assert/strict";
import { type Tokenizer, tokenizerFromJSON, trainTokenizer } from "../src/data/tokenizer.ts";
import { splitChunks } from "../src/data/bpe.ts";
import { splitWords } from "../src/data/word.ts";
import { generateLanguage } from "../src/data/language.ts";
import { Rng } from "../src/util/rng.ts";

/** Code point ranges for random strings: ASCII, Latin-1, Greek, Cyrillic, CJK, Hangul, emoji, marks, spaces. */
const RANGES: [number, number][] = [
  [0x20, 0x7e],
  [0x20, 0x7e],
  [0xa0, 0xff],
  [0x391, 0x3c9],
  [0x410, 0x44f],
  [0x4e00, 0x4fff],
  [0xac00, 0xac40],
  [0x1f300, 0x1f6ff],
  [0x1f900, 0x1f9ff],
  [0x300, 0x36f],
  [0x2000, 0x206f],
];
const SPACES = ["\n", "\t", " ", "  ", "\r\n", "\u3000", "\u00a0", "\ufeff"];

function randomUnicode(rng: Rng, n: number): string {
  let s = "";
  while (s.length < n) {
    if (rng.uniform() < 0.15) s += SPACES[rng.int(SPACES.length)];
    else {
      const [lo, hi] = RANGES[rng.int(RANGES.length)];
      s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
    }
  }
  return s;
}

function assertOneLineError(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(!e.message.includes("\n"), `multi-line message: ${JSON.stringify(e.message)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function jsonRoundTrip(tok: Tokenizer): Tokenizer {
  return tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
}

// ---------------------------------------------------------------- char

Deno.test("char: one token per code point, sorted vocab, round trip incl. é, 💡, CJK, newline", () => {
  const text = "héllo wörld 💡 日本語\nnaïve 🎉🎉 ok\n";
  const tok = trainTokenizer("char", text);
  const cps = [...new Set([...text])].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  assert.equal(tok.vocabSize, cps.length);
  assert.equal(tok.padId, null);
  assert.deepEqual(tok.toJSON(), { type: "char", vocab: cps });
  assert.equal((tok.toJSON().vocab as string[])[0], "\n");
  const ids = tok.encode(text);
  assert.equal(ids.length, [...text].length);
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.encode("💡").length, 1);
  assert.equal(tok.encode("é").length, 1);
  assert.deepEqual([...tok.encode("\n ")], [0, 1]);
  assert.equal(tok.decode(tok.encode("日本")), "日本");
  assert.equal(tok.encode("").length, 0);
  assert.equal(tok.decode([]), "");
});

Deno.test("char: pad is one past the characters and decodes to nothing", () => {
  const tok = trainTokenizer("char", "abca", { pad: true });
  assert.equal(tok.vocabSize, 4);
  assert.equal(tok.padId, 3);
  assert.deepEqual(tok.toJSON(), { type: "char", vocab: ["a", "b", "c"], pad: 3 });
  assert.equal(tok.decode([0, 3, 1, 3]), "ab");
  assertOneLineError(() => tok.decode([4]), /id 4 at index 0 is out of range \[0, 4\)/);
  assertOneLineError(() => tok.decode([0, -1]), /id -1 at index 1/);
  assertOneLineError(() => tok.decode([0.5]), /id 0.5/);
});

Deno.test("char: an unseen character gives a one-line error naming it and its code point", () => {
  const tok = trainTokenizer("char", "abc\n");
  assertOneLineError(() => tok.encode("ab😀"), /"😀" \(U\+1F600\) at offset 2/);
  assertOneLineError(() => tok.encode("a\tb"), /"\\t" \(U\+0009\) at offset 1/);
  assertOneLineError(() => tok.encode("é"), /"é" \(U\+00E9\)/);
  assertOneLineError(() => tok.encode("a\ud800"), /U\+D800/);
});

Deno.test("char: JSON round trip gives identical encodings", () => {
  const text = randomUnicode(new Rng(3), 3000);
  for (const pad of [false, true]) {
    const tok = trainTokenizer("char", text, { pad });
    const back = jsonRoundTrip(tok);
    assert.equal(back.vocabSize, tok.vocabSize);
    assert.equal(back.padId, tok.padId);
    assert.deepEqual(back.encode(text), tok.encode(text));
    assert.equal(back.decode(back.encode(text)), text);
  }
});

// ---------------------------------------------------------------- word

const WORDS_TEXT =
  "The cat's hat, the dog's bone... naïve café — 東京 42 times!\n\tThe end.  The  END? the cat.";

Deno.test("word: splitting is Unicode-aware and lossless", () => {
  assert.deepEqual(splitWords("The cat's hat,  naïve 東京 x2!\n"), [
    "The",
    " ",
    "cat's",
    " ",
    "hat",
    ",",
    "  ",
    "naïve",
    " ",
    "東京",
    " ",
    "x2",
    "!",
    "\n",
  ]);
  const s = randomUnicode(new Rng(9), 2000);
  assert.equal(splitWords(s).join(""), s);
});

Deno.test("word: round trip on the training text, frequency order, <unk> for unseen", () => {
  const tok = trainTokenizer("word", WORDS_TEXT);
  const vocab = tok.toJSON().vocab as string[];
  assert.equal(tok.toJSON().type, "word");
  assert.deepEqual(vocab.slice(0, 2), ["<pad>", "<unk>"]);
  assert.equal(tok.padId, 0);
  assert.equal(vocab[2], " "); // the most frequent token
  const distinct = new Set(splitWords(WORDS_TEXT));
  assert.equal(tok.vocabSize, distinct.size + 2);
  // Frequencies never increase along the vocabulary.
  const count = (t: string) => splitWords(WORDS_TEXT).filter((x) => x === t).length;
  for (let i = 3; i < vocab.length; i++) assert.ok(count(vocab[i - 1]) >= count(vocab[i]), vocab[i]);
  const ids = tok.encode(WORDS_TEXT);
  assert.equal(ids.length, splitWords(WORDS_TEXT).length);
  assert.equal(tok.decode(ids), WORDS_TEXT);
  assert.ok(!ids.includes(1));
  const unseen = tok.encode("the zebra's cat");
  assert.deepEqual([...unseen], [
    tok.encode("the")[0],
    tok.encode(" ")[0],
    1,
    tok.encode(" ")[0],
    tok.encode("cat")[0],
  ]);
  assert.equal(tok.decode(unseen), "the <unk> cat");
  assert.equal(tok.decode([0, 0]), "");
});

Deno.test("word: vocabSize keeps the most frequent tokens, ties broken deterministically", () => {
  const text = "b a c a b a d d d e";
  const tok = trainTokenizer("word", text, { vocabSize: 5 });
  // " " x9, then "a" x3 and "d" x3 tie: code unit order puts "a" first.
  assert.deepEqual(tok.toJSON().vocab, ["<pad>", "<unk>", " ", "a", "d"]);
  assert.equal(tok.vocabSize, 5);
  assert.equal(tok.decode(tok.encode("a b d")), "a <unk> d");
  assert.deepEqual(trainTokenizer("word", text).toJSON().vocab, [
    "<pad>",
    "<unk>",
    " ",
    "a",
    "d",
    "b",
    "c",
    "e",
  ]);
  assert.equal(trainTokenizer("word", text, { vocabSize: 1000 }).vocabSize, 8);
  assertOneLineError(() => trainTokenizer("word", text, { vocabSize: 2 }), /at least 3/);
});

Deno.test("word: JSON round trip gives identical encodings", () => {
  const { text } = generateLanguage({ seed: 2, chars: 20_000 });
  const tok = trainTokenizer("word", text, { vocabSize: 100 });
  const back = jsonRoundTrip(tok);
  const probe = text + " " + WORDS_TEXT;
  assert.deepEqual(back.encode(probe), tok.encode(probe));
  assert.equal(back.vocabSize, 100);
});

// ---------------------------------------------------------------- bpe

/** Straightforward BPE trainer: recount every pair of every chunk occurrence for every merge. */
function naiveBpeMerges(text: string, nMerges: number): [number, number][] {
  const enc = new TextEncoder();
  const seqs = splitChunks(text).map((c) => Array.from(enc.encode(c)));
  const merges: [number, number][] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const s of seqs) {
      for (let i = 0; i + 1 < s.length; i++) {
        const k = `${s[i]},${s[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
    let best: [number, number] | null = null, bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(",").map(Number);
      if (c > bestCount || (c === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (!best) break;
    merges.push(best);
    const id = 256 + m;
    for (let j = 0; j < seqs.length; j++) {
      const s = seqs[j], t: number[] = [];
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === best[0] && s[i + 1] === best[1]) {
          t.push(id);
          i += 2;
        } else t.push(s[i++]);
      }
      seqs[j] = t;
    }
  }
  return merges;
}

/** Straightforward BPE encoder: apply every merge in order to each chunk's bytes. */
function naiveBpeEncode(merges: [number, number][], text: string): number[] {
  const enc = new TextEncoder();
  const out: number[] = [];
  for (const c of splitChunks(text)) {
    let s = Array.from(enc.encode(c));
    merges.forEach(([a, b], m) => {
      const t: number[] = [];
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          t.push(256 + m);
          i += 2;
        } else t.push(s[i++]);
      }
      s = t;
    });
    out.push(...s);
  }
  return out;
}

Deno.test("bpe: pre-split keeps a leading space on words and covers every character", () => {
  assert.deepEqual(splitChunks("Hello, world!  It's 2024.\n\nok"), [
    "Hello",
    ",",
    " world",
    "!",
    " ",
    " It's",
    " 2024",
    ".",
    "\n\n",
    "ok",
  ]);
  assert.deepEqual(splitChunks("a \n\n  b\tc  "), ["a", " \n\n", " ", " b", "\t", "c", "  "]);
  const s = randomUnicode(new Rng(4), 5000);
  assert.equal(splitChunks(s).join(""), s);
});

Deno.test("bpe: incremental training equals a naive re-count BPE, and encode equals in-order merging", () => {
  for (const [seed, chars, merges] of [[11, 6000, 200], [12, 3000, 400]]) {
    const text = generateLanguage({ seed, chars }).text + randomUnicode(new Rng(seed), 400) +
      " aaaa aaa ababab";
    const tok = trainTokenizer("bpe", text, { vocabSize: 256 + merges });
    const mine = tok.toJSON().merges as [number, number][];
    const naive = naiveBpeMerges(text, merges);
    assert.equal(mine.length, naive.length);
    assert.deepEqual(mine, naive);
    const probe = generateLanguage({ seed: seed + 100, chars: 3000 }).text +
      randomUnicode(new Rng(seed + 1), 300);
    assert.deepEqual([...tok.encode(probe)], naiveBpeEncode(naive, probe));
    assert.deepEqual([...tok.encode(text)], naiveBpeEncode(naive, text));
  }
});

Deno.test("bpe: vocabSize V gives exactly V ids, compresses, round-trips a 100 KB generated text", () => {
  const { text } = generateLanguage({ seed: 21, chars: 100_000 });
  const bytes = new TextEncoder().encode(text).length;
  for (const v of [256, 300, 700]) {
    const tok = trainTokenizer("bpe", text, { vocabSize: v });
    assert.equal(tok.vocabSize, v);
    assert.equal((tok.toJSON().merges as unknown[]).length, v - 256);
    assert.equal(tok.padId, null);
    const ids = tok.encode(text);
    assert.ok(ids.every((id) => id < v));
    if (v === 256) assert.equal(ids.length, bytes);
    else assert.ok(ids.length < bytes, `${ids.length} tokens for ${bytes} bytes`);
    if (v === 700) {
      console.log(`bpe V=700 on 100 KB: ${(bytes / ids.length).toFixed(2)} bytes/token`);
      assert.ok(ids.length < bytes / 3);
    }
    assert.equal(tok.decode(ids), text);
  }
});

Deno.test("bpe: any Unicode string, never seen in training, round-trips exactly", () => {
  const tok = trainTokenizer("bpe", generateLanguage({ seed: 3, chars: 50_000 }).text, { vocabSize: 600 });
  const rng = new Rng(77);
  for (let i = 0; i < 200; i++) {
    const s = randomUnicode(rng, 1 + rng.int(120));
    assert.equal(tok.decode(tok.encode(s)), s, `string ${i}: ${JSON.stringify(s)}`);
  }
  for (
    const s of [
      "",
      " ",
      "\ufeffBOM first",
      "💡",
      "👩‍👩‍👧‍👦 family",
      "e\u0301",
      "\u0000\u0001",
      "日本語のテキスト",
      "  x  ",
    ]
  ) {
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
  }
  assert.equal(tok.encode("💡").length, 4); // four UTF-8 bytes, never seen in training
  // A tokenizer trained on random Unicode also round-trips fresh random Unicode.
  const uni = trainTokenizer("bpe", randomUnicode(new Rng(5), 20_000), { vocabSize: 700 });
  for (let i = 0; i < 50; i++) {
    const s = randomUnicode(rng, 200);
    assert.equal(uni.decode(uni.encode(s)), s);
  }
  assert.equal(uni.vocabSize, 700);
});

Deno.test("bpe: pad is the last id; decode rejects ids out of range", () => {
  const text = generateLanguage({ seed: 4, chars: 20_000 }).text;
  const tok = trainTokenizer("bpe", text, { vocabSize: 400, pad: true });
  assert.equal(tok.vocabSize, 400);
  assert.equal(tok.padId, 399);
  assert.equal((tok.toJSON().merges as unknown[]).length, 143);
  assert.equal(tok.toJSON().pad, 399);
  const ids = [...tok.encode("Hello")];
  assert.equal(tok.decode([399, ...ids, 399]), "Hello");
  assert.ok(!tok.encode(text).includes(399));
  assertOneLineError(() => tok.decode([400]), /id 400 at index 0 is out of range \[0, 400\)/);
  assertOneLineError(
    () => trainTokenizer("bpe", text, { vocabSize: 256, pad: true }),
    /vocabSize must be in \[257/,
  );
  assertOneLineError(() => trainTokenizer("bpe", text, { vocabSize: 100 }), /vocabSize must be in \[256/);
});

Deno.test("bpe: stops early when no pair is left, deterministic, JSON round trip gives identical encodings", () => {
  const small = trainTokenizer("bpe", "abab abab", { vocabSize: 1000 });
  // "abab" (ab, ab -> abab), " abab" (space+ab, " abab"): merges run out well below 1000.
  assert.ok(small.vocabSize < 270, `vocabSize ${small.vocabSize}`);
  assert.equal(small.encode("abab abab").length, 2);
  const text = generateLanguage({ seed: 6, chars: 30_000 }).text + randomUnicode(new Rng(6), 2000);
  const a = trainTokenizer("bpe", text, { vocabSize: 800, pad: true });
  const b = trainTokenizer("bpe", text, { vocabSize: 800, pad: true });
  assert.deepEqual(a.toJSON(), b.toJSON());
  const back = jsonRoundTrip(a);
  assert.equal(back.vocabSize, 800);
  assert.equal(back.padId, 799);
  const probe = text + randomUnicode(new Rng(66), 3000);
  assert.deepEqual(back.encode(probe), a.encode(probe));
  assert.deepEqual(tokenizerFromJSON(JSON.stringify(a.toJSON())).encode(probe), a.encode(probe));
});

Deno.test("bpe: training on 1 MB takes a few seconds at most", () => {
  const text = generateLanguage({ seed: 8, chars: 500_000 }).text + randomUnicode(new Rng(8), 500_000);
  const t0 = performance.now();
  const tok = trainTokenizer("bpe", text, { vocabSize: 2048 });
  const ms = performance.now() - t0;
  const bytes = new TextEncoder().encode(text).length;
  console.log(`bpe training on ${(bytes / 1e6).toFixed(2)} MB to V=2048: ${ms.toFixed(0)} ms`);
  assert.equal(tok.vocabSize, 2048);
  assert.ok(ms < 5000, `${ms} ms`);
});

// ---------------------------------------------------------------- factory and JSON validation

Deno.test("factory: unknown type and bad options are one-line errors", () => {
  assertOneLineError(
    () => trainTokenizer("sentencepiece" as "char", "abc"),
    /unknown tokenizer type "sentencepiece"/,
  );
  assertOneLineError(() => trainTokenizer("bpe", "abc", { vocabSize: 300.5 }), /positive integer/);
  assertOneLineError(() => trainTokenizer("char", ""), /empty/);
  assertOneLineError(() => trainTokenizer("word", ""), /empty/);
  assert.equal(trainTokenizer("bpe", "", { vocabSize: 256 }).vocabSize, 256);
});

Deno.test("tokenizerFromJSON rejects malformed input with one-line errors", () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected an object, got null/],
    [[1, 2], /expected an object, got an array/],
    ["{not json", /not valid JSON/],
    [{}, /"type" must be one of char, word, bpe, gpt2, got undefined/],
    [{ type: "gpt3" }, /"type" must be one of .* got "gpt3"/],
    [{ type: "char" }, /"vocab" must be an array, got undefined/],
    [{ type: "char", vocab: [] }, /"vocab" is empty/],
    [{ type: "char", vocab: ["a", "bc"] }, /vocab\[1\] must be one character, got "bc"/],
    [{ type: "char", vocab: ["a", 7] }, /vocab\[1\] must be one character, got 7/],
    [{ type: "char", vocab: ["b", "a"] }, /vocab\[1\] "a" \(U\+0061\) is not after vocab\[0\]/],
    [{ type: "char", vocab: ["a", "a"] }, /sorted and distinct/],
    [{ type: "char", vocab: ["a", "b"], pad: 5 }, /"pad" must be 2/],
    [{ type: "char", vocab: ["a"], extra: 1 }, /unknown key "extra"/],
    [{ type: "word", vocab: "abc" }, /"vocab" must be an array/],
    [{ type: "word", vocab: ["a", "b"] }, /must start with "<pad>", "<unk>"/],
    [{ type: "word", vocab: ["<pad>", "<unk>", "a b"] }, /vocab\[2\] "a b" is not a single token/],
    [{ type: "word", vocab: ["<pad>", "<unk>", ""] }, /vocab\[2\] "" is not a single token/],
    [{ type: "word", vocab: ["<pad>", "<unk>", "x", "x"] }, /vocab\[3\] "x" is a duplicate/],
    [{ type: "word", vocab: ["<pad>", "<unk>", null] }, /vocab\[2\] must be a string, got null/],
    [{ type: "bpe" }, /"merges" must be an array, got undefined/],
    [{ type: "bpe", merges: [[1, 2], [3]] }, /merges\[1\] must be a pair of ids in \[0, 257\), got \[3\]/],
    [{ type: "bpe", merges: [[1, 256]] }, /merges\[0\] must be a pair of ids in \[0, 256\)/],
    [{ type: "bpe", merges: [[1, -1]] }, /merges\[0\]/],
    [{ type: "bpe", merges: [[1, 2.5]] }, /merges\[0\]/],
    [{ type: "bpe", merges: [[1, 2], [1, 2]] }, /merges\[1\] \[1,2\] repeats an earlier merge/],
    [{ type: "bpe", merges: [[1, 2]], pad: 256 }, /"pad" must be 257 \(the last id\), got 256/],
    [{ type: "bpe", merges: [], vocab: [] }, /unknown key "vocab"/],
  ];
  for (const [json, pattern] of cases) assertOneLineError(() => tokenizerFromJSON(json), pattern);
  // The well-formed neighbours of those cases load.
  assert.equal(tokenizerFromJSON({ type: "char", vocab: ["a", "b"], pad: 2 }).vocabSize, 3);
  assert.equal(tokenizerFromJSON({ type: "word", vocab: ["<pad>", "<unk>", "x", "y"] }).vocabSize, 4);
  assert.equal(tokenizerFromJSON({ type: "bpe", merges: [[1, 2], [256, 3]], pad: 258 }).vocabSize, 259);
  assert.equal(tokenizerFromJSON('{"type":"bpe","merges":[]}').vocabSize, 256);
});
