/**
 * Oracles: character sources whose true next-character distribution p*(. | history) is known for every
 * history, so a model's excess loss KL(p* || p_model) can be measured both under the data's histories and
 * under the model's own continuations (exposure bias; Arora et al. 2022, He et al. 2021).
 *
 * Two kinds:
 * - {@linkcode languageOracle}: the built-in generated language (src/data/language.ts) with its typos, so
 *   every character of its alphabet has p* > 0 after any history, and after a character the language
 *   would not write (a model's slip) the writer resynchronises at the next word boundary, so p* is back on
 *   the grammar there. Its character process is a deterministic automaton whose state is not visible in the
 *   text (the first characters of a window may be in the middle of a word, and any character may be a
 *   typo), so p* is computed by exact Bayesian filtering: the belief over automaton states starts at the
 *   stationary distribution before text[0] and is conditioned on each character in turn;
 *   p*(c | text[0..t]) = sum_s b_t(s) q(c | s). In float64, with the structure of q (the uniform floor
 *   eps / |A| plus a few characters per state written on purpose): O(states) per character.
 * - order-k chain files ({@linkcode parseOracle}, {@linkcode loadOracleFile}):
 *   `{"order": k, "alphabet": ["a", "b", ...], "probs": {"<k chars>": [p per alphabet char], ...}}` with a row
 *   for every k-character context. Their entropy rate is computed exactly from the stationary distribution
 *   over contexts ({@linkcode orderKEntropyRate}); {@linkcode sampleOracle} draws a stationary text from them.
 *
 * @module
 */
import { DEFAULT_TYPO_RATE, LanguageChain, solveStationary } from "./language.ts";
import { InputError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

/** A character source whose next-character distribution p*(·|history) is known exactly. */
export interface CharOracle {
  /** The characters p* ranges over; index i of a distribution is alphabet[i]. */
  readonly alphabet: readonly string[];
  /** k for an order-k chain (p* depends on the last k characters); 0 when p* conditions on the whole history. */
  readonly order: number;
  /** One line for reports: what it is, its size, its entropy rate in nats/char when known. */
  readonly description: string;
  /** Entropy rate in nats per character of the stationary process, when known exactly. */
  readonly entropyRate?: number;
  /**
   * Entry t is p*(next | text[0..t]) (the history is text[0] through text[t], inclusive) as a distribution over
   * `alphabet`, for t = 0..text.length-1; null where t + 1 < order, or where the characters the history needs
   * include one outside the alphabet. The history is only `text`: what came before text[0] is unknown (the
   * process is taken to be stationary there).
   */
  conditionals(text: readonly string[]): (Float64Array | null)[];
}

/** Most contexts an order-k chain file may have (|alphabet|^k). */
export const MAX_ORACLE_CONTEXTS = 1_000_000;
/** Most probabilities an order-k chain file may have (|alphabet|^(k+1)). */
export const MAX_ORACLE_ENTRIES = 10_000_000;
/** How far a row of an order-k chain file may sum from 1. */
export const ORACLE_SUM_TOLERANCE = 1e-9;

/**
 * The built-in generated language as an oracle: p* by exact filtering over its character automaton.
 * Order 0 (p* depends on the whole history). Build with {@linkcode languageOracle}.
 */
export class LanguageOracle implements CharOracle {
  /** The language's alphabet (every character it can emit). */
  readonly alphabet: readonly string[];
  /** 0: p* conditions on the whole history. */
  readonly order = 0;
  /** One line: seed, automaton size, typo rate, entropy rate. */
  readonly description: string;
  /** Exact entropy rate of the character process, nats per character. */
  readonly entropyRate: number;
  /** The language. */
  readonly chain: LanguageChain;
  #index: Map<string, number>;
  // Every state's q(c | s) is eps / |A| plus a part (1 - eps) p(c | s) that is non-zero only for the
  // characters the state writes on purpose (a trie node's children, a garbage state's law). Those moves,
  // grouped by character c: k in [edgeStart[c], edgeStart[c + 1]) is from edgeFrom[k] with
  // edgeExtra[k] = q(c | edgeFrom[k]) - eps / |A| > 0.
  #edgeStart: Int32Array;
  #edgeFrom: Int32Array;
  #edgeExtra: Float64Array;
  // The tables by character: nextT[c * size + s] = the state after c in s, probT[c * size + s] = q(c | s).
  #nextT: Int32Array;
  #probT: Float64Array;

  /** The oracle of a built language (see {@linkcode languageOracle}). */
  constructor(chain: LanguageChain) {
    this.chain = chain;
    const a = chain.automaton, A = a.alphabet.length, S = a.size, noise = a.typoRate / A;
    this.alphabet = a.alphabet;
    this.entropyRate = chain.entropyRate;
    this.#index = new Map(a.alphabet.map((ch, i) => [ch, i]));
    const start = new Int32Array(A + 1);
    for (let e = 0; e < S * A; e++) if (a.probs[e] - noise > 0) start[(e % A) + 1]++;
    for (let c = 0; c < A; c++) start[c + 1] += start[c];
    const fill = start.slice(0, A), n = start[A];
    const from = new Int32Array(n), extra = new Float64Array(n);
    const nextT = new Int32Array(A * S), probT = new Float64Array(A * S);
    for (let s = 0; s < S; s++) {
      for (let c = 0; c < A; c++) {
        const e = s * A + c;
        nextT[c * S + s] = a.next[e];
        probT[c * S + s] = a.probs[e];
        if (a.probs[e] - noise > 0) {
          const k = fill[c]++;
          from[k] = s;
          extra[k] = a.probs[e] - noise;
        }
      }
    }
    this.#edgeStart = start;
    this.#edgeFrom = from;
    this.#edgeExtra = extra;
    this.#nextT = nextT;
    this.#probT = probT;
    const h = chain.entropyRate;
    this.description = `generated language (seed ${chain.seed}), typo rate ${chain.typoRate}: ` +
      `${S}-state character automaton over ${A} characters (${chain.words} words, ` +
      `${chain.states.length} word states); entropy rate ${h.toFixed(4)} nats/char ` +
      `(${(h / Math.LN2).toFixed(4)} bits/char)`;
  }

  /**
   * p*(next | text[0..t]) for every t by filtering from the stationary belief. A character outside the
   * alphabet makes that entry and all later ones null (the history is then unknown); with typo rate 0, so
   * does a character the language cannot write there.
   */
  conditionals(text: readonly string[]): (Float64Array | null)[] {
    const a = this.chain.automaton, A = this.alphabet.length, S = a.size, noise = a.typoRate / A;
    const start = this.#edgeStart, from = this.#edgeFrom, extra = this.#edgeExtra;
    const nextT = this.#nextT, probT = this.#probT;
    let b = Float64Array.from(a.stationary), nb = new Float64Array(S);
    const out: (Float64Array | null)[] = [];
    let dead = false;
    for (let t = 0; t < text.length; t++) {
      const c = dead ? undefined : this.#index.get(text[t]);
      if (c === undefined) {
        dead = true;
        out.push(null);
        continue;
      }
      // Observe c: b'(next(s, c)) += b(s) q(c | s), every term non-negative.
      nb.fill(0);
      const base = c * S;
      for (let s = 0; s < S; s++) nb[nextT[base + s]] += b[s] * probT[base + s];
      let z = 0;
      for (let s = 0; s < S; s++) z += nb[s];
      if (!(z > 0)) {
        dead = true;
        out.push(null);
        continue;
      }
      for (let s = 0; s < S; s++) nb[s] /= z;
      [b, nb] = [nb, b];
      // Predict: p(c') = sum_s b(s) q(c'|s) = eps / |A| + sum over the moves of c' of b(from) times
      // (q - eps / |A|): non-negative terms (no cancellation), a few moves per state.
      const p = new Float64Array(A);
      let sum = 0;
      for (let c2 = 0; c2 < A; c2++) {
        let m = noise;
        for (let k = start[c2]; k < start[c2 + 1]; k++) m += b[from[k]] * extra[k];
        sum += p[c2] = m;
      }
      for (let c2 = 0; c2 < A; c2++) p[c2] /= sum;
      out.push(p);
    }
    return out;
  }
}

/**
 * The built-in language of `generateLanguage({ seed })` as an oracle (the same lexicon, grammar and typo
 * rate, so its p* is the distribution the training text was drawn from).
 *
 * @example
 * ```ts
 * const o = languageOracle(1337);
 * const p = o.conditionals([..."The "]).at(-1)!; // p*(next | "The ")
 * console.log(o.alphabet.length, p.reduce((a, b) => a + b, 0)); // 48 1
 * ```
 */
export function languageOracle(seed: number, typoRate: number = DEFAULT_TYPO_RATE): LanguageOracle {
  return new LanguageOracle(new LanguageChain(seed, typoRate));
}

/** The stationary distribution and entropy rate of an order-k chain, or why they are not known. */
export interface OrderKEntropy {
  /** Entropy rate in nats per character; undefined when the stationary distribution is not unique or not found. */
  entropyRate?: number;
  /** Stationary distribution over the |alphabet|^k contexts (indexed as in `ChainOracle.probs`), or null. */
  stationary: Float64Array | null;
  /** Why `entropyRate` is missing; empty when it is known. */
  note: string;
}

/**
 * The exact entropy rate of an order-k chain: sum_x pi(x) H(row x) over contexts x, with pi the stationary
 * distribution over contexts (context x -> x[1..] + c with probability row x's c). pi is unique when the
 * chain has one closed class of contexts (transient contexts get 0); it is solved directly for a class of
 * up to 1000 contexts and by power iteration in float64 above (the lazy chain (I + P) / 2 when the class is
 * periodic). `probs[x * A + c]` is p(c | context x), contexts numbered by their characters' alphabet
 * indices as base-A digits, the oldest most significant.
 */
export function orderKEntropyRate(order: number, alphabetSize: number, probs: Float64Array): OrderKEntropy {
  const A = alphabetSize, m = probs.length / A;
  if (!Number.isSafeInteger(order) || order < 0 || A < 1 || m !== A ** order) {
    throw new InputError(
      `orderKEntropyRate: ${probs.length} probabilities do not fit order ${order} over ${alphabetSize} characters`,
    );
  }
  // Edges with p > 0, as CSR.
  const adjStart = new Int32Array(m + 1);
  for (let e = 0; e < m * A; e++) if (probs[e] > 0) adjStart[Math.floor(e / A) + 1]++;
  for (let x = 0; x < m; x++) adjStart[x + 1] += adjStart[x];
  const adj = new Int32Array(adjStart[m]);
  for (let x = 0, k = 0; x < m; x++) {
    for (let c = 0; c < A; c++) if (probs[x * A + c] > 0) adj[k++] = (x * A + c) % m;
  }
  const comp = stronglyConnected(m, adjStart, adj);
  let nComp = 0;
  for (const c of comp) nComp = Math.max(nComp, c + 1);
  const leaves = new Uint8Array(nComp);
  for (let x = 0; x < m; x++) {
    for (let k = adjStart[x]; k < adjStart[x + 1]; k++) if (comp[adj[k]] !== comp[x]) leaves[comp[x]] = 1;
  }
  let closed = 0, cls = -1;
  for (let c = 0; c < nComp; c++) {
    if (!leaves[c]) {
      closed++;
      cls = c;
    }
  }
  if (closed !== 1) {
    return {
      stationary: null,
      note: `the chain has ${closed} closed classes of contexts, so no unique stationary law`,
    };
  }
  const members: number[] = [];
  for (let x = 0; x < m; x++) if (comp[x] === cls) members.push(x);
  let pi: Float64Array | null;
  if (members.length <= 1000) {
    const local = new Map(members.map((x, i) => [x, i])), n = members.length;
    const M = new Float64Array(n * n);
    members.forEach((x, i) => {
      for (let c = 0; c < A; c++) {
        const p = probs[x * A + c];
        if (p > 0) M[i * n + local.get((x * A + c) % m)!] += p;
      }
    });
    const mu = solveStationary(M, n);
    pi = new Float64Array(m);
    members.forEach((x, i) => pi![x] = mu[i]);
  } else {
    pi = powerStationary(m, A, probs, members, adjStart, adj);
    if (pi === null) {
      return { stationary: null, note: "its stationary distribution did not converge by power iteration" };
    }
  }
  let h = 0;
  for (const x of members) {
    let hx = 0;
    for (let c = x * A; c < (x + 1) * A; c++) if (probs[c] > 0) hx -= probs[c] * Math.log(probs[c]);
    h += pi[x] * hx;
  }
  return { entropyRate: h, stationary: pi, note: "" };
}

/** Strongly connected components (iterative Tarjan); returns each node's component id. */
function stronglyConnected(m: number, adjStart: Int32Array, adj: Int32Array): Int32Array {
  const index = new Int32Array(m).fill(-1), low = new Int32Array(m), comp = new Int32Array(m).fill(-1);
  const onStack = new Uint8Array(m),
    stack = new Int32Array(m),
    cs = new Int32Array(m),
    ep = new Int32Array(m);
  let counter = 0, sp = 0, nComp = 0;
  for (let root = 0; root < m; root++) {
    if (index[root] >= 0) continue;
    let csp = 0;
    const push = (v: number): void => {
      index[v] = low[v] = counter++;
      stack[sp++] = v;
      onStack[v] = 1;
      cs[csp] = v;
      ep[csp++] = adjStart[v];
    };
    push(root);
    while (csp > 0) {
      const v = cs[csp - 1];
      if (ep[csp - 1] < adjStart[v + 1]) {
        const w = adj[ep[csp - 1]++];
        if (index[w] < 0) push(w);
        else if (onStack[w]) low[v] = Math.min(low[v], index[w]);
        continue;
      }
      if (low[v] === index[v]) {
        let w: number;
        do {
          w = stack[--sp];
          onStack[w] = 0;
          comp[w] = nComp;
        } while (w !== v);
        nComp++;
      }
      csp--;
      if (csp > 0) low[cs[csp - 1]] = Math.min(low[cs[csp - 1]], low[v]);
    }
  }
  return comp;
}

/** Power iteration on one closed class (lazy when periodic); null when it does not converge in budget. */
function powerStationary(
  m: number,
  A: number,
  probs: Float64Array,
  members: number[],
  adjStart: Int32Array,
  adj: Int32Array,
): Float64Array | null {
  // Period of the class: gcd of level differences along its edges.
  const level = new Int32Array(m).fill(-1);
  level[members[0]] = 0;
  const queue = [members[0]];
  let period = 0;
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i];
    for (let k = adjStart[x]; k < adjStart[x + 1]; k++) {
      const y = adj[k];
      if (level[y] < 0) {
        level[y] = level[x] + 1;
        queue.push(y);
      }
    }
  }
  for (const x of members) {
    for (let k = adjStart[x]; k < adjStart[x + 1]; k++) {
      period = gcd(period, Math.abs(level[x] + 1 - level[adj[k]]));
    }
  }
  const lazy = period !== 1;
  let pi = new Float64Array(m), next = new Float64Array(m);
  for (const x of members) pi[x] = 1 / members.length;
  const maxIter = Math.max(200, Math.floor(2e9 / (members.length * A)));
  for (let it = 0; it < maxIter; it++) {
    next.fill(0);
    for (const x of members) {
      const w = pi[x];
      if (w === 0) continue;
      for (let c = 0; c < A; c++) {
        const p = probs[x * A + c];
        if (p > 0) next[(x * A + c) % m] += w * p;
      }
    }
    let sum = 0, diff = 0;
    for (const x of members) {
      if (lazy) next[x] = (next[x] + pi[x]) / 2;
      sum += next[x];
    }
    for (const x of members) {
      next[x] /= sum;
      diff += Math.abs(next[x] - pi[x]);
    }
    [pi, next] = [next, pi];
    if (diff < 1e-14) return pi;
  }
  return null;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * An order-k chain over an alphabet: p*(next | history) is the row of the last k characters. Build with
 * {@linkcode parseOracle} / {@linkcode loadOracleFile}, or from a checked table with the constructor.
 */
export class ChainOracle implements CharOracle {
  /** The characters, one code point each, distinct. */
  readonly alphabet: readonly string[];
  /** k: p* depends on the last k characters. */
  readonly order: number;
  /** One line: order, alphabet and context counts, source, entropy rate. */
  readonly description: string;
  /** Exact entropy rate in nats per character, when the stationary distribution is unique. */
  readonly entropyRate?: number;
  /**
   * probs[x * |alphabet| + c] = p(alphabet[c] | context x), contexts numbered by their characters' alphabet
   * indices as base-|alphabet| digits, the oldest most significant (the one context of order 0 is 0).
   */
  readonly probs: Float64Array;
  /** Stationary distribution over contexts, or null when not unique (see `description`). */
  readonly stationary: Float64Array | null;
  #index: Map<string, number>;
  #cdf: Float64Array | null = null;

  /**
   * A chain from a table already checked (rows of non-negative numbers summing to 1; see
   * {@linkcode parseOracle} for the checks); `source` names it in the description.
   */
  constructor(order: number, alphabet: readonly string[], probs: Float64Array, source: string) {
    this.order = order;
    this.alphabet = alphabet;
    this.probs = probs;
    this.#index = new Map(alphabet.map((ch, i) => [ch, i]));
    const A = alphabet.length, m = A ** order;
    const r = orderKEntropyRate(order, A, probs);
    this.stationary = r.stationary;
    if (r.entropyRate !== undefined) this.entropyRate = r.entropyRate;
    const h = r.entropyRate;
    this.description = `order-${order} chain over ${A} characters (${m.toLocaleString("en-US")} contexts) ` +
      `from ${source}; ` +
      (h === undefined
        ? `entropy rate unknown: ${r.note}`
        : `entropy rate ${h.toFixed(4)} nats/char (${(h / Math.LN2).toFixed(4)} bits/char)`);
  }

  /** p*(next | text[0..t]): the row of text[t-k+1..t]; null for t + 1 < k or a character outside the alphabet there. */
  conditionals(text: readonly string[]): (Float64Array | null)[] {
    const k = this.order, A = this.alphabet.length, m = A ** k;
    const out: (Float64Array | null)[] = [];
    let ctx = 0, valid = 0;
    for (let t = 0; t < text.length; t++) {
      const c = this.#index.get(text[t]);
      if (c === undefined) {
        ctx = 0;
        valid = 0;
      } else {
        ctx = k === 0 ? 0 : (ctx * A + c) % m;
        valid = Math.min(k, valid + 1);
      }
      out.push(valid < k ? null : this.probs.slice(ctx * A, (ctx + 1) * A));
    }
    return out;
  }

  /** Exactly `n` characters: the first context from the stationary distribution (uniform when it is not unique), then the rows. */
  sample(n: number, seed: number): string {
    const k = this.order, A = this.alphabet.length, m = A ** k;
    if (this.#cdf === null) {
      const cdf = new Float64Array(m * A);
      for (let x = 0; x < m; x++) {
        let acc = 0;
        for (let c = x * A; c < (x + 1) * A; c++) cdf[c] = acc += this.probs[c];
      }
      this.#cdf = cdf;
    }
    const cdf = this.#cdf, rng = new Rng(seed);
    let ctx: number;
    if (this.stationary === null) ctx = rng.int(m);
    else {
      let u = rng.uniform();
      ctx = 0;
      while (ctx < m - 1 && u >= this.stationary[ctx]) u -= this.stationary[ctx++];
    }
    const out: string[] = [];
    for (let i = k - 1; i >= 0 && out.length < n; i--) out.push(this.alphabet[Math.floor(ctx / A ** i) % A]);
    while (out.length < n) {
      const base = ctx * A, u = rng.uniform() * cdf[base + A - 1];
      let lo = 0, hi = A - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[base + mid] > u) hi = mid;
        else lo = mid + 1;
      }
      out.push(this.alphabet[lo]);
      ctx = k === 0 ? 0 : (base + lo) % m;
    }
    return out.join("");
  }
}

/**
 * Draws `n` characters of an oracle's stationary process with a stream seeded with `seed`: for an
 * order-k chain, the first k characters from the stationary distribution over contexts, then its rows; for
 * the built-in language, its character automaton from its stationary distribution (the training text of
 * `generateLanguage` instead starts at a sentence start). The text to train a model on an oracle file.
 *
 * @example
 * ```ts
 * const o = parseOracle({ order: 1, alphabet: ["a", "b"], probs: { a: [0.9, 0.1], b: [0.5, 0.5] } }, "demo");
 * const text = sampleOracle(o, 1000, 1);
 * ```
 */
export function sampleOracle(oracle: ChainOracle | LanguageOracle, n: number, seed: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InputError(`sampleOracle: n must be a non-negative integer, got ${n}`);
  }
  if (!Number.isSafeInteger(seed)) throw new InputError(`sampleOracle: seed must be an integer, got ${seed}`);
  if (oracle instanceof LanguageOracle) return oracle.chain.sampleStationary(seed, n);
  return oracle.sample(n, seed);
}

/** A value for an error message: numbers as written, strings and objects as JSON, cut at 60 characters. */
function show(v: unknown): string {
  let s: string;
  if (typeof v === "number" || typeof v === "bigint" || v === undefined) s = String(v);
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function kindOf(v: unknown): string {
  return v === null
    ? "null"
    : Array.isArray(v)
    ? "an array"
    : typeof v === "object"
    ? "an object"
    : `${typeof v} ${show(v)}`;
}

/**
 * Checks and builds an order-k chain from its JSON value:
 * `{"order": k, "alphabet": ["a", "b", ...], "probs": {"<k chars>": [p for each alphabet char], ...}}`.
 * `order` is a non-negative integer with |alphabet|^k at most {@linkcode MAX_ORACLE_CONTEXTS}; `alphabet`
 * holds distinct single characters (one code point each); `probs` has a row for every k-character context
 * over the alphabet and nothing else, each |alphabet| finite non-negative numbers summing to 1 within
 * {@linkcode ORACLE_SUM_TOLERANCE} (then divided by their sum). Anything else is an {@linkcode InputError}
 * of one line that starts with `what` and names the field or context.
 */
export function parseOracle(json: unknown, what: string): ChainOracle {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    fail(`expected a JSON object with "order", "alphabet" and "probs", got ${kindOf(json)}`);
  }
  const rec = json as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    if (key !== "order" && key !== "alphabet" && key !== "probs") {
      fail(`unknown field ${show(key)} (the fields are "order", "alphabet" and "probs")`);
    }
  }
  for (const key of ["order", "alphabet", "probs"]) if (!(key in rec)) fail(`"${key}" is missing`);
  const k = rec.order;
  if (typeof k !== "number" || !Number.isSafeInteger(k) || k < 0) {
    return fail(`"order" must be a non-negative integer, got ${show(k)}`);
  }
  const alpha = rec.alphabet;
  if (!Array.isArray(alpha) || alpha.length === 0) {
    return fail(`"alphabet" must be a non-empty array of single characters, got ${show(alpha)}`);
  }
  const index = new Map<string, number>();
  alpha.forEach((ch, i) => {
    if (typeof ch !== "string" || [...ch].length !== 1) {
      fail(`alphabet[${i}] must be one character (one code point), got ${show(ch)}`);
    }
    const seen = index.get(ch);
    if (seen !== undefined) fail(`alphabet[${i}] ${show(ch)} repeats alphabet[${seen}]`);
    index.set(ch, i);
  });
  const A = alpha.length, m = A ** k;
  const count = (x: number): string =>
    x <= 1e15 ? x.toLocaleString("en-US") : Number.isFinite(x) ? x.toExponential(2) : "over 1e308";
  if (m > MAX_ORACLE_CONTEXTS) {
    fail(
      `order ${k} over ${A} characters has ${count(m)} contexts, more than ${count(MAX_ORACLE_CONTEXTS)}`,
    );
  }
  if (m * A > MAX_ORACLE_ENTRIES) {
    fail(
      `order ${k} over ${A} characters has ${count(m * A)} probabilities, more than ${
        count(MAX_ORACLE_ENTRIES)
      }`,
    );
  }
  const probs = rec.probs;
  if (probs === null || typeof probs !== "object" || Array.isArray(probs)) {
    return fail(
      `"probs" must be an object mapping each ${k}-character context to a row, got ${kindOf(probs)}`,
    );
  }
  const table = new Float64Array(m * A), have = new Uint8Array(m);
  for (const [key, row] of Object.entries(probs as Record<string, unknown>)) {
    const chars = [...key];
    const name = `probs[${JSON.stringify(key)}]`;
    if (chars.length !== k) fail(`${name}: the context must be ${k} characters, it has ${chars.length}`);
    let x = 0;
    for (const ch of chars) {
      const c = index.get(ch);
      if (c === undefined) {
        fail(`${name}: the context has ${JSON.stringify(ch)}, which is not in the alphabet`);
      }
      x = x * A + c!;
    }
    if (!Array.isArray(row)) fail(`${name} must be an array of ${A} probabilities, got ${kindOf(row)}`);
    const r = row as unknown[];
    if (r.length !== A) fail(`${name} has ${r.length} entries, expected ${A} (one per alphabet character)`);
    let sum = 0;
    r.forEach((p, c) => {
      if (typeof p !== "number" || !Number.isFinite(p) || p < 0) {
        fail(`${name}[${c}] must be a finite non-negative number, got ${show(p)}`);
      }
      sum += p as number;
    });
    if (!(Math.abs(sum - 1) <= ORACLE_SUM_TOLERANCE)) {
      fail(`${name} sums to ${sum}, not 1 (within ${ORACLE_SUM_TOLERANCE})`);
    }
    r.forEach((p, c) => table[x * A + c] = (p as number) / sum);
    have[x] = 1;
  }
  const missing = have.indexOf(0);
  if (missing >= 0) {
    let key = "";
    for (let i = k - 1; i >= 0; i--) key += alpha[Math.floor(missing / A ** i) % A];
    fail(
      `"probs" has no row for context ${JSON.stringify(key)} (every one of the ${count(m)} ` +
        `${k}-character contexts over the alphabet needs one)`,
    );
  }
  return new ChainOracle(k, [...alpha as string[]], table, what);
}

/**
 * Reads an order-k chain file (JSON, see {@linkcode parseOracle}); a missing or unreadable file, one that
 * is not UTF-8 or not JSON, or a bad table is an {@linkcode InputError} of one line naming the file.
 */
export async function loadOracleFile(path: string): Promise<ChainOracle> {
  const what = `oracle file '${path}'`;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message.split("\n")[0];
    throw new InputError(`${what}: ${reason}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`${what} is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${what} is not JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  return parseOracle(json, what);
}
