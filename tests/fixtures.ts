/**
 * Shared test fixtures: a toy model configuration, random GPT weights with O(1) activations (LayerNorm
 * weights near 1), their parameter-arena image, and a tiny training configuration that runs in well under a
 * second on lavapipe.
 */
import { Arena } from "../src/gpu/buffers.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { saveModel } from "../src/model/checkpoint.ts";
import { Generator, type GeneratorExtra } from "../src/model/generate.ts";
import type { GPTConfig } from "../src/model/config.ts";
import type { Tokenizer } from "../src/data/tokenizer.ts";
import { paramLayout, paramSpecs } from "../src/model/params.ts";
import { DEFAULT_TRAIN, type TrainConfig } from "../src/train/config.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * A toy GPT for kernel-level model tests: 1 layer, 2 heads, 16 channels, context 8, 11 tokens, no bias, no
 * dropout; `over` replaces any of them.
 */
export function tinyGPT(over: Partial<GPTConfig> = {}): GPTConfig {
  return {
    n_layer: 1,
    n_head: 2,
    n_embd: 16,
    block_size: 8,
    vocab_size: 11,
    bias: false,
    dropout: 0,
    ...over,
  };
}

/** Random weights by nanoGPT name: N(0, std), plus 1 on LayerNorm weights. */
export function randomWeights(c: GPTConfig, seed: number, std = 0.3): Record<string, Float32Array> {
  const rng = new Rng(seed);
  const w: Record<string, Float32Array> = {};
  for (const p of paramSpecs(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const t = rng.normalArray(n, std);
    if (/ln_\d\.weight|ln_f\.weight/.test(p.name)) { for (let i = 0; i < n; i++) t[i] += 1; }
    w[p.name] = t;
  }
  return w;
}

/** The parameter-arena image of weights by name (padding zero). */
export function hostOf(c: GPTConfig, w: Readonly<Record<string, Float32Array>>): Float32Array {
  const { layout } = paramLayout(c);
  const host = new Float32Array(layout.totalFloats);
  for (const e of layout.entries) host.set(w[e.name], e.offset);
  return host;
}

/** A Generator of `rows` rows over the weights `w` of `c`, uploaded into a parameter arena. */
export async function generatorOf(
  gpu: Gpu,
  c: GPTConfig,
  w: Readonly<Record<string, Float32Array>>,
  rows: number,
  extra: GeneratorExtra = {},
): Promise<Generator> {
  const params = new Arena(gpu, "params", paramLayout(c).layout);
  params.write(gpu, hostOf(c, w));
  return await Generator.create(gpu, c, params, rows, extra);
}

/** Saves weights by name as a model checkpoint of `c` with tokenizer `tok` (and `extra` metadata). */
export async function saveWeights(
  path: string,
  c: GPTConfig,
  tok: Tokenizer,
  w: Readonly<Record<string, Float32Array>>,
  extra?: Record<string, string>,
): Promise<void> {
  await saveModel(path, c, tok, paramLayout(c).layout, hostOf(c, w), extra);
}

/** A 1-layer, 16-channel model with a 16-token context and batch 4: six steps, one evaluation. */
export const tinyTrain: Readonly<TrainConfig> = {
  ...DEFAULT_TRAIN,
  n_layer: 1,
  n_head: 2,
  n_embd: 16,
  block_size: 16,
  batch_size: 4,
  steps: 6,
  eval_interval: 6,
  eval_iters: 2,
  log_interval: 2,
  sample_chars: 0,
};

/**
 * A first-order Markov chain over the first `k` letters with sparse random rows, irreducible (a cycle
 * through all states) and aperiodic (self-loops happen): its letters, transition rows P and the Rng that
 * drew them (markovText continues it).
 */
export function markovChain(k: number, seed: number): { letters: string[]; P: number[][]; rng: Rng } {
  const rng = new Rng(seed);
  const letters = [..."abcdefghijklmnopqrstuvwxyz".slice(0, k)];
  const P: number[][] = [];
  for (let i = 0; i < k; i++) {
    const w = Array.from({ length: k }, () => rng.uniform() < 0.4 ? rng.uniform() + 0.05 : 0);
    w[(i + 1) % k] += 0.5;
    w[i] += 0.05;
    const s = w.reduce((a, b) => a + b, 0);
    P.push(w.map((x) => x / s));
  }
  return { letters, P, rng };
}

/** `n` letters of markovChain(k, seed) from state 0, and the chain's exact entropy rate (nats a letter). */
export function markovText(k: number, n: number, seed: number): { text: string; entropy: number } {
  const { letters, P, rng } = markovChain(k, seed);
  let pi = new Array(k).fill(1 / k); // the stationary distribution, by power iteration
  for (let it = 0; it < 2000; it++) {
    const nx = new Array(k).fill(0);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) nx[j] += pi[i] * P[i][j];
    pi = nx;
  }
  let entropy = 0;
  for (let i = 0; i < k; i++) for (const p of P[i]) if (p > 0) entropy -= pi[i] * p * Math.log(p);
  let s = 0, text = "";
  for (let t = 0; t < n; t++) {
    let u = rng.uniform(), j = 0;
    while (j < k - 1 && u >= P[s][j]) u -= P[s][j++];
    s = j;
    text += letters[s];
  }
  return { text, entropy };
}

/** 150 steps of a 32-channel model for an 8-letter Markov language: a few seconds on lavapipe. */
export const markovTrain: Readonly<TrainConfig> = {
  ...tinyTrain,
  n_embd: 32,
  batch_size: 16,
  steps: 150,
  lr: 1e-2,
  min_lr: 1e-3,
  warmup: 10,
  eval_interval: 150,
  eval_iters: 8,
  log_interval: 50,
};

/** The settings `keys` of `c` as command-line flags: `--n-layer`, `1`, ... */
export function flagsOf(c: Readonly<TrainConfig>, keys: readonly (keyof TrainConfig)[]): string[] {
  return keys.flatMap((k) => [`--${k.replaceAll("_", "-")}`, String(c[k])]);
}

/** The settings of {@linkcode tinyTrain}'s model and batch. */
export const TINY_KEYS = ["n_layer", "n_head", "n_embd", "block_size", "batch_size"] as const;

/** {@linkcode tinyTrain}'s model and batch as command-line flags: `--n-layer 1 ... --batch-size 4`. */
export const tinyFlags: readonly string[] = flagsOf(tinyTrain, TINY_KEYS);
