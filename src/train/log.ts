/**
 * A run's records: kept in memory (the history `train` returns), appended to DIR/log.jsonl as they
 * arrive, and drawn as DIR/loss.svg at each evaluation and at the end.
 *
 * @module
 */
import { configError, setting } from "./config.ts";
import { writeError, writeFileAtomic } from "../io/atomic.ts";
import { JsonlLog, readJsonl } from "../io/log.ts";
import { linePlotSvg } from "../io/svg.ts";

/** One line of DIR/log.jsonl. Training-loss lines have val_loss null; evaluation lines the reverse. */
export interface StepRecord {
  /** Optimizer steps completed. */
  step: number;
  /** Mean training loss of the logged step (nats/token), or null on an evaluation line. */
  train_loss: number | null;
  /** Validation loss (nats/token) on evaluation lines, else null. */
  val_loss: number | null;
  /** Learning rate of the step. */
  lr: number;
  /** Global gradient norm before clipping, or null on an evaluation line. */
  grad_norm: number | null;
  /** Training throughput since the previous log line, or null on an evaluation line. */
  tokens_per_s: number | null;
  /** Training seconds so far (across resumes), wall clock: evaluations and checkpoints included. */
  elapsed_s: number;
  /** The part of elapsed_s spent evaluating and saving checkpoints (absent in logs written before it). */
  eval_s?: number;
  /** float16 runs, training lines: the loss scale of the logged step. */
  loss_scale?: number;
  /** float16 runs, training lines: true when the logged step overflowed f16 and was skipped. */
  skipped?: boolean;
}

/** Collects records, writes the JSONL log and the loss plot. */
export class RunLog {
  /** Every record of this process, in order (a resumed run's history starts at the resume). */
  readonly records: StepRecord[] = [];
  #dir: string;
  #dry: boolean;
  #resumedAt: number | null;
  #entropy?: number;
  #file: JsonlLog | null = null;
  #past: StepRecord[] = [];
  #writes: Promise<void> = Promise.resolve();
  #error: Error | null = null;

  /**
   * A log in `dir` (nothing written when `dry`). `resumedAt`: the step a resumed run continues from; the
   * earlier run's lines up to it are kept and any after it (steps it logged past its last checkpoint,
   * which this run will log again) are dropped, so each step appears once. null: a new log.
   */
  constructor(dir: string, dry: boolean, resumedAt: number | null, entropyRate?: number) {
    this.#dir = dir;
    this.#dry = dry;
    this.#resumedAt = resumedAt;
    this.#entropy = entropyRate;
  }

  /** Creates the folder and opens log.jsonl (on resume, without the lines past the resumed step). */
  async open(): Promise<void> {
    if (this.#dry) return;
    try {
      await Deno.mkdir(this.#dir, { recursive: true });
    } catch (e) {
      throw configError`${setting("out")} '${this.#dir}': cannot create folder (${
        (e as Error).message.split("\n")[0]
      })`;
    }
    const path = `${this.#dir}/log.jsonl`;
    const at = this.#resumedAt;
    if (at !== null) {
      let past: StepRecord[] = [];
      try {
        past = (await readJsonl(path)) as unknown as StepRecord[];
      } catch {
        // no log, or not one of ours: start a new one after it
      }
      this.#past = past.filter((r) => r.step <= at);
      if (this.#past.length < past.length) {
        const lines = this.#past.map((r) => JSON.stringify(r) + "\n").join("");
        await writeFileAtomic(path, lines);
      }
    }
    try {
      this.#file = await JsonlLog.open(path, { append: at !== null });
    } catch (e) {
      throw writeError(path, e);
    }
  }

  /** Adds a record (written in the background, in order; a failure is kept for check()). */
  add(r: StepRecord): void {
    this.records.push(r);
    const f = this.#file;
    if (!f) return;
    this.#writes = this.#writes.then(() => f.write(r as unknown as Record<string, unknown>)).catch((e) => {
      this.#error ??= writeError(f.path, e);
    });
  }

  /** Throws the first failed write of a record, if any. */
  check(): void {
    if (this.#error) throw this.#error;
  }

  /** Waits for pending writes and redraws loss.svg. */
  async flush(): Promise<void> {
    await this.#writes;
    this.check();
    if (this.#dry) return;
    await writeFileAtomic(`${this.#dir}/loss.svg`, this.plot());
  }

  /** Flushes and closes the log. */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = null;
  }

  /** The loss plot of all records (this run's and, when resumed, the earlier ones). */
  plot(): string {
    const all = [...this.#past, ...this.records];
    const pts = (k: "train_loss" | "val_loss") =>
      all.filter((r) => r[k] !== null && r[k] !== undefined).map((r) =>
        [r.step, r[k] as number] as [number, number]
      );
    return linePlotSvg({
      title: "tforce training loss",
      xLabel: "step",
      yLabel: "loss (nats/token)",
      series: [
        { name: "train", points: pts("train_loss") },
        { name: "val", points: pts("val_loss"), dashed: true },
      ],
      hlines: this.#entropy !== undefined
        ? [{ y: this.#entropy, label: `best achievable ${this.#entropy.toFixed(3)}` }]
        : [],
    });
  }
}
