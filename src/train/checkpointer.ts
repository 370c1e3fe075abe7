/**
 * Checkpoints written while training goes on. A save queues its read-backs at that point of the GPU's
 * timeline (TrainStep.snapshot), so later steps cannot change what they copy; encoding, writing and fsync
 * (0.2-0.6 s for shakespeare_char's 10.7M parameters and moments on this machine) overlap the next steps
 * instead of stalling them. One save at a time, in order; a failed save's error is thrown at the next
 * step (`check`), save or the end of the run (`settle`), never left as an unhandled rejection.
 *
 * @module
 */
import type { Tokenizer } from "../data/tokenizer.ts";
import type { GPTConfig } from "../model/config.ts";
import type { TrainConfig } from "./config.ts";
import { arenaToWeights } from "../model/checkpoint.ts";
import { saveHfGpt2 } from "../model/hf_gpt2.ts";
import { saveCheckpoint, type TrainState } from "./state.ts";
import type { TrainStep } from "./step.ts";

/** Where the run stands when a save is queued: the TrainState fields besides the weights and moments. */
export type RunPosition = Omit<TrainState, "m" | "v" | "lossScaler" | "run">;

/** Options of {@linkcode Checkpointer}. */
export interface CheckpointerOptions {
  /** The run folder. */
  dir: string;
  /** The model's shape. */
  config: GPTConfig;
  /** The run's tokenizer, stored with the weights. */
  tokenizer: Tokenizer;
  /** The run's effective configuration, stored for resume, eval and sample. */
  run: TrainConfig;
  /** Write nothing (tests, browser pages): saves do nothing and no checkpoint is reported. */
  dry: boolean;
  /** The step of the checkpoint already on disk (a resumed run's), or -1 when none. */
  savedStep: number;
  /**
   * Also write the model in Hugging Face's GPT-2 layout into `dir/hf/` with each save (a run fine-tuned
   * from such a folder), so the result loads wherever the original did.
   */
  hfLayout?: boolean;
  /**
   * The run trained on text given directly (no file): its checkpoints say so (`data_source: "text"`),
   * so that evaluation asks for the text instead of guessing it from `run`.
   */
  givenText?: boolean;
}

/** Writes a training step's checkpoints in the background, one at a time (see the module doc). */
export class Checkpointer {
  readonly #step: TrainStep;
  readonly #o: CheckpointerOptions;
  #pending: Promise<void> = Promise.resolve();
  #error: unknown = null;
  #savedStep: number;

  /** Checkpoints of `step`'s model and optimizer. */
  constructor(step: TrainStep, o: CheckpointerOptions) {
    this.#step = step;
    this.#o = o;
    this.#savedStep = o.savedStep;
  }

  /**
   * Queues a save of the weights and moments as of now with validation loss `valLoss`, after the previous
   * save has finished (its error is thrown here). `at` is asked once that wait is over; best.safetensors
   * is written too when `valLoss <= at().bestVal`.
   */
  async save(valLoss: number, at: () => RunPosition): Promise<void> {
    if (this.#o.dry) return;
    await this.settle();
    const snapshot = this.#step.snapshot();
    const position = at();
    const isBest = valLoss <= position.bestVal;
    const { dir, config, tokenizer, run } = this.#o;
    const layout = this.#step.model.params.layout;
    this.#pending = (async () => {
      const { params, ...moments } = await snapshot;
      const state: TrainState = { ...position, ...moments, run };
      const extra: Record<string, string> = this.#o.givenText ? { data_source: "text" } : {};
      await saveCheckpoint(dir, config, tokenizer, layout, params, state, valLoss, isBest, extra);
      if (this.#o.hfLayout) {
        await saveHfGpt2(`${dir}/hf`, { config, tokenizer, weights: arenaToWeights(layout, params) });
      }
      this.#savedStep = position.step;
    })().catch((e) => {
      this.#error ??= e;
    });
  }

  /** Throws the error of a save that failed (called before each step: a failed write stops the run). */
  check(): void {
    if (this.#error !== null) throw this.#error;
  }

  /** Waits for the pending save, then throws its error if it failed. */
  async settle(): Promise<void> {
    await this.#pending;
    this.check();
  }

  /** Waits for the pending save, whatever its outcome (a save of weights read before an error still lands). */
  async idle(): Promise<void> {
    await this.#pending;
  }

  /** The latest checkpoint on disk and its step, or null when none was written (or the run writes none). */
  get latest(): { path: string; step: number } | null {
    return this.#savedStep >= 0 && !this.#o.dry
      ? { path: `${this.#o.dir}/model.safetensors`, step: this.#savedStep }
      : null;
  }

  /** What a stopped run leaves on disk, for its message: "the last checkpoint (step N) is kept in DIR/...". */
  kept(): string {
    const l = this.latest;
    return l ? `the last checkpoint (step ${l.step}) is kept in ${l.path}` : "no checkpoint was written";
  }
}
