/**
 * Bad input gets one line naming the problem and the value given, and exit status 2; the exit-status
 * convention is printed by --help. Cases: data that is not UTF-8, checkpoints with NaN/Inf weights or a
 * tokenizer that disagrees with vocab_size, numeric flags out of range (negative values in both
 * spellings), and input errors that used to exit 1.
 */
import assert from "node:assert/strict";
import { EVAL_FLAGS, EXIT_STATUS, isNumeric, joinNegativeNumbers, trainFlags } from "../src/cli/flags.ts";
import { trainTokenizer } from "../src/data/tokenizer.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { encodeSafetensors } from "../src/io/safetensors.ts";
import { modelTensors } from "../src/model/checkpoint.ts";
import { checkMemory } from "../src/model/memory.ts";
import { paramLayout } from "../src/model/params.ts";
import { InputError } from "../src/util/errors.ts";
import { invalidUtf8Offset } from "../src/util/utf8.ts";
import { Rng } from "../src/util/rng.ts";
import { hostOf, randomWeights, saveWeights, tinyFlags, tinyGPT } from "./fixtures.ts";
import { expectCliError as expectError, runCli as run } from "./cli_run.ts";

const TEXT = "hello world, the quick brown fox jumps over the lazy dog.\n".repeat(20);
const tok = trainTokenizer("char", TEXT);
const model = tinyGPT({ n_embd: 8, vocab_size: tok.vocabSize, bias: true });

/** A checkpoint of `model` whose weight `name` has `value` at `index`. */
async function poisoned(path: string, name: string, index: number, value: number): Promise<void> {
  const w = randomWeights(model, 1);
  w[name][index] = value;
  await saveWeights(path, model, tok, w);
}

/** A scratch folder with the text, a good checkpoint and bytes that are not UTF-8 (0xff at offset 600). */
async function scratch(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tforce-input-" });
  await Deno.writeTextFile(`${dir}/ok.txt`, TEXT);
  const bad = new TextEncoder().encode(TEXT);
  bad[600] = 0xff;
  await Deno.writeFile(`${dir}/bad.bin`, bad);
  await saveWeights(`${dir}/good.safetensors`, model, tok, randomWeights(model, 1));
  return dir;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

Deno.test("invalidUtf8Offset finds the first ill-formed sequence at its known offset", () => {
  const b = (...x: number[]) => new Uint8Array(x);
  const enc = (s: string) => new TextEncoder().encode(s);
  const cases: [string, Uint8Array, number][] = [
    ["empty", b(), -1],
    ["ASCII", enc("abc"), -1],
    ["2-, 3- and 4-byte forms", enc("héllo € 😀"), -1],
    [
      "U+D7FF, U+E000, U+FFFF, U+10FFFF",
      b(0xed, 0x9f, 0xbf, 0xee, 0x80, 0x80, 0xef, 0xbf, 0xbf, 0xf4, 0x8f, 0xbf, 0xbf),
      -1,
    ],
    ["0xff", b(0x61, 0xff), 1],
    ["0xfe", b(0xfe), 0],
    ["lone continuation byte", b(0x61, 0x62, 0x80), 2],
    ["overlong 2-byte '/' (0xc0 0xaf)", b(0x61, 0x62, 0xc0, 0xaf), 2],
    ["overlong 2-byte 0xc1", b(0xc1, 0xbf), 0],
    ["overlong 3-byte (0xe0 0x80 0xaf)", b(0x41, 0xe0, 0x80, 0xaf), 1],
    ["overlong 3-byte (0xe0 0x9f 0xbf)", b(0xe0, 0x9f, 0xbf), 0],
    ["overlong 4-byte (0xf0 0x8f ...)", b(0xf0, 0x8f, 0xbf, 0xbf), 0],
    ["surrogate U+D800", b(0x41, 0x42, 0x43, 0xed, 0xa0, 0x80), 3],
    ["surrogate U+DFFF", b(0xed, 0xbf, 0xbf), 0],
    ["past U+10FFFF (0xf4 0x90)", b(0x41, 0xf4, 0x90, 0x80, 0x80), 1],
    ["lead 0xf5", b(0xf5, 0x80, 0x80, 0x80), 0],
    ["3-byte sequence cut by the end", b(0x41, 0xe2, 0x82), 1],
    ["4-byte sequence cut by the end", b(0xf0, 0x9f, 0x98), 0],
    ["2-byte lead at the end", b(0x61, 0x62, 0x63, 0xc3), 3],
    ["bad second continuation", b(0x61, 0x62, 0xe2, 0x82, 0x41), 2],
    ["valid, then a bad continuation", b(0xe2, 0x82, 0xac, 0xe2, 0x28, 0xa1), 3],
    ["after 1000 bytes", new Uint8Array([...enc("x".repeat(1000)), 0x80]), 1000],
  ];
  for (const [what, bytes, want] of cases) assert.equal(invalidUtf8Offset(bytes), want, what);
  // Against the platform: bytes before the offset decode strictly, the whole fails, and the lenient
  // decoder puts its first U+FFFD right after that prefix.
  const rng = new Rng(7);
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
  const pool = [
    0x41,
    0x7f,
    0x80,
    0x9f,
    0xa0,
    0xbf,
    0xc2,
    0xdf,
    0xe0,
    0xed,
    0xef,
    0xf0,
    0xf4,
    0xf5,
    0xc0,
    0xff,
  ];
  for (let n = 0; n < 3000; n++) {
    const bytes = Uint8Array.from({ length: 1 + rng.int(8) }, () => pool[rng.int(pool.length)]);
    const at = invalidUtf8Offset(bytes);
    let valid = true;
    try {
      fatal.decode(bytes);
    } catch {
      valid = false;
    }
    assert.equal(at === -1, valid, `${[...bytes]}`);
    if (at >= 0) {
      const prefix = fatal.decode(bytes.subarray(0, at));
      assert.ok(lenient.decode(bytes).startsWith(prefix + "\uFFFD"), `${[...bytes]}`);
    }
  }
});

Deno.test("data that is not UTF-8 is refused with the offset of its first bad byte; --allow-invalid-utf8 decodes it", async () => {
  const dir = await scratch();
  const out = ["--out", `${dir}/run`];
  const bad = (what: string) =>
    new RegExp(
      `^tforce \\w+: ${what} file '${esc(dir)}/bad\\.bin' is not valid UTF-8: bad byte 0xff at offset 600 ` +
        `\\(--allow-invalid-utf8 decodes it with U\\+FFFD replacement characters\\)$`,
    );
  await expectError(["train", "--data", `${dir}/bad.bin`, ...out], bad("data"));
  await expectError(
    ["train", "--data", `${dir}/ok.txt`, "--val", `${dir}/bad.bin`, ...out],
    bad("validation"),
  );
  const ck = ["--checkpoint", `${dir}/good.safetensors`];
  await expectError(["eval", ...ck, "--data", `${dir}/bad.bin`], bad("data"));
  await expectError(["eval", ...ck, "--data", `${dir}/bad.bin`, "--exposure"], bad("data"));
  // Allowed, the bytes decode: training gets as far as the next check (a block longer than the text),
  // and eval as far as the char tokenizer, which has no U+FFFD.
  await expectError(
    ["train", "--data", `${dir}/bad.bin`, "--allow-invalid-utf8", "--block-size", "4096", ...out],
    /^tforce train: data: the training split has \d+ tokens, fewer than block_size\+1 = 4097$/,
  );
  await expectError(
    ["eval", ...ck, "--data", `${dir}/bad.bin`, "--allow-invalid-utf8"],
    /^tforce eval: data: char tokenizer: character "\uFFFD" \(U\+FFFD\) at offset 600 is not in the vocabulary/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkpoints with NaN or infinite weights are refused at load, naming the tensor and index", async () => {
  const dir = await scratch();
  await poisoned(`${dir}/nan.safetensors`, "transformer.h.0.attn.c_attn.weight", 5, NaN);
  await poisoned(`${dir}/inf.safetensors`, "transformer.wpe.weight", 0, -Infinity);
  const nan = new RegExp(
    `: ${
      esc(dir)
    }/nan\\.safetensors: tensor 'transformer\\.h\\.0\\.attn\\.c_attn\\.weight' holds NaN at index 5 of 192 `,
  );
  const data = ["--data", `${dir}/ok.txt`];
  await expectError(["eval", "--checkpoint", `${dir}/nan.safetensors`, ...data], nan);
  await expectError(["eval", "--checkpoint", `${dir}/nan.safetensors`, ...data, "--exposure"], nan);
  await expectError(["sample", "--checkpoint", `${dir}/nan.safetensors`], nan);
  await expectError(
    ["sample", "--checkpoint", `${dir}/inf.safetensors`],
    /inf\.safetensors: tensor 'transformer\.wpe\.weight' holds -Infinity at index 0 of 64 \(weights must be finite\)$/,
  );
  await expectError(["train", "--init-from", `${dir}/nan.safetensors`, ...data, "--out", `${dir}/ft`], nan);
  // train_state.safetensors is read by modelFromFile too.
  const w = randomWeights(model, 2);
  w["transformer.ln_f.weight"][3] = NaN;
  const [tensors, meta] = modelTensors(model, tok, paramLayout(model).layout, hostOf(model, w), {
    step: "4",
  });
  const state = tensors.filter((t) => t.name !== "lm_head.weight");
  for (const t of [...state]) {
    state.push({ ...t, name: `exp_avg.${t.name}` }, { ...t, name: `exp_avg_sq.${t.name}` });
  }
  await Deno.mkdir(`${dir}/run`);
  await Deno.writeFile(
    `${dir}/run/train_state.safetensors`,
    encodeSafetensors(state, { ...meta, train_rng: "1", eval_rng: "2" }),
  );
  await expectError(
    ["train", "--resume", "--out", `${dir}/run`, ...data, "--steps", "8"],
    /train_state\.safetensors: tensor 'transformer\.ln_f\.weight' holds NaN at index 3 of 8 /,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a checkpoint with fewer rows than its tokenizer has tokens is refused with both numbers; more is padding", async () => {
  const dir = await scratch();
  const n = tok.vocabSize;
  const fewer = { ...model, vocab_size: n - 2 };
  await saveWeights(`${dir}/fewer.safetensors`, fewer, tok, randomWeights(fewer, 1));
  const want = new RegExp(
    `fewer\\.safetensors: tokenizer has ${n} tokens but the model's vocab_size is only ${n - 2}$`,
  );
  await expectError(["eval", "--checkpoint", `${dir}/fewer.safetensors`, "--data", `${dir}/ok.txt`], want);
  await expectError(["sample", "--checkpoint", `${dir}/fewer.safetensors`], want);
  // More rows than tokens is a padded vocabulary (nanoGPT's 50304 for GPT-2): it evaluates and samples.
  const padded = { ...model, vocab_size: n + 3 };
  await saveWeights(`${dir}/padded.safetensors`, padded, tok, randomWeights(padded, 1));
  const evaluated = await run([
    "eval",
    "--checkpoint",
    `${dir}/padded.safetensors`,
    "--data",
    `${dir}/ok.txt`,
  ]);
  assert.equal(evaluated.code, 0, evaluated.err.join("\n"));
  const sampled = await run([
    "sample",
    "--checkpoint",
    `${dir}/padded.safetensors`,
    "--max-new-tokens",
    "40",
  ]);
  assert.equal(sampled.code, 0, sampled.err.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("every numeric flag of every command is range-checked, the message showing the value given", async () => {
  const dir = await scratch();
  const out = ["--out", `${dir}/run`];
  // [flag, value, message]: every numeric train flag, negative values given as a separate argument.
  const train: [string, string, string][] = [
    ["vocab-size", "-5", "--vocab-size must be an integer >= 3 for the word tokenizer (got -5)"],
    ["n-layer", "0", "--n-layer must be a positive integer (got 0)"],
    ["n-head", "-1", "--n-head must be a positive integer (got -1)"],
    ["n-embd", "2.5", "--n-embd must be a positive integer (got 2.5)"],
    ["block-size", "-64", "--block-size must be a positive integer (got -64)"],
    ["batch-size", "0", "--batch-size must be a positive integer (got 0)"],
    ["grad-accum", "-1", "--grad-accum must be a positive integer (got -1)"],
    ["dropout", "-0.1", "--dropout must be in [0, 1) (got -0.1)"],
    ["steps", "-5", "--steps must be a positive integer (got -5)"],
    ["lr", "-1", "--lr must be > 0 (got -1)"],
    ["min-lr", "-1", "--min-lr must be in [0, lr = 0.003] (got -1)"],
    ["warmup", "-1", "--warmup must be an integer >= 0 (got -1)"],
    ["lr-decay-steps", "0", "--lr-decay-steps must be a positive integer (got 0)"],
    ["weight-decay", "-0.1", "--weight-decay must be >= 0 (got -0.1)"],
    ["beta1", "-0.5", "--beta1 must be in [0, 1) (got -0.5)"],
    ["beta2", "1", "--beta2 must be in [0, 1) (got 1)"],
    ["grad-clip", "-1", "--grad-clip must be >= 0 (got -1)"],
    ["eval-interval", "0", "--eval-interval must be a positive integer (got 0)"],
    ["eval-iters", "-1", "--eval-iters must be a positive integer (got -1)"],
    ["log-interval", "0", "--log-interval must be a positive integer (got 0)"],
    ["seed", "-1", "--seed must be an integer in [0, 2^32) (got -1)"],
    ["sample-chars", "-1", "--sample-chars must be an integer >= 0 (got -1)"],
    ["prefix", "-1", "--prefix must be an integer in [1, block_size = 64) (got -1)"],
    ["ss-k", "-1", "--ss-k must be in [0, 1] for the linear schedule (got -1)"],
    ["ss-c", "-1", "--ss-c must be >= 0 (got -1)"],
    ["ss-min", "-0.5", "--ss-min must be in [0, 1] (got -0.5)"],
  ];
  const numeric = Object.entries(trainFlags()).filter(([, f]) => isNumeric(f)).map(([k]) => k);
  assert.deepEqual(train.map(([k]) => k).sort(), numeric.sort(), "a case for every numeric train flag");
  for (const [flag, value, msg] of train) {
    const extra = flag === "vocab-size" ? ["--tokenizer", "word"] : [];
    const want = new RegExp(`^tforce (train|experiment): ${esc(msg)}$`);
    for (const cmd of ["train", "experiment"]) {
      await expectError([cmd, `--${flag}`, value, ...extra, ...out], want); // --lr -1
      await expectError([cmd, `--${flag}=${value}`, ...extra, ...out], want); // --lr=-1
    }
  }
  const more: [string[], string][] = [
    [["train", "--lr", "0"], "--lr must be > 0 (got 0)"],
    [["train", "--steps=-1e3"], "--steps must be a positive integer (got -1000)"],
    [["train", "--seed", "4294967296"], "--seed must be an integer in [0, 2^32) (got 4294967296)"],
    [["train", "--dropout", "1"], "--dropout must be in [0, 1) (got 1)"],
    [
      ["train", "--vocab-size", "100"],
      "--vocab-size applies to the word and bpe tokenizers, not char (got --vocab-size 100)",
    ],
    [
      ["train", "--tokenizer", "bpe", "--vocab-size", "100"],
      "--vocab-size must be an integer in [256, 2097152] for the bpe tokenizer (got 100)",
    ],
    [
      ["train", "--tokenizer", "bpe", "--examples", "lines", "--vocab-size", "256"],
      "--vocab-size must be an integer in [257, 2097152] for the bpe tokenizer with --examples lines (got 256)",
    ],
    [
      ["train", "--tokenizer", "word", "--vocab-size", "2"],
      "--vocab-size must be an integer >= 3 for the word tokenizer (got 2)",
    ],
    [["train", "--lr", "abc"], "--lr expects a number (got 'abc')"],
    [["experiment", "--target", "-1"], "--target must be > 0 (got -1)"],
    [["experiment", "--window", "0"], "--window must be a positive integer (got 0)"],
    [["experiment", "--windows", "-2"], "--windows must be a positive integer (got -2)"],
    [["experiment", "--windows=1.5"], "--windows must be a positive integer (got 1.5)"],
  ];
  for (const [args, msg] of more) {
    await expectError([...args, ...out], new RegExp(`^tforce \\w+: ${esc(msg)}$`));
  }

  // eval and sample check their numbers before reading the checkpoint (this one does not exist).
  const ev = ["eval", "--checkpoint", `${dir}/none.safetensors`, "--data", `${dir}/ok.txt`];
  const evalCases: [string[], string][] = [
    [["--batch-size", "0"], "--batch-size must be a positive integer (got 0)"],
    [["--batch-size", "-2"], "--batch-size must be a positive integer (got -2)"],
    [["--batch-size=1.5"], "--batch-size must be a positive integer (got 1.5)"],
    [["--exposure", "--batch-size", "0"], "--batch-size must be a positive integer (got 0)"],
    [["--exposure", "--windows", "0"], "--windows must be a positive integer (got 0)"],
    [["--exposure", "--windows", "-3"], "--windows must be a positive integer (got -3)"],
    [["--exposure", "--prefix", "0"], "--prefix must be an integer >= 1 (got 0)"],
    [["--exposure", "--prefix", "-3"], "--prefix must be an integer >= 1 (got -3)"],
    [["--exposure", "--seed", "-1"], "--seed must be an integer in [0, 2^32) (got -1)"],
    [["--exposure", "--seed=4294967296"], "--seed must be an integer in [0, 2^32) (got 4294967296)"],
    [
      ["--exposure", "--allow-invalid-utf8"],
      "--allow-invalid-utf8 does not apply to --exposure (its --data must be UTF-8)",
    ],
    [["--windows", "5"], "--windows needs --exposure"],
  ];
  for (const [args, msg] of evalCases) {
    await expectError([...ev, ...args], new RegExp(`^tforce eval: ${esc(msg)}$`));
  }

  const sm = ["sample", "--checkpoint", `${dir}/none.safetensors`];
  const sampleCases: [string[], string][] = [
    [["--max-tokens", "0"], "--max-tokens must be a positive integer (got 0)"],
    [["--max-tokens", "-3"], "--max-tokens must be a positive integer (got -3)"],
    [["--max-tokens=-3"], "--max-tokens must be a positive integer (got -3)"],
    [["--temperature", "-1"], "--temperature must be >= 0 (got -1)"],
    [["--temperature=-0.5"], "--temperature must be >= 0 (got -0.5)"],
    [["--top-k", "-1"], "--top-k must be an integer >= 0 (got -1)"],
    [["--top-k", "1.5"], "--top-k must be an integer >= 0 (got 1.5)"],
    [["--seed", "-1"], "--seed must be an integer in [0, 2^32) (got -1)"],
    [["--seed", "4294967296"], "--seed must be an integer in [0, 2^32) (got 4294967296)"],
    [["--seed", "2.5"], "--seed must be an integer in [0, 2^32) (got 2.5)"],
  ];
  for (const [args, msg] of sampleCases) {
    await expectError([...sm, ...args], new RegExp(`^tforce sample: ${esc(msg)}$`));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("joinNegativeNumbers joins only a numeric flag's value that parses as a number", () => {
  const table = trainFlags();
  assert.deepEqual(joinNegativeNumbers(["--lr", "-1", "--steps", "-2e3"], table), [
    "--lr=-1",
    "--steps=-2e3",
  ]);
  assert.deepEqual(joinNegativeNumbers(["--lr", "3", "--lr", "-x"], table), ["--lr", "3", "--lr", "-x"]);
  assert.deepEqual(joinNegativeNumbers(["--data", "-1", "--out", "-2"], table), [
    "--data",
    "-1",
    "--out",
    "-2",
  ]);
  assert.deepEqual(joinNegativeNumbers(["--bogus", "-1", "--lr=-1"], table), ["--bogus", "-1", "--lr=-1"]);
  assert.deepEqual(joinNegativeNumbers(["--", "--lr", "-1"], table), ["--", "--lr", "-1"]);
  assert.deepEqual(joinNegativeNumbers(["--lr"], table), ["--lr"]);
  assert.deepEqual(joinNegativeNumbers(["--seed", "-1"], EVAL_FLAGS), ["--seed=-1"]);
});

Deno.test("exit status: one convention, printed by --help, bad input 2 however it is found", async () => {
  for (
    const form of [["--help"], ["train", "--help"], ["eval", "--help"], ["sample", "--help"], [
      "experiment",
      "--help",
    ]]
  ) {
    const r = await run(form);
    assert.equal(r.code, 0);
    const text = r.out.join("\n");
    assert.ok(text.endsWith(EXIT_STATUS), `${form.join(" ")} ends with the exit statuses`);
    for (
      const line of [
        /^ {2}0 {4}success/m,
        /^ {2}1 {4}a failure during a run/m,
        /^ {2}2 {4}bad input/m,
        /^ {2}3 {4}training diverged/m,
        /^ {2}130 {2}a second Ctrl-C/m,
      ]
    ) {
      assert.match(text, line, form.join(" "));
    }
  }
  const dir = await scratch();
  const out = ["--out", `${dir}/run`];
  await Deno.writeTextFile(`${dir}/empty.txt`, "");
  await Deno.writeTextFile(`${dir}/short.txt`, "abcdefghij");
  // Each of these used to exit 1: config validation, unreadable or unusable files, checkpoint decoding.
  await expectError(
    ["train", "--data", `${dir}/ok.txt`, "--n-embd", "30", "--n-head", "4", ...out],
    /divisible by --n-head/,
  );
  await expectError(
    ["train", "--data", `${dir}/missing.txt`, ...out],
    /data file '.*missing\.txt': no such file$/,
  );
  await expectError(["train", "--data", `${dir}/empty.txt`, ...out], /data file '.*empty\.txt' is empty$/);
  await expectError(
    ["train", "--data", `${dir}/short.txt`, "--block-size", "64", ...out],
    /fewer than block_size\+1 = 65$/,
  );
  await expectError(
    ["train", "--mode", "bogus", ...out],
    /--mode must be teacher-forcing, free-running or scheduled-sampling \(got bogus\)$/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/none.safetensors`, "--data", `${dir}/ok.txt`],
    /none\.safetensors: cannot read checkpoint/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/ok.txt`, "--data", `${dir}/ok.txt`],
    /ok\.txt: header length \d+ exceeds/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/good.safetensors`, "--data", `${dir}/missing.txt`],
    /no such file$/,
  );
  await expectError(
    ["sample", "--checkpoint", `${dir}/good.safetensors`, "--prompt", "Zebra"],
    /--prompt: char tokenizer: character "Z"/,
  );
  // Configurations too large for the adapter are refused before any allocation (InputError, status 2).
  await expectError(
    [
      "train",
      "--n-embd",
      "16384",
      "--n-head",
      "1",
      "--n-layer",
      "1",
      "--block-size",
      "8",
      "--batch-size",
      "1",
      ...out,
    ],
    /^tforce train: this configuration needs [\d.]+ GiB in one buffer \(parameters \d+, transformer\.h\.0\.mlp\.c_fc\.weight \[\d+ floats\]\) but the adapter allows /,
  );
  const gpu = { limits: { maxStorageBufferBindingSize: 1024, maxBufferSize: 4096 } } as unknown as Gpu;
  assert.throws(
    () => checkMemory(gpu, [{ name: "big", bytes: 2048 }], "make it smaller"),
    (e: unknown) =>
      e instanceof InputError &&
      /needs 2 KiB in one buffer \(big\) but the adapter allows 1 KiB/.test(e.message),
  );
  // A run whose loss goes NaN: status 3 (and a checkpoint of no diverged step).
  await expectError(
    [
      "train",
      ...["--lr", "1e30", "--warmup", "0", "--min-lr", "0", "--grad-clip", "0"],
      ...tinyFlags,
      ...["--steps", "20", "--eval-interval", "20", "--log-interval", "1", "--sample-chars", "0", ...out],
    ],
    /^tforce train: training stopped: /,
    3,
  );
  await Deno.remove(dir, { recursive: true });
});
