/**
 * Command line: `deno task train | eval | sample | experiment [flags]` (this file with the command as its first
 * argument). Every train flag maps 1:1 to a TrainConfig key in kebab case; nanoGPT's names (`--max-iters`)
 * and snake case (`--n_layer=6`) are accepted too, and an unknown flag is refused with the nearest one.
 * src/cli/flags.ts holds each command's flags for the parser and `--help` alike. Exit status (EXIT_STATUS, printed by `--help`): 0
 * success; 1 a failure during a run; 2 bad input (any InputError, with one line on stderr naming the
 * problem and the value given); 3 training diverged; 130 a second Ctrl-C.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_TRAIN, PRESETS, type TrainConfig, validateTrainConfig } from "./src/train/config.ts";
import {
  aliasHelp,
  canonicalFlags,
  commandHelp,
  EVAL_FLAGS,
  EXPERIMENT_FLAGS,
  type FlagTable,
  isNumeric,
  joinNegativeNumbers,
  NANOGPT_ALIASES,
  OVERVIEW,
  parseOptions,
  SAMPLE_FLAGS,
  trainFlags,
  trainKey,
  wantsHelp,
} from "./src/cli/flags.ts";
import { train, TrainingDiverged } from "./src/train/trainer.ts";
import type { StepRecord } from "./src/train/log.ts";
import { evaluateCheckpoint } from "./src/train/evaluate.ts";
import { sampleCheckpoint } from "./src/train/sample.ts";
import { Progress } from "./src/io/progress.ts";
import { exposureCheckpoint, exposurePlotSvg } from "./src/train/exposure.ts";
import {
  type DecodeRule,
  epsilon,
  epsilonSchedule,
  prefixOf,
  TRAIN_MODES,
  type TrainMode,
} from "./src/train/modes.ts";
import { runExperiment } from "./src/train/experiment.ts";
import { writeFileAtomic } from "./src/io/atomic.ts";
import { InputError } from "./src/util/errors.ts";
import { errorLine, UsageError } from "./src/cli/errors.ts";
import { savedRun } from "./src/train/state.ts";
import type { LoadOptions } from "./src/model/checkpoint.ts";

/**
 * `argv` parsed against `table`: nanoGPT's `aliases` and snake case accepted, an unknown flag refused with
 * the nearest accepted name.
 */
function parse(argv: string[], table: FlagTable, aliases: Readonly<Record<string, string>> = {}) {
  // `--lr -1`: parseArgs would call the separate "-1" ambiguous; joined, it reaches the range check.
  const args = joinNegativeNumbers(canonicalFlags(argv, table, aliases), table);
  try {
    const options = parseOptions(table);
    return parseArgs({ args, options, allowPositionals: false, strict: true, allowNegative: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]);
  }
}

function toNumber(flag: string, v: string): number {
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x)) throw new UsageError(`--${flag} expects a number (got '${v}')`);
  return x;
}

/** `x` when it is a positive integer, else a UsageError showing it. */
function positiveInt(flag: string, x: number): number {
  if (!(Number.isInteger(x) && x >= 1)) {
    throw new UsageError(`--${flag} must be a positive integer (got ${x})`);
  }
  return x;
}

/** Parses `train` flags into a TrainConfig over the defaults. */
export function parseTrainArgs(argv: string[]): TrainConfig {
  return parseTrainAnd(argv, {}).cfg;
}

/**
 * `train` flags plus `extra` ones: the TrainConfig over the defaults, the settings the command line gave
 * (a preset's and the flags': what a resume checks against the saved run), and the extra values.
 */
function parseTrainAnd(
  argv: string[],
  extra: FlagTable,
): { cfg: TrainConfig; given: Partial<TrainConfig>; extra: Record<string, string | boolean | undefined> } {
  const flags = trainFlags();
  const { values } = parse(argv, { ...flags, ...extra }, NANOGPT_ALIASES.train);
  const preset = values.preset as string | undefined;
  if (preset !== undefined && !Object.hasOwn(PRESETS, preset)) {
    throw new UsageError(`--preset: unknown preset '${preset}' (have: ${Object.keys(PRESETS).join(", ")})`);
  }
  const given: Record<string, unknown> = { ...(preset ? PRESETS[preset] : {}) };
  const rest: Record<string, string | boolean | undefined> = {};
  for (const [flag, v] of Object.entries(values)) {
    if (flag === "preset") continue;
    if (flag in extra) {
      rest[flag] = v as string | boolean;
      continue;
    }
    const key = trainKey(flag)!;
    given[key] = isNumeric(flags[flag]) ? toNumber(flag, v as string) : v;
  }
  const cfg = { ...DEFAULT_TRAIN, ...given } as TrainConfig;
  return { cfg, given: given as Partial<TrainConfig>, extra: rest };
}

function fmt(x: number | null, digits = 4): string {
  return x === null ? "-" : x.toFixed(digits);
}

async function runTrain(argv: string[]): Promise<number> {
  const { given } = parseTrainAnd(argv, {});
  const out = given.out ?? DEFAULT_TRAIN.out;
  if (given.resume) {
    const saved = await savedRun(out);
    const steps = given.steps ?? saved?.run?.steps ?? DEFAULT_TRAIN.steps;
    if (saved && steps === saved.step) {
      console.log(
        `nothing to do: the run in '${out}' has completed its ${saved.step} steps ` +
          `(give --steps above ${saved.step} to continue it)`,
      );
      return 0;
    }
  }
  // SIGINT (Ctrl-C), SIGTERM (kill, systemd, docker stop) and SIGHUP (a closed terminal): finish the step in
  // flight, save a checkpoint of it, exit 0. A second signal exits at once with status 130.
  const shown: { progress?: Progress } = {};
  const say = (line: string) => shown.progress ? shown.progress.line(line) : console.log(line);
  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) Deno.exit(130);
    say("interrupted: saving a checkpoint of the last completed step (interrupt again to quit now)");
    stop.abort();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const sig of signals) Deno.addSignalListener(sig, onSignal);
  let result;
  try {
    result = await trainWithSignal(given, (p) => shown.progress = p, stop.signal);
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
  }
  shown.progress?.finish();
  const saved = result.checkpoint;
  const where = !saved
    ? "no checkpoint was written"
    : saved.step === result.steps
    ? `checkpoint in ${saved.path}`
    : `the last checkpoint (step ${saved.step}) is in ${saved.path}`;
  if (result.stopped === "aborted") {
    console.log(`stopped at step ${result.steps}; ${where}${saved ? " (--resume continues)" : ""}`);
    return 0;
  }
  const er = result.entropyRate;
  console.log(
    `done: ${result.steps} steps, best val loss ${fmt(result.bestValLoss)}` +
      (er !== undefined
        ? ` (best achievable ${er.toFixed(4)}, gap ${(result.bestValLoss - er).toFixed(4)})`
        : "") +
      `; ${where}`,
  );
  const cfg = result.config;
  if (cfg.sample_chars > 0) {
    const gen = await result.model.generator({ temperature: 0.8, seed: cfg.seed });
    console.log(`sample (temperature 0.8):\n${await gen.generateText("", cfg.sample_chars)}`);
  }
  return 0;
}

function trainWithSignal(
  given: Partial<TrainConfig>,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
) {
  let progress: Progress;
  return train({ ...given, save: true }, {
    signal,
    onStart: (s) => {
      const cfg = s.config;
      progress = new Progress(cfg.steps);
      onProgress(progress);
      const f = s.folder;
      if (f?.staleLockPid !== undefined) {
        console.log(`took over the lock of process ${f.staleLockPid}, which no longer runs`);
      }
      if (f?.removedTemp.length) {
        console.log(
          `removed ${f.removedTemp.length} temporary file(s) of a killed run: ${f.removedTemp.join(", ")}`,
        );
      }
      if (f?.movedTo) console.log(`--overwrite: the previous run's files are now in ${f.movedTo}`);
      console.log(`tforce: ${s.corpus}`);
      console.log(
        `model: ${s.model.n_layer} layers, ${s.model.n_head} heads, ${s.model.n_embd} channels, block ${s.model.block_size}, ` +
          `vocab ${s.model.vocab_size}, ${(s.params / 1e6).toFixed(3)}M parameters; adapter: ${s.adapter}`,
      );
      if (s.entropyRate !== undefined) {
        console.log(
          `best achievable loss (the language's entropy rate): ${s.entropyRate.toFixed(4)} nats/token`,
        );
      }
      if (cfg.mode !== "teacher-forcing") console.log(`mode: ${describeMode(cfg)}`);
      if (cfg.dtype === "float16") {
        console.log(
          "precision: float16 operands, float32 arithmetic and master weights, dynamic loss scaling",
        );
      }
      if (s.startStep > 0) console.log(`resuming at step ${s.startStep}`);
      progress.start(s.startStep);
    },
    onRecord: (r: StepRecord) => {
      if (r.val_loss !== null) {
        progress.line(`step ${r.step}: val loss ${fmt(r.val_loss)}`);
      } else {
        progress.update(r.step, r.train_loss!, r.tokens_per_s!, r.elapsed_s);
        if (!progress.interactive) {
          console.log(
            `step ${r.step}: train loss ${fmt(r.train_loss)}, lr ${r.lr.toExponential(2)}, ` +
              `grad norm ${fmt(r.grad_norm, 3)}, ${Math.round(r.tokens_per_s!)} tok/s` +
              (r.skipped ? ` (float16 overflow: step skipped, loss scale ${r.loss_scale} halved)` : ""),
          );
        }
      }
    },
  });
}

/** One line describing a non-default training mode. */
function describeMode(cfg: TrainConfig): string {
  if (cfg.mode === "free-running") {
    return `free-running: gold prefix ${prefixOf(cfg)}, then the model's own ${cfg.fr_decode} tokens`;
  }
  const s = epsilonSchedule(cfg);
  return `scheduled-sampling (two-pass, ${cfg.ss_decode}): eps ${s.schedule}, k ${s.k.toPrecision(4)}` +
    (s.schedule === "linear" ? `, c ${s.c.toPrecision(4)}` : "") + `, floor ${s.min}; ` +
    `eps ${epsilon(0, s).toFixed(3)} at step 1, ${epsilon(cfg.steps - 1, s).toFixed(3)} at step ${cfg.steps}`;
}

/** eval's and sample's --n-head, --meta and --vocab-file: how to read a checkpoint from elsewhere. */
function loadOptions(values: Record<string, string | boolean | undefined>): LoadOptions {
  const heads = values["n-head"];
  const nHead = heads === undefined ? undefined : toNumber("n-head", heads as string);
  if (nHead !== undefined && !(Number.isInteger(nHead) && nHead >= 1)) {
    throw new UsageError(`--n-head must be a positive integer (got ${nHead})`);
  }
  return {
    nHead,
    meta: values.meta as string | undefined,
    vocab: values["vocab-file"] as string | undefined,
  };
}

async function runEval(argv: string[]): Promise<number> {
  const { values } = parse(argv, EVAL_FLAGS);
  if (!values.checkpoint) throw new UsageError("eval needs --checkpoint FILE");
  if (values.exposure) return await runExposure(values as Record<string, string | boolean | undefined>);
  for (const k of ["prefix", "fr-decode", "windows", "seed", "plot", "oracle", "rollouts"]) {
    if (values[k] !== undefined) throw new UsageError(`--${k} needs --exposure`);
  }
  const batch = values["batch-size"];
  const batchSize = batch === undefined
    ? undefined
    : positiveInt("batch-size", toNumber("batch-size", batch as string));
  const r = await evaluateCheckpoint(values.checkpoint as string, values.data as string | undefined, {
    batchSize,
    allowInvalidUtf8: values["allow-invalid-utf8"] as boolean | undefined,
    load: loadOptions(values),
  });
  console.log(JSON.stringify(r));
  return 0;
}

/**
 * `eval --exposure`: per position, KL(p* ‖ model) after the gold and after the model's own history where
 * there is an oracle, and the drift of the predictions; a line per figure, the JSON last, an SVG plot.
 */
async function runExposure(values: Record<string, string | boolean | undefined>): Promise<number> {
  const num = (k: string) => values[k] === undefined ? undefined : toNumber(k, values[k] as string);
  const posInt = (k: string) => {
    const x = num(k);
    return x === undefined ? undefined : positiveInt(k, x);
  };
  if (values["allow-invalid-utf8"]) {
    throw new UsageError("--allow-invalid-utf8 does not apply to --exposure (its --data must be UTF-8)");
  }
  // The prefix's upper bound, the checkpoint's block size, is exposureCheckpoint's to check.
  const prefix = num("prefix");
  if (prefix !== undefined && !(Number.isInteger(prefix) && prefix >= 1)) {
    throw new UsageError(`--prefix must be an integer >= 1 (got ${prefix})`);
  }
  const seed = num("seed");
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new UsageError(`--seed must be an integer in [0, 2^32) (got ${seed})`);
  }
  const decode = (values["fr-decode"] as string | undefined) ?? EVAL_FLAGS["fr-decode"].default!;
  if (decode !== "argmax" && decode !== "sample") {
    throw new UsageError(`--fr-decode must be argmax or sample (got ${decode})`);
  }
  const oracleFile = values.oracle as string | undefined;
  if (oracleFile !== undefined && !values.data) {
    throw new UsageError(`--oracle ${oracleFile} needs --data FILE (a text of the oracle's language)`);
  }
  const checkpoint = values.checkpoint as string, rolloutsFile = values.rollouts as string | undefined;
  const r = await exposureCheckpoint(checkpoint, values.data as string | undefined, {
    prefix,
    decode: decode as DecodeRule,
    windows: posInt("windows"),
    batchSize: posInt("batch-size"),
    seed,
    oracleFile,
    keepRollouts: rolloutsFile !== undefined,
    load: loadOptions(values),
  });
  if (rolloutsFile !== undefined) {
    await writeFileAtomic(rolloutsFile, JSON.stringify(r.rollouts) + "\n");
    delete r.rollouts;
    console.log(`rollouts: ${rolloutsFile} (${r.windows} windows of ${r.positions - r.prefix} token ids)`);
  }
  const plot = (values.plot as string | undefined) ??
    `${checkpoint.replace(/\.safetensors$/, "")}.exposure.svg`;
  try {
    await writeFileAtomic(plot, exposurePlotSvg(r, checkpoint.split("/").pop()));
    console.log(`plot: ${plot}`);
  } catch (e) {
    console.error(`tforce eval: plot not written (${(e as Error).message.split("\n")[0]})`);
  }
  const f = (x: number | null | undefined) => x === null || x === undefined ? "n/a" : x.toFixed(4);
  const free = `positions ${r.prefix}..${r.positions - 1}, ${r.windows} windows, ${r.decode} continuation`;
  if (r.oracle !== null) {
    const gold = f(r.oracle_kl_gold_mean), own = f(r.oracle_kl_own_mean);
    console.log(
      `excess loss KL(p* || model), nats/char (${free}): after the gold history ${gold}, after its own ` +
        `${own}; ${r.oracle_skipped} figures skipped; oracle: ${r.oracle}`,
    );
  }
  console.log(
    `drift, not error (${free}): loss of the gold next token after the gold history ` +
      `${f(r.gold_loss_after_gold_mean)}, after its own ${f(r.gold_loss_after_own_mean)}; ` +
      `KL(gold-history || own-history predictions) ${f(r.drift_kl_mean)}` +
      (r.oracle === null ? " (no oracle: --oracle FILE, or a char model of the built-in language)" : ""),
  );
  console.log(JSON.stringify(r));
  return 0;
}

async function runSample(argv: string[]): Promise<number> {
  const { values } = parse(argv, SAMPLE_FLAGS, NANOGPT_ALIASES.sample);
  if (!values.checkpoint) throw new UsageError("sample needs --checkpoint FILE");
  // A flag's value, or its default from the table `--help` prints.
  const num = (k: string) => toNumber(k, (values[k] as string | undefined) ?? SAMPLE_FLAGS[k].default!);
  await sampleCheckpoint(values.checkpoint as string, {
    prompt: (values.prompt as string | undefined) ?? "",
    maxTokens: num("max-tokens"),
    temperature: num("temperature"),
    topK: num("top-k"),
    topP: num("top-p"),
    numSamples: num("num-samples"),
    seed: num("seed"),
    load: loadOptions(values),
    write: async (s) => {
      await Deno.stdout.write(new TextEncoder().encode(s));
    },
  });
  if (num("num-samples") === 1) console.log(); // several samples end with their separator line
  return 0;
}

/**
 * `experiment`: the three modes on the same corpus and steps, each with N seeds; a Markdown report with
 * SVG plots whose figures are means with 95% intervals across the seeds.
 */
async function runExperimentCmd(argv: string[]): Promise<number> {
  const { cfg, given, extra } = parseTrainAnd(argv, EXPERIMENT_FLAGS);
  // Evaluations often enough to resolve the steps to a target: about 40 per run unless asked otherwise.
  if (given.eval_interval === undefined) cfg.eval_interval = Math.max(1, Math.floor(cfg.steps / 40));
  validateTrainConfig(cfg);
  if (cfg.resume) throw new UsageError("experiment trains from scratch: --resume is not supported");
  const num = (k: string) => extra[k] === undefined ? undefined : toNumber(k, extra[k] as string);
  const modes = extra.modes === undefined
    ? [...TRAIN_MODES]
    : (extra.modes as string).split(",").map((m) => m.trim()) as TrainMode[];
  for (const m of modes) {
    if (!TRAIN_MODES.includes(m)) {
      throw new UsageError(
        `--modes: unknown mode '${m}' (use teacher-forcing, free-running, scheduled-sampling)`,
      );
    }
  }
  const target = num("target"), window = num("window"), windows = num("windows");
  if (target !== undefined && !(target > 0)) throw new UsageError(`--target must be > 0 (got ${target})`);
  const seeds = positiveInt("seeds", num("seeds") ?? Number(EXPERIMENT_FLAGS.seeds.default));
  const noiseDraws = num("noise-draws"), oracleChars = num("oracle-chars");
  const counts = { window, windows, "noise-draws": noiseDraws, "oracle-chars": oracleChars };
  for (const [k, v] of Object.entries(counts)) if (v !== undefined) positiveInt(k, v);
  const oracleFile = extra.oracle as string | undefined;
  if (oracleChars !== undefined && (oracleFile === undefined || cfg.data !== undefined)) {
    throw new UsageError(`--oracle-chars ${oracleChars} applies to --oracle FILE without --data`);
  }
  const sizesText = (extra["block-sizes"] as string | undefined) ?? EXPERIMENT_FLAGS["block-sizes"].default!;
  const blockSizes = sizesText.trim() === "none" ? [] : sizesText.split(",").map((x) => {
    const n = Number(x.trim());
    if (!(x.trim() !== "" && Number.isInteger(n) && n >= 2)) {
      throw new UsageError(
        `--block-sizes must be integers >= 2, comma-separated, or 'none' (got '${sizesText}')`,
      );
    }
    return n;
  });
  const report = (extra.report as string | undefined) ?? `${cfg.out}/experiment`;
  const r = await runExperiment({
    base: cfg,
    report,
    modes,
    seeds,
    target,
    window,
    windows,
    oracleFile,
    oracleChars,
    noiseDraws,
    blockSizes,
    title: extra.title as string | undefined,
    note: extra.note as string | undefined,
    command: reproduce(argv),
    log: (line) => console.log(line),
  });
  for (const m of r.modes) {
    const rs = r.runs.filter((x) => x.mode === m);
    const mean = (f: (x: (typeof rs)[number]) => number) => rs.reduce((s, x) => s + f(x), 0) / rs.length;
    console.log(
      `${m}: mean best val ${mean((x) => x.bestVal).toFixed(4)} over ${rs.length} seeds, ` +
        `mean training seconds ${mean((x) => x.trainSeconds).toFixed(1)}`,
    );
  }
  console.log(`report: ${r.reportPath} (${(r.seconds / 60).toFixed(1)} minutes)`);
  return 0;
}

/** The experiment's command line for its report: every argument, quoted for a POSIX shell where needed. */
function reproduce(argv: string[]): string {
  const quote = (a: string) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
  return ["deno task experiment", ...argv.map(quote)].join(" ");
}

/** Each command: what runs it, and its `--help`. */
const commands: Record<string, { run: (argv: string[]) => Promise<number>; help: () => string }> = {
  train: {
    run: runTrain,
    help: () =>
      commandHelp(
        "deno task train [--preset NAME] [--flag VALUE ...]",
        "Trains a GPT and saves it to --out; each flag is a TrainConfig key (src/train/config.ts).\n" +
          aliasHelp(NANOGPT_ALIASES.train, "--n_layer=6"),
        trainFlags(),
      ),
  },
  eval: {
    run: runEval,
    help: () =>
      commandHelp(
        "deno task eval --checkpoint FILE [--data FILE] [--exposure ...]",
        "Prints a checkpoint's mean next-token loss on a text (default: its run's held-out text) as JSON\n" +
          "(the last line); with --exposure, per position after a gold prefix, KL(p* || model) after the\n" +
          "gold and after the model's own history (p*: an oracle's true law) and the drift of the predictions,\n" +
          "and an SVG plot.",
        EVAL_FLAGS,
      ),
  },
  sample: {
    run: runSample,
    help: () =>
      commandHelp(
        "deno task sample --checkpoint FILE [--prompt TEXT] [--flag VALUE ...]",
        `Generates text from a checkpoint, streamed to stdout.\n${
          aliasHelp(NANOGPT_ALIASES.sample, "--top_k=40")
        }`,
        SAMPLE_FLAGS,
      ),
  },
  experiment: {
    run: runExperimentCmd,
    help: () =>
      commandHelp(
        "deno task experiment [experiment and train flags]",
        "Trains each mode (teacher-forcing, free-running, scheduled-sampling) with the same data and steps\n" +
          "over --seeds seeds, tests the five claims made for teacher forcing and writes a Markdown report\n" +
          "with plots: means with 95% intervals, verdicts from paired differences across seeds. It evaluates\n" +
          "every steps/40 steps unless --eval-interval says otherwise. Its own flags, then train's:",
        EXPERIMENT_FLAGS,
        trainFlags(),
      ),
  },
};

/** Runs a command line; returns the exit code (errors become one line on stderr). */
export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  // Help on stdout with status 0; no command at all is a usage error (status 2) with the same text.
  if (cmd === undefined) {
    console.error(OVERVIEW);
    return 2;
  }
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    const topic = commands[rest[0]];
    console.log(topic ? topic.help() : OVERVIEW);
    return 0;
  }
  const command = commands[cmd];
  if (command && wantsHelp(rest)) {
    console.log(command.help());
    return 0;
  }
  try {
    if (!command) {
      throw new UsageError(`unknown command '${cmd}' (use train, eval, sample or experiment; --help)`);
    }
    return await command.run(rest);
  } catch (e) {
    console.error(`tforce ${cmd ?? ""}: ${errorLine(e)}`);
    // The convention --help prints (EXIT_STATUS): 2 bad input, 3 diverged, 1 any other failure.
    if (e instanceof InputError) return 2;
    if (e instanceof TrainingDiverged) return 3;
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
