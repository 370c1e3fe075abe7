/**
 * GPT-2's tokenizer: tforce's own byte-level BPE, read from the vocab.json + merges.txt of Hugging Face's
 * gpt2 repository, gives the ids of a well-kept reference, js-tiktoken@1.0.21's `gpt2` encoding, on a
 * varied corpus (scripts, emoji and ZWJ sequences, contractions, whitespace runs, digits, long runs,
 * random mixtures) and on tinyshakespeare when it is there; decode(encode(s)) === s.
 *
 * The tests cannot download GPT-2's files, so they derive them from the ranks js-tiktoken ships
 * (`ranks/gpt2`: each token's bytes, base64, in rank order, rank = id): vocab.json spells each token's
 * bytes with GPT-2's byte-to-unicode map, and merges.txt lists, for each token of rank r >= 256 in rank
 * order, the two tokens BPE joins to make it, found by running BPE on its bytes with only the ranks below
 * r (which must end in exactly two parts). tiktoken builds its ranks from GPT-2's files the other way round
 * and checks they agree, so the derived files are GPT-2's.
 */
import { loadModel } from "../src/model/checkpoint.ts";
import { runCli } from "./cli_run.ts";
import assert from "node:assert/strict";
// The reference, pinned here and used by this test only (not a dependency of tforce, so not in deno.json).
// deno-lint-ignore no-import-prefix
import { Tiktoken } from "npm:js-tiktoken@1.0.21/lite";
// deno-lint-ignore no-import-prefix
import gpt2Ranks from "npm:js-tiktoken@1.0.21/ranks/gpt2";
import { byteToUnicode, GPT2_SPLIT, Gpt2Tokenizer, loadGpt2Tokenizer } from "../src/data/gpt2.ts";
import { tokenizerFromJSON, trainTokenizer } from "../src/data/tokenizer.ts";
import { decodeModel, encodeModel } from "../src/model/checkpoint.ts";
import { paramLayout } from "../src/model/params.ts";
import { loadCorpus } from "../src/train/data.ts";
import { DEFAULT_TRAIN, type TrainConfig, validateTrainConfig } from "../src/train/config.ts";
import { errorLine } from "../src/cli/errors.ts";
import { InputError } from "../src/util/errors.ts";
import { Rng } from "../src/util/rng.ts";
import { tinyGPT } from "./fixtures.ts";

const reference = new Tiktoken(gpt2Ranks);
/** The reference's ids of `s` as ordinary text (`<|endoftext|>` spelled out), as nanoGPT's prepare.py. */
const refIds = (s: string) => reference.encode(s, [], []);

/** GPT-2's vocab.json and merges.txt, derived from js-tiktoken's ranks (see the module comment). */
function gpt2Files(): { vocab: string; merges: string } {
  const ranks = new Map<string, number>(); // token bytes as latin1 -> rank
  const byRank: string[] = [];
  for (const line of gpt2Ranks.bpe_ranks.split("\n")) {
    if (!line) continue;
    const [, offset, ...tokens] = line.split(" ");
    tokens.forEach((t, i) => {
      ranks.set(atob(t), Number(offset) + i);
      byRank[Number(offset) + i] = atob(t);
    });
  }
  const spell = (latin1: string) => Array.from(latin1, (c) => byteToUnicode(c.charCodeAt(0))).join("");
  const merges: string[] = [];
  for (let r = 256; r < byRank.length; r++) {
    const parts = Array.from(byRank[r]);
    for (;;) {
      let best = Infinity, at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const q = ranks.get(parts[i] + parts[i + 1]);
        if (q !== undefined && q < r && q < best) [best, at] = [q, i];
      }
      if (at < 0) break;
      parts.splice(at, 2, parts[at] + parts[at + 1]);
    }
    assert.equal(parts.length, 2, `rank ${r} does not split into two lower-ranked tokens`);
    merges.push(`${spell(parts[0])} ${spell(parts[1])}`);
  }
  const vocab: Record<string, number> = {};
  byRank.forEach((t, r) => vocab[spell(t)] = r);
  for (const [name, id] of Object.entries(gpt2Ranks.special_tokens)) vocab[name] = id;
  return { vocab: JSON.stringify(vocab), merges: `#version: 0.2\n${merges.join("\n")}\n` };
}

let folder: Promise<string> | null = null;

/** A temporary folder holding the derived vocab.json and merges.txt (written once). */
function gpt2Folder(): Promise<string> {
  folder ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "tforce-gpt2-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const { vocab, merges } = gpt2Files();
    await Deno.writeTextFile(`${dir}/vocab.json`, vocab);
    await Deno.writeTextFile(`${dir}/merges.txt`, merges);
    return dir;
  })();
  return folder;
}

let loaded: Promise<Gpt2Tokenizer> | null = null;
const gpt2 = () => loaded ??= gpt2Folder().then(loadGpt2Tokenizer);

/** Texts of every kind GPT-2's regex and byte-level merges treat differently. */
const CORPUS: string[] = [
  "",
  "Hello, world! This is GPT-2's tokenizer.",
  "I'm sure you're right; they've said he'll come, she'd know, it's done, don't worry, we'd've gone.",
  "IT'S LOUD: 'S 'T 'RE 'VE 'M 'LL 'D and quotes 'like this' and ‘curly’ ones, rock’n’roll.",
  "a  b   c    d",
  "   leading spaces and trailing   ",
  "line one\nline two\n\n\nafter blank lines\r\nwindows line\r\n",
  " \n \n  \n\t\t tabs\tand\u00a0no-break\u2003em\u3000ideographic spaces",
  "x\n\n\n\n",
  "1234567890 3.14159 1,000,000 2024-01-01T12:00:00Z  42 007 ½ ² ٣٤٥ १२३",
  "你好，世界。这是一个测试。日本語のテキスト：こんにちは世界！한국어: 안녕하세요 세계",
  "مرحبا بالعالم، هذا اختبار. العربية تكتب من اليمين إلى اليسار.",
  "नमस्ते दुनिया। यह एक परीक्षण है। संस्कृतम्",
  "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Γειά σου Κόσμε — שלום עולם — สวัสดีชาวโลก — Tiếng Việt có dấu",
  "emoji 😀😃😄 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 hearts ❤️💔 keycap 1️⃣ 🏳️‍🌈",
  "astral letters 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and digits 𝟙𝟚𝟛 and 𐍈 gothic, 𓀀 hieroglyph, 🀄 tile",
  "combining: e\u0301 a\u0300 n\u0303 \u0915\u094d\u0937 Z\u0351\u0364\u0358a\u0352l\u036dg\u0350o",
  'function f(x) { return x * 2; } // comment\n\tif (a && b || !c) {}\n<div class="x">&amp;</div>',
  "https://example.com/path?q=1&r=two#frag user@example.org $100.00 €5 ¥1000 ~/.bashrc",
  "!!!???...,,,;;;:::---___===+++***///\\\\\\|||@@@###$$$%%%^^^&&&",
  "<|endoftext|> is ordinary text here <|endoftext|>",
  " ".repeat(300) + "x",
  "a".repeat(500),
  "1".repeat(400) + " " + "ab".repeat(300),
  "=".repeat(200) + "\n" + "-".repeat(150),
  "\u{1F600}".repeat(100),
  "The quick brown fox jumps over the lazy dog. ".repeat(20),
];

/** Random mixtures of the corpus' characters, words and whitespace, from a seeded stream. */
function randomTexts(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const pool = [...new Set(CORPUS.join("").match(/./gsu) ?? [])];
  const words = CORPUS.join(" ").split(/\s+/).filter(Boolean);
  const spaces = [" ", "  ", "\n", "\n\n", "\t", " \n", "\r\n", "   "];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const len = rng.int(40);
    for (let k = 0; k < len; k++) {
      const r = rng.int(10);
      s += r < 4
        ? pool[rng.int(pool.length)]
        : r < 7
        ? words[rng.int(words.length)]
        : spaces[rng.int(spaces.length)];
    }
    out.push(s);
  }
  return out;
}

Deno.test("GPT-2 from vocab.json + merges.txt: ids equal js-tiktoken's gpt2 on a varied corpus", async () => {
  const tok = await gpt2();
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.type, "gpt2");
  assert.equal(tok.padId, null);
  let pieces = 0;
  for (const s of [...CORPUS, ...randomTexts(400, 7)]) {
    const got = Array.from(tok.encode(s)), want = refIds(s);
    assert.deepEqual(got, want, `ids of ${JSON.stringify(s.slice(0, 60))}`);
    assert.equal(tok.decode(got), s);
    pieces += s.match(GPT2_SPLIT)?.length ?? 0;
  }
  assert.deepEqual(Array.from(tok.encode("Hello world")), [15496, 995]);
  assert.equal(tok.decode([50256]), "<|endoftext|>");
  console.log(`parity on ${CORPUS.length} texts and 400 random mixtures (${pieces} pieces)`);
});

Deno.test("GPT-2's \\s is Unicode White_Space (tiktoken's Rust regex): U+0085 is a space, unlike JavaScript's \\s", async () => {
  const tok = await gpt2();
  // tiktoken 1.0.22 (its Rust core, as WebAssembly) gives [220, 126, 227, 87]; js-tiktoken, whose regex is
  // JavaScript's (no U+0085 in \s), gives [1587, 227, 87].
  assert.deepEqual(Array.from(tok.encode(" \u0085x")), [220, 126, 227, 87]);
  assert.deepEqual(refIds(" \u0085x"), [1587, 227, 87]);
  assert.equal(tok.decode(tok.encode("a\u0085 \uFEFF b")), "a\u0085 \uFEFF b");
});

Deno.test("GPT-2 on tinyshakespeare (when ../shared/data has it): js-tiktoken's ids, and the speed", async () => {
  const path = "../shared/data/tinyshakespeare.txt";
  let text: string;
  try {
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
      throw new Error("no read permission");
    }
    text = await Deno.readTextFile(path);
  } catch (e) {
    console.log(`${path}: not read (${(e as Error).message.split("\n")[0]}); this part is skipped`);
    return;
  }
  const tok = await gpt2();
  tok.encode("warm up the pair table"); // built once per tokenizer, on the first merge
  const fresh = Gpt2Tokenizer.fromJSON(tok.toJSON()); // an empty piece cache
  fresh.encode("warm up");
  const t0 = performance.now();
  const ids = fresh.encode(text);
  const s = (performance.now() - t0) / 1000;
  const mb = new TextEncoder().encode(text).length / 1e6;
  const t1 = performance.now();
  const want = refIds(text);
  const sRef = (performance.now() - t1) / 1000;
  console.log(
    `tinyshakespeare: ${mb.toFixed(2)} MB, ${ids.length} tokens in ${s.toFixed(2)} s = ${
      (mb / s).toFixed(2)
    } MB/s ` +
      `(js-tiktoken: ${(mb / sRef).toFixed(2)} MB/s)`,
  );
  assert.equal(ids.length, want.length);
  assert.ok(ids.every((x, i) => x === want[i]));
  assert.equal(fresh.decode(ids), text);
  assert.ok(mb / s > 0.5, `encoding at ${(mb / s).toFixed(2)} MB/s`);
});

Deno.test("GPT-2's tokenizer in checkpoint JSON: merges only (~267 KB), the same ids after a round trip", async () => {
  const tok = await gpt2();
  const json = JSON.stringify(tok.toJSON());
  console.log(`gpt2 tokenizer JSON: ${json.length} bytes`);
  assert.ok(json.length < 300_000);
  const back = tokenizerFromJSON(JSON.parse(json));
  assert.equal(back.type, "gpt2");
  assert.equal(back.vocabSize, 50257);
  for (const s of CORPUS) assert.deepEqual(back.encode(s), tok.encode(s));
  // In a checkpoint: the model's vocab_size is the tokenizer's 50257.
  const c = tinyGPT({ n_head: 1, n_embd: 4, block_size: 4, vocab_size: 50257 });
  const { layout } = paramLayout(c);
  const ck = decodeModel(encodeModel(c, tok, layout, new Float32Array(layout.totalFloats)));
  assert.equal(ck.tokenizer.type, "gpt2");
  assert.deepEqual(ck.tokenizer.encode("Hello world"), Uint32Array.of(15496, 995));
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...tok.toJSON(), bits: 12 }, /"bits" must be 16 or 32/],
    [{ ...tok.toJSON(), merges: "!!" }, /not valid base64/],
    [{ ...tok.toJSON(), merges: btoa("\x05\x01\x00\x00") }, /merge 0 joins ids 261 and 0/],
    [{ ...tok.toJSON(), extra: 1 }, /unknown key "extra"/],
  ];
  for (const [rec, re] of bad) assert.throws(() => tokenizerFromJSON(rec), re);
});

Deno.test("GPT-2's files: a bad vocab.json or merges.txt, or a missing one, is one line naming it", async () => {
  const { vocab, merges } = gpt2Files();
  const cases: [string, string, RegExp][] = [
    [
      vocab.replace('"\u0120the":262', '"\u0120the":263'),
      merges,
      /vocab\.json gives "Ġthe" id 263 but merges\.txt makes it 262/,
    ],
    [
      vocab,
      merges.replace("\u0120 t\n", "\u0120  t\n"),
      /merges\.txt line 2 is "Ġ {2}t", not two tokens separated by one space/,
    ],
    [
      vocab,
      merges.replace("\u0120 t\n", "\u0120 xyz\n"),
      /merges\.txt line 2: "xyz" is not a token its earlier lines make/,
    ],
    [
      vocab.replace('"<|endoftext|>":50256', '"<|endoftext|>":50300'),
      merges,
      /special token "<\|endoftext\|>" id 50300/,
    ],
    ["[1, 2]", merges, /vocab\.json is an array of length 2, not an object/],
    ["{", merges, /vocab\.json is not valid JSON/],
  ];
  for (const [v, m, re] of cases) {
    assert.throws(() => Gpt2Tokenizer.fromFiles(v, m, "gpt2"), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  const empty = await Deno.makeTempDir({ prefix: "tforce-gpt2-empty-" });
  await assert.rejects(
    () => loadGpt2Tokenizer(empty),
    /gpt2 vocabulary '.*': cannot read vocab\.json \(no such file/,
  );
  await assert.rejects(() => loadGpt2Tokenizer(`${empty}/nothing`), /no such file or folder/);
  await Deno.remove(empty, { recursive: true });
});

Deno.test("--tokenizer gpt2 --vocab-file DIR: the config checks, and loadCorpus encodes with GPT-2's ids", async () => {
  const dir = await gpt2Folder();
  const base: TrainConfig = { ...DEFAULT_TRAIN, tokenizer: "gpt2" };
  validateTrainConfig({ ...base, vocab_file: dir });
  const refused: [Partial<TrainConfig>, RegExp][] = [
    [{}, /--tokenizer gpt2 needs --vocab-file DIR/],
    [{ vocab_file: dir, vocab_size: 1000 }, /--vocab-size does not apply to --tokenizer gpt2/],
    [{ vocab_file: dir, examples: "lines" }, /--examples lines needs a <pad> token/],
    [{ vocab_file: dir, tokenizer: "char" }, /--vocab-file applies to --tokenizer gpt2, not char/],
    [{ tokenizer: "gpt3" as "gpt2" }, /--tokenizer must be char, word, bpe or gpt2 \(got gpt3\)/],
  ];
  for (const [over, re] of refused) {
    assert.throws(
      () => validateTrainConfig({ ...base, ...over }),
      (e: unknown) => e instanceof InputError && re.test(errorLine(e)),
    );
  }
  assert.throws(() => trainTokenizer("gpt2", "text"), /not trained: load it with loadGpt2Tokenizer/);
  const text = CORPUS.slice(1, 17).join("\n").repeat(3);
  const data = `${dir}/data.txt`;
  await Deno.writeTextFile(data, text);
  const corpus = await loadCorpus({
    data,
    tokenizerType: "gpt2",
    vocabFile: dir,
    examples: "stream",
    blockSize: 8,
    seed: 1,
  });
  assert.equal(corpus.tokenizer.type, "gpt2");
  assert.equal(corpus.tokenizer.vocabSize, 50257);
  const all = [...corpus.train.tokens, ...corpus.val.tokens];
  assert.deepEqual(all, refIds(text));
  await assert.rejects(
    () => loadCorpus({ data, tokenizerType: "gpt2", examples: "stream", blockSize: 8, seed: 1 }),
    (e: unknown) => e instanceof InputError && /--tokenizer gpt2 needs --vocab-file DIR/.test(errorLine(e)),
  );
});

Deno.test("deno task train --tokenizer gpt2 --vocab-file DIR trains from scratch with GPT-2's vocabulary", async () => {
  const dir = await gpt2Folder();
  const out = await Deno.makeTempDir({ prefix: "tforce-gpt2-train-" });
  await Deno.writeTextFile(`${out}/data.txt`, CORPUS.slice(1, 17).join("\n").repeat(6));
  const flags = [
    "--n-layer=1",
    "--n-head=2",
    "--n-embd=16",
    "--block-size=8",
    "--batch-size=2",
    "--eval-iters=1",
  ];
  const { code, err } = await runCli([
    "train",
    ...flags,
    "--tokenizer=gpt2",
    `--vocab-file=${dir}`,
    `--data=${out}/data.txt`,
    "--steps=2",
    "--eval-interval=2",
    "--sample-chars=4",
    `--out=${out}/run`,
  ]);
  assert.equal(code, 0, err.join("\n"));
  const ck = await loadModel(`${out}/run/model.safetensors`);
  assert.equal(ck.tokenizer.type, "gpt2");
  assert.equal(ck.config.vocab_size, 50257);
  await Deno.remove(out, { recursive: true });
});
