/**
 * `deno task experiment`: trains teacher forcing, free running and scheduled sampling on the same data
 * with N seeds each (seed, seed + 1, ...: initialisation, data order, dropout and sampling; the data
 * itself is the same for every seed), measures each claim made for teacher forcing with a figure that can
 * come out either way, and writes a Markdown report with SVG plots (src/train/report.ts) where every
 * figure is a mean with its 95% interval across seeds and every verdict comes from those intervals
 * (src/train/stats.ts):
 *
 *   1. stability, faster convergence  -> steps and training seconds to a target validation loss per seed
 *                                         (paired differences), their spread, the detrended training-loss
 *                                         noise over a final window
 *   2. less noisy gradients           -> the gradient noise scale B_simple (src/train/noise.ts) of each
 *                                         mode's own training loss at a matched validation loss, and at the
 *                                         last step
 *   3. loss decoupled from the model's -> src/train/claims.ts historyCheck: the per-position training loss
 *      own prediction history            when the inputs are formed by other weights
 *   4. parallel processing            -> step time of teacher forcing and free running over block sizes
 *   5. exposure bias                  -> with an oracle (the generated language's, or --oracle FILE): the
 *                                         excess loss KL(p* ‖ model) per position after the gold history and
 *                                         after the model's own sampled continuation (temperature 1, whatever
 *                                         the mode's training rule; src/train/exposure.ts), and its growth
 *
 * Data and oracle: --data FILE (an oracle only with `oracleFile`, then FILE must be its language); else
 * `oracleFile` alone: its training text is sampled from the oracle (`oracleChars` characters, the base
 * seed); else `text`; else the built-in generated language of the base seed, with its oracle (char
 * tokenizer). Validation losses are always teacher-forced on the validation split: one yardstick.
 *
 * @module
 */
import { createGpu, type Gpu } from "../gpu/device.ts";
import { generateLanguage } from "../data/language.ts";
import { type CharOracle, languageOracle, loadOracleFile, sampleOracle } from "../data/oracle.ts";
import { configError, setting, type TrainConfig } from "./config.ts";
import { measureExposure } from "./exposure.ts";
import { prefixOf, TRAIN_MODES, type TrainMode } from "./modes.ts";
import { measureNoiseScale, type NoiseResult } from "./noise.ts";
import { type HistoryCheck, historyCheck, stepTimes } from "./claims.ts";
import { writeReport } from "./report.ts";
import { train, type TrainResult } from "./trainer.ts";
import { readText } from "./data.ts";
import { InputError } from "../util/errors.ts";

import type {
  ExperimentOptions,
  ExperimentResult,
  ExperimentSetup,
  MatchedNoise,
  ModeRun,
} from "./experiment_types.ts";

/** The data of every run and the oracle, resolved once (see the module doc). */
interface Source {
  text?: string;
  oracle?: CharOracle;
  description?: string;
  entropy?: number;
  source: ExperimentSetup["source"];
}

async function resolveSource(o: ExperimentOptions): Promise<Source> {
  const base = o.base;
  let s: Source;
  if (base.data !== undefined) {
    const oracle = o.oracle ?? (o.oracleFile ? await loadOracleFile(o.oracleFile) : undefined);
    s = { source: "data", oracle, entropy: oracle?.entropyRate };
  } else if (o.oracleFile !== undefined) {
    const oracle = await loadOracleFile(o.oracleFile);
    const n = o.oracleChars ?? 300_000;
    s = {
      source: "oracle file",
      oracle,
      text: sampleOracle(oracle, n, base.seed),
      description:
        `${n.toLocaleString("en-US")} characters sampled (seed ${base.seed}) from ${o.oracleFile}: ` +
        oracle.description,
      entropy: oracle.entropyRate,
    };
  } else if (o.text !== undefined) {
    s = { source: "text", text: o.text, oracle: o.oracle, entropy: o.oracle?.entropyRate };
  } else {
    // The language of the base seed for every seed: the seeds vary the model, not the data.
    const lang = generateLanguage({ seed: base.seed });
    const char = base.tokenizer === "char";
    s = {
      source: "language",
      text: lang.text,
      description: lang.description,
      oracle: char ? languageOracle(base.seed) : undefined,
      entropy: char ? lang.entropyRate : undefined,
    };
  }
  if (s.oracle) {
    if (base.tokenizer !== "char") {
      throw new InputError(
        `oracle: the tokenizer is ${base.tokenizer}, not char; an oracle of next characters needs a char-level model`,
      );
    }
    // A char model emits only the characters of its text (and --val's): refused before any training.
    let text = s.text ?? await readText(base.data!, "data", base.allow_invalid_utf8);
    if (base.val !== undefined) text += await readText(base.val, "validation", base.allow_invalid_utf8);
    const have = new Set(text);
    const lack = s.oracle.alphabet.filter((c) => !have.has(c));
    if (lack.length) {
      throw configError`oracle: the training text lacks the alphabet character(s) ${
        JSON.stringify(lack.join(""))
      }, so the model could not emit them (a longer text holds them: ${setting("oracleChars")}, or more
        ${setting("data")})`;
    }
  }
  return s;
}

/** Runs the modes over the seeds, the checks and the timing table, and writes the report. */
export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const t0 = performance.now();
  const modes = o.modes ?? [...TRAIN_MODES];
  const N = o.seeds ?? 5;
  if (!(Number.isInteger(N) && N >= 1)) {
    throw configError`${setting("seeds")} must be a positive integer (got ${N})`;
  }
  if (modes.length === 0) throw configError`${setting("modes")}: no mode given`;
  const log = o.log ?? (() => {});
  const src = await resolveSource(o);
  const gpu = o.gpu ?? await createGpu();
  const base: TrainConfig = { ...o.base, log_interval: 1, sample_chars: 0 };
  const seeds = Array.from({ length: N }, (_, i) => base.seed + i);
  const runs: ModeRun[] = [];
  const history: HistoryCheck[] = [];
  const ctx: RunContext = { o, src, gpu, log, history, setup: undefined };
  for (const seed of seeds) runs.push(...await runSeed(ctx, base, modes, seed, seed === seeds[0]));
  const setup = ctx.setup!;
  let timing: ExperimentResult["timing"] = { rows: [] };
  const sizes = o.blockSizes ?? [16, 32, 64, 128, 256];
  if (sizes.length) {
    log(`step times over block sizes ${sizes.join(", ")}`);
    timing = await stepTimes({ base, blockSizes: sizes, steps: o.timingSteps, text: src.text, gpu, log });
  }
  const tf = runs.filter((r) => r.mode === "teacher-forcing");
  const anchor = tf.length ? tf : runs;
  const worst = Math.max(...anchor.map((r) => r.bestVal));
  const target = o.target ?? worst + 0.1 * (Math.log(setup.V) - worst);
  const result = {
    runs,
    modes,
    seeds,
    target,
    history,
    timing,
    setup,
    seconds: (performance.now() - t0) / 1000,
  };
  const { reportPath, markdown } = await writeReport(o, base, result);
  return { ...result, reportPath, markdown };
}

/** What every run of the experiment shares. */
interface RunContext {
  o: ExperimentOptions;
  src: Source;
  gpu: Gpu;
  log: (line: string) => void;
  /** The claim-3 checks, filled by the first seed's runs. */
  history: HistoryCheck[];
  /** Set by the first run. */
  setup: ExperimentSetup | undefined;
}

/**
 * Every mode with one seed, then each mode's noise scale at the seed's matched validation loss: the highest
 * best loss of its modes, which each mode reached (measured at its first evaluation at or below it).
 */
async function runSeed(
  ctx: RunContext,
  base: TrainConfig,
  modes: TrainMode[],
  seed: number,
  first: boolean,
): Promise<ModeRun[]> {
  const done: { run: ModeRun; snapshots: Snapshot[]; noise: NoiseAt }[] = [];
  for (const mode of modes) {
    const one = await oneRun(ctx, { ...base, mode, seed }, first);
    done.push(one);
    // Keep only the snapshots the matched level (at least the highest best loss so far) can still need.
    const floor = Math.max(...done.map((d) => d.run.bestVal));
    for (const d of done) pruneBelow(d.snapshots, floor);
  }
  const level = Math.max(...done.map((d) => d.run.bestVal));
  for (const { run, snapshots, noise } of done) {
    const at = snapshots.find((s) => s.val <= level)!;
    ctx.log(`${run.mode}, seed ${seed}: noise scale at val loss ${at.val.toFixed(4)} (step ${at.step})`);
    const m = await noise(at.params, Math.min(at.step, base.steps - 1));
    run.noiseMatched = { ...m, level, step: at.step, val: at.val };
  }
  return done.map((d) => d.run);
}

/** The noise scale of one run's mode and data at given weights and step. */
type NoiseAt = (params: Float32Array, step: number) => Promise<NoiseResult>;

/** One mode and seed: training, exposure, the noise scale at the last step, the claim-3 check if `first`. */
async function oneRun(
  ctx: RunContext,
  cfg: TrainConfig,
  first: boolean,
): Promise<{ run: ModeRun; snapshots: Snapshot[]; noise: NoiseAt }> {
  const { o, src, gpu, log } = ctx, mode = cfg.mode, seed = cfg.seed;
  log(`${mode}, seed ${seed}: training ${cfg.steps} steps`);
  const { result: r, seconds, snapshots } = await trainRun(cfg, src, gpu, log);
  ctx.setup ??= {
    corpus: src.description
      ? `${src.description}; ${r.corpus.description.replace(/^[^;]*; /, "")}`
      : r.corpus.description,
    adapter: gpu.description,
    params: r.model.params.layout.entries.reduce((s, e) => s + e.size, 0),
    V: r.model.config.vocab_size,
    entropy: src.entropy ?? r.entropyRate,
    unigram: unigramEntropy(r.corpus.val.tokens),
    oracle: src.oracle?.description ?? null,
    source: src.source,
  };
  const params = await r.model.params.snapshot(gpu);
  log(`${mode}, seed ${seed}: exposure, noise scale`);
  const exposure = await measureExposure(r.model.config, params, r.corpus.val.tokens, {
    prefix: prefixOf(cfg),
    windows: o.windows ?? 64,
    decode: "sample", // the model's own sampled continuation (temperature 1), whatever its training rule
    seed,
    gpu,
    oracle: src.oracle,
    tokenizer: r.corpus.tokenizer,
  });
  const noise: NoiseAt = (p, step) =>
    measureNoiseScale(r.model.config, p, r.corpus.train, {
      train: cfg,
      step,
      draws: o.noiseDraws,
      padId: r.corpus.tokenizer.padId ?? undefined,
      gpu,
    });
  const noiseFinal = await noise(params, cfg.steps - 1);
  if (first) {
    ctx.history.push(
      await historyCheck(r.model.config, params, r.corpus.val.tokens, {
        train: cfg,
        step: cfg.steps - 1,
        windows: o.checkWindows,
        gpu,
      }),
    );
  }
  const last = r.history[r.history.length - 1];
  const run: ModeRun = {
    mode,
    seed,
    history: r.history,
    bestVal: r.bestValLoss,
    finalVal: r.finalValLoss,
    seconds,
    trainSeconds: last ? last.elapsed_s - (last.eval_s ?? 0) : NaN,
    exposure,
    noiseFinal,
    noiseMatched: undefined as unknown as MatchedNoise, // set by runSeed once the seed's level is known
  };
  return { run, snapshots, noise };
}

/** The weights at an evaluation that set a new best validation loss. */
interface Snapshot {
  step: number;
  val: number;
  params: Float32Array;
}

/** Most snapshots kept per run (beyond it every other older one is dropped: the level is then coarser). */
const MAX_SNAPSHOTS = 48;

/** Drops the snapshots after the first one at or below `level` (a later one can no longer be the first). */
function pruneBelow(s: Snapshot[], level: number): void {
  const i = s.findIndex((x) => x.val <= level);
  if (i >= 0) s.splice(i + 1);
}

async function trainRun(cfg: TrainConfig, src: Source, gpu: Gpu, log: (l: string) => void): Promise<{
  result: TrainResult;
  seconds: number;
  snapshots: Snapshot[];
}> {
  const snapshots: Snapshot[] = [];
  const t0 = performance.now();
  let best = Infinity;
  const result = await train(cfg, {
    gpu,
    noSave: true,
    text: src.text,
    onRecord: (rec) => {
      if (rec.val_loss !== null) {
        log(`${cfg.mode}, seed ${cfg.seed}: step ${rec.step}, val loss ${rec.val_loss.toFixed(4)}`);
      }
    },
    onEval: async ({ step, valLoss, model }) => {
      if (!(valLoss < best)) return;
      best = valLoss;
      snapshots.push({ step, val: valLoss, params: await model.params.snapshot(gpu) });
      if (snapshots.length > MAX_SNAPSHOTS) {
        const keep = snapshots.filter((_, i) => i % 2 === 1 || i === snapshots.length - 1);
        snapshots.splice(0, snapshots.length, ...keep);
      }
    },
  });
  return { result, seconds: (performance.now() - t0) / 1000, snapshots };
}

/** Entropy in nats of the token frequencies of `ids` (the loss of a model that ignores its inputs). */
function unigramEntropy(ids: Uint32Array): number {
  const counts = new Map<number, number>();
  for (const t of ids) counts.set(t, (counts.get(t) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) h -= (c / ids.length) * Math.log(c / ids.length);
  return h;
}
