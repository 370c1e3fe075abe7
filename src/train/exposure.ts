/**
 * `deno task eval --exposure`: what conditioning on its own continuation does to a model's predictions
 * (exposure bias: He et al. 2019/2021; Arora et al. 2022), measured against an oracle where there is one.
 *
 * Windows: W windows of T + 1 tokens of the data (T = block_size), evenly spaced through the text; window
 * w starts at token `starts[w]` and holds x_0..x_T. With the gold prefix P, two passes per window:
 *   gold history  inputs x_0..x_{T-1};
 *   own history   inputs x_0..x_{P-1}, y_P..y_{T-1}, the model's own continuation: y_t is drawn from
 *                 p_θ(·|h_{t-1}) at temperature 1 (`decode: "sample"`, the default; `"argmax"` takes its
 *                 mode instead, which is a different distribution of texts), where h_{P-1} = x_0..x_{P-1}
 *                 and h_t = x_0..x_{P-1}, y_P..y_t. It is generated on the GPU with the KV-cache rollout of
 *                 src/train/modes.ts.
 * Both passes give the model's next-token distribution at every position t = 0..T-1, after x_0..x_t and
 * after h_t (the same history for t < P). A history is the window's own tokens, nothing before them.
 *
 * With an oracle (a {@linkcode CharOracle}: the true next-character law p*(·|h) of the language the data
 * comes from, for every history h; char-level models only), the error of those predictions:
 *   oracle_kl_gold[t] = mean over windows of KL(p*(·|x_0..x_t) ‖ p_θ(·|x_0..x_t)),
 *   oracle_kl_own[t]  = mean over windows of KL(p*(·|h_t) ‖ p_θ(·|h_t))   (equal to oracle_kl_gold[t], t < P),
 * the excess loss over the best achievable after that history: 0 for a perfect model under both histories,
 * whatever it continued with. Model tokens outside the oracle's alphabet have p* = 0 (they add nothing);
 * an alphabet character the model cannot emit is refused, as is a tokenizer that is not char-level.
 * No figure: an order-k oracle gives none where t + 1 < k (`null` at those t); a position whose history
 * (its last k tokens, or all of them for an order-0 oracle) holds a token outside the alphabet is
 * skipped, counted in `oracle_skipped` (gold-history and own-history figures counted separately). The
 * figure at t is the mean over the windows that have one there (`null` if none does); a `_mean` is the mean
 * of the non-null figures at t = P..T-1 (`null` if none is).
 *
 * Always (and all there is without an oracle), the drift of the predictions:
 *   gold_loss_after_gold[t] = mean over windows of -log p_θ(x_{t+1} | x_0..x_t),
 *   gold_loss_after_own[t]  = mean over windows of -log p_θ(x_{t+1} | h_t),
 *   drift_kl[t]             = mean over windows of KL(p_θ(·|x_0..x_t) ‖ p_θ(·|h_t)).
 * Once the continuation leaves the gold text, x_{t+1} is no longer what the language would produce next,
 * and even a perfect model predicts differently after a different history: both gold_loss_after_own and
 * drift_kl grow with drift, for a perfect model too. They measure drift, not error. For t < P the histories
 * agree: gold_loss_after_own[t] = gold_loss_after_gold[t], drift_kl[t] = 0. Their means are over
 * t = P..T-1.
 *
 * Log-softmax, losses and KL are computed in float64 on the CPU from the GPU logits, by one log-softmax
 * and one KL ({@linkcode ExposureTally}, which takes any per-position log-scores, so the model can be
 * replaced by the oracle's own log-probabilities).
 *
 * @module
 */
import { type Arena, readF32, readU32, writeArray } from "../gpu/buffers.ts";
import { bindingLimit, createGpu, type Gpu } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/kernel.ts";
import { linePlotSvg, type PlotSeries } from "../io/svg.ts";
import { loadModel, type LoadOptions, weightsToArena } from "../model/checkpoint.ts";
import type { GPTConfig } from "../model/config.ts";
import { GPT } from "../model/gpt.ts";
import { memoryPlan } from "../model/memory.ts";
import { paramLayout } from "../model/params.ts";
import { hash3 } from "../util/hash.ts";
import type { CharTokenizer } from "../data/char.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { type CharOracle, languageOracle, loadOracleFile } from "../data/oracle.ts";
import { readText } from "./data.ts";
import { heldOutTokens } from "./evaluate.ts";
import { checkPrefix, createRollout, type DecodeRule } from "./modes.ts";
import { runConfigOf } from "./state.ts";
import { InputError } from "../util/errors.ts";
import { configError, setting } from "./config.ts";

/** Options of {@linkcode measureExposure}. */
export interface ExposureOptions {
  /** Gold prefix P, in [1, block_size); default max(1, floor(block_size / 4)). */
  prefix?: number;
  /** How the model continues: sample (temperature 1, the default) or argmax. */
  decode?: DecodeRule;
  /** Windows of the data to measure (default 64; fewer if the data is short). */
  windows?: number;
  /** Windows per GPU batch (default 16, fewer when their logits would exceed one binding). */
  batchSize?: number;
  /** Seed of the sampling (default 1337). */
  seed?: number;
  /** A device to use (default: a new one). */
  gpu?: Gpu;
  /** Also return every window's continuation y_P..y_{T-1} as `rollouts`. */
  keepRollouts?: boolean;
  /** The true next-character law of the data's language: adds the oracle_* figures (needs `tokenizer`). */
  oracle?: CharOracle;
  /** The model's tokenizer, which maps its token ids to the oracle's characters (char-level only). */
  tokenizer?: Tokenizer;
}

/** The figures of {@linkcode ExposureTally} (losses and KL in nats; see the module documentation). */
export interface ExposureFigures {
  /** Gold prefix P. */
  prefix: number;
  /** Positions per window (block_size). */
  positions: number;
  /** Windows measured. */
  windows: number;
  /** Per position t: mean -log p_θ(x_{t+1} | x_0..x_t), the gold next token after the gold history. */
  gold_loss_after_gold: number[];
  /** Per position t: mean -log p_θ(x_{t+1} | h_t), the gold next token after the model's own history. */
  gold_loss_after_own: number[];
  /** Per position t: mean KL(p_θ(·|x_0..x_t) ‖ p_θ(·|h_t)), the drift of the predictions. */
  drift_kl: number[];
  /** Mean of gold_loss_after_gold over t = P..T-1. */
  gold_loss_after_gold_mean: number;
  /** Mean of gold_loss_after_own over t = P..T-1. */
  gold_loss_after_own_mean: number;
  /** Mean of drift_kl over t = P..T-1. */
  drift_kl_mean: number;
  /** What the three drift figures are (and are not). */
  drift_definition: string;
  /** The oracle's description, or null when there is none (then the oracle_* fields are absent). */
  oracle: string | null;
  /** The oracle's order k (0: it conditions on the whole history). */
  oracle_order?: number;
  /** Per position t: mean KL(p*(·|x_0..x_t) ‖ p_θ(·|x_0..x_t)) over the windows with a figure; null: none. */
  oracle_kl_gold?: (number | null)[];
  /** Per position t: mean KL(p*(·|h_t) ‖ p_θ(·|h_t)) over the windows with a figure; null: none. */
  oracle_kl_own?: (number | null)[];
  /** Mean of the non-null oracle_kl_gold[t], t = P..T-1 (null if none). */
  oracle_kl_gold_mean?: number | null;
  /** Mean of the non-null oracle_kl_own[t], t = P..T-1 (null if none). */
  oracle_kl_own_mean?: number | null;
  /** Figures left out (gold and own history counted separately): a history token outside the alphabet. */
  oracle_skipped?: number;
  /** What the oracle figures are, and how nulls and skips enter the means. */
  oracle_definition?: string;
}

/** The last stdout line of `deno task eval --exposure` (losses in nats). */
export interface ExposureResult extends ExposureFigures {
  /** How the own continuation was chosen. */
  decode: DecodeRule;
  /** First token of each window in the measured token stream. */
  starts: number[];
  /** With keepRollouts: each window's continuation y_P..y_{T-1} (T - P token ids). */
  rollouts?: number[][];
}

const DRIFT_DEFINITION =
  "gold_loss_after_gold/own[t]: -log p_model(gold x_{t+1}) after the gold history x_0..x_t " +
  "/ after the own history h_t (gold prefix, then the model's continuation); drift_kl[t]: KL(p_model(.|gold " +
  "history) || p_model(.|own history)); nats, mean over windows. They grow with drift for a perfect model " +
  "too: drift, not error";

const ORACLE_DEFINITION = "oracle_kl_gold/own[t]: KL(p*(.|history) || p_model(.|history)), nats, history = " +
  "the gold x_0..x_t / the own h_t; per t the mean over the windows that have a figure (null where t + 1 < " +
  "order, or where no window has one); a history holding a token outside the oracle's alphabet is skipped " +
  "(oracle_skipped); _mean: the mean of the non-null figures over t = P..T-1";

/** An oracle bound to a model's char vocabulary by {@linkcode bindOracle}. */
export interface BoundOracle {
  /** The oracle. */
  readonly oracle: CharOracle;
  /** The model's token id of each alphabet character. */
  readonly ids: Int32Array;
  /** The oracle's distributions after every prefix of a sequence of model token ids (see CharOracle). */
  conditionals(tokens: ArrayLike<number>): (Float64Array | null)[];
}

/**
 * Binds an oracle to a char-level model of `vocabSize` tokens. Refused (InputError, one line): a tokenizer
 * that is not char-level, an alphabet character the model cannot emit. Model tokens outside the alphabet
 * (say `<pad>`) are characters the oracle gives probability 0; in a history they make it skip.
 */
export function bindOracle(oracle: CharOracle, tokenizer: Tokenizer, vocabSize: number): BoundOracle {
  if (tokenizer.type !== "char") {
    throw new InputError(
      `oracle: the model's tokenizer is ${tokenizer.type}, not char; an oracle of next characters needs a ` +
        `char-level model`,
    );
  }
  const vocab = (tokenizer as CharTokenizer).vocab;
  if (tokenizer.vocabSize !== vocabSize) {
    throw new Error(`oracle: tokenizer of ${tokenizer.vocabSize} ids for a model of ${vocabSize}`);
  }
  const idOf = new Map(vocab.map((ch, id) => [ch, id]));
  const ids = Int32Array.from(oracle.alphabet, (ch) => {
    const id = idOf.get(ch);
    if (id === undefined) {
      const cp = ch.codePointAt(0) ?? 0;
      throw new InputError(
        `oracle: the model cannot emit the alphabet character ${JSON.stringify(ch)} (U+${
          cp.toString(16).toUpperCase().padStart(4, "0")
        }): it is not in its vocabulary of ${vocab.length} characters`,
      );
    }
    return id;
  });
  // Ids that are not a character (<pad>) become a string no alphabet holds.
  const chars = Array.from({ length: vocabSize }, (_, id) => vocab[id] ?? "<pad>");
  const A = oracle.alphabet.length;
  return {
    oracle,
    ids,
    conditionals(tokens) {
      const text = Array.from(tokens, (id) => chars[id]);
      const out = oracle.conditionals(text);
      if (out.length !== text.length || out.some((p) => p !== null && p.length !== A)) {
        throw new Error(`oracle ${oracle.description}: conditionals of the wrong shape`);
      }
      return out;
    },
  };
}

/** One window, as {@linkcode ExposureTally.add} reads it. */
export interface ExposureWindow {
  /** The gold tokens x_0..x_T (T + 1 ids). */
  gold: ArrayLike<number>;
  /** The own-history inputs x_0..x_{P-1}, y_P..y_{T-1} (T ids). */
  own: ArrayLike<number>;
  /** Row t = 0..T-1: the model's log-scores of the next token after x_0..x_t (V logits or log-probs). */
  goldScores(t: number): ArrayLike<number>;
  /** Row t = 0..T-1: the model's log-scores of the next token after h_t. */
  ownScores(t: number): ArrayLike<number>;
}

/**
 * The CPU half of the measurement: accumulates the figures of windows from the model's per-position
 * log-scores under the gold and the own history (normalised here by log-softmax, in float64), so any
 * "model" can be measured, the oracle itself included.
 */
export class ExposureTally {
  readonly #T: number;
  readonly #P: number;
  readonly #V: number;
  readonly #oracle?: BoundOracle;
  #windows = 0;
  #skipped = 0;
  readonly #lossGold: Float64Array;
  readonly #lossOwn: Float64Array;
  readonly #drift: Float64Array;
  readonly #klGold: Float64Array;
  readonly #klOwn: Float64Array;
  readonly #nGold: Float64Array;
  readonly #nOwn: Float64Array;

  /** `positions` T, `prefix` P in [1, T), `vocab` V of the model; an oracle adds the oracle_* figures. */
  constructor(shape: { positions: number; prefix: number; vocab: number }, oracle?: BoundOracle) {
    this.#T = shape.positions;
    this.#P = shape.prefix;
    this.#V = shape.vocab;
    checkPrefix(this.#P, this.#T);
    this.#oracle = oracle;
    const z = () => new Float64Array(this.#T);
    [this.#lossGold, this.#lossOwn, this.#drift] = [z(), z(), z()];
    [this.#klGold, this.#klOwn, this.#nGold, this.#nOwn] = [z(), z(), z(), z()];
  }

  /** Adds one window. */
  add(w: ExposureWindow): void {
    const T = this.#T, V = this.#V, P = this.#P;
    if (w.gold.length !== T + 1 || w.own.length !== T) {
      throw new Error(`exposure: a window needs ${T + 1} gold and ${T} own tokens`);
    }
    for (let t = 0; t < P; t++) {
      if (w.own[t] !== w.gold[t]) throw new Error(`exposure: own input ${t} is not the gold prefix's`);
    }
    const o = this.#oracle;
    const pGold = o?.conditionals(Array.from({ length: T }, (_, t) => w.gold[t]));
    const pOwn = o?.conditionals(w.own);
    for (let t = 0; t < T; t++) {
      const a = logSoftmax(w.goldScores(t), V), f = logSoftmax(w.ownScores(t), V);
      const next = w.gold[t + 1];
      this.#lossGold[t] -= a[next];
      this.#lossOwn[t] -= f[next];
      this.#drift[t] += klDivergence(a, f);
      if (!o) continue;
      this.#addOracle(t, pGold![t], a, this.#klGold, this.#nGold);
      this.#addOracle(t, pOwn![t], f, this.#klOwn, this.#nOwn);
    }
    this.#windows++;
  }

  /** KL(p* ‖ model) at position t into sum[t] and n[t], or a skip (a history token outside the alphabet). */
  #addOracle(
    t: number,
    p: Float64Array | null,
    logQ: Float64Array,
    sum: Float64Array,
    n: Float64Array,
  ): void {
    const o = this.#oracle!;
    if (p === null) {
      if (t + 1 >= o.oracle.order) this.#skipped++; // else: an order-k oracle has no figure at t + 1 < k
      return;
    }
    sum[t] += klDivergence(p.map(Math.log), logQ, o.ids);
    n[t]++;
  }

  /** The figures of the windows added so far. */
  figures(): ExposureFigures {
    const T = this.#T, P = this.#P, W = this.#windows;
    if (W === 0) throw new Error("exposure: no windows");
    const per = (x: Float64Array) => Array.from(x, (v) => v / W);
    const mean = (x: (number | null)[]) => {
      const free = x.slice(P).filter((v): v is number => v !== null);
      return free.length === 0 ? null : free.reduce((s, v) => s + v, 0) / free.length;
    };
    const r: ExposureFigures = {
      prefix: P,
      positions: T,
      windows: W,
      gold_loss_after_gold: per(this.#lossGold),
      gold_loss_after_own: per(this.#lossOwn),
      drift_kl: per(this.#drift),
      gold_loss_after_gold_mean: 0,
      gold_loss_after_own_mean: 0,
      drift_kl_mean: 0,
      drift_definition: DRIFT_DEFINITION,
      oracle: this.#oracle ? this.#oracle.oracle.description : null,
    };
    r.gold_loss_after_gold_mean = mean(r.gold_loss_after_gold)!;
    r.gold_loss_after_own_mean = mean(r.gold_loss_after_own)!;
    r.drift_kl_mean = mean(r.drift_kl)!;
    if (this.#oracle) {
      const perT = (sum: Float64Array, n: Float64Array) =>
        Array.from(sum, (s, t) => n[t] > 0 ? s / n[t] : null);
      r.oracle_order = this.#oracle.oracle.order;
      r.oracle_kl_gold = perT(this.#klGold, this.#nGold);
      r.oracle_kl_own = perT(this.#klOwn, this.#nOwn);
      r.oracle_kl_gold_mean = mean(r.oracle_kl_gold);
      r.oracle_kl_own_mean = mean(r.oracle_kl_own);
      r.oracle_skipped = this.#skipped;
      r.oracle_definition = ORACLE_DEFINITION;
    }
    return r;
  }
}

/** log softmax of the first `V` scores, in float64 (-Infinity scores stay -Infinity: probability 0). */
function logSoftmax(scores: ArrayLike<number>, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, scores[v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(scores[v] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = scores[v] - lse;
  return out;
}

/**
 * KL(p ‖ q) in nats, float64, from log-probabilities: the sum over i with p_i > 0 of
 * p_i (log p_i - log q_{at[i]}) (`at` defaults to the identity); rounding below 0 is clamped to 0.
 */
function klDivergence(logP: ArrayLike<number>, logQ: ArrayLike<number>, at?: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < logP.length; i++) {
    if (logP[i] === -Infinity) continue;
    d += Math.exp(logP[i]) * (logP[i] - logQ[at ? at[i] : i]);
  }
  return Math.max(0, d);
}

/**
 * The most windows, up to `most`, one forward batch of `T` positions takes with every buffer within one
 * binding; 1 when even one window does not fit (GPT.create then names the buffer). Every row's logits come
 * back whole ([B*T, V]), so a large vocabulary or context gets smaller batches rather than a refusal.
 */
function windowsPerBatch(gpu: Gpu, config: GPTConfig, T: number, most: number): number {
  const bindable = bindingLimit(gpu);
  for (let B = most; B > 1; B--) {
    const o = { batch: B, time: T, storedDs: false, headRows: B * T, maxBindingBytes: bindable };
    if (memoryPlan(config, o).every((b) => b.bytes <= bindable)) return B;
  }
  return 1;
}

/**
 * Measures exposure bias of a model whose parameters are `params` (a GPU arena in the nanoGPT layout,
 * copied, or a host array in that layout) on token ids `ids`.
 */
export async function measureExposure(
  config: GPTConfig,
  params: Arena | Float32Array,
  ids: Uint32Array,
  opts: ExposureOptions = {},
): Promise<ExposureResult> {
  const T = config.block_size, V = config.vocab_size;
  if (T < 2) {
    throw new InputError(`exposure: block_size ${T} leaves no room for a continuation of the model's own`);
  }
  const P = opts.prefix ?? Math.max(1, Math.floor(T / 4));
  checkPrefix(P, T);
  const decode = opts.decode ?? "sample";
  if (decode !== "argmax" && decode !== "sample") {
    throw configError`${setting("decode")} must be argmax or sample (got ${decode})`;
  }
  if (ids.length < T + 1) {
    throw new InputError(`data: ${ids.length} tokens, fewer than block_size+1 = ${T + 1} for one window`);
  }
  const wantW = opts.windows ?? 64;
  if (!Number.isInteger(wantW) || wantW < 1) {
    throw configError`${setting("windows")} must be a positive integer (got ${wantW})`;
  }
  const maxW = Math.floor((ids.length - 1) / T);
  const W = Math.min(wantW, maxW);
  const starts = Array.from(
    { length: W },
    (_, k) => W === 1 ? 0 : Math.floor(k * (ids.length - T - 1) / (W - 1)),
  );
  if (opts.batchSize !== undefined && !(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) {
    throw configError`${setting("batchSize")} must be a positive integer (got ${opts.batchSize})`;
  }
  const seed = opts.seed ?? 1337;
  let bound: BoundOracle | undefined;
  if (opts.oracle) {
    if (!opts.tokenizer) throw new Error("measureExposure: an oracle needs the model's tokenizer");
    bound = bindOracle(opts.oracle, opts.tokenizer, V);
  }
  const tally = new ExposureTally({ positions: T, prefix: P, vocab: V }, bound);

  const gpu = opts.gpu ?? await createGpu();
  const B = Math.min(opts.batchSize ?? windowsPerBatch(gpu, config, T, 16), W);
  // Forward only (no dS buffer); every row's logits are read back (no head chunks).
  const model = await GPT.create(gpu, config, { B, T, storedDs: false, headRows: B * T });
  const dev = gpu.device;
  if (params instanceof Float32Array) model.params.write(gpu, params);
  else {
    const enc = dev.createCommandEncoder();
    params.copyTo(enc, model.params);
    dev.queue.submit([enc.finish()]);
  }
  const rollout = await createRollout(gpu, config, model.params, model, {
    B,
    T,
    prefix: P,
    decode,
    tokens: opts.tokenizer?.vocabSize, // a padded vocabulary's extra rows are never sampled
  });

  const rollouts: number[][] = [];
  for (let first = 0; first < W; first += B) {
    const rows = Math.min(B, W - first);
    const tok = new Uint32Array(B * T), tgt = new Uint32Array(B * T);
    for (let b = 0; b < B; b++) {
      const o = starts[first + Math.min(b, rows - 1)]; // spare rows repeat the last window, unscored
      tok.set(ids.subarray(o, o + T), b * T);
      tgt.set(ids.subarray(o + 1, o + T + 1), b * T);
    }
    const run = async (history: "gold" | "own") => {
      writeArray(gpu, model.tokens, tok);
      writeArray(gpu, model.targets, tgt);
      writeArray(gpu, model.seed, Uint32Array.of(hash3(seed, first, 0), 0, 0, 0));
      const enc = dev.createCommandEncoder({ label: "exposure" });
      const pass = enc.beginComputePass({ label: "exposure" });
      encodeDispatches(
        pass,
        history === "own" ? [...rollout.dispatches, ...model.forwardEval] : model.forwardEval,
      );
      pass.end();
      dev.queue.submit([enc.finish()]);
      return await readF32(gpu, model.logits);
    };
    const lGold = await run("gold");
    const lOwn = await run("own");
    const inputs = await readU32(gpu, model.tokens);
    for (let b = 0; b < rows; b++) {
      const o = starts[first + b];
      const own = inputs.subarray(b * T, (b + 1) * T);
      if (opts.keepRollouts) rollouts.push(Array.from(own.subarray(P)));
      const row = (l: Float32Array) => (t: number) => l.subarray((b * T + t) * V, (b * T + t + 1) * V);
      tally.add({ gold: ids.subarray(o, o + T + 1), own, goldScores: row(lGold), ownScores: row(lOwn) });
    }
  }
  gpu.check();
  const { prefix, positions, windows, ...figures } = tally.figures();
  const r: ExposureResult = { prefix, positions, windows, decode, ...figures, starts };
  if (opts.keepRollouts) r.rollouts = rollouts;
  return r;
}

/** Options of {@linkcode exposureCheckpoint}: those of measureExposure, the oracle chosen as it says. */
export interface ExposureCheckpointOptions extends Omit<ExposureOptions, "oracle" | "tokenizer"> {
  /** An order-k chain JSON file (`--oracle FILE`) of the data's language. */
  oracleFile?: string;
  /** How to read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
  load?: LoadOptions;
}

/**
 * Measures the checkpoint at `path` (see {@linkcode measureExposure}) on the text file `data`, or without
 * one on the held-out text of the run that wrote it. The oracle: `oracleFile` (which needs `data`), else,
 * for a char-level model of a run on the built-in generated language (its `train_config` has no `data`),
 * that language of the run's seed; otherwise none (the drift figures only).
 */
export async function exposureCheckpoint(
  path: string,
  data: string | undefined,
  opts: ExposureCheckpointOptions = {},
): Promise<ExposureResult> {
  const ck = await loadModel(path, opts.load);
  if (opts.prefix !== undefined) checkPrefix(opts.prefix, ck.config.block_size);
  if (opts.oracleFile !== undefined && data === undefined) {
    throw configError`${setting("oracleFile")} ${opts.oracleFile} needs ${
      setting("data")
    } FILE, a text of the oracle's
      language`;
  }
  let oracle: CharOracle | undefined;
  if (opts.oracleFile !== undefined) {
    oracle = await loadOracleFile(opts.oracleFile);
    bindOracle(oracle, ck.tokenizer, ck.config.vocab_size); // refusals before the data is read
  } else {
    const run = runConfigOf(ck.metadata, path);
    if (run && run.data === undefined && ck.tokenizer.type === "char") oracle = languageOracle(run.seed);
  }
  let ids: Uint32Array;
  if (data === undefined) ids = await heldOutTokens(ck, path);
  else {
    const text = await readText(data, "data");
    try {
      ids = ck.tokenizer.encode(text);
    } catch (e) {
      throw new InputError(`data: ${(e as Error).message}`);
    }
  }
  const host = weightsToArena(ck.weights, paramLayout(ck.config).layout);
  const { oracleFile: _, ...rest } = opts;
  return await measureExposure(ck.config, host, ids, { ...rest, oracle, tokenizer: ck.tokenizer });
}

/**
 * The exposure curves as an SVG line plot: with an oracle, the excess loss KL(p* ‖ model) after the gold
 * and after the own history; without one, the drift figures (labelled as drift). A dotted vertical line
 * marks the end of the gold prefix.
 */
export function exposurePlotSvg(r: ExposureResult, title = "Exposure bias"): string {
  const pts = (a: (number | null)[]) => a.map((y, t): [number, number] => [t, y ?? NaN]);
  let series: PlotSeries[], yLabel: string, what: string;
  if (r.oracle !== null && r.oracle_kl_gold && r.oracle_kl_own) {
    what = "excess loss KL(p* ‖ model)";
    yLabel = "KL(p* ‖ model), nats (p*: the true law)";
    series = [
      { name: "KL(p* ‖ model), gold history", points: pts(r.oracle_kl_gold) },
      { name: "KL(p* ‖ model), own history", points: pts(r.oracle_kl_own) },
    ];
  } else {
    what = "drift, not error (no oracle)";
    yLabel = "nats";
    series = [
      { name: "gold-token loss, gold history", points: pts(r.gold_loss_after_gold) },
      { name: "gold-token loss, own history", points: pts(r.gold_loss_after_own) },
      { name: "drift KL(gold hist. ‖ own hist.)", points: pts(r.drift_kl), dashed: true },
    ];
  }
  const top = Math.max(0, ...series.flatMap((s) => s.points.map(([, y]) => Number.isFinite(y) ? y : 0)));
  series.push({
    name: `end of the gold prefix (${r.prefix})`,
    points: [[r.prefix - 0.5, 0], [r.prefix - 0.5, top]],
    dashed: true,
  });
  return linePlotSvg({
    title: `${title}: ${what} (prefix ${r.prefix}, ${r.windows} windows, ${r.decode})`,
    xLabel: "position t (prediction of token t+1 after the history up to t)",
    yLabel,
    series,
  });
}
