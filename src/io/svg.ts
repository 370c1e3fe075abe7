/**
 * Self-contained SVG line plots for run reports (loss curves and the like): axes with nice ticks, a
 * light grid, a legend beside the plot, distinct colours, dashed series, shaded bands (a series' mean
 * line with its interval, e.g. a 95% interval across seeds), labelled horizontal reference lines (e.g.
 * "best achievable loss") and an optional log y axis. No fonts, scripts or external references;
 * non-finite points (and non-positive ones on a log axis) are skipped, breaking the line or the band.
 *
 * @module
 */

/** One line of a plot. */
export interface PlotSeries {
  /** Shown in the legend. */
  name: string;
  /** [x, y] pairs in drawing order; non-finite ones are skipped and break the line. */
  points: [number, number][];
  /** Draw dashed (e.g. validation next to a solid training curve). */
  dashed?: boolean;
  /**
   * A shaded band in the series' colour, under every line: [x, low, high] triples in drawing order (e.g.
   * the 95% interval around a mean line). A triple with a non-finite value (or, on a log axis, a
   * non-positive one) is skipped and breaks the band; a piece of one triple is drawn as a vertical bar.
   */
  band?: [number, number, number][];
}

/** Options for {@linkcode linePlotSvg}. */
export interface LinePlotOptions {
  /** Title above the plot. */
  title: string;
  /** Label under the x axis. */
  xLabel: string;
  /** Label beside the y axis. */
  yLabel: string;
  /** The lines, coloured in order from a 10-colour palette. */
  series: PlotSeries[];
  /** Horizontal reference lines, drawn dotted grey with their label. */
  hlines?: { y: number; label: string }[];
  /** Total width in pixels (default 760). */
  width?: number;
  /** Total height in pixels (default 440). */
  height?: number;
  /** Logarithmic y axis (values <= 0 are skipped). */
  logY?: boolean;
}

/** Tableau 10: distinct, colour-blind-friendlier than most defaults. */
const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;")
    // Characters XML 1.0 forbids outright.
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd");
}

/** A pixel coordinate, short and always finite. */
function px(v: number): string {
  return Number.isFinite(v) ? (Math.round(v * 10) / 10).toString() : "0";
}

/** 1, 2 or 5 times a power of ten, near `raw`. */
function niceStep(raw: number): number {
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/** Tidy float: strips binary noise such as 0.30000000000000004. */
function tidy(v: number): number {
  return Number.parseFloat(v.toPrecision(12));
}

/** Tick label with the decimals `step` calls for; exponent form for very large or small values. */
function fmtLinear(v: number, step: number): string {
  if (Math.abs(v) < step * 1e-9) v = 0;
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e6 || a < 1e-4)) {
    // As many significant digits as the step needs, so neighbouring labels differ.
    const digits = Math.floor(Math.log10(a) + 1e-9) - Math.floor(Math.log10(step) + 1e-9);
    return fmtExp(v, Math.max(0, Math.min(15, digits)));
  }
  const decimals = Math.min(10, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function fmtExp(v: number, digits = 2): string {
  return v.toExponential(digits).replace(/\.?0+e/, "e").replace("e+", "e");
}

function fmtGeneral(v: number): string {
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e6 || a < 1e-4)) return fmtExp(v);
  return tidy(Number(v.toPrecision(4))).toString();
}

interface Axis {
  /** Data value -> 0..1 along the axis. */
  frac(v: number): number;
  ticks: { v: number; label: string }[];
}

function linearAxis(lo: number, hi: number, target: number, snap: boolean): Axis {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  let step = niceStep((hi - lo) / target);
  if (snap) {
    lo = Math.floor(lo / step + 1e-9) * step;
    hi = Math.ceil(hi / step - 1e-9) * step;
    step = niceStep((hi - lo) / target);
  }
  const ticks: { v: number; label: string }[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && ticks.length < 50; k++) {
    const v = tidy(k * step);
    ticks.push({ v, label: fmtLinear(v, step) });
  }
  const span = hi - lo;
  return { frac: (v) => (v - lo) / span, ticks };
}

function logAxis(lo: number, hi: number): Axis {
  let a = Math.log10(lo), b = Math.log10(hi);
  if (!(b > a)) {
    a -= 0.5;
    b += 0.5;
  }
  const pad = (b - a) * 0.04;
  a -= pad;
  b += pad;
  const vlo = 10 ** a, vhi = 10 ** b;
  const inRange = (v: number) => v >= vlo * (1 - 1e-12) && v <= vhi * (1 + 1e-12);
  let ticks: { v: number; label: string }[] = [];
  for (const mults of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const t: { v: number; label: string }[] = [];
    for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
      for (const m of mults) {
        const v = tidy(m * 10 ** e);
        if (inRange(v)) t.push({ v, label: fmtGeneral(v) });
      }
    }
    // Thin a too-dense decade series (e.g. 1e-30 .. 1e30) to about eight labels.
    if (mults.length === 1 && t.length > 10) {
      const every = Math.ceil(t.length / 8);
      ticks = t.filter((x) => Math.round(Math.log10(x.v)) % every === 0);
      break;
    }
    if (t.length >= 4 && t.length <= 12) {
      ticks = t;
      break;
    }
    if (t.length > 12) break;
    ticks = t;
  }
  if (ticks.length < 3) {
    // Less than about one decade: plain linear ticks, placed on the log scale.
    ticks = linearAxis(vlo, vhi, 5, false).ticks.filter((t) => t.v > 0 && inRange(t.v));
  }
  return { frac: (v) => (Math.log10(v) - a) / (b - a), ticks };
}

/**
 * Renders a line plot as a standalone SVG document string. Robust to empty series, single points
 * (drawn as dots), constant series, and NaN / ±Infinity points (skipped, breaking the line).
 */
export function linePlotSvg(opts: LinePlotOptions): string {
  const W = Math.max(200, opts.width ?? 760), H = Math.max(150, opts.height ?? 440);
  const logY = opts.logY === true;
  const okY = (y: number) => Number.isFinite(y) && (!logY || y > 0);
  const series = opts.series.map((s, i) => ({
    name: s.name,
    // Past ten series the colours repeat: vary the stroke so lines stay distinguishable.
    dash: s.dashed === true
      ? "7 4"
      : i >= PALETTE.length
      ? ["", "1 3", "10 3 2 3"][Math.floor(i / PALETTE.length) % 3]
      : "",
    color: PALETTE[i % PALETTE.length],
    // Runs of drawable points; a skipped point ends a run.
    runs: ((): [number, number][][] => {
      const runs: [number, number][][] = [];
      let cur: [number, number][] = [];
      for (const p of s.points) {
        if (Array.isArray(p) && Number.isFinite(p[0]) && okY(p[1])) cur.push([p[0], p[1]]);
        else if (cur.length) {
          runs.push(cur);
          cur = [];
        }
      }
      if (cur.length) runs.push(cur);
      return runs;
    })(),
    bandRuns: ((): [number, number, number][][] => {
      const runs: [number, number, number][][] = [];
      let cur: [number, number, number][] = [];
      for (const b of s.band ?? []) {
        if (Array.isArray(b) && Number.isFinite(b[0]) && okY(b[1]) && okY(b[2])) {
          cur.push([b[0], Math.min(b[1], b[2]), Math.max(b[1], b[2])]);
        } else if (cur.length) {
          runs.push(cur);
          cur = [];
        }
      }
      if (cur.length) runs.push(cur);
      return runs;
    })(),
  }));
  const hlines = (opts.hlines ?? []).filter((h) => okY(h.y));

  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    for (const run of s.runs) {
      for (const [x, y] of run) {
        x0 = Math.min(x0, x), x1 = Math.max(x1, x);
        y0 = Math.min(y0, y), y1 = Math.max(y1, y);
      }
    }
    for (const run of s.bandRuns) {
      for (const [x, lo, hi] of run) {
        x0 = Math.min(x0, x), x1 = Math.max(x1, x);
        y0 = Math.min(y0, lo), y1 = Math.max(y1, hi);
      }
    }
  }
  const hasData = x0 <= x1;
  for (const h of hlines) y0 = Math.min(y0, h.y), y1 = Math.max(y1, h.y);
  if (!hasData) x0 = 0, x1 = 1;
  if (!(y0 <= y1)) y0 = logY ? 1 : 0, y1 = logY ? 10 : 1;

  // Layout: title on top, legend in a column right of the plot.
  const font = 12, charW = 6.8;
  const legendItems = series.filter((s) => s.name !== "");
  const legendW = legendItems.length === 0
    ? 0
    : Math.min(W * 0.35, 42 + charW * Math.max(...legendItems.map((s) => s.name.length)));
  const top = opts.title ? 40 : 16, bottom = 52, right = 16 + legendW;
  const xAxis = linearAxis(x0, x1, Math.max(2, Math.round((W - legendW) / 110)), false);
  const yAxis = logY ? logAxis(y0, y1) : linearAxis(y0, y1, Math.max(2, Math.round(H / 70)), true);
  const left = 30 + Math.max(28, 7.2 * Math.max(...yAxis.ticks.map((t) => t.label.length), 1)) + 8;
  const pw = Math.max(10, W - left - right), ph = Math.max(10, H - top - bottom);
  const X = (x: number) => left + xAxis.frac(x) * pw;
  const Y = (y: number) => top + ph - yAxis.frac(y) * ph;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="${font}" role="img" aria-label="${esc(opts.title)}">`,
  );
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) {
    out.push(
      `<text x="${px(left + pw / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">` +
        `${esc(opts.title)}</text>`,
    );
  }
  // Grid lines, tick labels and tick marks: a group each, one element per x tick, then per y tick.
  type Tick = Axis["ticks"][number];
  const ticks = (attrs: string, xEl: (t: Tick) => string, yEl: (t: Tick) => string) =>
    out.push(`<g ${attrs}>`, ...xAxis.ticks.map(xEl), ...yAxis.ticks.map(yEl), `</g>`);
  ticks(
    `stroke="#e6e6e6" stroke-width="1"`,
    (t) => `<line x1="${px(X(t.v))}" y1="${top}" x2="${px(X(t.v))}" y2="${top + ph}"/>`,
    (t) => `<line x1="${left}" y1="${px(Y(t.v))}" x2="${left + pw}" y2="${px(Y(t.v))}"/>`,
  );
  ticks(
    `fill="#333333"`,
    (t) => `<text x="${px(X(t.v))}" y="${px(top + ph + 17)}" text-anchor="middle">${esc(t.label)}</text>`,
    (t) => `<text x="${px(left - 7)}" y="${px(Y(t.v) + 4)}" text-anchor="end">${esc(t.label)}</text>`,
  );
  ticks(
    `stroke="#333333" stroke-width="1"`,
    (t) => `<line x1="${px(X(t.v))}" y1="${top + ph}" x2="${px(X(t.v))}" y2="${top + ph + 5}"/>`,
    (t) => `<line x1="${left - 5}" y1="${px(Y(t.v))}" x2="${left}" y2="${px(Y(t.v))}"/>`,
  );
  // Axis labels.
  out.push(
    `<text x="${px(left + pw / 2)}" y="${px(H - 12)}" text-anchor="middle" font-size="13">${
      esc(opts.xLabel)
    }</text>`,
  );
  out.push(
    `<text transform="translate(16 ${px(top + ph / 2)}) rotate(-90)" text-anchor="middle" font-size="13">` +
      `${esc(opts.yLabel)}</text>`,
  );
  // Reference lines, under the data.
  for (const h of hlines) {
    const y = px(Y(h.y));
    out.push(
      `<line x1="${left}" y1="${y}" x2="${left + pw}" y2="${y}" stroke="#555555" stroke-width="1.2" ` +
        `stroke-dasharray="2 3"/>`,
    );
    out.push(
      `<text x="${px(left + pw - 4)}" y="${
        px(Y(h.y) - top < 16 ? Y(h.y) + 13 : Y(h.y) - 4)
      }" text-anchor="end" font-size="11" fill="#444444">` +
        `${esc(h.label)} (${esc(fmtGeneral(h.y))})</text>`,
    );
  }
  // Bands, under every line.
  for (const s of series) {
    for (const run of s.bandRuns) {
      const pts = run.length === 1
        ? [[run[0][0], run[0][2]], [run[0][0], run[0][1]]]
        : [...run.map(([x, , hi]) => [x, hi]), ...run.map(([x, lo]) => [x, lo]).reverse()];
      const xs = pts.map(([x, y]) => `${px(X(x))},${px(Y(y))}`).join(" ");
      out.push(
        run.length === 1
          ? `<polyline points="${xs}" fill="none" stroke="${s.color}" stroke-opacity="0.35" stroke-width="6"/>`
          : `<polygon points="${xs}" fill="${s.color}" fill-opacity="0.18" stroke="none"/>`,
      );
    }
  }
  // Data.
  for (const s of series) {
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    for (const run of s.runs) {
      if (run.length === 1) {
        out.push(`<circle cx="${px(X(run[0][0]))}" cy="${px(Y(run[0][1]))}" r="3" fill="${s.color}"/>`);
        continue;
      }
      const pts = run.map(([x, y]) => `${px(X(x))},${px(Y(y))}`).join(" ");
      out.push(
        `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="1.8" ` +
          `stroke-linejoin="round" stroke-linecap="round"${dash}/>`,
      );
    }
  }
  if (!hasData) {
    out.push(
      `<text x="${px(left + pw / 2)}" y="${
        px(top + ph / 2)
      }" text-anchor="middle" fill="#888888">no data</text>`,
    );
  }
  // Frame over the data edges.
  out.push(
    `<rect x="${left}" y="${top}" width="${px(pw)}" height="${px(ph)}" fill="none" stroke="#333333"/>`,
  );
  // Legend.
  legendItems.forEach((s, i) => {
    const lx = left + pw + 14, ly = top + 8 + i * 20;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    // + 1e-9: 42 + 6.8 * n minus 42, over 6.8, can land a hair under n in floating point.
    const maxChars = Math.max(3, Math.floor((legendW - 42) / charW + 1e-9));
    const name = s.name.length > maxChars ? s.name.slice(0, maxChars - 1) + "…" : s.name;
    if (s.bandRuns.length) {
      out.push(
        `<rect x="${px(lx)}" y="${
          px(ly - 5)
        }" width="24" height="10" fill="${s.color}" fill-opacity="0.18"/>`,
      );
    }
    out.push(
      `<line x1="${px(lx)}" y1="${px(ly)}" x2="${px(lx + 24)}" y2="${px(ly)}" stroke="${s.color}" ` +
        `stroke-width="2.2"${dash}/>`,
    );
    out.push(`<text x="${px(lx + 30)}" y="${px(ly + 4)}">${esc(name)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
