/**
 * An attention map: row t is the query position, column j the key position (j <= t); a cell's shade is
 * how much of position t's attention goes to position j. Drawn as SVG at the box's width; pointing at a
 * cell (or the arrow keys once the map has focus) writes its weight into the readout.
 *
 * @module
 */
import { visible } from "./samples.ts";

/** A heat map of one head's attention weights over a short text. */
export class AttentionMap {
  readonly #plot: HTMLElement;
  readonly #readout: HTMLElement;
  #tokens: string[] = [];
  #weights: Float64Array[] = [];
  #cursor: [number, number] = [0, 0];
  #width = 0;

  /** Draws into `plot` and explains cells in `readout`. */
  constructor(plot: HTMLElement, readout: HTMLElement) {
    this.#plot = plot;
    this.#readout = readout;
    plot.tabIndex = 0;
    plot.setAttribute("role", "group");
    plot.setAttribute("aria-label", "attention map: use the arrow keys to read the weights");
    new ResizeObserver(() => {
      if (plot.clientWidth !== this.#width) this.#render();
    }).observe(plot);
    plot.addEventListener("pointermove", (ev) => this.#pointAt(ev));
    plot.addEventListener("pointerdown", (ev) => this.#pointAt(ev));
    plot.addEventListener("keydown", (ev) => this.#key(ev));
  }

  /** Shows `weights[t][j]` over `tokens` (or nothing, with `message` in the readout). */
  draw(tokens: string[], weights: Float64Array[], message = ""): void {
    this.#tokens = tokens;
    this.#weights = weights;
    this.#cursor = [tokens.length - 1, tokens.length - 1];
    this.#render();
    this.#readout.textContent = message ||
      "Point at a cell (or focus the map and use the arrow keys): row = the character reading, column = " +
        "the character it reads from.";
  }

  /** Cells drawn. */
  get cells(): number {
    return this.#weights.reduce((n, row) => n + row.length, 0);
  }

  #geometry(): { n: number; label: number; cell: number; size: number } {
    const n = this.#tokens.length;
    const size = Math.max(200, Math.min(440, this.#width || 400));
    const label = 16;
    return { n, label, cell: (size - label) / Math.max(1, n), size };
  }

  #render(): void {
    this.#width = this.#plot.clientWidth;
    const { n, label, cell, size } = this.#geometry();
    if (n === 0) {
      this.#plot.innerHTML = "";
      return;
    }
    const out: string[] = [];
    const font = Math.min(13, Math.max(8, cell * 0.8));
    for (let t = 0; t < n; t++) {
      for (let j = 0; j <= t; j++) {
        const w = this.#weights[t][j];
        out.push(
          `<rect x="${(label + j * cell).toFixed(2)}" y="${(label + t * cell).toFixed(2)}" width="${
            cell.toFixed(2)
          }" height="${cell.toFixed(2)}" fill="rgba(31,119,180,${Math.sqrt(w).toFixed(3)})"/>`,
        );
      }
      const ch = esc(visible(this.#tokens[t]));
      const mid = (label + (t + 0.5) * cell).toFixed(1);
      out.push(
        `<text x="${label - 3}" y="${mid}" dy="0.35em" text-anchor="end" font-size="${font}">${ch}</text>`,
      );
      out.push(`<text x="${mid}" y="${label - 4}" text-anchor="middle" font-size="${font}">${ch}</text>`);
    }
    out.push(`<rect class="cursor" fill="none" width="${cell}" height="${cell}" x="-99" y="-99"/>`);
    this.#plot.innerHTML = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" ` +
      `width="${size}" role="img">${out.join("")}</svg>`;
  }

  #pointAt(ev: PointerEvent): void {
    const svg = this.#plot.querySelector("svg");
    if (!svg) return;
    const { n, label, cell, size } = this.#geometry();
    const r = svg.getBoundingClientRect();
    const x = (ev.clientX - r.left) * size / r.width, y = (ev.clientY - r.top) * size / r.height;
    const t = Math.floor((y - label) / cell), j = Math.floor((x - label) / cell);
    if (t >= 0 && t < n && j >= 0 && j <= t) this.#show(t, j);
  }

  #key(ev: KeyboardEvent): void {
    let [t, j] = this.#cursor;
    const n = this.#tokens.length;
    if (ev.key === "ArrowUp") t = Math.max(j, t - 1);
    else if (ev.key === "ArrowDown") t = Math.min(n - 1, t + 1);
    else if (ev.key === "ArrowLeft") j = Math.max(0, j - 1);
    else if (ev.key === "ArrowRight") j = Math.min(t, j + 1);
    else return;
    ev.preventDefault();
    this.#show(t, j);
  }

  #show(t: number, j: number): void {
    this.#cursor = [t, j];
    const { label, cell } = this.#geometry();
    const c = this.#plot.querySelector("rect.cursor");
    c?.setAttribute("x", String(label + j * cell));
    c?.setAttribute("y", String(label + t * cell));
    const tok = (i: number) => `“${visible(this.#tokens[i])}” (${i})`;
    this.#readout.textContent = `${tok(t)} gives ${(this.#weights[t][j] * 100).toFixed(1)}% of its ` +
      `attention to ${tok(j)}.`;
  }
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
