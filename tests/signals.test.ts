/**
 * Faults from outside: Ctrl-C (SIGINT) during training saves the last completed step and exits 0;
 * SIGKILL at any moment leaves the previous checkpoint intact (writes are temp file + rename); --resume
 * after either continues exactly like a run that was never stopped. Runs the real CLI in a subprocess.
 */
import assert from "node:assert/strict";
import type { TrainConfig } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";
import { loadModel } from "../src/model/checkpoint.ts";
import { loadTrainState } from "../src/train/state.ts";
import { testGpu } from "./helpers.ts";
import { flagsOf, TINY_KEYS, tinyTrain } from "./fixtures.ts";
import { waitForOutput as waitFor } from "./cli_run.ts";

// Every run sets its own steps and eval_interval.
const cfg: TrainConfig = { ...tinyTrain, log_interval: 1, lr_decay_steps: 200 };
const flags = flagsOf(cfg, [...TINY_KEYS, "eval_iters", "log_interval", "sample_chars", "lr_decay_steps"]);

function spawnTrain(out: string, extra: string[]): Deno.ChildProcess {
  return new Deno.Command("deno", {
    args: ["run", "--allow-read", "--allow-write", "cli.ts", "train", ...flags, `--out=${out}`, ...extra],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" },
  }).spawn();
}

async function sameWeights(a: string, b: string): Promise<void> {
  const wa = (await loadModel(a)).weights, wb = (await loadModel(b)).weights;
  for (const [name, t] of wa) assert.deepEqual(t, wb.get(name), `${name} differs`);
}

/**
 * Resumes the run in `dir` in-process up to `s.steps` and checks its weights against an uninterrupted run
 * to the same step; removes both folders.
 */
async function resumesExactly(dir: string, s: { steps: number; eval_interval: number }): Promise<void> {
  const gpu = await testGpu();
  await train({ ...cfg, ...s, out: dir, resume: true }, { gpu });
  const ref = await Deno.makeTempDir({ prefix: "tforce-ref-" });
  await train({ ...cfg, ...s, out: ref }, { gpu });
  await sameWeights(`${dir}/model.safetensors`, `${ref}/model.safetensors`);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(ref, { recursive: true });
}

Deno.test("Ctrl-C saves the last completed step, exits 0, and --resume continues exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-sigint-" });
  const child = spawnTrain(dir, ["--steps=100000", "--eval-interval=100000"]);
  const { rest } = await waitFor(child, /step 8: train loss/);
  child.kill("SIGINT");
  const [status, tail, err] = await Promise.all([
    child.status,
    rest,
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.code, 0, `exit ${status.code}: ${err}`);
  const m = /stopped at step (\d+); checkpoint in/.exec(tail);
  assert.ok(m, `no stop message in: ${tail}`);
  const k = Number(m[1]);
  assert.equal((await loadTrainState(`${dir}/train_state.safetensors`)).state.step, k);
  await resumesExactly(dir, { steps: k + 3, eval_interval: 100000 });
});

Deno.test("SIGKILL during checkpointing never leaves a broken checkpoint, and --resume continues exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-sigkill-" });
  // A checkpoint every step, so the kill lands inside or between writes.
  const child = spawnTrain(dir, ["--steps=100000", "--eval-interval=1"]);
  await waitFor(child, /step 6: val loss/);
  await new Promise((r) => setTimeout(r, 7)); // somewhere in the next write
  child.kill("SIGKILL");
  await child.status;
  await child.stderr.cancel();
  const st = await loadTrainState(`${dir}/train_state.safetensors`); // must decode: never half-written
  await loadModel(`${dir}/model.safetensors`);
  const k = st.state.step;
  assert.ok(k >= 5, `step ${k}`); // 5 when the kill landed inside the write of step 6
  await resumesExactly(dir, { steps: k + 2, eval_interval: 1 });
});
