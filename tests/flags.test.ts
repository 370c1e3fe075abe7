/**
 * The command line's conventions: nanoGPT's flag names (kebab or snake case) are aliases of tforce's, and
 * an unknown flag is one line naming it with the nearest accepted flag.
 */
import assert from "node:assert/strict";
import { parseTrainArgs } from "../cli.ts";
import { runCli } from "./cli_run.ts";
import { closestFlag, editDistance, NANOGPT_ALIASES } from "../src/cli/flags.ts";

/** `args` exits 2 with exactly the stderr line `line`. */
async function refused(args: string[], line: string): Promise<void> {
  const r = await runCli(args);
  assert.deepEqual([r.code, r.err], [2, [line]], args.join(" "));
}

Deno.test("an unknown flag is one line with the nearest accepted flag, or a pointer to --help", async () => {
  await refused(
    ["train", "--max-iter", "5"],
    "tforce train: Unknown option '--max-iter' (did you mean --max-iters?)",
  );
  await refused(["train", "--stpes", "5"], "tforce train: Unknown option '--stpes' (did you mean --steps?)");
  await refused(
    ["train", "--lerning_rate=1"],
    "tforce train: Unknown option '--lerning_rate' (did you mean --learning-rate?)",
  );
  await refused(["train", "--no-bais"], "tforce train: Unknown option '--no-bais' (did you mean --no-bias?)");
  await refused(["train", "--bogus"], "tforce train: Unknown option '--bogus' (--help lists the flags)");
  await refused(
    ["eval", "--chekpoint", "x"],
    "tforce eval: Unknown option '--chekpoint' (did you mean --checkpoint?)",
  );
  await refused(
    ["sample", "--max-new-token", "5"],
    "tforce sample: Unknown option '--max-new-token' (did you mean --max-new-tokens?)",
  );
  await refused(
    ["experiment", "--oracle-char", "2"],
    "tforce experiment: Unknown option '--oracle-char' (did you mean --oracle-chars?)",
  );
  // Flags stop at `--`; values are not flags.
  await refused(
    ["train", "--steps", "1", "--", "--bogus"],
    "tforce train: Unexpected argument '--bogus'. This command does not take positional arguments",
  );
});

Deno.test("nanoGPT's names, in kebab or snake case, give the same config as tforce's", () => {
  const ours = parseTrainArgs([
    "--steps",
    "50",
    "--lr",
    "0.01",
    "--out",
    "d",
    "--warmup",
    "3",
    "--lr-decay-steps",
    "40",
    "--grad-accum",
    "2",
    "--n-layer",
    "3",
    "--no-bias",
  ]);
  const kebab = parseTrainArgs([
    "--max-iters",
    "50",
    "--learning-rate",
    "0.01",
    "--out-dir",
    "d",
    "--warmup-iters",
    "3",
    "--lr-decay-iters",
    "40",
    "--gradient-accumulation-steps",
    "2",
    "--n-layer",
    "3",
    "--no-bias",
  ]);
  const snake = parseTrainArgs([
    "--max_iters=50",
    "--learning_rate",
    "0.01",
    "--out_dir=d",
    "--warmup_iters",
    "3",
    "--lr_decay_iters=40",
    "--gradient_accumulation_steps",
    "2",
    "--n_layer=3",
    "--no_bias",
  ]);
  assert.deepEqual(kebab, ours);
  assert.deepEqual(snake, ours);
  assert.deepEqual(
    [
      ours.steps,
      ours.lr,
      ours.out,
      ours.warmup,
      ours.lr_decay_steps,
      ours.grad_accum,
      ours.n_layer,
      ours.bias,
    ],
    [50, 0.01, "d", 3, 40, 2, 3, false],
  );
  // A negative number after an alias still reaches the range check.
  assert.equal(parseTrainArgs(["--learning-rate", "-1"]).lr, -1);
});

Deno.test("train --help and sample --help name nanoGPT's aliases", async () => {
  for (
    const [cmd, aliases] of [["train", NANOGPT_ALIASES.train], ["sample", NANOGPT_ALIASES.sample]] as const
  ) {
    const r = await runCli([cmd, "--help"]);
    const text = r.out.join("\n");
    for (const [alias, flag] of Object.entries(aliases)) {
      assert.ok(text.includes(`--${alias} (--${flag}),`), alias);
    }
  }
});

Deno.test("edit distance counts a swap of neighbours as one edit; far names get no suggestion", () => {
  assert.equal(editDistance("stpes", "steps"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(closestFlag("dataset", ["data", "val"]), undefined);
  assert.equal(closestFlag("STEPS", ["steps"]), "steps");
});
