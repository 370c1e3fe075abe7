/**
 * Line charts for the page: drawn as SVG at the width of their box (a viewBox of that many pixels, CSS
 * width 100%), so text keeps its size on a phone; redrawn when the box resizes. The legend and the
 * readout are HTML around the SVG. Pointing at the plot (or the arrow keys, once the chart has focus)
 * moves a cursor to the nearest x and writes every series' value there into the readout.
 *
 * @module
 */

/** One line of a chart. */
export interface ChartSeries {
  /** Shown in the legend and the readout. */
  name: string;
  /** [x, y] pairs in drawing order; non-finite ones break the line. */
  points: readonly (readonly [number, number])[];
  /** Dashed line. */
  dashed?: boolean;
}

/** What a {@linkcode LineChart} shows. */
export interface ChartSpec {
  /** Label under the x axis. */
  xLabel: string;
  /** Label of the y axis (drawn above the plot, left). */
  yLabel: string;
  /** The lines, coloured in order. */
  series: ChartSeries[];
  /** Horizontal reference lines, dotted grey. */
  hlines?: { y: number; label: string }[];
  /** Shaded x ranges with a label (e.g. the gold prefix). */
  regions?: { x0: number; x1: number; label: string }[];
  /** How the readout and the y ticks write values (default: 3 significant digits). */
  format?: (y: number) => string;
  /** The x range even before the series reach it (e.g. [0, steps]). */
  xDomain?: [number, number];
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
const MARGIN = { left: 52, right: 14, top: 18, bottom: 40 };

/** Up to ~`count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const general = (y: number): string =>
  y === 0 || (Math.abs(y) >= 1e-3 && Math.abs(y) < 1e5)
    ? Number(y.toPrecision(3)).toString()
    : y.toExponential(2);

/** The plot's scales for one drawing. */
interface Frame {
  width: number;
  height: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  sx: (x: number) => number;
  sy: (y: number) => number;
}

function frameOf(spec: ChartSpec, width: number, height: number): Frame {
  const xs: number[] = [], ys: number[] = [];
  for (const s of spec.series) {
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) xs.push(x), ys.push(y);
    }
  }
  for (const h of spec.hlines ?? []) ys.push(h.y);
  if (spec.xDomain) xs.push(...spec.xDomain);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 >= 0 && y0 - pad < 0 ? 0 : y0 - pad, y1 + pad];
  const pw = width - MARGIN.left - MARGIN.right, ph = height - MARGIN.top - MARGIN.bottom;
  return {
    width,
    height,
    x0,
    x1,
    y0,
    y1,
    sx: (x) => MARGIN.left + (x - x0) / (x1 - x0) * pw,
    sy: (y) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * ph,
  };
}

/** The SVG of `spec` in a frame `f` (no cursor). */
function chartSvg(spec: ChartSpec, f: Frame): string {
  const fmt = spec.format ?? general;
  const out: string[] = [];
  const { width: W, height: H } = f;
  const left = MARGIN.left, right = W - MARGIN.right, top = MARGIN.top, bottom = H - MARGIN.bottom;
  for (const r of spec.regions ?? []) {
    const a = Math.max(left, f.sx(r.x0)), b = Math.min(right, f.sx(r.x1));
    if (b <= a) continue;
    out.push(`<rect class="region" x="${a}" y="${top}" width="${b - a}" height="${bottom - top}"/>`);
    out.push(`<text class="region-label" x="${a + 4}" y="${top + 12}">${esc(r.label)}</text>`);
  }
  const yTicks = niceTicks(f.y0, f.y1, Math.max(3, Math.floor((bottom - top) / 45)));
  const xTicks = niceTicks(f.x0, f.x1, Math.max(2, Math.floor((right - left) / 70)));
  for (const t of yTicks) {
    const y = f.sy(t).toFixed(1);
    out.push(`<line class="grid" x1="${left}" x2="${right}" y1="${y}" y2="${y}"/>`);
    out.push(`<text class="tick" x="${left - 6}" y="${y}" text-anchor="end" dy="0.32em">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = f.sx(t).toFixed(1);
    out.push(`<line class="grid" x1="${x}" x2="${x}" y1="${top}" y2="${bottom}"/>`);
    out.push(`<text class="tick" x="${x}" y="${bottom + 16}" text-anchor="middle">${general(t)}</text>`);
  }
  out.push(`<rect class="frame" x="${left}" y="${top}" width="${right - left}" height="${bottom - top}"/>`);
  for (const h of spec.hlines ?? []) {
    const y = f.sy(h.y).toFixed(1);
    out.push(`<line class="hline" x1="${left}" x2="${right}" y1="${y}" y2="${y}"/>`);
    out.push(
      `<text class="hline-label" x="${right - 4}" y="${y}" dy="-4" text-anchor="end">${esc(h.label)}</text>`,
    );
  }
  spec.series.forEach((s, i) => {
    const paths: string[] = [];
    let run: string[] = [];
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        if (run.length) paths.push(run.join(" ")), run = [];
        continue;
      }
      run.push(`${f.sx(x).toFixed(1)},${f.sy(y).toFixed(1)}`);
    }
    if (run.length) paths.push(run.join(" "));
    for (const p of paths) {
      const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
      out.push(
        `<polyline fill="none" stroke="${
          PALETTE[i % PALETTE.length]
        }" stroke-width="2"${dash} points="${p}"/>`,
      );
    }
  });
  out.push(
    `<text class="axis-label" x="${(left + right) / 2}" y="${H - 6}" text-anchor="middle">${
      esc(spec.xLabel)
    }</text>`,
  );
  out.push(`<text class="axis-label" x="4" y="11">${esc(spec.yLabel)}</text>`);
  out.push(`<g class="cursor"></g>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img">${
    out.join("")
  }</svg>`;
}

/** A chart in a box of the page: call `draw` with new data; it keeps itself sized and answers pointing. */
export class LineChart {
  readonly #box: HTMLElement;
  readonly #legend: HTMLElement;
  readonly #plot: HTMLElement;
  readonly #readout: HTMLElement;
  #spec: ChartSpec | null = null;
  #frame: Frame | null = null;
  #cursorX: number | null = null;
  #width = 0;

  /** Builds the legend, plot and readout inside `box` (emptied); `label` names the chart for screen readers. */
  constructor(box: HTMLElement, label: string) {
    this.#box = box;
    box.classList.add("chart");
    box.replaceChildren();
    this.#legend = Object.assign(document.createElement("ul"), { className: "legend" });
    this.#plot = Object.assign(document.createElement("div"), { className: "plot", tabIndex: 0 });
    this.#plot.setAttribute("role", "group");
    this.#plot.setAttribute("aria-label", `${label}: point at it or use the arrow keys to read values`);
    this.#readout = Object.assign(document.createElement("p"), { className: "readout" });
    this.#readout.setAttribute("aria-live", "polite");
    box.append(this.#legend, this.#plot, this.#readout);
    // Redrawn when the width changes (a height change is the chart's own doing).
    new ResizeObserver(() => {
      if (box.clientWidth !== this.#width) this.#render();
    }).observe(box);
    this.#plot.addEventListener("pointermove", (ev) => this.#pointAt(ev.clientX));
    this.#plot.addEventListener("pointerdown", (ev) => this.#pointAt(ev.clientX));
    this.#plot.addEventListener("keydown", (ev) => this.#key(ev));
  }

  /** Shows `spec` (null: an empty chart). */
  draw(spec: ChartSpec | null): void {
    this.#spec = spec;
    this.#legend.replaceChildren(
      ...(spec?.series ?? []).map((s, i) => {
        const li = document.createElement("li");
        const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
        swatch.style.borderTopColor = PALETTE[i % PALETTE.length];
        if (s.dashed) swatch.style.borderTopStyle = "dashed";
        li.append(swatch, s.name);
        return li;
      }),
    );
    this.#render();
  }

  #render(): void {
    const spec = this.#spec;
    if (!spec) {
      this.#plot.innerHTML = "";
      this.#frame = null;
      return;
    }
    this.#width = this.#box.clientWidth;
    const width = Math.max(240, Math.round(this.#width || 600));
    const height = Math.round(Math.min(340, Math.max(200, width * 0.45)));
    this.#frame = frameOf(spec, width, height);
    this.#plot.innerHTML = chartSvg(spec, this.#frame);
    if (this.#cursorX !== null) this.#showCursor(this.#cursorX);
  }

  /** Every distinct x of the series, sorted. */
  #xs(): number[] {
    const xs = new Set<number>();
    for (const s of this.#spec?.series ?? []) {
      for (const [x, y] of s.points) if (Number.isFinite(y)) xs.add(x);
    }
    return [...xs].sort((a, b) => a - b);
  }

  #pointAt(clientX: number): void {
    const f = this.#frame, svg = this.#plot.querySelector("svg");
    if (!f || !svg) return;
    const r = svg.getBoundingClientRect();
    const px = (clientX - r.left) * f.width / r.width;
    const x = f.x0 + (px - MARGIN.left) / (f.width - MARGIN.left - MARGIN.right) * (f.x1 - f.x0);
    const xs = this.#xs();
    if (!xs.length) return;
    this.#showCursor(xs.reduce((best, v) => Math.abs(v - x) < Math.abs(best - x) ? v : best, xs[0]));
  }

  #key(ev: KeyboardEvent): void {
    const xs = this.#xs();
    if (!xs.length) return;
    let i = this.#cursorX === null ? -1 : xs.indexOf(this.#cursorX);
    if (ev.key === "ArrowRight") i = Math.min(xs.length - 1, i + 1);
    else if (ev.key === "ArrowLeft") i = i < 0 ? xs.length - 1 : Math.max(0, i - 1);
    else if (ev.key === "Home") i = 0;
    else if (ev.key === "End") i = xs.length - 1;
    else return;
    ev.preventDefault();
    this.#showCursor(xs[i]);
  }

  /** Draws the cursor at `x` and writes every series' value there (the nearest point) into the readout. */
  #showCursor(x: number): void {
    const spec = this.#spec, f = this.#frame, g = this.#plot.querySelector("g.cursor");
    if (!spec || !f || !g) return;
    this.#cursorX = x;
    const fmt = spec.format ?? general;
    const parts: string[] = [];
    const marks: string[] = [];
    const px = f.sx(x).toFixed(1);
    marks.push(`<line x1="${px}" x2="${px}" y1="${MARGIN.top}" y2="${f.height - MARGIN.bottom}"/>`);
    spec.series.forEach((s, i) => {
      const near = s.points.filter(([, y]) => Number.isFinite(y))
        .reduce<readonly [number, number] | null>(
          (best, p) => best === null || Math.abs(p[0] - x) < Math.abs(best[0] - x) ? p : best,
          null,
        );
      if (!near || Math.abs(near[0] - x) > (f.x1 - f.x0) / 50 + 1e-9) return;
      parts.push(`${s.name} ${fmt(near[1])}`);
      const c = PALETTE[i % PALETTE.length];
      marks.push(
        `<circle cx="${f.sx(near[0]).toFixed(1)}" cy="${f.sy(near[1]).toFixed(1)}" r="4" fill="${c}"/>`,
      );
    });
    g.innerHTML = marks.join("");
    this.#readout.textContent = `${spec.xLabel.split(" (")[0]} ${general(x)}: ${
      parts.join(" · ") || "no value"
    }`;
  }
}
