/**
 * Shared test fixtures: a toy model configuration, random GPT weights with O(1) activations (LayerNorm
 * weights near 1), their parameter-arena image, and a tiny training configuration that runs in well under a
 * second on lavapipe.
 */
import type { GPTConfig } from "../src/model/config.ts";
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
