/**
 * The embedded default corpus: a procedurally generated language with a known entropy rate, so training
 * can print the best achievable loss beside its own. Nothing is downloaded or stored; the text is a
 * function of a seed.
 *
 * Construction (all drawn from the seed):
 * - a lexicon of pronounceable pseudo-words (1-3 syllables, distinct, lowercase a-z), split into word
 *   classes (a toy part of speech);
 * - a sparse class grammar: each class is followed by 1-4 classes with seeded probabilities (a cycle
 *   through all classes keeps it connected); within a class, words follow a seeded Zipf law (8 classes
 *   of 24 words: 192 words, 336 states);
 * - some classes may end a sentence: their words also come as ". " and ".\n" states, after which the next
 *   class is drawn from a sentence-start distribution and the next word is capitalised.
 *
 * The Markov chain runs over states = (word, suffix) with suffix " ", ". " or ".\n". Each transition emits
 * the next state's word (capitalised after a sentence end) and its suffix, so the character stream and the
 * state sequence determine each other. Hence the character-level entropy rate is exactly
 * H = sum_i pi_i H(P_i) / sum_i pi_i sum_j P_ij len_j nats per character, with pi the stationary
 * distribution (power iteration in float64) and len_j the characters state j emits. The chain is checked
 * irreducible and aperiodic. A model needs only the previous word (under ~12 characters) to reach H.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";

/** A generated corpus with its exact entropy rate. */
export interface GeneratedLanguage {
  /** The corpus: letters, spaces, '.' and '\n' only. */
  text: string;
  /** Entropy rate of the generating process in nats per character: the best achievable mean loss. */
  entropyRate: number;
  /** One line: seed, lexicon and chain sizes, entropy rate in nats and bits per character. */
  description: string;
}

/** Options for {@linkcode generateLanguage}. */
export interface GenerateLanguageOptions {
  /** Seed of the lexicon, the grammar and the sampled text (default 1337). */
  seed?: number;
  /** Minimum text length in characters; whole states are emitted, so it may exceed this by a word (default 300_000). */
  chars?: number;
}

/** A state of the chain: a lowercase word and the suffix emitted after it. */
export interface LanguageState {
  /** The word, lowercase; it is emitted capitalised after a sentence end. */
  word: string;
  /** What follows the word: " " (sentence goes on), ". " or ".\n" (sentence ends). */
  suffix: " " | ". " | ".\n";
}

const SUFFIXES = [" ", ". ", ".\n"] as const;

const ONSETS = [
  "b",
  "c",
  "d",
  "f",
  "g",
  "h",
  "j",
  "k",
  "l",
  "m",
  "n",
  "p",
  "r",
  "s",
  "t",
  "v",
  "w",
  "z",
  "br",
  "ch",
  "cr",
  "dr",
  "fl",
  "gr",
  "kr",
  "pl",
  "sh",
  "sk",
  "st",
  "th",
  "tr",
  "",
  "",
]; // deno-fmt-ignore
const VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "y"];
const CODAS = ["", "", "", "", "", "n", "r", "s", "l", "m", "st", "nd"];

/** Sizes of the generated grammar. */
const N_CLASSES = 8;
const WORDS_PER_CLASS = 24;
const ENDING_CLASSES = 3;
const ZIPF = 0.8;

/** The Markov chain behind a generated language, with its stationary distribution and entropy rate. */
export class LanguageChain {
  /** The seed it was built from. */
  readonly seed: number;
  /** All states; state ids index this array. */
  readonly states: readonly LanguageState[];
  /** Number of distinct words. */
  readonly words: number;
  /** Transition rows: rows[r][j] = P(next state j | a current state of row type r). */
  readonly rows: readonly Float64Array[];
  /** Row type of each state: its class for " " states, `startRow` for sentence ends. */
  readonly rowOf: Int32Array;
  /** The row used after a sentence end, and for the first word of the text. */
  readonly startRow: number;
  /** Stationary distribution over states. */
  readonly stationary: Float64Array;
  /** Mean entropy of a transition under the stationary distribution, nats. */
  readonly transitionEntropy: number;
  /** Mean characters emitted per transition under the stationary distribution. */
  readonly meanChars: number;
  /** transitionEntropy / meanChars: nats per character. */
  readonly entropyRate: number;

  /** Builds the lexicon and grammar of `seed`; deterministic. */
  constructor(seed: number) {
    this.seed = seed;
    const rng = new Rng(seed ^ 0x5eed1a09);
    const nWords = N_CLASSES * WORDS_PER_CLASS;
    const lexicon = makeLexicon(rng, nWords);
    this.words = nWords;
    // Classes: word w belongs to class w % N_CLASSES (the lexicon is already in random order).
    // Within a class, a Zipf law over a random ranking of its words.
    const wordWeight = new Float64Array(nWords);
    for (let c = 0; c < N_CLASSES; c++) {
      const ranks = shuffle(rng, Array.from({ length: WORDS_PER_CLASS }, (_, r) => r));
      let z = 0;
      for (let r = 0; r < WORDS_PER_CLASS; r++) z += 1 / (r + 1) ** ZIPF;
      for (let m = 0; m < WORDS_PER_CLASS; m++) {
        wordWeight[c + m * N_CLASSES] = 1 / (ranks[m] + 1) ** ZIPF / z;
      }
    }
    // Class grammar: a random cycle through all classes plus 1-3 random extra successors each.
    const order = shuffle(rng, Array.from({ length: N_CLASSES }, (_, c) => c));
    const classRows: Float64Array[] = [];
    for (let c = 0; c < N_CLASSES; c++) classRows.push(new Float64Array(N_CLASSES));
    for (let t = 0; t < N_CLASSES; t++) {
      const c = order[t], row = classRows[c];
      row[order[(t + 1) % N_CLASSES]] = 0.3 + rng.uniform();
      const extra = 1 + rng.int(3);
      for (let e = 0; e < extra; e++) row[rng.int(N_CLASSES)] = 0.3 + rng.uniform();
      normalise(row);
    }
    // Sentence starts: 3 classes. Sentence ends: the first ENDING_CLASSES classes of another shuffle.
    const startClass = new Float64Array(N_CLASSES);
    for (const c of shuffle(rng, order.slice()).slice(0, 3)) startClass[c] = 0.3 + rng.uniform();
    normalise(startClass);
    const endProb = new Float64Array(N_CLASSES);
    for (const c of shuffle(rng, order.slice()).slice(0, ENDING_CLASSES)) {
      endProb[c] = 0.3 + 0.3 * rng.uniform();
    }

    // States: every word with " ", words of ending classes also with ". " and ".\n".
    const states: LanguageState[] = [];
    const stateClass: number[] = [];
    const stateWeight: number[] = []; // P(word | class) * P(suffix | class)
    for (let w = 0; w < nWords; w++) {
      const c = w % N_CLASSES, e = endProb[c];
      const suffixP = [1 - e, 0.8 * e, 0.2 * e];
      for (let s = 0; s < 3; s++) {
        if (suffixP[s] === 0) continue;
        states.push({ word: lexicon[w], suffix: SUFFIXES[s] });
        stateClass.push(c);
        stateWeight.push(wordWeight[w] * suffixP[s]);
      }
    }
    const n = states.length;
    this.states = states;
    this.startRow = N_CLASSES;
    const rowFor = (classP: Float64Array): Float64Array => {
      const row = new Float64Array(n);
      for (let j = 0; j < n; j++) row[j] = classP[stateClass[j]] * stateWeight[j];
      return normalise(row);
    };
    this.rows = [...classRows.map(rowFor), rowFor(startClass)];
    this.rowOf = Int32Array.from(states, (s, i) => s.suffix === " " ? stateClass[i] : this.startRow);
    checkErgodic(this);

    this.stationary = stationary(this);
    const mass = new Float64Array(this.rows.length);
    for (let i = 0; i < n; i++) mass[this.rowOf[i]] += this.stationary[i];
    let h = 0, len = 0;
    this.rows.forEach((row, r) => {
      let hr = 0, lr = 0;
      for (let j = 0; j < n; j++) {
        const p = row[j];
        if (p > 0) {
          hr -= p * Math.log(p);
          lr += p * (states[j].word.length + states[j].suffix.length);
        }
      }
      h += mass[r] * hr;
      len += mass[r] * lr;
    });
    this.transitionEntropy = h;
    this.meanChars = len;
    this.entropyRate = h / len;
  }

  /** P(next = to | current = from); `from` null means the start of the text (a sentence start). */
  prob(from: number | null, to: number): number {
    return this.rows[from === null ? this.startRow : this.rowOf[from]][to];
  }

  /** The text emitted by moving into state `to` from `from` (null: start of text). */
  emit(from: number | null, to: number): string {
    const s = this.states[to];
    const cap = from === null || this.states[from].suffix !== " ";
    return (cap ? s.word[0].toUpperCase() + s.word.slice(1) : s.word) + s.suffix;
  }

  /** Samples at least `chars` characters of text (whole states) from a stream seeded with `seed`. */
  sample(seed: number, chars: number): string {
    const rng = new Rng(seed);
    const cdfs = this.rows.map((row) => {
      const cdf = new Float64Array(row.length);
      let acc = 0;
      for (let j = 0; j < row.length; j++) cdf[j] = acc += row[j];
      return cdf;
    });
    const parts: string[] = [];
    let len = 0;
    let prev: number | null = null;
    while (len < chars) {
      const cdf = cdfs[prev === null ? this.startRow : this.rowOf[prev]];
      const u = rng.uniform() * cdf[cdf.length - 1];
      let lo = 0, hi = cdf.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      const piece = this.emit(prev, lo);
      parts.push(piece);
      len += piece.length;
      prev = lo;
    }
    return parts.join("");
  }
}

/**
 * Generates the default corpus: deterministic for a seed, under a second for 300k characters.
 *
 * @example
 * ```ts
 * const { text, entropyRate, description } = generateLanguage({ seed: 1337, chars: 10_000 });
 * console.log(description); // "generated language (seed 1337): ... nats/char ..."
 * ```
 */
export function generateLanguage(opts: GenerateLanguageOptions = {}): GeneratedLanguage {
  const seed = opts.seed ?? 1337, chars = opts.chars ?? 300_000;
  if (!Number.isSafeInteger(seed)) throw new Error(`generateLanguage: seed must be an integer, got ${seed}`);
  if (!Number.isSafeInteger(chars) || chars < 1) {
    throw new Error(`generateLanguage: chars must be a positive integer, got ${chars}`);
  }
  const chain = new LanguageChain(seed);
  const text = chain.sample(seed ^ 0x7e47, chars);
  const h = chain.entropyRate;
  const description = `generated language (seed ${seed}): ${chain.words} words in ${N_CLASSES} classes, ` +
    `${chain.states.length} states, ${text.length} characters; entropy rate ${h.toFixed(4)} nats/char ` +
    `(${(h / Math.LN2).toFixed(4)} bits/char), ${chain.transitionEntropy.toFixed(3)} nats per word over ` +
    `${chain.meanChars.toFixed(3)} characters`;
  return { text, entropyRate: h, description };
}

function makeLexicon(rng: Rng, n: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const pick = (a: readonly string[]): string => a[rng.int(a.length)];
  while (out.length < n) {
    const u = rng.uniform();
    const syllables = u < 0.4 ? 1 : u < 0.85 ? 2 : 3;
    let w = "";
    for (let s = 0; s < syllables; s++) {
      w += pick(ONSETS) + pick(VOWELS) + (s === syllables - 1 ? pick(CODAS) : "");
    }
    if (w.length < 2 || seen.has(w)) continue;
    seen.add(w);
    out.push(w);
  }
  return out;
}

function shuffle<T>(rng: Rng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function normalise(a: Float64Array): Float64Array {
  let s = 0;
  for (const x of a) s += x;
  for (let i = 0; i < a.length; i++) a[i] /= s;
  return a;
}

/** Throws unless every state reaches every other (irreducible) and the cycle lengths have gcd 1 (aperiodic). */
function checkErgodic(chain: LanguageChain): void {
  const n = chain.states.length;
  const succ = (i: number): Float64Array => chain.rows[chain.rowOf[i]];
  // BFS levels from state 0 along edges, and reachability of 0 along reversed edges.
  const level = new Int32Array(n).fill(-1);
  level[0] = 0;
  const queue = [0];
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q], row = succ(i);
    for (let j = 0; j < n; j++) {
      if (row[j] > 0 && level[j] < 0) {
        level[j] = level[i] + 1;
        queue.push(j);
      }
    }
  }
  const back = new Uint8Array(n);
  back[0] = 1;
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i < n; i++) {
      if (back[i]) continue;
      const row = succ(i);
      for (let j = 0; j < n; j++) {
        if (row[j] > 0 && back[j]) {
          back[i] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  let period = 0;
  for (let i = 0; i < n; i++) {
    if (level[i] < 0 || !back[i]) {
      throw new Error(`generated language (seed ${chain.seed}): chain is not irreducible`);
    }
    const row = succ(i);
    for (let j = 0; j < n; j++) if (row[j] > 0) period = gcd(period, Math.abs(level[i] + 1 - level[j]));
  }
  if (period !== 1) throw new Error(`generated language (seed ${chain.seed}): chain has period ${period}`);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Stationary distribution by power iteration in float64 (rows are shared by row type, so each step is cheap). */
function stationary(chain: LanguageChain): Float64Array {
  const n = chain.states.length, nr = chain.rows.length;
  let pi = new Float64Array(n).fill(1 / n);
  const mass = new Float64Array(nr);
  for (let it = 0; it < 100_000; it++) {
    mass.fill(0);
    for (let i = 0; i < n; i++) mass[chain.rowOf[i]] += pi[i];
    const next = new Float64Array(n);
    for (let r = 0; r < nr; r++) {
      const m = mass[r], row = chain.rows[r];
      if (m === 0) continue;
      for (let j = 0; j < n; j++) next[j] += m * row[j];
    }
    normalise(next);
    let diff = 0;
    for (let j = 0; j < n; j++) diff += Math.abs(next[j] - pi[j]);
    pi = next;
    if (diff < 1e-15) break;
  }
  return pi;
}
