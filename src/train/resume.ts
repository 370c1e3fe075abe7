/**
 * A run's settings travel with it: checkpoints store the whole TrainConfig (metadata `train_config`,
 * with the defaults that depend on `steps` resolved), so `--resume` continues with the saved model,
 * tokenizer, data order, optimizer and schedule, and a flag that contradicts them is refused instead of
 * being ignored or silently changing the run. A few settings may change on resume (below).
 *
 * @module
 */
import { configError, setting, type TrainConfig } from "./config.ts";
import { epsilonSchedule, prefixOf } from "./modes.ts";

/**
 * Settings a resumed run may change: how long it runs and how it reports, not what it computes. `data`
 * and `val` may name a moved copy of the corpus (it is encoded with the saved tokenizer).
 */
export const MAY_CHANGE_ON_RESUME: ReadonlySet<keyof TrainConfig> = new Set<keyof TrainConfig>([
  "steps",
  "eval_interval",
  "eval_iters",
  "log_interval",
  "sample_chars",
  "out",
  "resume",
  "overwrite",
  "data",
  "val",
]);

/** The model-shape settings a fine-tune (`init_from`) takes from its checkpoint. */
export const FROM_CHECKPOINT: readonly (keyof TrainConfig)[] = [
  "n_layer",
  "n_head",
  "n_embd",
  "block_size",
  "bias",
  "tokenizer",
  "vocab_size",
];

/**
 * `cfg` with the defaults that depend on `steps` made explicit (the cosine's length and the scheduled-
 * sampling slope), so that a resume with a larger `--steps` keeps the saved schedule as nanoGPT does.
 */
export function resolveSchedule(cfg: TrainConfig): TrainConfig {
  const out = { ...cfg, lr_decay_steps: cfg.lr_decay_steps ?? cfg.steps };
  if (cfg.mode === "free-running") out.prefix = prefixOf(cfg);
  if (cfg.mode === "scheduled-sampling") {
    const s = epsilonSchedule(cfg);
    out.ss_k = s.k;
    if (s.schedule === "linear") out.ss_c = s.c;
  }
  return out;
}

/** Whether two setting values are the same (numbers by value, absent equals absent). */
function same(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "number" && typeof b === "number" && Object.is(a, b));
}

function show(v: unknown): string {
  return v === undefined ? "unset" : String(v);
}

/**
 * Refuses the first key of `given` outside `mayChange` whose value differs from `saved`'s, naming the
 * flag, both values and `where` the saved value comes from.
 */
export function checkAgainstSaved(
  saved: Partial<TrainConfig>,
  given: Partial<TrainConfig>,
  mayChange: (k: keyof TrainConfig) => boolean,
  where: string,
): void {
  for (const key of Object.keys(given) as (keyof TrainConfig)[]) {
    if (mayChange(key) || given[key] === undefined) continue; // absent: the saved value stands
    if (!same(given[key], saved[key])) {
      throw configError`${setting(key)} ${show(given[key])} contradicts ${where} (${show(saved[key])});
        leave it out, or train a new run into another ${setting("out")}`;
    }
  }
}

/**
 * The configuration of a resumed run: the saved one, with `given` (the flags of this command line, or a
 * library caller's config) changing only what may change on resume; a contradicting value is an
 * InputError.
 */
export function resumeConfig(saved: TrainConfig, given: Partial<TrainConfig>, out: string): TrainConfig {
  if (given.init_from !== undefined) {
    throw configError`${setting("init_from")} starts a new run from a checkpoint; it cannot be combined
      with ${setting("resume")}`;
  }
  if (given.overwrite) {
    throw configError`${setting("overwrite")} starts afresh; it cannot be combined with ${setting("resume")}`;
  }
  checkAgainstSaved(saved, given, (k) => MAY_CHANGE_ON_RESUME.has(k), `the run saved in '${out}'`);
  const cfg = { ...saved, resume: true, out } as TrainConfig;
  for (const k of MAY_CHANGE_ON_RESUME) {
    if (given[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = given[k];
  }
  return cfg;
}
