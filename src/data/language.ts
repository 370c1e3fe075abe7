/**
 * The embedded default corpus: a procedurally generated language with a known entropy rate, so training
 * can print the best achievable loss beside its own, and a known next-character distribution after any
 * history, so a model's excess loss can be measured (src/data/oracle.ts). Nothing is downloaded or
 * stored; the text is a function of a seed.
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
 * The word chain runs over states = (word, suffix) with suffix " ", ". " or ".\n". Each transition emits
 * the next state's word (capitalised after a sentence end) and its suffix. Without typos the character
 * stream and the state sequence determine each other, and the character-level entropy rate is
 * H0 = sum_i pi_i H(P_i) / sum_i pi_i sum_j P_ij len_j nats per character (`chainEntropyRate`), with pi the
 * stationary distribution (power iteration in float64) and len_j the characters state j emits.
 *
 * Typos give the language full support. Without them almost every character string has probability zero
 * (after "Qx" the next character is undefined), so a model's own continuation could leave the language and
 * p*(next | history) would not exist. The characters are therefore written by a deterministic automaton
 * (`CharAutomaton`) whose states are trie nodes and garbage states. The trie of a row type holds the
 * strings the next word-chain state can emit from that row; they are prefix-free (words are letters;
 * every suffix starts with " " or "."), so a node is a partly written word and the root a word boundary.
 * At state s the next character c is drawn from
 *     q(c | s) = (1 - eps) p(c | s) + eps / |A|
 * over the alphabet A (every character the word chain emits), with p(c | s) the trie masses below s. On c
 * the automaton moves to the child for c, or, when c completes a string, to the root of the completed
 * state's row. A c that continues no string of the row at s is a typo, and the writer resynchronises at
 * the next word boundary (a rule that kept the state instead made p* insist on finishing the intended word
 * after any slip of a model, spaces included, at 5-11 nats per character for words on end, so a model's
 * excess loss along its own text measured that rule, not the model):
 * - if the word typed since the last boundary, c included, begins some word of the lexicon, the writer now
 *   writes that kind of word: the state moves to the node with the same string in a free-word trie, whose
 *   strings are all the word-chain states by their stationary frequency (lowercase, or capitalised in the
 *   sentence-start row where the alphabet has the capital: two more tries). Completing one goes, as always,
 *   to the root of the completed state's row: the grammar continues from the word that was written. A word
 *   of the wrong class, the usual slip of a model, so costs one unlikely character, not the words after it;
 * - otherwise the word becomes a garbage word, a state tied to the row type, and c is written as in it
 *   (a typo " ", "." or "\n" ends the garbage word at once). The garbage word draws a separator with
 *   probability GARBAGE_END = 1/3 (" ", or "." as often as the row's next state ends a sentence), else a
 *   lowercase letter in the proportions the language writes them, so a garbage word has 2 more letters in
 *   expectation after the typo (tested); every q keeps the eps / |A| floor. " " ends it: the next word
 *   comes from the same row, as if the garbage word were a filler, except in the sentence-start row and
 *   the free-word rows, where the next word is any lowercase word (the free-word row; the sentence has
 *   begun, and a filler there would expect a capital again word after word). "." leads to a garbage-"."
 *   state of the row, where " " or "\n" (in the proportions of ". " and ".\n") starts a sentence, a letter
 *   returns to the garbage word and "." stays; "\n" starts a sentence from either;
 * - a typo " " at a root (two spaces) leaves the state where it is.
 * The states the process cannot reach are dropped (at eps = 0 all but the word-chain rows' tries).
 * `LanguageChain.sample` draws exactly this process, so a generated text and the oracle agree. The
 * automaton is unifilar (its state is a function of the previous state and the character), so its
 * character entropy rate is exactly
 *     H = sum_s pi(s) H(q(. | s))
 * with pi its stationary distribution. pi is computed in float64 without iterating over the automaton: a
 * pass from a root to the next root it enters is a renewal cycle, so pi(s) is proportional to
 * sum_r mu(r) visits_r(s), with visits_r(s) the expected visits to s in a pass from root r (one sweep in id
 * order, every move out of a trie node going to a higher id, and a 2 x 2 system for the garbage states of
 * a row type) and mu the stationary distribution of the chain of roots (the word-chain rows' and the
 * free-word row's) that passes induce (solved directly). The automaton is checked irreducible, and
 * aperiodic when eps > 0 (a space at a root is a self-loop). At eps = 0 it reduces to the word chain and
 * H = H0 (tested). The default eps = 1e-3 moves the floor of the default seed 1337 from 0.6047 to 0.6216
 * nats/char (a typo now costs its word, about 3 characters of garbage or a whole free word, where it cost
 * one character before: 0.6149). A ". " or ".\n" leads every state to the sentence-start root, so the
 * oracle's belief is a single state again after it.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import { InputError } from "../util/errors.ts";

/** A generated corpus with its exact entropy rate. */
export interface GeneratedLanguage {
  /** The corpus: characters of `alphabet` only (letters, spaces, '.' and '\n'). */
  text: string;
  /** Entropy rate of the generating process in nats per character: the best achievable mean loss. */
  entropyRate: number;
  /** One line: seed, lexicon and chain sizes, typo rate, entropy rate in nats and bits per character. */
  description: string;
  /**
   * Every character the process can emit, in code point order (a model of the language needs all of them
   * in its vocabulary: a rare typo character may be missing from a short text).
   */
  alphabet: readonly string[];
}

/** Options for {@linkcode generateLanguage}. */
export interface GenerateLanguageOptions {
  /** Seed of the lexicon, the grammar and the sampled text (default 1337). */
  seed?: number;
  /** Minimum text length in characters; whole states are emitted, so it may exceed this by a word (default 300_000). */
  chars?: number;
  /** Typo rate eps in [0, 1): the weight of the uniform character in each next-character draw (default 1e-3). */
  typoRate?: number;
}

/** A state of the word chain: a lowercase word and the suffix emitted after it. */
export interface LanguageState {
  /** The word, lowercase; it is emitted capitalised after a sentence end. */
  word: string;
  /** What follows the word: " " (sentence goes on), ". " or ".\n" (sentence ends). */
  suffix: " " | ". " | ".\n";
}

/**
 * The character-level process of a {@linkcode LanguageChain}: a deterministic automaton whose states are
 * the nodes of a trie per row type and the garbage states (see the module doc). Tables are indexed
 * `s * alphabet.length + c` for state s and character index c.
 */
export interface CharAutomaton {
  /** The characters, in code point order; character index c is alphabet[c]. */
  readonly alphabet: readonly string[];
  /** Number of automaton states. */
  readonly size: number;
  /** The typo rate eps. */
  readonly typoRate: number;
  /** q(c | s): the probability that c is written next in state s (each row sums to 1). */
  readonly probs: Float64Array;
  /**
   * The state after writing c in state s: for a typo, a node of a free-word trie or where c leads from the
   * garbage word of the row type (at eps = 0, where a typo has probability 0, s itself).
   */
  readonly next: Int32Array;
  /** The word-chain state that writing c in state s completes (in its own trie or a free-word one), or -1. */
  readonly completes: Int32Array;
  /** 1 where s is a trie node and c continues no string of its trie (a typo), else 0 (garbage states: 0). */
  readonly typo: Uint8Array;
  /**
   * The row type of each state: the row its trie belongs to, or its garbage states'. 0 .. rows.length - 1
   * are the word chain's; rows.length is the free-word row, rows.length + 1 its capitalised twin.
   */
  readonly rowType: Int32Array;
  /** The trie root of each word-chain row type: the state right after a word-chain state of that row type. */
  readonly roots: Int32Array;
  /**
   * What each state is: 0 a trie node (a partly written string of its row type), 1 the garbage-word state
   * of its row type, 2 its garbage-"." state (a garbage word and "."). No garbage states at eps = 0.
   */
  readonly garbage: Uint8Array;
  /** Every trie root the process can be at: the word boundaries (the roots above, then the free row's). */
  readonly boundaries: Int32Array;
  /** The state at the start of a generated text (the root of the sentence-start row). */
  readonly start: number;
  /** Stationary distribution over states (float64). */
  readonly stationary: Float64Array;
}

/** The default typo rate eps of the generated language. */
export const DEFAULT_TYPO_RATE = 1e-3;

/**
 * The probability that a garbage word ends at its next character (with a " ", or a "." in rows whose next
 * word may end a sentence): after the typo, a garbage word has (1 - GARBAGE_END) / GARBAGE_END = 2 more
 * letters in expectation, about what is left of the word it replaced.
 */
const GARBAGE_END = 1 / 3;

const SUFFIXES = [" ", ". ", ".\n"] as const;

/** Syllable onsets of the generated words (the empty onset twice: vowel-initial syllables are common). */
export const ONSETS: readonly string[] = [
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
];
const VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "y"];
const CODAS = ["", "", "", "", "", "n", "r", "s", "l", "m", "st", "nd"];

/** Sizes of the generated grammar. */
const N_CLASSES = 8;
const WORDS_PER_CLASS = 24;
const ENDING_CLASSES = 3;
const ZIPF = 0.8;

/** The Markov chain behind a generated language, its character automaton and their entropy rates. */
export class LanguageChain {
  /** The seed it was built from. */
  readonly seed: number;
  /** All word-chain states; state ids index this array. */
  readonly states: readonly LanguageState[];
  /** Number of distinct words. */
  readonly words: number;
  /** Transition rows: rows[r][j] = P(next state j | a current state of row type r). */
  readonly rows: readonly Float64Array[];
  /** Row type of each state: its class for " " states, `startRow` for sentence ends. */
  readonly rowOf: Int32Array;
  /** The row used after a sentence end, and for the first word of the text. */
  readonly startRow: number;
  /** Stationary distribution over word-chain states (of the chain without typos). */
  readonly stationary: Float64Array;
  /** Mean entropy of a word-chain transition under its stationary distribution, nats (without typos). */
  readonly transitionEntropy: number;
  /** Mean characters emitted per word-chain transition under its stationary distribution. */
  readonly meanChars: number;
  /** transitionEntropy / meanChars: nats per character of the language without typos. */
  readonly chainEntropyRate: number;
  /** The typo rate eps. */
  readonly typoRate: number;
  /** The character process: what is sampled, and what the oracle filters. */
  readonly automaton: CharAutomaton;
  /** Every character the language emits, in code point order (`automaton.alphabet`). */
  readonly alphabet: readonly string[];
  /** Entropy rate of the character process with typos, nats per character (= chainEntropyRate at eps 0). */
  readonly entropyRate: number;
  #cdf: Float64Array | null = null;

  /** Builds the lexicon, grammar and character automaton of `seed` with typo rate `typoRate`; deterministic. */
  constructor(seed: number, typoRate: number = DEFAULT_TYPO_RATE) {
    if (!Number.isSafeInteger(seed)) {
      throw new InputError(`generated language: seed must be an integer, got ${seed}`);
    }
    if (!(typoRate >= 0 && typoRate < 1)) {
      throw new InputError(`generated language: typoRate must be in [0, 1), got ${typoRate}`);
    }
    this.seed = seed;
    this.typoRate = typoRate;
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
    this.chainEntropyRate = h / len;

    this.automaton = buildAutomaton(this);
    this.alphabet = this.automaton.alphabet;
    const { probs, stationary: pi, size } = this.automaton, A = this.alphabet.length;
    let rate = 0;
    for (let s = 0; s < size; s++) {
      let hs = 0;
      for (let c = s * A; c < (s + 1) * A; c++) if (probs[c] > 0) hs -= probs[c] * Math.log(probs[c]);
      rate += pi[s] * hs;
    }
    this.entropyRate = rate;
  }

  /** P(next = to | current = from) in the word chain; `from` null means the start of the text. */
  prob(from: number | null, to: number): number {
    return this.rows[from === null ? this.startRow : this.rowOf[from]][to];
  }

  /** The text emitted by moving into state `to` from `from` (null: start of text), without typos. */
  emit(from: number | null, to: number): string {
    const s = this.states[to];
    const cap = from === null || this.states[from].suffix !== " ";
    return (cap ? s.word[0].toUpperCase() + s.word.slice(1) : s.word) + s.suffix;
  }

  /**
   * Samples the character process from the start of a text (the automaton's `start` state) with a stream
   * seeded with `seed`, until at least `chars` characters are written and the writer is at a word boundary
   * (a trie root: a word-chain state, or a garbage word, is complete).
   */
  sample(seed: number, chars: number): string {
    return this.#walk(new Rng(seed), this.automaton.start, chars, true);
  }

  /**
   * Samples exactly `chars` characters of the stationary character process: the first automaton state is
   * drawn from `automaton.stationary` (the process the oracle's conditionals assume before a text).
   */
  sampleStationary(seed: number, chars: number): string {
    const rng = new Rng(seed);
    const pi = this.automaton.stationary;
    let u = rng.uniform(), s = 0;
    while (s < pi.length - 1 && u >= pi[s]) u -= pi[s++];
    return this.#walk(rng, s, chars, false);
  }

  #walk(rng: Rng, state: number, chars: number, wholeStates: boolean): string {
    const { alphabet, next, boundaries, size } = this.automaton, A = alphabet.length;
    if (this.#cdf === null) {
      const probs = this.automaton.probs, cdf = new Float64Array(size * A);
      for (let s = 0; s < size; s++) {
        let acc = 0;
        for (let c = s * A; c < (s + 1) * A; c++) cdf[c] = acc += probs[c];
      }
      this.#cdf = cdf;
    }
    const cdf = this.#cdf, isRoot = new Uint8Array(size);
    for (const r of boundaries) isRoot[r] = 1;
    const out: string[] = [];
    let s = state;
    while (out.length < chars || (wholeStates && !isRoot[s])) {
      const base = s * A;
      const u = rng.uniform() * cdf[base + A - 1];
      let lo = 0, hi = A - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[base + mid] > u) hi = mid;
        else lo = mid + 1;
      }
      out.push(alphabet[lo]);
      s = next[base + lo];
    }
    return out.join("");
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
  const seed = opts.seed ?? 1337,
    chars = opts.chars ?? 300_000,
    typoRate = opts.typoRate ?? DEFAULT_TYPO_RATE;
  if (!Number.isSafeInteger(seed)) {
    throw new InputError(`generateLanguage: seed must be an integer, got ${seed}`);
  }
  if (!Number.isSafeInteger(chars) || chars < 1) {
    throw new InputError(`generateLanguage: chars must be a positive integer, got ${chars}`);
  }
  const chain = new LanguageChain(seed, typoRate);
  const text = chain.sample(seed ^ 0x7e47, chars);
  const h = chain.entropyRate;
  const description = `generated language (seed ${seed}): ${chain.words} words in ${N_CLASSES} classes, ` +
    `${chain.states.length} states, a ${chain.alphabet.length}-character alphabet, typo rate ${typoRate}, ` +
    `${text.length} characters of text; entropy rate ${h.toFixed(4)} nats/char ` +
    `(${(h / Math.LN2).toFixed(4)} bits/char; ${chain.chainEntropyRate.toFixed(4)} without typos: ` +
    `${chain.transitionEntropy.toFixed(3)} nats per word over ${chain.meanChars.toFixed(3)} characters)`;
  return { text, entropyRate: h, description, alphabet: chain.alphabet };
}

/**
 * The character automaton of a word chain (see the module doc): one trie per row type of the strings its
 * successors emit, children by character, masses from the row, then the two free-word tries and a
 * garbage-word and a garbage-"." state per row type; the states the process cannot reach are dropped.
 * Trie node ids grow from parent to child, the word-chain rows' tries come before the free-word ones,
 * and the garbage states last.
 */
function buildAutomaton(chain: LanguageChain): CharAutomaton {
  const { states, rows, rowOf, startRow, typoRate: eps } = chain;
  const nRows = rows.length, n = states.length;
  const FREE = nRows, FREE_CAP = nRows + 1, nTypes = nRows + 2;
  const capital = (r: number): boolean => r === startRow || r === FREE_CAP;
  const emitted = (r: number, j: number): string => {
    const w = states[j].word;
    return (capital(r) ? w[0].toUpperCase() + w.slice(1) : w) + states[j].suffix;
  };
  const chars = new Set<string>();
  for (let r = 0; r < nRows; r++) {
    for (let j = 0; j < n; j++) if (rows[r][j] > 0) { for (const ch of emitted(r, j)) chars.add(ch); }
  }
  const alphabet = [...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const A = alphabet.length, index = new Map(alphabet.map((ch, i) => [ch, i]));
  // The free-word rows: every word-chain state by its stationary frequency, lowercase, and capitalised
  // where the alphabet has its capital.
  const inAlphabet = (r: number, j: number): boolean => [...emitted(r, j)].every((ch) => index.has(ch));
  const laws = [...rows, chain.stationary, chain.stationary.map((p, j) => inAlphabet(FREE_CAP, j) ? p : 0)];
  laws.forEach((law, r) => {
    if (r >= nRows) normalise(law);
  });

  // Tries: kids[node] maps a character index to a child node (>= 0) or to -(j + 1) when the character
  // completes word-chain state j; edgeMass[node] maps it to the row probability of the strings through it.
  const kids: Map<number, number>[] = [], edgeMass: Map<number, number>[] = [], rowType: number[] = [];
  const newNode = (r: number): number => {
    kids.push(new Map());
    edgeMass.push(new Map());
    rowType.push(r);
    return kids.length - 1;
  };
  const roots = Int32Array.from({ length: nTypes }, (_, r) => newNode(r));
  for (let r = 0; r < nTypes; r++) {
    for (let j = 0; j < n; j++) {
      const p = laws[r][j];
      if (!(p > 0)) continue;
      const str = [...emitted(r, j)];
      let node = roots[r];
      for (let i = 0; i < str.length; i++) {
        const c = index.get(str[i])!;
        const have = kids[node].get(c);
        edgeMass[node].set(c, (edgeMass[node].get(c) ?? 0) + p);
        if (i === str.length - 1) {
          if (have !== undefined) throw new Error(`generated language: "${str.join("")}" is not prefix-free`);
          kids[node].set(c, -(j + 1));
        } else {
          if (have !== undefined && have < 0) {
            throw new Error(`generated language: "${str.join("")}" clashes`);
          }
          const child = have ?? newNode(r);
          kids[node].set(c, child);
          node = child;
        }
      }
    }
  }
  const nTrie = kids.length;
  // same[s]: the node of the free-word trie of s's capitalisation with the same string (s's own, in them).
  const same = Int32Array.from({ length: nTrie }, (_, s) => s);
  for (let r = 0; r < nRows; r++) {
    const free = roots[capital(r) ? FREE_CAP : FREE];
    same[roots[r]] = free;
    for (let j = 0; j < n; j++) {
      if (!(rows[r][j] > 0)) continue;
      const str = [...emitted(r, j)];
      let node = roots[r], f = free;
      for (let i = 0; i < str.length - 1; i++) {
        const c = index.get(str[i])!;
        node = kids[node].get(c)!;
        f = kids[f].get(c)!;
        same[node] = f;
      }
    }
  }
  // Garbage states of row type r: nTrie + 2r (a garbage word), nTrie + 2r + 1 (a garbage word and ".").
  const full = nTrie + 2 * nTypes;
  for (let r = 0; r < nTypes; r++) rowType.push(r, r);
  const space = index.get(" ")!, dot = index.get(".")!, newline = index.get("\n")!;
  const rootStart = roots[startRow];
  const resync = (r: number): number => r < nRows && r !== startRow ? roots[r] : roots[FREE];
  const afterGarbage = (r: number, c: number): number =>
    c === space ? resync(r) : c === newline ? rootStart : c === dot ? nTrie + 2 * r + 1 : nTrie + 2 * r;
  const afterGarbageDot = (r: number, c: number): number =>
    c === space || c === newline ? rootStart : c === dot ? nTrie + 2 * r + 1 : nTrie + 2 * r;

  let probs = new Float64Array(full * A), next = new Int32Array(full * A);
  let completes = new Int32Array(full * A).fill(-1), typo = new Uint8Array(full * A);
  const noise = eps / A, isRoot = new Uint8Array(full);
  for (const r of roots) isRoot[r] = 1;
  for (let s = 0; s < nTrie; s++) {
    probs.fill(noise, s * A, (s + 1) * A);
    typo.fill(1, s * A, (s + 1) * A);
    const r = rowType[s], f = same[s];
    for (let c = 0; c < A; c++) {
      const e = s * A + c, m = kids[f].get(c);
      if (eps === 0 || (isRoot[s] && c === space)) next[e] = s;
      else if (m === undefined) next[e] = afterGarbage(r, c);
      else if (m >= 0) next[e] = m;
      else {
        next[e] = roots[rowOf[-m - 1]];
        completes[e] = -m - 1;
      }
    }
    let total = 0;
    for (const m of edgeMass[s].values()) total += m;
    for (const [c, t] of kids[s]) {
      const e = s * A + c;
      probs[e] = (1 - eps) * (edgeMass[s].get(c)! / total) + noise;
      typo[e] = 0;
      if (t >= 0) next[e] = t;
      else {
        next[e] = roots[rowOf[-t - 1]];
        completes[e] = -t - 1;
      }
    }
  }
  // The garbage-word law: a separator with probability GARBAGE_END (" " or "." as the suffix of the row's
  // next word would be), else a lowercase letter in the proportions the language writes them; after a
  // garbage ".": " " or "\n" in the proportions of the ". " and ".\n" states.
  const letters = new Float64Array(A);
  let endMass = 0, newlineMass = 0;
  for (let j = 0; j < n; j++) {
    const p = chain.stationary[j];
    for (const ch of states[j].word) letters[index.get(ch)!] += p;
    if (states[j].suffix !== " ") endMass += p;
    if (states[j].suffix === ".\n") newlineMass += p;
  }
  normalise(letters);
  const toNewline = newlineMass / endMass;
  for (let r = 0; r < nTypes; r++) {
    let ends = 0;
    for (let j = 0; j < n; j++) if (states[j].suffix !== " ") ends += laws[r][j];
    const g = nTrie + 2 * r, d = g + 1;
    for (let c = 0; c < A; c++) {
      const law = c === space
        ? GARBAGE_END * (1 - ends)
        : c === dot
        ? GARBAGE_END * ends
        : (1 - GARBAGE_END) * letters[c];
      probs[g * A + c] = (1 - eps) * law + noise;
      next[g * A + c] = afterGarbage(r, c);
      const dotLaw = c === space ? 1 - toNewline : c === newline ? toNewline : 0;
      probs[d * A + c] = (1 - eps) * dotLaw + noise;
      next[d * A + c] = afterGarbageDot(r, c);
    }
  }

  // Keep the states reachable from the start (all of them but the word-chain tries' at eps = 0), in order.
  const keep = new Int32Array(full).fill(-1);
  keep[rootStart] = 0;
  const queue = [rootStart];
  for (let q = 0; q < queue.length; q++) {
    const s = queue[q];
    for (let e = s * A; e < (s + 1) * A; e++) {
      if (probs[e] > 0 && keep[next[e]] < 0) {
        keep[next[e]] = 0;
        queue.push(next[e]);
      }
    }
  }
  let size = 0;
  for (let s = 0; s < full; s++) if (keep[s] >= 0) keep[s] = size++;
  {
    const p2 = new Float64Array(size * A), n2 = new Int32Array(size * A);
    const c2 = new Int32Array(size * A), t2 = new Uint8Array(size * A);
    for (let s = 0; s < full; s++) {
      if (keep[s] < 0) continue;
      for (let c = 0; c < A; c++) {
        const e = s * A + c, e2 = keep[s] * A + c;
        p2[e2] = probs[e];
        n2[e2] = probs[e] > 0 ? keep[next[e]] : keep[s];
        c2[e2] = completes[e];
        t2[e2] = typo[e];
      }
    }
    [probs, next, completes, typo] = [p2, n2, c2, t2];
  }
  const kind = new Uint8Array(size), types = new Int32Array(size);
  for (let s = 0; s < full; s++) {
    if (keep[s] < 0) continue;
    types[keep[s]] = rowType[s];
    kind[keep[s]] = s < nTrie ? 0 : 1 + ((s - nTrie) % 2);
  }
  const boundaries = Int32Array.from([...roots].filter((r) => keep[r] >= 0), (r) => keep[r]);
  const auto = {
    alphabet,
    size,
    typoRate: eps,
    probs,
    next,
    completes,
    typo,
    rowType: types,
    garbage: kind,
    roots: Int32Array.from(roots.subarray(0, nRows), (r) => keep[r]),
    boundaries,
    start: keep[rootStart],
    stationary: new Float64Array(0) as Float64Array,
  };
  checkAutomaton(chain.seed, auto, eps > 0);
  auto.stationary = stationaryByPasses(auto);
  return auto;
}

/**
 * The stationary distribution of the character automaton by renewal: a pass starts at a trie root and ends
 * at the next root it enters. Within a pass every move out of a trie node goes to a higher id (a child,
 * a node of a free-word trie, or a garbage state), so one sweep in id order gives the probability that the
 * pass visits each node; the garbage states of a row type exchange their inflow between themselves
 * (letters and "."), so their expected visits solve a 2 x 2 system. With M[r][r2] = P(a pass from root r
 * ends at root r2) and mu its stationary law, pi(s) is proportional to sum_r mu(r) visits_r(s).
 */
function stationaryByPasses(a: CharAutomaton): Float64Array {
  const { size, probs, next, garbage: kind, boundaries } = a, A = a.alphabet.length, R = boundaries.length;
  const rootIndex = new Int32Array(size).fill(-1);
  boundaries.forEach((s, i) => rootIndex[s] = i);
  // The garbage pairs: the word state and its "." state of one row type, keyed by row type.
  const pairs = new Map<number, [number, number]>();
  for (let s = 0; s < size; s++) {
    if (kind[s] === 0) continue;
    const p = pairs.get(a.rowType[s]) ?? [-1, -1];
    p[kind[s] - 1] = s;
    pairs.set(a.rowType[s], p);
  }
  const M = new Float64Array(R * R), visits: Float64Array[] = [];
  for (let i = 0; i < R; i++) {
    const v = new Float64Array(size);
    v[boundaries[i]] = 1;
    const move = (s: number): void => {
      const f = v[s];
      if (f === 0) return;
      for (let e = s * A; e < (s + 1) * A; e++) {
        const t = next[e];
        if (rootIndex[t] >= 0) M[i * R + rootIndex[t]] += f * probs[e];
        else v[t] += f * probs[e];
      }
    };
    for (let s = 0; s < size; s++) if (kind[s] === 0 && (rootIndex[s] < 0 || s === boundaries[i])) move(s);
    for (const [g, d] of pairs.values()) {
      // v_g = in_g + v_g gg + v_d dg, v_d = in_d + v_g gd + v_d dd; v[g], v[d] hold the inflows so far.
      let gg = 0, gd = 0, dg = 0, dd = 0;
      for (let c = 0; c < A; c++) {
        const tg = next[g * A + c], td = next[d * A + c];
        if (tg === g) gg += probs[g * A + c];
        if (tg === d) gd += probs[g * A + c];
        if (td === g) dg += probs[d * A + c];
        if (td === d) dd += probs[d * A + c];
      }
      const a11 = 1 - gg, a12 = -dg, a21 = -gd, a22 = 1 - dd, det = a11 * a22 - a12 * a21;
      const inG = v[g], inD = v[d];
      v[g] = (inG * a22 - a12 * inD) / det;
      v[d] = (a11 * inD - a21 * inG) / det;
      // Their moves out of the pair; the moves inside it are in the solution already.
      for (const s of [g, d]) {
        for (let e = s * A; e < (s + 1) * A; e++) {
          const t = next[e];
          if (rootIndex[t] >= 0) M[i * R + rootIndex[t]] += v[s] * probs[e];
          else if (t !== g && t !== d) throw new Error("generated language: a garbage state leads elsewhere");
        }
      }
    }
    visits.push(v);
  }
  const mu = solveStationary(M, R);
  const pi = new Float64Array(size);
  for (let i = 0; i < R; i++) for (let s = 0; s < size; s++) pi[s] += mu[i] * visits[i][s];
  return normalise(pi);
}

/**
 * The stationary distribution of an irreducible n-state Markov chain given as a row-major n x n matrix
 * (M[r * n + r2] = P(r -> r2)): the solution of mu (I - M) = 0 with sum(mu) = 1, by Gaussian elimination
 * with partial pivoting in float64 (O(n^3): for small chains).
 */
export function solveStationary(M: Float64Array, n: number): Float64Array {
  // Unknowns mu_0..mu_{n-1}; equation i (i < n - 1): sum_r mu_r (delta_ri - M_ri) = 0; the last: sum mu = 1.
  const a = new Float64Array(n * (n + 1));
  for (let i = 0; i < n - 1; i++) {
    for (let r = 0; r < n; r++) a[i * (n + 1) + r] = (r === i ? 1 : 0) - M[r * n + i];
  }
  for (let r = 0; r <= n; r++) a[(n - 1) * (n + 1) + r] = 1;
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let i = col + 1; i < n; i++) {
      if (Math.abs(a[i * (n + 1) + col]) > Math.abs(a[piv * (n + 1) + col])) piv = i;
    }
    for (let k = 0; k <= n; k++) {
      [a[col * (n + 1) + k], a[piv * (n + 1) + k]] = [a[piv * (n + 1) + k], a[col * (n + 1) + k]];
    }
    const d = a[col * (n + 1) + col];
    for (let i = 0; i < n; i++) {
      if (i === col) continue;
      const f = a[i * (n + 1) + col] / d;
      if (f !== 0) { for (let k = col; k <= n; k++) a[i * (n + 1) + k] -= f * a[col * (n + 1) + k]; }
    }
  }
  const mu = new Float64Array(n);
  for (let i = 0; i < n; i++) mu[i] = Math.max(0, a[i * (n + 1) + n] / a[i * (n + 1) + i]);
  return normalise(mu);
}

/**
 * Throws unless the automaton's graph (edges with q > 0) is irreducible and, when `aperiodic`, has
 * cycle lengths with gcd 1.
 */
function checkAutomaton(seed: number, a: CharAutomaton, aperiodic: boolean): void {
  const { size, probs, next } = a, A = a.alphabet.length;
  const level = new Int32Array(size).fill(-1);
  level[a.start] = 0;
  const queue = [a.start];
  const revCount = new Int32Array(size + 1);
  for (let e = 0; e < size * A; e++) if (probs[e] > 0) revCount[next[e] + 1]++;
  for (let s = 0; s < size; s++) revCount[s + 1] += revCount[s];
  const rev = new Int32Array(revCount[size]), fill = revCount.slice(0, size);
  for (let e = 0; e < size * A; e++) if (probs[e] > 0) rev[fill[next[e]]++] = Math.floor(e / A);
  for (let q = 0; q < queue.length; q++) {
    const s = queue[q];
    for (let e = s * A; e < (s + 1) * A; e++) {
      const t = next[e];
      if (probs[e] > 0 && level[t] < 0) {
        level[t] = level[s] + 1;
        queue.push(t);
      }
    }
  }
  const back = new Uint8Array(size);
  back[a.start] = 1;
  const stack = [a.start];
  while (stack.length > 0) {
    const t = stack.pop()!;
    for (let k = revCount[t]; k < revCount[t + 1]; k++) {
      if (!back[rev[k]]) {
        back[rev[k]] = 1;
        stack.push(rev[k]);
      }
    }
  }
  let period = 0;
  for (let s = 0; s < size; s++) {
    if (level[s] < 0 || !back[s]) {
      throw new Error(`generated language (seed ${seed}): character automaton is not irreducible`);
    }
    for (let e = s * A; e < (s + 1) * A; e++) {
      if (probs[e] > 0) period = gcd(period, Math.abs(level[s] + 1 - level[next[e]]));
    }
  }
  if (aperiodic && period !== 1) {
    throw new Error(`generated language (seed ${seed}): character automaton has period ${period}`);
  }
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
