/** Bad input at the command line: one line on stderr naming the problem, a non-zero exit, no stack trace. */
import assert from "node:assert/strict";
import { parseTrainArgs } from "../cli.ts";
import { expectCliError as expectError, runCli } from "./cli_run.ts";
import {
  ConfigError,
  DEFAULT_TRAIN,
  kebab,
  PRESETS,
  type TrainConfig,
  validateTrainConfig,
} from "../src/train/config.ts";
import { errorLine } from "../src/cli/errors.ts";
import { EVAL_FLAGS, EXPERIMENT_FLAGS, SAMPLE_FLAGS, TRAIN_FLAG_HELP, wrap } from "../src/cli/flags.ts";
import { encodeSafetensors } from "../src/io/safetensors.ts";

Deno.test("train refuses bad flags and bad data with one line each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-cli-" });
  await Deno.writeTextFile(`${dir}/empty.txt`, "");
  await Deno.writeTextFile(`${dir}/short.txt`, "abcdefghij");
  await Deno.writeTextFile(`${dir}/ok.txt`, "hello world ".repeat(200));
  await expectError(["train", "--bogus"], /Unknown option '--bogus'/, 2);
  await expectError(["train", "--steps", "abc"], /--steps expects a number/, 2);
  await expectError(["train", "--data", `${dir}/missing.txt`], /data file .*missing\.txt.*no such file/);
  await expectError(["train", "--data", `${dir}/empty.txt`], /is empty/);
  await expectError(
    ["train", "--data", `${dir}/short.txt`, "--block-size", "64"],
    /fewer than block_size\+1 = 65/,
  );
  await expectError(
    ["train", "--data", `${dir}/ok.txt`, "--n-embd", "30", "--n-head", "4"],
    /divisible by --n-head/,
  );
  await expectError(
    ["train", "--data", `${dir}/ok.txt`, "--tokenizer", "xyz"],
    /--tokenizer must be char, word, bpe or gpt2/,
  );
  await expectError(["train", "--resume", "--out", `${dir}/nothing`], /cannot resume \(no such file\)/);
  await expectError(["train", "--dtype", "bfloat16"], /--dtype must be float32 or float16 \(got bfloat16\)/);
  await expectError(["train", "--preset", "gpt9"], /unknown preset 'gpt9' \(have: shakespeare-char\)/, 2);
  await expectError(["frobnicate"], /unknown command 'frobnicate'/, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval and sample refuse missing, truncated and lying checkpoints with one line each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-cli-" });
  await Deno.writeTextFile(`${dir}/data.txt`, "some text to evaluate\n");
  const good = encodeSafetensors([{ name: "x", shape: [2], data: new Float32Array([1, 2]) }], {
    config: "{}",
  });
  await Deno.writeFile(`${dir}/truncated.safetensors`, good.subarray(0, good.length - 3));
  const lying = good.slice();
  new DataView(lying.buffer).setBigUint64(0, 1_000_000n, true); // header length past the end of the file
  await Deno.writeFile(`${dir}/lying.safetensors`, lying);
  await Deno.writeFile(`${dir}/noconfig.safetensors`, encodeSafetensors([]));
  await expectError(["eval", "--data", `${dir}/data.txt`], /eval needs --checkpoint/, 2);
  await expectError(
    ["eval", "--checkpoint", `${dir}/none.safetensors`, "--data", `${dir}/data.txt`],
    /cannot read/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/truncated.safetensors`, "--data", `${dir}/data.txt`],
    /truncated/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/lying.safetensors`, "--data", `${dir}/data.txt`],
    /header/,
  );
  await expectError(
    ["eval", "--checkpoint", `${dir}/noconfig.safetensors`, "--data", `${dir}/data.txt`],
    /config/,
  );
  await expectError(["sample", "--checkpoint", `${dir}/truncated.safetensors`], /truncated/);
  await expectError(
    ["sample", "--checkpoint", `${dir}/x`, "--max-tokens=-3"],
    /--max-tokens must be a positive/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--preset shakespeare-char is nanoGPT's recipe; later flags override it", () => {
  const c = parseTrainArgs(["--preset", "shakespeare-char", "--steps", "100", "--dtype", "float16"]);
  const want = PRESETS["shakespeare-char"];
  for (const [k, v] of Object.entries(want)) {
    if (k !== "steps") assert.equal(c[k as keyof typeof c], v, k);
  }
  assert.equal(c.steps, 100);
  assert.equal(c.dtype, "float16");
  assert.deepEqual(
    [c.n_layer, c.n_head, c.n_embd, c.block_size, c.batch_size, c.dropout, c.lr, c.min_lr, c.warmup],
    [6, 6, 384, 256, 64, 0.2, 1e-3, 1e-4, 100],
  );
});

/** main() with stdout and stderr captured, each as one text. */
async function runCaptured(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args);
  return { code: r.code, out: r.out.join("\n"), err: r.err.join("\n") };
}

Deno.test("--help lists every flag each command accepts, on stdout with status 0, within 100 columns", async () => {
  const tables = {
    train: ["preset", ...Object.keys(TRAIN_FLAG_HELP).map(kebab)],
    eval: Object.keys(EVAL_FLAGS),
    sample: Object.keys(SAMPLE_FLAGS),
    experiment: [...Object.keys(EXPERIMENT_FLAGS), ...Object.keys(TRAIN_FLAG_HELP).map(kebab)],
  };
  for (const [cmd, flags] of Object.entries(tables)) {
    for (const form of [[cmd, "--help"], [cmd, "--steps", "3", "-h"], ["help", cmd]]) {
      const r = await runCaptured(form);
      assert.equal(r.code, 0, form.join(" "));
      assert.equal(r.err, "");
      assert.match(r.out, new RegExp(`^usage: deno task ${cmd} `));
      for (const f of flags) {
        assert.match(r.out, new RegExp(`^  --${f}\\b`, "m"), `${cmd} --help lacks --${f}`);
      }
      const wide = r.out.split("\n").filter((l) => l.length > 100);
      assert.deepEqual(wide, [], `${cmd} --help: lines over 100 columns`);
    }
  }
  // Defaults come from DEFAULT_TRAIN; a number flag's value form makes the parser convert it.
  const train = (await runCaptured(["train", "--help"])).out;
  assert.match(train, /--lr X {2,}peak learning rate \(default 0\.003\)/);
  assert.match(train, /--tokenizer char\|word\|bpe\|gpt2\n +char: code points;/);
  // The overview: `help` and `--help` on stdout (0); no command at all on stderr (2).
  for (const form of [["help"], ["--help"], ["-h"]]) {
    const r = await runCaptured(form);
    assert.equal(r.code, 0);
    assert.match(r.out, /^usage: deno task train \| eval \| sample \| experiment/);
  }
  const none = await runCaptured([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /^usage: deno task train \| eval/);
  assert.deepEqual(wrap("aa bb cc dddddd", 5), ["aa bb", "cc", "dddddd"]);
});

Deno.test("every train flag parses back to its default's type and value", () => {
  for (const [key, d] of Object.entries(DEFAULT_TRAIN)) {
    const flag = `--${kebab(key)}`;
    const argv = typeof d === "boolean" ? [d ? flag : `--no-${kebab(key)}`] : [flag, String(d)];
    assert.equal(parseTrainArgs(argv)[key as keyof typeof DEFAULT_TRAIN], d, argv.join(" "));
  }
  // Optional keys without a default parse to numbers or strings by their value form.
  const c = parseTrainArgs([
    "--vocab-size",
    "300",
    "--lr-decay-steps",
    "50",
    "--ss-k",
    "0.5",
    "--val",
    "v.txt",
  ]);
  assert.deepEqual([c.vocab_size, c.lr_decay_steps, c.ss_k, c.val], [300, 50, 0.5, "v.txt"]);
});

Deno.test("config errors name settings by key; the command line words them as flags, values untouched", () => {
  const refused = (over: Partial<TrainConfig>) => {
    try {
      validateTrainConfig({ ...DEFAULT_TRAIN, ...over });
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return [e.message, errorLine(e)];
    }
    throw new Error("accepted");
  };
  assert.deepEqual(refused({ lr_decay_steps: 0 }), [
    "lr_decay_steps must be a positive integer (got 0)",
    "--lr-decay-steps must be a positive integer (got 0)",
  ]);
  assert.deepEqual(refused({ vocab_file: "tokenizer vocab_file" }), [
    "vocab_file applies to tokenizer gpt2, not char (got vocab_file tokenizer vocab_file)",
    "--vocab-file applies to --tokenizer gpt2, not char (got --vocab-file tokenizer vocab_file)",
  ]);
  assert.deepEqual(refused({ tokenizer: "gpt2" }), [
    "tokenizer gpt2 needs vocab_file DIR (a folder of GPT-2's vocab.json and merges.txt)",
    "--tokenizer gpt2 needs --vocab-file DIR (a folder of GPT-2's vocab.json and merges.txt)",
  ]);
  assert.equal(errorLine(new Error("first\nsecond")), "first");
});
