/**
 * The playground's settings and the checks made before anything compiles: the model presets and the
 * TrainConfig of a run, the learning-rate schedule, and the text and prompt checks, whose errors name the
 * control they belong beside.
 *
 * @module
 */
import type { Tokenizer } from "../src/data/tokenizer.ts";
import type { Precision } from "../src/model/config.ts";
import { DEFAULT_TRAIN, type TrainConfig } from "../src/train/config.ts";
import type { LrSchedule } from "../src/train/schedule.ts";

/** The model presets. */
export type Size = "tiny" | "small";

/** Model shapes and run lengths; "small" is the CLI's default run (DEFAULT_TRAIN). */
export const PRESETS: Record<Size, Partial<TrainConfig>> = {
  tiny: {
    n_layer: 1,
    n_head: 2,
    n_embd: 32,
    block_size: 32,
    batch_size: 8,
    steps: 200,
    warmup: 10,
    eval_iters: 4,
  },
  small: {},
};

/** The preset's default run length. */
export const presetSteps = (size: Size): number => PRESETS[size].steps ?? DEFAULT_TRAIN.steps;

/** The TrainConfig of a preset run: about six evaluations (or one every `evalEvery` steps). */
export function runConfig(
  size: Size,
  steps: number,
  o: { evalEvery?: number; dtype?: Precision; lr?: number },
): TrainConfig {
  const lr = o.lr ?? DEFAULT_TRAIN.lr;
  return {
    ...DEFAULT_TRAIN,
    ...PRESETS[size],
    dtype: o.dtype ?? "float32",
    steps,
    lr,
    min_lr: lr * DEFAULT_TRAIN.min_lr / DEFAULT_TRAIN.lr,
    warmup: Math.min(PRESETS[size].warmup ?? DEFAULT_TRAIN.warmup, Math.floor(steps / 5)),
    eval_interval: o.evalEvery ?? Math.max(1, Math.ceil(steps / 6)),
    log_interval: Math.max(1, Math.round(steps / 100)),
    sample_chars: 0,
  };
}

/** The learning-rate schedule of a run. */
export const scheduleOf = (c: TrainConfig): LrSchedule => ({
  lr: c.lr,
  minLr: c.min_lr,
  warmup: c.warmup,
  decaySteps: c.lr_decay_steps ?? c.steps,
});

/** Characters a text needs for a context of T: both the first 90% and the last 10% must fill a window. */
export function minChars(T: number): number {
  let n = T + 1;
  while (Math.floor(n * 0.9) < T + 1 || n - Math.floor(n * 0.9) < T + 1) n++;
  return n;
}

/** Where a message goes: the element `${slot}-error` beside that control. */
export type Slot = "text" | "train" | "prompt" | "attention" | "exposure" | "checkpoint";

/** An error that belongs beside one control. */
export class PageError extends Error {
  /** The control it belongs beside. */
  readonly slot: Slot;
  /** An error with `message` for the control `slot`. */
  constructor(slot: Slot, message: string) {
    super(message);
    this.slot = slot;
  }
}

/** The peak learning rates the slider offers, roughly evenly on a log scale. */
export const PEAK_LRS = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2];

/** Checks the text before anything is compiled: not empty, long enough for the preset's context. */
export function checkText(text: string, T: number): void {
  if (text.length === 0) throw new PageError("text", "The text is empty: paste some text or pick a file.");
  const n = Array.from(text).length, need = minChars(T);
  if (n < need) {
    throw new PageError(
      "text",
      `The text has ${n} characters; this model reads ${T} at a time and keeps the last 10% to validate ` +
        `on, so it needs at least ${need}. Paste more text, or press Default text.`,
    );
  }
}

/**
 * The token ids of `text` for `tok`, or a message beside `slot` naming the characters the model has never
 * seen (`what` names the text in it: "The prompt").
 */
export function encodeFor(tok: Tokenizer, text: string, slot: Slot, what: string): number[] {
  try {
    return Array.from(tok.encode(text));
  } catch {
    const unseen = [...new Set(Array.from(text))].filter((ch) => {
      try {
        return tok.encode(ch).length === 0;
      } catch {
        return true;
      }
    });
    throw new PageError(
      slot,
      `${what} has ${unseen.map((c) => JSON.stringify(c)).join(", ")}, which the model has never seen: it ` +
        `knows only the ${tok.vocabSize} characters of its text.`,
    );
  }
}
