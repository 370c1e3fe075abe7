/**
 * PyTorch cross-check (llm.c style): a checkpoint written by `train` loads into a module laid out as
 * nanoGPT's model.py with load_state_dict(strict=True), and PyTorch's loss and logits on a fixed batch
 * equal the engine's; and ten training steps (clip, AdamW with nanoGPT's groups) from the same weights give
 * the same losses (bench/nanogpt_check.py). Runs where /usr/bin/python3 has torch (.ci/run installs
 * Debian's python3-torch); elsewhere it is reported as ignored.
 */
import { hasTorch, PYTHON } from "./python.ts";
import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import { tinyTrain } from "./fixtures.ts";
import { nanogptBatch } from "../bench/nanogpt_batch.ts";
import { CHECK_CONFIG, engineSteps } from "../bench/nanogpt_train.ts";
import { train } from "../src/train/trainer.ts";

/** Runs bench/nanogpt_check.py with `args`; its one JSON line, or a failure with its last words. */
async function check(args: string[]): Promise<Record<string, number | string | boolean>> {
  const r = await new Deno.Command(PYTHON, {
    args: ["bench/nanogpt_check.py", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout).trim(), err = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `nanogpt_check.py failed: ${out} ${err.split("\n").slice(-3).join(" ")}`);
  return JSON.parse(out);
}

const torchHere = await hasTorch();
if (!torchHere) console.log(`nanogpt.test.ts: no torch for ${PYTHON}; the PyTorch cross-check is ignored`);

for (const [bias, dtype] of [[true, "float32"], [false, "float16"]] as const) {
  Deno.test({
    name:
      `a checkpoint loads into nanoGPT's layout (strict) and PyTorch agrees: bias=${bias}, trained in ${dtype}`,
    ignore: !torchHere,
    fn: async () => {
      const gpu = await testGpu();
      const dir = await Deno.makeTempDir({ prefix: "tforce-nanogpt-" });
      await train({ ...tinyTrain, bias, dtype, n_layer: 2, out: dir }, { gpu });
      const batchPath = `${dir}/batch.json`;
      await Deno.writeTextFile(
        batchPath,
        JSON.stringify(await nanogptBatch(gpu, `${dir}/model.safetensors`, 3)),
      );
      const j = await check([`${dir}/model.safetensors`, batchPath]);
      console.log(
        `loss torch ${j.loss_torch} ours ${j.loss_ours} (rel ${j.loss_rel_diff}); logits ${j.logits_max_abs_diff}`,
      );
      assert.equal(j.strict, "<All keys matched successfully>");
      assert.ok((j.loss_rel_diff as number) < 1e-5 && (j.logits_max_abs_diff as number) < 1e-4);
      await Deno.remove(dir, { recursive: true });
    },
  });
}

for (const dtype of ["float32", "float16"] as const) {
  Deno.test({
    name: `ten training steps give PyTorch's losses from the same weights and batch (${dtype})`,
    ignore: !torchHere,
    fn: async () => {
      const gpu = await testGpu();
      const dir = await Deno.makeTempDir({ prefix: "tforce-nanogpt-train-" });
      const { run, init } = await engineSteps(gpu, CHECK_CONFIG, 4, 10, dtype);
      await Deno.writeFile(`${dir}/init.safetensors`, init);
      await Deno.writeTextFile(`${dir}/train.json`, JSON.stringify(run));
      const j = await check(["--train", `${dir}/init.safetensors`, `${dir}/train.json`]);
      console.log(`${dtype}: 10 steps, max relative loss difference vs PyTorch ${j.max_rel_diff}`);
      assert.equal(j.ok, true);
      assert.ok(run.losses[9] < run.losses[0] - 0.5, "the engine's loss did not fall");
      await Deno.remove(dir, { recursive: true });
    },
  });
}
