/**
 * A user's runs are never lost or silently changed: a run folder belongs to one run (refusal, --overwrite,
 * a lock against concurrent runs, stale locks and temporary files of killed runs cleaned up), --resume
 * continues with the saved settings, signals save, every message names a file that exists, a failed
 * write names its file at once, and the end-of-run sample, eval and sample work for any vocabulary.
 */
import assert from "node:assert/strict";
import { train, TrainingDiverged } from "../src/train/trainer.ts";
import { loadTrainState } from "../src/train/state.ts";
import { loadModel } from "../src/model/checkpoint.ts";
import { evaluateTokens } from "../src/train/evaluate.ts";
import { readJsonl } from "../src/io/log.ts";
import { DEFAULT_TRAIN } from "../src/train/config.ts";
import { generateLanguage } from "../src/data/language.ts";
import { Rng } from "../src/util/rng.ts";
import { flagsOf, TINY_KEYS, tinyTrain } from "./fixtures.ts";
import { exists, testGpu } from "./helpers.ts";
import { runCli, waitForOutput as waitFor } from "./cli_run.ts";

/** The CLI in this process, its output as one text. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string[] }> {
  const r = await runCli(args);
  return { ...r, out: r.out.join("\n") };
}

const TINY = flagsOf(tinyTrain, [...TINY_KEYS, "eval_iters"]);

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const r = await run(args);
  assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.err}`);
  assert.equal(r.err.length, 1, `one line: ${JSON.stringify(r.err)}`);
  assert.match(r.err[0], pattern);
}

/** Every file below `dir` (relative name -> bytes). */
async function snapshot(dir: string, base = dir): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) { for (const [k, v] of await snapshot(p, base)) files.set(k, v); }
    else files.set(p.slice(base.length + 1), await Deno.readFile(p));
  }
  return files;
}

function trainSteps(records: Record<string, unknown>[]): number[] {
  return records.filter((r) => r.train_loss !== null).map((r) => r.step as number);
}

Deno.test("a folder holding a run is refused and left as it was; --overwrite moves the run aside", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-own-" });
  const first = [...TINY, "--steps=4", "--eval-interval=4", "--sample-chars=0", `--out=${dir}`];
  assert.equal((await run(["train", ...first])).code, 0);
  const before = await snapshot(dir);
  await refused(
    ["train", ...first],
    /^tforce train: --out '.*' holds another run \(model\.safetensors, best\.safetensors, train_state\.safetensors, log\.jsonl, loss\.svg\): --resume continues it, --overwrite moves it to /,
  );
  assert.deepEqual(await snapshot(dir), before, "a refused run changed the folder");

  const r = await run([
    "train",
    ...TINY,
    "--steps=2",
    "--eval-interval=2",
    "--sample-chars=0",
    `--out=${dir}`,
    "--overwrite",
  ]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const moved = /the previous run's files are now in (\S+)/.exec(r.out)?.[1];
  assert.ok(moved && moved.startsWith(`${dir}/replaced-`), r.out);
  const kept = await snapshot(moved);
  assert.deepEqual([...kept.keys()].sort(), [...before.keys()].sort());
  for (const [name, bytes] of before) assert.deepEqual(kept.get(name), bytes, `${name} changed when moved`);
  assert.deepEqual(trainSteps(await readJsonl(`${dir}/log.jsonl`)), [2]);
  assert.equal((await loadTrainState(`${dir}/train_state.safetensors`)).state.step, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--resume continues with the saved settings and schedule; contradicting flags are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-resume-" });
  const base = [...TINY, "--eval-interval=10", "--log-interval=1", "--warmup=2", "--sample-chars=0"];
  assert.equal((await run(["train", ...base, "--steps=20", `--out=${dir}`])).code, 0);
  const before = await snapshot(dir);
  const resume = ["train", `--out=${dir}`, "--resume"];
  await refused(
    [...resume, "--steps=30", "--n-embd=32"],
    /--n-embd 32 contradicts the run saved in '.*' \(16\)/,
  );
  await refused(
    [...resume, "--steps=30", "--tokenizer=bpe"],
    /--tokenizer bpe contradicts the run saved in .* \(char\)/,
  );
  await refused(
    [...resume, "--steps=30", "--lr=0.01"],
    /--lr 0\.01 contradicts the run saved in .* \(0\.003\)/,
  );
  await refused(
    [...resume, "--steps=30", `--init-from=${dir}/model.safetensors`],
    /--init-from .* cannot be combined with --resume/,
  );
  await refused([...resume, "--steps=10"], /--steps 10 is below step 20, which the run in '.*' has reached/);
  const idle = await run([...resume, "--steps=20"]);
  assert.equal(idle.code, 0);
  assert.match(idle.out, /nothing to do: the run in '.*' has completed its 20 steps/);
  assert.deepEqual(await snapshot(dir), before, "a refused or idle resume changed the folder");

  // No model or schedule flags: the saved ones (a 16-channel model, the cosine over the first run's 20 steps).
  const r = await run([...resume, "--steps=30"]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const log = await readJsonl(`${dir}/log.jsonl`);
  assert.deepEqual(trainSteps(log), Array.from({ length: 30 }, (_, i) => i + 1));
  for (const rec of log.filter((x) => (x.step as number) > 21 && x.train_loss !== null)) {
    assert.equal(rec.lr, DEFAULT_TRAIN.min_lr, `step ${rec.step}: the cosine ended at step 20`);
  }
  const st = await loadTrainState(`${dir}/train_state.safetensors`);
  assert.equal(st.state.step, 30);
  assert.equal(st.config.n_embd, 16);
  assert.equal(st.state.run?.lr_decay_steps, 20);
  assert.equal(st.state.run?.batch_size, 4);
  await Deno.remove(dir, { recursive: true });
});

const env = { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1" };

function spawnTrain(args: string[], cmd = "deno", pre: string[] = []): Deno.ChildProcess {
  return new Deno.Command(cmd, {
    args: [...pre, "run", "--allow-read", "--allow-write", "cli.ts", "train", ...TINY, ...args],
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
}

/** Sends `signal` once `pattern` is printed; the exit status, the stop message's checkpoint path and step. */
async function stopWith(child: Deno.ChildProcess, pattern: RegExp, signal: Deno.Signal) {
  const { rest } = await waitFor(child, pattern);
  child.kill(signal);
  const [status, tail, err] = await Promise.all([child.status, rest, new Response(child.stderr).text()]);
  const m = /stopped at step (\d+); checkpoint in (\S+) \(--resume continues\)/.exec(tail);
  assert.ok(m, `no stop message after ${signal}: ${tail} ${err}`);
  return { code: status.code, step: Number(m[1]), path: m[2] };
}

Deno.test("SIGTERM and SIGHUP save like Ctrl-C; a second training into a busy folder is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-term-" });
  const flags = [
    "--steps=100000",
    "--eval-interval=100000",
    "--log-interval=1",
    "--sample-chars=0",
    `--out=${dir}`,
  ];
  const child = spawnTrain(flags);
  const { rest } = await waitFor(child, /step 3: train loss/);
  await refused(
    ["train", ...TINY, "--steps=5", `--out=${dir}`],
    new RegExp(`--out '.*' is in use by another training \\(pid ${child.pid}\\)`),
  );
  child.kill("SIGTERM");
  const [status, tail] = await Promise.all([child.status, rest, child.stderr.cancel()]);
  assert.equal(status.code, 0);
  const m = /stopped at step (\d+); checkpoint in (\S+) \(--resume continues\)/.exec(tail);
  assert.ok(m, tail);
  assert.equal(m[2], `${dir}/model.safetensors`);
  assert.equal((await loadTrainState(`${dir}/train_state.safetensors`)).state.step, Number(m[1]));
  assert.ok(!await exists(`${dir}/.lock`), "the lock outlived its run");

  const again = spawnTrain([...flags, "--resume"]);
  const hup = await stopWith(again, new RegExp(`step ${Number(m[1]) + 2}: train loss`), "SIGHUP");
  assert.equal(hup.code, 0);
  assert.ok(hup.step >= Number(m[1]) + 2, `${hup.step}`);
  assert.equal((await loadTrainState(hup.path.replace("model.", "train_state."))).state.step, hup.step);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("after kill -9: the stale lock and temporary files are removed, and the log holds each step once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-kill9-" });
  const child = spawnTrain([
    "--steps=100000",
    "--eval-interval=10",
    "--log-interval=1",
    "--sample-chars=0",
    `--out=${dir}`,
  ]);
  const { rest } = await waitFor(child, /step 14: train loss/);
  // The step-10 checkpoint is written in the background: kill once it is on disk.
  for (let i = 0; i < 200 && !await exists(`${dir}/train_state.safetensors`); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await Promise.all([child.status, rest, child.stderr.cancel()]);
  assert.ok(await exists(`${dir}/.lock`), "kill -9 leaves the lock");
  const k = (await loadTrainState(`${dir}/train_state.safetensors`)).state.step;
  const logged = trainSteps(await readJsonl(`${dir}/log.jsonl`));
  assert.ok(Math.max(...logged) > k, `the killed run logged steps past its checkpoint (${k})`);
  const tmp = `${dir}/.model.safetensors.tmp-${child.pid}-0123456789ab`; // what a kill inside a write leaves
  await Deno.writeTextFile(tmp, "half a checkpoint");
  const r = await run(["train", `--out=${dir}`, "--resume", `--steps=${k + 2}`]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.match(r.out, new RegExp(`took over the lock of process ${child.pid}, which no longer runs`));
  // The planted file, and any the kill itself left (it may land inside a write).
  assert.match(r.out, /removed \d+ temporary file\(s\) of a killed run: .*\.model\.safetensors\.tmp-/);
  assert.ok(!await exists(tmp), "the temporary file is still there");
  for await (const e of Deno.readDir(dir)) assert.ok(!/\.tmp-/.test(e.name), `${e.name} is still there`);
  assert.ok(!await exists(`${dir}/.lock`));
  assert.deepEqual(
    trainSteps(await readJsonl(`${dir}/log.jsonl`)),
    Array.from({ length: k + 2 }, (_, i) => i + 1),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stop messages name only files that exist", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce-names-" });
  const stop = new AbortController();
  stop.abort(); // Ctrl-C before the first step completes
  const r = await train({ ...tinyTrain, out: dir }, { gpu, signal: stop.signal });
  assert.equal(r.stopped, "aborted");
  assert.equal(r.checkpoint, null);
  assert.ok(!await exists(`${dir}/model.safetensors`));

  // A learning rate of 1e30 overflows the weights: the loss is not finite before the first evaluation.
  const out = `${dir}/diverged`;
  await assert.rejects(
    train({ ...tinyTrain, lr: 1e30, min_lr: 0, steps: 50, eval_interval: 50, log_interval: 1, out }, { gpu }),
    (e: unknown) => {
      assert.ok(e instanceof TrainingDiverged, String(e));
      assert.match(
        e.message,
        /^training stopped: (loss|gradient norm) is (NaN|Infinity|-Infinity) at step \d+.*; no checkpoint was written$/,
      );
      return true;
    },
  );
  assert.ok(!await exists(`${out}/model.safetensors`));
  await Deno.remove(dir, { recursive: true });
});

/** Whether this process may make a mount namespace with a small tmpfs (root on Linux). */
const canMount = Deno.build.os === "linux" && (() => {
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"] }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "a full disk stops the run at the failed write, naming the file",
  ignore: !canMount,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "tforce-full-" });
    // 160 KiB holds the first checkpoint (4 KiB pages: train_state 56, model and best 24 each, log, plot,
    // lock), not a second train_state beside the first.
    const script = `mount -t tmpfs -o size=160k tmpfs "$1" && shift && exec "$@"`;
    const args = [
      ...TINY,
      "--steps=100",
      "--eval-interval=5",
      "--log-interval=1",
      "--sample-chars=0",
      `--out=${dir}`,
    ];
    const out = await new Deno.Command("unshare", {
      args: [
        "-m",
        "sh",
        "-c",
        script,
        "sh",
        dir,
        "deno",
        "run",
        "--allow-read",
        "--allow-write",
        "cli.ts",
        "train",
        ...args,
      ],
      env,
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n");
    assert.equal(out.code, 1, stderr.join("\n"));
    assert.equal(stderr.length, 1, stderr.join("\n"));
    assert.match(
      stderr[0],
      new RegExp(
        `^tforce train: cannot write '${dir}/train_state\\.safetensors': No space left on device \\(os error 28\\) ` +
          `at step 1\\d; the last checkpoint \\(step 5\\) is kept in ${dir}/model\\.safetensors$`,
      ),
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("a vocabulary without space or newline: the run's sample, eval and sample all work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-dna-" });
  const rng = new Rng(7);
  const dna = Array.from({ length: 4000 }, () => "ACGT"[rng.int(4)]).join("");
  await Deno.writeTextFile(`${dir}/dna.txt`, dna);
  const r = await run([
    "train",
    ...TINY,
    "--steps=4",
    "--eval-interval=4",
    "--sample-chars=30",
    `--data=${dir}/dna.txt`,
    `--out=${dir}/run`,
  ]);
  assert.equal(r.code, 0, r.err.join("\n"));
  const sample = r.out.split("sample (temperature 0.8):\n")[1];
  assert.match(sample, /^[ACGT]{30}$/);
  const s = await run(["sample", `--checkpoint=${dir}/run/model.safetensors`, "--max-tokens=12"]);
  assert.equal(s.code, 0, s.err.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval and sample work on the default run's checkpoint as the README writes them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-quick-" });
  const t = await run([
    "train",
    ...TINY,
    "--steps=4",
    "--eval-interval=4",
    "--sample-chars=0",
    `--out=${dir}`,
  ]);
  assert.equal(t.code, 0, t.err.join("\n"));
  const e = await run(["eval", "--checkpoint", `${dir}/model.safetensors`]);
  assert.equal(e.code, 0, e.err.join("\n"));
  const res = JSON.parse(e.out.split("\n").at(-1)!);
  // The held-out text: the last 10% of the generated language of the run's seed, one token a character.
  const ck = await loadModel(`${dir}/model.safetensors`);
  const ids = ck.tokenizer.encode(generateLanguage({ seed: DEFAULT_TRAIN.seed }).text);
  const heldOut = ids.slice(Math.floor(ids.length * 0.9));
  assert.equal(res.tokens, heldOut.length - 1);
  const ref = await evaluateTokens(ck, heldOut, { gpu: await testGpu() });
  assert.ok(Math.abs(res.loss - ref.loss) < 1e-6 && res.loss > 0.6, `${res.loss} vs ${ref.loss}`);
  const s = await run(["sample", "--checkpoint", `${dir}/model.safetensors`, "--max-tokens", "20"]);
  assert.equal(s.code, 0, s.err.join("\n"));
  await Deno.remove(dir, { recursive: true });
});
