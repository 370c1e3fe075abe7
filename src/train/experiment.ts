/**
 * `deno task experiment`: trains teacher forcing, free-running and scheduled sampling on the same corpus,
 * steps, model and seed, then writes a Markdown report with SVG plots that tests the usual claims about
 * teacher forcing:
 *
 *   1. it stabilizes training and speeds convergence   -> steps and seconds to a target validation loss,
 *                                                          training-loss variance over a final window
 *   2. it gives less noisy gradients                     -> variance of the gradient norm, cosine similarity
 *                                                          of successive gradients
 *   3. it decouples the loss from the model's own         -> per-position losses given gold vs own history
 *      prediction history
 *   4. it works with the parallel processing of all      -> tokens/s of each mode
 *      positions
 *   5. it creates a mismatch with inference (exposure    -> free-running minus teacher-forced loss and the
 *      bias): errors accumulate on the model's own         KL divergence of the resulting models
 *      predictions
 *
 * Every mode runs through the same `train()` (one submission per step), with the gradient probe on and the
 * loss read back every step; validation losses are always teacher-forced on the validation split, so the
 * modes are compared on one yardstick. Verdicts are computed from the measured numbers, never written in.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic.ts";
import { linePlotSvg, type PlotSeries } from "../io/svg.ts";
import type { Gpu } from "../gpu/device.ts";
import { createGpu } from "../gpu/device.ts";
import type { TrainConfig } from "./config.ts";
import { type ExposureResult, measureExposure } from "./exposure.ts";
import type { StepRecord } from "./log.ts";
import { epsilon, epsilonSchedule, prefixOf, TRAIN_MODES, type TrainMode } from "./modes.ts";
import { train } from "./trainer.ts";

/** Options of {@linkcode runExperiment}. */
export interface ExperimentOptions {
  /** The shared training configuration (its `mode` is replaced per run; `out` is unused: nothing saved). */
  base: TrainConfig;
  /** Folder for report.md and the SVG plots (created). */
  report: string;
  /** Modes to run (default all three). */
  modes?: TrainMode[];
  /** Target validation loss for convergence (default: 90% of the way from ln V to teacher forcing's best). */
  target?: number;
  /** Steps of the final window for the stability and gradient statistics (default max(10, steps / 4)). */
  window?: number;
  /** Windows of the validation split for the exposure curves (default 64). */
  windows?: number;
  /** Report title. */
  title?: string;
  /** A paragraph put under the title (e.g. how small the run is and why). */
  note?: string;
  /** The command line that reproduces the report, shown in it. */
  command?: string;
  /** Training text given directly instead of base.data. */
  text?: string;
  /** A device to use (default: a new one). */
  gpu?: Gpu;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One mode's measurements. */
export interface ModeRun {
  /** The mode. */
  mode: TrainMode;
  /** Every training-loss record (one per step) and validation record. */
  history: StepRecord[];
  /** Per step: cosine similarity of this step's gradient with the previous step's (NaN at step 1). */
  cosine: { step: number; cos: number }[];
  /** Best and final teacher-forced validation loss. */
  bestVal: number;
  /** Last validation loss. */
  finalVal: number;
  /** Wall-clock seconds of the whole run (training, evaluations). */
  seconds: number;
  /** Training throughput in tokens/s: the fastest of three separate short runs of the mode. */
  tokensPerS: number;
  /** Exposure curves of the trained model on the validation split. */
  exposure: ExposureResult;
}

/** The experiment's outcome. */
export interface ExperimentResult {
  /** Per mode. */
  runs: ModeRun[];
  /** The target validation loss used. */
  target: number;
  /** Path of the Markdown report. */
  reportPath: string;
  /** The report text. */
  markdown: string;
}

/** Runs the modes and writes the report (see the module doc). */
export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const modes = o.modes ?? [...TRAIN_MODES];
  const log = o.log ?? (() => {});
  const gpu = o.gpu ?? await createGpu();
  const base: TrainConfig = { ...o.base, log_interval: 1, sample_chars: 0 };
  const runs: ModeRun[] = [];
  let corpusLine = "", adapter = "", params = 0, entropy: number | undefined, V = 0, unigram = NaN;
  for (const mode of modes) {
    const cfg: TrainConfig = { ...base, mode };
    const cosine: { step: number; cos: number }[] = [];
    const t0 = performance.now();
    log(`${mode}: training ${cfg.steps} steps`);
    const r = await train(cfg, {
      gpu,
      noSave: true,
      text: o.text,
      onStart: (s) => {
        corpusLine = s.corpus;
        adapter = s.adapter;
        params = s.params;
        entropy = s.entropyRate;
        V = s.model.vocab_size;
      },
      onRecord: (rec) => {
        if (rec.val_loss !== null) log(`${mode}: step ${rec.step}, val loss ${rec.val_loss.toFixed(4)}`);
      },
      onGradStats: (step, s) =>
        cosine.push({ step, cos: s.pp > 0 && s.gg > 0 ? s.gp / Math.sqrt(s.gg * s.pp) : NaN }),
    });
    const seconds = (performance.now() - t0) / 1000;
    if (!Number.isFinite(unigram)) unigram = unigramEntropy(r.corpus.val.tokens);
    log(`${mode}: measuring exposure on the validation split`);
    const exposure = await measureExposure(r.model.config, r.model.params, r.corpus.val.tokens, {
      prefix: prefixOf(cfg),
      windows: o.windows ?? 64,
      decode: cfg.fr_decode,
      seed: cfg.seed,
      gpu,
    });
    runs.push({
      mode,
      history: r.history,
      cosine: cosine.sort((a, b) => a.step - b.step),
      bestVal: r.bestValLoss,
      finalVal: r.finalValLoss,
      seconds,
      tokensPerS: NaN,
      exposure,
    });
  }
  // Throughput: separate short runs with one readback at their end (the per-step readbacks of the main
  // runs arrive in bursts, so their intervals do not time single steps), the modes interleaved over
  // `rounds` rounds, the fastest round kept (the least disturbed by anything else on the machine).
  const S = Math.max(5, Math.min(50, Math.floor(base.steps / 10))), rounds = 3;
  for (let round = 0; round < rounds; round++) {
    for (const r of runs) {
      const timed = await train({
        ...base,
        mode: r.mode,
        steps: S,
        log_interval: S,
        eval_interval: S,
        eval_iters: 1,
      }, {
        gpu,
        noSave: true,
        text: o.text,
      });
      const tps = timed.history.find((h) => h.tokens_per_s !== null)?.tokens_per_s ?? NaN;
      log(`${r.mode}: ${Math.round(tps)} tokens/s over ${S} steps (round ${round + 1} of ${rounds})`);
      if (!(r.tokensPerS >= tps)) r.tokensPerS = tps;
    }
  }
  const tf = runs.find((r) => r.mode === "teacher-forcing");
  const target = o.target ??
    (tf ? tf.bestVal + 0.1 * (Math.log(V) - tf.bestVal) : Math.min(...runs.map((r) => r.bestVal)));
  await Deno.mkdir(o.report, { recursive: true });
  const figures = plots(runs, target, entropy);
  for (const [name, svg] of Object.entries(figures)) await writeFileAtomic(`${o.report}/${name}`, svg);
  const markdown = report(o, base, runs, target, { corpusLine, adapter, params, entropy, V, unigram });
  const reportPath = `${o.report}/report.md`;
  await writeFileAtomic(reportPath, markdown);
  return { runs, target, reportPath, markdown };
}

// ---------------------------------------------------------------------------------------------- statistics

/** Entropy in nats of the token frequencies of `ids` (the loss of a model that ignores its inputs). */
function unigramEntropy(ids: Uint32Array): number {
  const counts = new Map<number, number>();
  for (const t of ids) counts.set(t, (counts.get(t) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) h -= (c / ids.length) * Math.log(c / ids.length);
  return h;
}

function meanOf(x: number[]): number {
  return x.length ? x.reduce((a, b) => a + b, 0) / x.length : NaN;
}

function stdOf(x: number[]): number {
  const m = meanOf(x);
  return Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / Math.max(1, x.length - 1));
}

/** Standard deviation of the residuals of a least-squares line through (i, y_i): noise without the trend. */
function detrendedStd(y: number[]): number {
  const n = y.length;
  if (n < 3) return NaN;
  const mx = (n - 1) / 2, my = meanOf(y);
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) sxy += (i - mx) * (y[i] - my), sxx += (i - mx) ** 2;
  const b = sxy / sxx;
  const res = y.map((v, i) => v - (my + b * (i - mx)));
  return Math.sqrt(res.reduce((s, v) => s + v * v, 0) / (n - 2));
}

function movingAverage(p: [number, number][], k: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < p.length; i++) {
    const lo = Math.max(0, i - k + 1);
    const ys = p.slice(lo, i + 1).map((q) => q[1]).filter(Number.isFinite);
    out.push([p[i][0], ys.length ? meanOf(ys) : NaN]);
  }
  return out;
}

interface Stats {
  mode: TrainMode;
  stepsToTarget: number | null;
  secondsToTarget: number | null;
  lossStd: number;
  lossMean: number;
  normMean: number;
  normStd: number;
  normCv: number;
  cosMean: number;
  cosAll: number;
}

function statsOf(r: ModeRun, target: number, window: number, steps: number): Stats {
  const hit = r.history.find((h) => h.val_loss !== null && h.val_loss <= target);
  const from = steps - window;
  const train = r.history.filter((h) => h.train_loss !== null && h.step > from);
  const losses = train.map((h) => h.train_loss!), norms = train.map((h) => h.grad_norm!);
  const cos = r.cosine.filter((c) => c.step > from && Number.isFinite(c.cos)).map((c) => c.cos);
  const cosAll = r.cosine.filter((c) => Number.isFinite(c.cos)).map((c) => c.cos);
  return {
    mode: r.mode,
    stepsToTarget: hit ? hit.step : null,
    secondsToTarget: hit ? hit.elapsed_s : null,
    lossStd: detrendedStd(losses),
    lossMean: meanOf(losses),
    normMean: meanOf(norms),
    normStd: stdOf(norms),
    normCv: stdOf(norms) / meanOf(norms),
    cosMean: meanOf(cos),
    cosAll: meanOf(cosAll),
  };
}

// ---------------------------------------------------------------------------------------------- plots

/** Legend names (lengths the SVG legend shows untruncated). */
const LEGEND: Record<TrainMode, string> = {
  "teacher-forcing": "teacher forcing",
  "free-running": "free running",
  "scheduled-sampling": "sched. sampling",
};

const SHORT: Record<TrainMode, string> = {
  "teacher-forcing": "TF",
  "free-running": "FR",
  "scheduled-sampling": "SS",
};

function plots(runs: ModeRun[], target: number, entropy?: number): Record<string, string> {
  const hl = [
    { y: target, label: "target" },
    ...(entropy !== undefined ? [{ y: entropy, label: "entropy rate" }] : []),
  ];
  const val = (r: ModeRun, x: "step" | "elapsed_s"): [number, number][] =>
    r.history.filter((h) => h.val_loss !== null).map((h) => [h[x], h.val_loss!]);
  const trainPts = (r: ModeRun): [number, number][] =>
    r.history.filter((h) => h.train_loss !== null).map((h) => [h.step, h.train_loss!]);
  const k = Math.max(1, Math.round((runs[0]?.history.length ?? 10) / 40));
  const out: Record<string, string> = {};
  out["loss.svg"] = linePlotSvg({
    title: "Validation loss (teacher-forced) and training loss by step",
    xLabel: "step",
    yLabel: "loss (nats/token)",
    series: runs.flatMap((r): PlotSeries[] => [
      { name: `${SHORT[r.mode]} val`, points: val(r, "step") },
      { name: `${SHORT[r.mode]} train (avg ${k})`, points: movingAverage(trainPts(r), k), dashed: true },
    ]),
    hlines: hl,
  });
  out["loss-time.svg"] = linePlotSvg({
    title: "Validation loss by wall-clock time",
    xLabel: "seconds",
    yLabel: "loss (nats/token)",
    series: runs.map((r) => ({ name: LEGEND[r.mode], points: val(r, "elapsed_s") })),
    hlines: hl,
  });
  out["grad-norm.svg"] = linePlotSvg({
    title: "Gradient norm (before clipping) by step",
    xLabel: "step",
    yLabel: "global L2 norm",
    series: runs.map((r) => ({
      name: LEGEND[r.mode],
      points: r.history.filter((h) => h.grad_norm !== null).map((
        h,
      ): [number, number] => [h.step, h.grad_norm!]),
    })),
    logY: true,
  });
  out["grad-cosine.svg"] = linePlotSvg({
    title: `Cosine similarity of successive gradients (moving average of ${k})`,
    xLabel: "step",
    yLabel: "cos(g_t, g_t-1)",
    series: runs.map((r) => ({
      name: LEGEND[r.mode],
      points: movingAverage(r.cosine.map((c): [number, number] => [c.step, c.cos]), k),
    })),
  });
  const pos = (a: number[]) => a.map((y, t): [number, number] => [t, y]);
  const P = runs[0]?.exposure.prefix ?? 0;
  out["exposure.svg"] = linePlotSvg({
    title: `Per-position loss of the gold next token, gold prefix ${P}`,
    xLabel: "position t",
    yLabel: "loss (nats)",
    series: runs.flatMap((r): PlotSeries[] => [
      { name: `${SHORT[r.mode]} model, gold history`, points: pos(r.exposure.gold_loss_after_gold) },
      {
        name: `${SHORT[r.mode]} model, own history`,
        points: pos(r.exposure.gold_loss_after_own),
        dashed: true,
      },
    ]),
  });
  out["exposure-kl.svg"] = linePlotSvg({
    title: "KL(gold-history || own-history next token) by position",
    xLabel: "position t",
    yLabel: "KL (nats)",
    series: runs.map((r) => ({ name: LEGEND[r.mode], points: pos(r.exposure.drift_kl) })),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------- report

function f(x: number | null | undefined, d = 4): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d);
}

function report(
  o: ExperimentOptions,
  cfg: TrainConfig,
  runs: ModeRun[],
  target: number,
  info: { corpusLine: string; adapter: string; params: number; entropy?: number; V: number; unigram: number },
): string {
  const window = o.window ?? Math.max(10, Math.floor(cfg.steps / 4));
  const st = runs.map((r) => statsOf(r, target, window, cfg.steps));
  const by = (m: TrainMode) => st.find((s) => s.mode === m);
  const run = (m: TrainMode) => runs.find((r) => r.mode === m);
  const L: string[] = [];
  const P = prefixOf(cfg);
  L.push(`# ${o.title ?? "Teacher forcing, free running and scheduled sampling"}`, "");
  if (o.note) L.push(o.note, "");
  L.push("## Setup", "");
  L.push(`- Corpus: ${info.corpusLine}.`);
  if (info.entropy !== undefined) {
    L.push(`- Best achievable loss (the generated language's entropy rate): ${f(info.entropy)} nats/token.`);
  }
  L.push(
    `- Model: ${cfg.n_layer} layers, ${cfg.n_head} heads, ${cfg.n_embd} channels, block ${cfg.block_size}, ` +
      `vocabulary ${info.V}, ${(info.params / 1e6).toFixed(3)}M parameters, dropout ${cfg.dropout}.`,
  );
  L.push(
    `- Training: ${cfg.steps} steps of ${cfg.batch_size} x ${cfg.block_size} tokens` +
      (cfg.grad_accum > 1 ? ` x ${cfg.grad_accum} micro-steps` : "") +
      `, AdamW lr ${cfg.lr} (warmup ${cfg.warmup}, cosine to ${cfg.min_lr}), clip ${cfg.grad_clip}, seed ${cfg.seed}; ` +
      `the same windows, initialisation and seed for every mode.`,
  );
  const sched = epsilonSchedule(cfg);
  L.push(
    `- Modes: teacher forcing; free running with a gold prefix of ${P} tokens and ${cfg.fr_decode} decoding ` +
      `(inputs ${P}..${
        cfg.block_size - 1
      } are the model's own tokens, generated with the KV cache inside the ` +
      `step); scheduled sampling (two-pass, ${cfg.ss_decode}), ε ${sched.schedule} with k ${f(sched.k, 4)}` +
      (sched.schedule === "linear" ? `, c ${sched.c.toExponential(3)}` : "") +
      `, floor ${sched.min} (ε from ${f(epsilon(0, sched), 3)} at step 0 to ${
        f(epsilon(cfg.steps - 1, sched), 3)
      } at the last step).`,
  );
  L.push(
    `- Validation loss is always teacher-forced (${cfg.eval_iters} batches every ${cfg.eval_interval} steps), ` +
      `so all modes are judged on the same yardstick. The training loss of a mode is measured on that mode's ` +
      `own inputs.`,
  );
  L.push(
    `- Unigram entropy of the validation split: ${f(info.unigram)} nats/token (the loss of a model that ` +
      `ignores its inputs and predicts token frequencies).`,
  );
  L.push(`- Adapter: ${info.adapter}.`);
  if (o.command) L.push(`- Reproduce: \`${o.command}\``);
  L.push("");

  L.push("## Results", "");
  L.push(
    `Target validation loss for convergence: ${f(target)} nats/token` +
      (o.target === undefined
        ? " (90% of the way from the uniform guess ln V to teacher forcing's best)"
        : "") +
      `. Statistics over the final window of ${window} steps.`,
    "",
  );
  L.push(
    "| mode | best val | final val | steps to target | seconds to target | train loss (window) | detrended train-loss std | grad norm mean | grad norm std | grad norm CV | cos successive grads (window) | cos (whole run) | tokens/s |",
  );
  L.push("|" + " --- |".repeat(13));
  for (const s of st) {
    const r = run(s.mode)!;
    L.push(
      `| ${s.mode} | ${f(r.bestVal)} | ${f(r.finalVal)} | ${s.stepsToTarget ?? "not reached"} | ${
        s.secondsToTarget === null ? "not reached" : f(s.secondsToTarget, 1)
      } | ${f(s.lossMean)} | ${f(s.lossStd)} | ${f(s.normMean, 3)} | ${f(s.normStd, 3)} | ${
        f(s.normCv, 3)
      } | ${f(s.cosMean, 3)} | ${f(s.cosAll, 3)} | ${Math.round(r.tokensPerS)} |`,
    );
  }
  L.push("");
  L.push(
    `Exposure curves of each trained model on ${runs[0]?.exposure.windows ?? 0} validation windows ` +
      `(gold prefix ${P}, ${cfg.fr_decode} continuation; means over positions ${P}..${cfg.block_size - 1}):`,
    "",
  );
  L.push("| model | loss given gold history | loss given own history | gap | mean KL(gold ‖ own) |");
  L.push("| --- | --- | --- | --- | --- |");
  for (const r of runs) {
    const e = r.exposure;
    L.push(
      `| ${r.mode} | ${f(e.gold_loss_after_gold_mean)} | ${f(e.gold_loss_after_own_mean)} | ${
        f(e.gold_loss_after_own_mean - e.gold_loss_after_gold_mean)
      } | ${f(e.drift_kl_mean)} |`,
    );
  }
  L.push("");

  L.push("## The claims, tested", "");
  L.push(
    "A caveat for claims 1 and 2: the modes end at different losses, and loss noise and gradient statistics " +
      "depend on where a model is on the loss surface as much as on how its inputs are formed; those " +
      "comparisons mix the two.",
    "",
  );
  const tfS = by("teacher-forcing"), tfR = run("teacher-forcing");
  const others = st.filter((s) => s.mode !== "teacher-forcing");
  if (!tfS || !tfR || others.length === 0) {
    L.push("Teacher forcing and at least one other mode are needed to test the claims.", "");
  } else {
    // 1. convergence and stability
    const conv = others.map((s) => {
      const faster = tfS.stepsToTarget !== null &&
        (s.stepsToTarget === null || tfS.stepsToTarget < s.stepsToTarget);
      const fasterS = tfS.secondsToTarget !== null &&
        (s.secondsToTarget === null || tfS.secondsToTarget < s.secondsToTarget);
      const calm = cmp(tfS.lossStd, s.lossStd, "lower", 0.1 * Math.max(tfS.lossStd, s.lossStd));
      return { s, faster, fasterS, calm };
    });
    const held1 = conv.every((c) => c.faster && c.calm === "better");
    const none1 = conv.every((c) => !c.faster && c.calm !== "better");
    L.push(`### 1. Teacher forcing stabilizes training and speeds convergence: ${verdict(held1, none1)}`, "");
    L.push(
      `Teacher forcing reached the target ${
        tfS.stepsToTarget === null ? "never" : `at step ${tfS.stepsToTarget} (${f(tfS.secondsToTarget, 1)} s)`
      }; its detrended training-loss std over the final window is ${f(tfS.lossStd)} (differences under 10% ` +
        `count as the same).`,
    );
    for (const c of conv) {
      L.push(
        `- ${c.s.mode}: target ${
          c.s.stepsToTarget === null
            ? "not reached"
            : `at step ${c.s.stepsToTarget} (${f(c.s.secondsToTarget, 1)} s)`
        } — teacher forcing was ${c.faster ? "faster" : "not faster"} in steps and ${
          c.fasterS ? "faster" : "not faster"
        } in seconds; loss std ${f(c.s.lossStd)} — teacher forcing's was ${word(c.calm, "lower", "higher")}.`,
      );
    }
    L.push("");
    // 2. gradient noise
    const g = others.map((s) => ({
      s,
      cv: cmp(tfS.normCv, s.normCv, "lower", 0.1 * Math.max(tfS.normCv, s.normCv)),
      cos: cmp(tfS.cosMean, s.cosMean, "higher", 0.03),
    }));
    const held2 = g.every((x) => x.cv === "better" && x.cos === "better");
    const none2 = g.every((x) => x.cv !== "better" && x.cos !== "better");
    L.push(`### 2. Teacher forcing gives less noisy gradients: ${verdict(held2, none2)}`, "");
    L.push(
      `Measured over the final window: the gradient norm's coefficient of variation (std / mean, so that modes with ` +
        `different gradient scales compare; differences under 10% count as the same) and the mean cosine ` +
        `similarity of successive steps' gradients (higher: successive mini-batches agree more; differences under ` +
        `0.03 count as the same). Teacher forcing: CV ${f(tfS.normCv, 3)}, cosine ${f(tfS.cosMean, 3)}.`,
    );
    for (const x of g) {
      L.push(
        `- ${x.s.mode}: CV ${f(x.s.normCv, 3)} (teacher forcing's ${word(x.cv, "lower", "higher")}), cosine ${
          f(x.s.cosMean, 3)
        } (teacher forcing's ${word(x.cos, "higher", "lower")}).`,
      );
    }
    L.push("");
    // 3. decoupling
    const e = tfR.exposure, T = cfg.block_size;
    const q = Math.max(1, Math.floor((T - P) / 4));
    const early = (a: number[]) => meanOf(a.slice(P, P + q)), late = (a: number[]) => meanOf(a.slice(T - q));
    const tfDrift = late(e.gold_loss_after_gold) - early(e.gold_loss_after_gold);
    const frDrift = late(e.gold_loss_after_own) - early(e.gold_loss_after_own);
    const held3 = e.gold_loss_after_own_mean > e.gold_loss_after_gold_mean && tfDrift < frDrift;
    L.push(
      `### 3. Teacher forcing decouples the loss from the model's own prediction history: ${
        verdict(held3, !held3)
      }`,
      "",
    );
    L.push(
      `With gold inputs the loss at position t conditions only on data, whatever the model predicted before. ` +
        `On the teacher-forced model's exposure curves, the loss given gold history moves by ${
          f(tfDrift)
        } nats ` +
        `from just after the prefix (positions ${P}..${P + q - 1}) to the end (positions ${T - q}..${
          T - 1
        }); ` +
        `given its own history it moves by ${f(frDrift)} and sits ${
          f(e.gold_loss_after_own_mean - e.gold_loss_after_gold_mean)
        } ` +
        `nats higher on average. ${
          held3
            ? "The gold-history loss does not inherit the model's earlier mistakes; the own-history loss does."
            : "The own-history loss does not rise above the gold-history loss here, so the data do not show the coupling the claim contrasts with."
        }`,
      "",
    );
    // 4. parallelism
    const fr = run("free-running");
    L.push(
      `### 4. Teacher forcing works with the parallel processing of all positions: ${
        fr
          ? verdict(tfR.tokensPerS > fr.tokensPerS, tfR.tokensPerS <= fr.tokensPerS)
          : "not tested (no free-running run)"
      }`,
      "",
    );
    const line4 = runs.map((r) => `${r.mode} ${Math.round(r.tokensPerS)} tokens/s`).join(", ");
    const ss = run("scheduled-sampling");
    L.push(
      `Training throughput: ${line4}.` +
        (fr
          ? ` Teacher forcing scores all ${T} positions of a window in one forward pass; free running must first ` +
            `generate ${
              T - 1
            } positions one after another (one KV-cache decode step each, all inside the same ` +
            `submission), which made it ${f(tfR.tokensPerS / fr.tokensPerS, 1)}x slower here.`
          : "") +
        (ss
          ? ` Scheduled sampling's extra teacher-forced pass is parallel too; it ran at ${
            f(ss.tokensPerS / tfR.tokensPerS, 2)
          }x teacher forcing's throughput.`
          : ""),
      "",
    );
    // 5. exposure bias
    const gap = (r: ModeRun) => r.exposure.gold_loss_after_own_mean - r.exposure.gold_loss_after_gold_mean;
    const held5 = gap(tfR) > 0 && tfR.exposure.drift_kl_mean > 0;
    L.push(
      `### 5. Teacher forcing creates a mismatch with inference (exposure bias): ${verdict(held5, !held5)}`,
      "",
    );
    const klEarly = early(e.drift_kl), klLate = late(e.drift_kl);
    L.push(
      `Fed its own ${cfg.fr_decode} continuation after ${P} gold tokens, the teacher-forced model pays ` +
        `${f(e.gold_loss_after_own_mean)} nats per gold token instead of ${f(e.gold_loss_after_gold_mean)} ` +
        `(gap ${
          f(gap(tfR))
        }), and its next-token distributions drift from the gold-history ones by a mean KL ` +
        `of ${f(e.drift_kl_mean)} nats. The KL averages ${f(klLate)} over the last ${q} positions against ` +
        `${f(klEarly)} over the first ${q} free ones (${
          klLate > klEarly ? "the mismatch grows along the sequence" : "no growth along the sequence"
        }).`,
    );
    for (const r of runs.filter((r) => r.mode !== "teacher-forcing")) {
      const smaller = gap(r) < gap(tfR);
      const ownBetter = r.exposure.gold_loss_after_own_mean < e.gold_loss_after_own_mean;
      L.push(
        `- ${r.mode} model: gap ${f(gap(r))}, mean KL ${f(r.exposure.drift_kl_mean)} — ${
          smaller ? "a smaller" : "no smaller"
        } gap than teacher forcing's. Its loss given its own history is ${
          f(r.exposure.gold_loss_after_own_mean)
        }, ` +
          `${ownBetter ? "lower" : "not lower"} than the teacher-forced model's ${
            f(e.gold_loss_after_own_mean)
          }; ` +
          `given gold history ${f(r.exposure.gold_loss_after_gold_mean)} against ${
            f(e.gold_loss_after_gold_mean)
          }; ` +
          `best teacher-forced validation loss ${f(r.bestVal)} against ${f(tfR.bestVal)}.` +
          (smaller && r.exposure.gold_loss_after_gold_mean > info.unigram - 0.3
            ? ` Its gold-history loss is within 0.3 nats of the unigram entropy (${
              f(info.unigram)
            }): the model ` +
              `makes little use of its inputs, so whose history it sees matters little; the small gap says ` +
              `more about that than about robustness.`
            : ""),
      );
    }
    L.push("");
  }
  L.push("## Plots", "");
  L.push("![validation and training loss by step](loss.svg)", "");
  L.push("![validation loss by time](loss-time.svg)", "");
  L.push("![gradient norm](grad-norm.svg)", "");
  L.push("![cosine of successive gradients](grad-cosine.svg)", "");
  L.push("![exposure: per-position losses](exposure.svg)", "");
  L.push("![exposure: KL per position](exposure-kl.svg)", "");
  L.push("## Definitions", "");
  L.push(
    "- Steps / seconds to target: the first evaluation at or below the target; seconds are wall clock from the " +
      "start of the run and include the periodic evaluations, which cost the same in every mode.",
    "- Throughput: tokens per second of separate short runs of each mode (steps/10, at most 50 steps, with one " +
      "loss readback at the end), three rounds with the modes interleaved, the fastest round kept.",
    "- Detrended training-loss std: the standard deviation of the residuals of a least-squares line through the " +
      "final window's per-step training losses (noise, not the downward trend).",
    "- Cosine of successive gradients: g_t·g_{t-1} / (|g_t| |g_{t-1}|) of the raw (unclipped) gradients of " +
      "consecutive optimizer steps, computed on the GPU inside each step.",
    "- Exposure curves (`deno task eval --exposure`): for each window, the loss of the gold next token at each " +
      "position given the gold history (teacher-forced) and given the gold prefix followed by the model's own " +
      "continuation (free-running); KL(p_gold-history ‖ p_own-history) per position. Means over the free positions.",
    "",
  );
  // A summary of the verdicts (the claim headings) before the numbers.
  const heads = L.filter((l) => /^### \d\. /.test(l)).map((l) => l.slice(4));
  if (heads.length) L.splice(L.indexOf("## Results"), 0, "## Summary", "", ...heads, "");
  return L.join("\n");
}

/** Compares teacher forcing's value with another mode's: differences under `tol` count as similar. */
function cmp(
  tf: number,
  other: number,
  want: "lower" | "higher",
  tol: number,
): "better" | "worse" | "similar" {
  if (!Number.isFinite(tf) || !Number.isFinite(other) || Math.abs(tf - other) <= tol) return "similar";
  return (want === "lower" ? tf < other : tf > other) ? "better" : "worse";
}

function word(c: "better" | "worse" | "similar", better: string, worse: string): string {
  return c === "better" ? better : c === "worse" ? worse : "about the same";
}

function verdict(held: boolean, failed: boolean): string {
  return held ? "held" : failed ? "did not hold" : "held only in part";
}
