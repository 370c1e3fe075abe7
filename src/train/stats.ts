/**
 * Statistics across seeds for the experiment's verdicts: Student t quantiles (computed here from the
 * regularized incomplete beta function, no table), the t interval of a mean, and paired comparisons.
 *
 * With N seeds shared by two modes (the same initialisation and data order for both), the right test of
 * "A differs from B" is on the N paired differences d_i = a_i - b_i: their mean with the interval
 * mean ± t_{(1+level)/2, N-1} · sd / sqrt(N). A verdict is stated only when that interval excludes 0;
 * otherwise "no difference detected at N seeds".
 *
 * @module
 */

/** ln Γ(x) for x > 0 (Lanczos approximation, g = 7, nine terms: about 15 significant digits). */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x); // reflection
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0];
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]: by its continued fraction
 * (evaluated with the modified Lentz method), on the side of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
 * where it converges fast.
 */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1)) return NaN;
  if (x === 0 || x === 1) return x;
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(a * Math.log(x) + b * Math.log(1 - x) - lnGamma(a) - lnGamma(b) + lnGamma(a + b)) /
    a;
  // I = front / K, K = 1 + d1 / (1 + d2 / (1 + ...)) with d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and
  // d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)); K by the modified Lentz method.
  const tiny = 1e-300;
  let K = 1, C = 1, D = 0;
  for (let j = 1; j <= 1000; j++) {
    const m = j >> 1;
    const d = j % 2 === 1
      ? -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
      : (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    D = 1 + d * D;
    if (Math.abs(D) < tiny) D = tiny;
    C = 1 + d / C;
    if (Math.abs(C) < tiny) C = tiny;
    D = 1 / D;
    const step = C * D;
    K *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return front / K;
}

/** P(T <= t) for Student's t with `df` > 0 degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0) || Number.isNaN(t)) return NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The p quantile of Student's t with `df` > 0 degrees of freedom (p in (0, 1)): the t with
 * P(T <= t) = p, by bisection on {@linkcode studentTCdf} to full double precision. NaN outside the domain.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return NaN;
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0, hi = 1;
  while (studentTCdf(hi, df) < p) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** A mean across seeds with its two-sided Student t interval. */
export interface Interval {
  /** Finite values the interval is computed from. */
  n: number;
  /** Their mean (NaN when n = 0). */
  mean: number;
  /** Their sample standard deviation (n - 1 in the denominator; NaN when n < 2). */
  sd: number;
  /** Half-width t_{(1+level)/2, n-1} · sd / sqrt(n) (NaN when n < 2). */
  half: number;
  /** mean - half. */
  lo: number;
  /** mean + half. */
  hi: number;
  /** Coverage, e.g. 0.95. */
  level: number;
}

/** The mean of the finite values of `xs` with its `level` t interval (n - 1 degrees of freedom). */
export function tInterval(xs: readonly number[], level = 0.95): Interval {
  const v = xs.filter(Number.isFinite), n = v.length;
  const mean = n ? v.reduce((s, x) => s + x, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  const half = n > 1 ? studentTQuantile((1 + level) / 2, n - 1) * sd / Math.sqrt(n) : NaN;
  return { n, mean, sd, half, lo: mean - half, hi: mean + half, level };
}

/** What a paired comparison found: a < b, a > b, no difference detected, or too few pairs to say. */
export type PairedFinding = "less" | "greater" | "none" | "too few";

/** The paired comparison of two quantities across the same seeds. */
export interface PairedComparison {
  /** The interval of the differences a_i - b_i over the pairs where both are finite. */
  diff: Interval;
  /** less: the interval lies below 0; greater: above; none: it holds 0; too few: under 2 pairs. */
  finding: PairedFinding;
  /** One sentence: the difference, its interval, and the verdict in words. */
  text: string;
}

/** Options of {@linkcode comparePaired}. */
export interface PairedOptions {
  /** Names of A and B in the sentence. */
  names: [string, string];
  /** The quantity, e.g. "steps to the target". */
  what: string;
  /** Digits of the numbers shown (default 3 significant). */
  digits?: number;
  /** Coverage (default 0.95). */
  level?: number;
}

/** A number for prose: `digits` significant digits, or exponent form when tiny or huge. */
export function fmtNum(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "–" : x > 0 ? "∞" : "−∞";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) {
    return x.toExponential(digits - 1).replace("e+", "e").replaceAll("-", "−");
  }
  const s = Number(x.toPrecision(digits)).toString();
  return s.startsWith("-") ? "−" + s.slice(1) : s;
}

/**
 * Compares a_i with b_i over paired seeds (pairs with a non-finite member are dropped): the mean of
 * a_i - b_i with its t interval, and a verdict only where the interval excludes 0.
 */
export function comparePaired(
  a: readonly number[],
  b: readonly number[],
  o: PairedOptions,
): PairedComparison {
  if (a.length !== b.length) throw new Error(`comparePaired: ${a.length} values against ${b.length}`);
  const level = o.level ?? 0.95, dg = o.digits ?? 3;
  const d: number[] = [];
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) d.push(a[i] - b[i]);
  const diff = tInterval(d, level);
  const [A, B] = o.names;
  const pct = `${Math.round(level * 100)}%`;
  const dropped = a.length - d.length;
  const pairs = `${d.length} seed${d.length === 1 ? "" : "s"}` +
    (dropped ? ` (${dropped} without a value)` : "");
  if (d.length < 2) {
    const one = d.length === 1 ? `: ${A} − ${B} = ${fmtNum(diff.mean, dg)}` : "";
    return {
      diff,
      finding: "too few",
      text: `${o.what}${one}; no interval with ${pairs} (2 or more are needed)`,
    };
  }
  const shown = `${o.what}, ${A} − ${B}: ${fmtNum(diff.mean, dg)}, ${pct} interval [${fmtNum(diff.lo, dg)}, ${
    fmtNum(diff.hi, dg)
  }] over ${pairs}`;
  if (diff.lo > 0) {
    return { diff, finding: "greater", text: `${shown}: ${A} > ${B} (the interval excludes 0)` };
  }
  if (diff.hi < 0) {
    return { diff, finding: "less", text: `${shown}: ${A} < ${B} (the interval excludes 0)` };
  }
  return { diff, finding: "none", text: `${shown}: no difference detected at ${d.length} seeds` };
}

/** Least-squares slope of ys against xs over the pairs where both are finite (NaN with fewer than 2). */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const p: [number, number][] = [];
  for (let i = 0; i < xs.length; i++) {
    if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) p.push([xs[i], ys[i]]);
  }
  if (p.length < 2) return NaN;
  const mx = p.reduce((s, q) => s + q[0], 0) / p.length, my = p.reduce((s, q) => s + q[1], 0) / p.length;
  let sxy = 0, sxx = 0;
  for (const [x, y] of p) sxy += (x - mx) * (y - my), sxx += (x - mx) ** 2;
  return sxx > 0 ? sxy / sxx : NaN;
}
