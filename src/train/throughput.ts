/**
 * Training throughput as the log reports it: tokens per second over a window of the last few seconds of
 * training-loss records, restarted after each evaluation.
 *
 * The records come from MAP_READ read-backs of steps already finished, and Deno resolves those in bursts:
 * two records can land within a millisecond of each other and then none for two steps. A rate between
 * consecutive records swings between far too high and too low (with `--log-interval 1` it alternated
 * between ~4k and ~1.9M tokens/s on lavapipe); over a window of a couple of seconds the bursts average out.
 * Evaluation and checkpoint time is not training time: `restart` after them.
 *
 * @module
 */

/** Tokens per second over a sliding window of (step, time) marks. */
export class ThroughputMeter {
  readonly #tokensPerStep: number;
  readonly #windowMs: number;
  #marks: { step: number; time: number }[] = [];

  /** `tokensPerStep`: tokens one optimizer step trains on; `windowMs`: the span rates cover at least. */
  constructor(tokensPerStep: number, startStep: number, now: number, windowMs = 2000) {
    this.#tokensPerStep = tokensPerStep;
    this.#windowMs = windowMs;
    this.restart(startStep, now);
  }

  /** Starts a new window at `step` (after an evaluation: its time is not the steps'). */
  restart(step: number, now: number): void {
    this.#marks = [{ step, time: now }];
  }

  /**
   * Tokens per second from the newest mark at least a window old (or the oldest there is) to `step`
   * completed at `now`; then marks `step`.
   */
  record(step: number, now: number): number {
    const marks = this.#marks;
    while (marks.length > 1 && now - marks[1].time >= this.#windowMs) marks.shift();
    const from = marks[0];
    marks.push({ step, time: now });
    return (step - from.step) * this.#tokensPerStep / Math.max(1e-3, (now - from.time) / 1000);
  }
}
