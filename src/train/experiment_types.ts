/**
 * The experiment's options and results ({@linkcode runExperiment} in src/train/experiment.ts): the types
 * the runner fills and the report (src/train/report.ts) reads, apart so neither imports the other.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { CharOracle } from "../data/oracle.ts";
import type { TrainConfig, TrainMode } from "./config.ts";
import type { ExposureResult } from "./exposure.ts";
import type { StepRecord } from "./log.ts";
import type { NoiseResult } from "./noise.ts";
import type { HistoryCheck, StepTimeRow } from "./claims.ts";

/** Options of `runExperiment` (src/train/experiment.ts). */
export interface ExperimentOptions {
  /** The shared training configuration (`mode` and `seed` replaced per run; nothing is saved). */
  base: TrainConfig;
  /** Folder for report.md and the SVG plots (created). */
  report: string;
  /** Modes to run (default all three). */
  modes?: TrainMode[];
  /** Seeds per mode: base.seed, base.seed + 1, ... (default 5). */
  seeds?: number;
  /** Target validation loss (default: 10% of the way from teacher forcing's worst best loss to ln V). */
  target?: number;
  /** Final steps of the training-loss noise (default max(10, steps / 4)). */
  window?: number;
  /** Validation windows of the exposure curves (default 64). */
  windows?: number;
  /** The true law of `text` / base.data's language (library callers). */
  oracle?: CharOracle;
  /** An order-k chain file (`--oracle FILE`): the oracle, and without data the source of the training text. */
  oracleFile?: string;
  /** Characters sampled from `oracleFile` when there is no data (default 300,000). */
  oracleChars?: number;
  /** Draws of the noise-scale estimate (default 4). */
  noiseDraws?: number;
  /** Block sizes of the step-time table (default 16, 32, 64, 128, 256; [] skips it). */
  blockSizes?: number[];
  /** Steps of each timed run of that table (default 3; the fastest of two rounds is kept). */
  timingSteps?: number;
  /** Windows of the history check (default 8). */
  checkWindows?: number;
  /** Report title (default: the three modes and the data source). */
  title?: string;
  /** A paragraph put under the title. */
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

/** The noise scale at a matched validation loss: where it was measured. */
export interface MatchedNoise extends NoiseResult {
  /** The matched level: the highest best validation loss of the seed's modes (each mode reached it). */
  level: number;
  /** The evaluation step of the weights measured: this mode's first at or below the level. */
  step: number;
  /** Its validation loss. */
  val: number;
}

/** One mode and seed's measurements. */
export interface ModeRun {
  /** The mode. */
  mode: TrainMode;
  /** The seed. */
  seed: number;
  /** Every training-loss record (one per step) and validation record. */
  history: StepRecord[];
  /** Best teacher-forced validation loss. */
  bestVal: number;
  /** Last validation loss. */
  finalVal: number;
  /** Wall-clock seconds of the training run. */
  seconds: number;
  /** Training seconds of the run: wall clock less evaluations (the last record's elapsed_s − eval_s). */
  trainSeconds: number;
  /** Exposure curves of the trained model on the validation split (with the oracle's figures if any). */
  exposure: ExposureResult;
  /** B_simple at the last step's weights. */
  noiseFinal: NoiseResult;
  /** B_simple at the seed's matched validation loss. */
  noiseMatched: MatchedNoise;
}

/** What the report says about the setup. */
export interface ExperimentSetup {
  /** The corpus line. */
  corpus: string;
  /** The adapter. */
  adapter: string;
  /** Trainable parameters. */
  params: number;
  /** Vocabulary size. */
  V: number;
  /** Entropy rate of the data's source in nats/token, when known. */
  entropy?: number;
  /** Unigram entropy of the validation split (nats/token). */
  unigram: number;
  /** The oracle's description, or null. */
  oracle: string | null;
  /** Where the data came from. */
  source: "language" | "oracle file" | "data" | "text";
}

/** The experiment's outcome. */
export interface ExperimentResult {
  /** Per mode and seed, seeds outermost. */
  runs: ModeRun[];
  /** The modes, in report order. */
  modes: TrainMode[];
  /** The seeds. */
  seeds: number[];
  /** The target validation loss used. */
  target: number;
  /** The claim-3 check of each mode's model of the first seed. */
  history: HistoryCheck[];
  /** The step-time table of claim 4 (`stopped`: why it ends early). */
  timing: { rows: StepTimeRow[]; stopped?: string };
  /** The setup. */
  setup: ExperimentSetup;
  /** Wall-clock seconds of the whole experiment. */
  seconds: number;
  /** Path of the Markdown report. */
  reportPath: string;
  /** The report text. */
  markdown: string;
}
