/**
 * The library's front door: train from text or a file with nothing written unless asked, save the trained
 * model or take its bytes, generate from a checkpoint in one call, and the README's library example run
 * as written from a folder outside the repository.
 */
import assert from "node:assert/strict";
import { decodeModel } from "../src/model/checkpoint.ts";
import { DEFAULT_SAMPLING, Generator } from "../src/model/generate.ts";
import { sampleCheckpoint } from "../src/train/sample.ts";
import { train } from "../src/train/trainer.ts";
import { evaluateCheckpoint } from "../src/train/evaluate.ts";
import type { TrainConfig } from "../src/train/config.ts";
import { tinyTrain } from "./fixtures.ts";
import { exists, refuses, testGpu } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** tinyTrain without its run folder: what a library caller gives. */
function tiny(): Partial<TrainConfig> {
  const { out: _, ...rest } = tinyTrain;
  return rest;
}

const TEXT = "the cat sat on the mat. the dog sat on the log.\n".repeat(40);

/** The names in `dir`, sorted. */
async function names(dir: string): Promise<string[]> {
  const got: string[] = [];
  for await (const e of Deno.readDir(dir)) got.push(e.name);
  return got.sort();
}

Deno.test("train from text writes nothing; save: false keeps even a given out unwritten", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce-lib-" });
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    const r = await train({ ...tiny(), text: TEXT }, { gpu });
    assert.equal(r.checkpoint, null);
    assert.ok(Number.isFinite(r.finalValLoss));
    // A peak rate below the default final rate decays to a tenth of itself, as nanoGPT's configs do.
    assert.equal(r.config.min_lr, tiny().min_lr);
    const low = await train({ ...tiny(), min_lr: undefined, lr: 2e-5, steps: 2, text: TEXT }, { gpu });
    assert.equal(low.config.min_lr, 2e-5 / 10);
    await refuses(
      () => train({ ...tiny(), lr: 2e-5, min_lr: 1e-4, text: TEXT }, { gpu }),
      /^min_lr must be in \[0, lr = 0\.00002\] \(got 0\.0001\)$/,
    );
    const off = await train({ ...tiny(), text: TEXT, out: "run", save: false }, { gpu });
    assert.equal(off.checkpoint, null);
    assert.deepEqual(await names(dir), [], "the working folder stays empty");
    await refuses(
      () => train({ ...tiny(), text: TEXT, data: "input.txt" }, { gpu }),
      /from text or from data/,
    );
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trained model saves, gives its bytes, and generates the same text from either", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce-lib-" });
  try {
    const r = await train({ ...tiny(), text: TEXT }, { gpu });
    const bytes = await r.model.bytes();
    const ck = decodeModel(bytes);
    assert.deepEqual(ck.config, r.model.config);
    assert.deepEqual(ck.tokenizer.toJSON(), r.corpus.tokenizer.toJSON());
    assert.equal(ck.metadata.step, "6");
    assert.equal(ck.metadata.train_config, undefined, "a run on given text names no held-out text");
    await r.model.save(`${dir}/model.safetensors`);
    assert.deepEqual(await Deno.readFile(`${dir}/model.safetensors`), bytes);

    const greedy = { temperature: 0 };
    const live = await (await r.model.generator(greedy)).generateText("the ", 40);
    const fromPath = await Generator.fromCheckpoint(`${dir}/model.safetensors`, { gpu, ...greedy });
    const fromBytes = await Generator.fromCheckpoint(bytes, { gpu, ...greedy });
    assert.equal(await fromPath.generateText("the ", 40), live);
    assert.equal(await fromBytes.generateText("the ", 40), live);
    assert.equal(live.length, 40, "a char model: one character a token");

    // Sampling defaults are DEFAULT_SAMPLING's; a call's own options win, streamed text adds up.
    const gen = await Generator.fromCheckpoint(bytes, { gpu });
    assert.deepEqual(gen.sampling, DEFAULT_SAMPLING);
    let streamed = "";
    const text = await gen.generateText("", 30, { seed: 7, onText: (t) => void (streamed += t) });
    assert.equal(streamed, text);
    assert.equal(await gen.generateText("", 30, { seed: 7 }), text);
    const [viaSample] = await sampleCheckpoint(`${dir}/model.safetensors`, { gpu, maxTokens: 30, seed: 7 });
    assert.equal(viaSample, text, "sampleCheckpoint's defaults are the generator's");
    await refuses(() => gen.generateText("€", 5), /^prompt: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train with out saves the run folder as before", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce-lib-" });
  try {
    const r = await train({ ...tiny(), text: TEXT, out: dir }, { gpu });
    assert.equal(r.checkpoint?.path, `${dir}/model.safetensors`);
    assert.ok(await exists(`${dir}/train_state.safetensors`));
    // The text is nowhere on disk: evaluating without data asks for it rather than guessing a corpus.
    await refuses(
      () => evaluateCheckpoint(`${dir}/model.safetensors`, undefined, { gpu }),
      /model\.safetensors does not record the data it was trained on: give data FILE$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The first fenced block of `lang` after `heading` in the README. */
async function readmeBlock(heading: string, lang: string): Promise<string> {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const at = readme.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README has no '${heading}'`);
  const m = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(readme.slice(at));
  assert.ok(m, `no ${lang} block under '${heading}'`);
  return m[1];
}

Deno.test("the README's library example runs as written from a folder outside the repository", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-consumer-" });
  try {
    const code = await readmeBlock("## As a library", "ts");
    const config = await readmeBlock("## As a library", "json");
    assert.match(config, /"\.\.\/tforce"/, "the README links a clone beside the project");
    await Deno.writeTextFile(`${dir}/main.ts`, code);
    await Deno.writeTextFile(`${dir}/deno.json`, config.replace(`"../tforce"`, JSON.stringify(ROOT)));
    await Deno.writeTextFile(`${dir}/input.txt`, TEXT.repeat(10));
    const command = /deno run [^`\n]*main\.ts/.exec(await Deno.readTextFile(`${ROOT}/README.md`))?.[0];
    assert.ok(command, "the README says how to run it");
    const [, ...args] = command.split(" ");
    const out = await new Deno.Command("deno", {
      args,
      cwd: dir,
      env: { NO_COLOR: "1", XDG_RUNTIME_DIR: "/tmp" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${command}:\n${stdout}\n${stderr}`);
    assert.match(stdout, /best val loss \d\.\d{3}/);
    // What it wrote: the model it saved, and Deno's lockfile; no run folder.
    assert.deepEqual(await names(dir), [
      "deno.json",
      "deno.lock",
      "input.txt",
      "main.ts",
      "model.safetensors",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the package imported by path needs no import map of its own", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-consumer-" });
  try {
    const code =
      `import { DEFAULT_TRAIN } from "@tforce/core";\nimport { Kernel } from "@tforce/core/kernels";\n` +
      `console.log(DEFAULT_TRAIN.steps, typeof Kernel);\n`;
    await Deno.writeTextFile(`${dir}/main.ts`, code);
    const imports = {
      "@tforce/core": `file://${ROOT}/mod.ts`,
      "@tforce/core/kernels": `file://${ROOT}/kernels.ts`,
    };
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ imports }));
    const out = await new Deno.Command("deno", { args: ["run", "main.ts"], cwd: dir, env: { NO_COLOR: "1" } })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout), "1000 function\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno publish --dry-run lists the library's files, not tests, benchmarks, the page or reports", async () => {
  const out = await new Deno.Command("deno", {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  const prefix = `file://${ROOT}/`;
  const files = text.split("\n").map((l) => l.trim()).filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length).split(" (")[0]);
  assert.ok(files.includes("mod.ts") && files.includes("kernels.ts") && files.includes("cli.ts"), `${files}`);
  assert.ok(files.some((f) => f.startsWith("shaders/")), "the shaders are published");
  for (const f of files) {
    assert.ok(!/^(tests|bench|web|reports|out)\//.test(f) && f !== "deno.dev.lock", `published: ${f}`);
  }
});
