/**
 * A one-line progress bar for terminals (step, loss, tokens/s, ETA); silent when stdout is not a
 * terminal, so logs stay clean when piped.
 *
 * @module
 */

const enc = new TextEncoder();

/** Progress of a run of `total` steps. */
export class Progress {
  /** True when stdout is a terminal (the bar is drawn). */
  readonly interactive: boolean;
  #total: number;
  #first = 0;
  #t0 = 0;
  #drawn = false;

  /** A bar for `total` steps. */
  constructor(total: number) {
    this.#total = total;
    this.interactive = Deno.stdout.isTerminal();
  }

  /** Starts timing at `step`. */
  start(step: number): void {
    this.#first = step;
    this.#t0 = performance.now();
  }

  /** Redraws the bar. */
  update(step: number, loss: number, tokensPerS: number, _elapsed: number): void {
    if (!this.interactive) return;
    const frac = Math.min(1, step / this.#total);
    const width = 24, fill = Math.round(frac * width);
    const secs = (performance.now() - this.#t0) / 1000;
    const done = step - this.#first;
    const eta = done > 0 ? secs / done * (this.#total - step) : NaN;
    const bar = "#".repeat(fill) + "-".repeat(width - fill);
    this.#write(
      `\r[${bar}] step ${step}/${this.#total}  loss ${loss.toFixed(4)}  ${
        Math.round(tokensPerS)
      } tok/s  ETA ${duration(eta)}\x1b[K`,
    );
    this.#drawn = true;
  }

  /** Prints a line above the bar. */
  line(text: string): void {
    if (this.#drawn) this.#write("\r\x1b[K");
    console.log(text);
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.#drawn) this.#write("\n");
    this.#drawn = false;
  }

  #write(s: string): void {
    Deno.stdout.writeSync(enc.encode(s));
  }
}

/** "1h02m", "3m05s", "42s" or "?" */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = Math.floor(s % 60);
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}
