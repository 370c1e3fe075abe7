/**
 * GPTConfig: nanoGPT's model hyper-parameters under nanoGPT's names, with validation.
 *
 * @module
 */

import { type Activation, ACTIVATIONS } from "../gpu/source.ts";
export { type Activation, ACTIVATIONS };

/** The model's shape (nanoGPT's GPTConfig). */
export interface GPTConfig {
  /** Number of transformer blocks. nanoGPT default 12; shakespeare_char 6. */
  n_layer: number;
  /** Attention heads per block; must divide n_embd. nanoGPT default 12; shakespeare_char 6. */
  n_head: number;
  /** Channels C of the residual stream. nanoGPT default 768; shakespeare_char 384. */
  n_embd: number;
  /** Maximum context length T (rows of the position embedding). nanoGPT default 1024; shakespeare_char 256. */
  block_size: number;
  /** Vocabulary size V (rows of the token embedding, tied to the output head). GPT-2: 50304 padded. */
  vocab_size: number;
  /** Biases in Linear layers and LayerNorms (nanoGPT default true). */
  bias: boolean;
  /**
   * Dropout probability on embeddings, residual branches and attention probabilities, as nanoGPT's
   * `dropout` (default 0.0; shakespeare_char 0.2).
   */
  dropout: number;
  /** The MLP's activation; absent means "gelu" (nanoGPT's). A GPT-2 checkpoint has "gelu_new". */
  activation?: Activation;
}

/** nanoGPT's defaults (GPT-2 small shape). */
export const DEFAULT_CONFIG: Readonly<GPTConfig> = {
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  block_size: 1024,
  vocab_size: 50304,
  bias: true,
  dropout: 0,
};

/** GPT-2 small as Hugging Face ships it (`gpt2`): its unpadded vocabulary and tanh GELU, dropout off. */
export const GPT2_SMALL: Readonly<GPTConfig> = {
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  block_size: 1024,
  vocab_size: 50257,
  bias: true,
  dropout: 0,
  activation: "gelu_new",
};

/** Throws a one-line error naming the first invalid field. */
export function validateConfig(c: GPTConfig): void {
  const pos = ["n_layer", "n_head", "n_embd", "block_size", "vocab_size"] as const;
  for (const k of pos) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw new Error(`config: ${k} must be a positive integer (got ${c[k]})`);
    }
  }
  if (c.n_embd % c.n_head !== 0) {
    throw new Error(`config: n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`);
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) {
    throw new Error(`config: dropout must be in [0, 1) (got ${c.dropout})`);
  }
  if (typeof c.bias !== "boolean") throw new Error(`config: bias must be true or false`);
  if (c.activation !== undefined && !ACTIVATIONS.includes(c.activation)) {
    throw new Error(
      `config: activation must be ${ACTIVATIONS.join(" or ")} (got ${JSON.stringify(c.activation)})`,
    );
  }
}

/**
 * Storage precision of a training run (nanoGPT's `dtype`): "float32" everywhere, or "float16" mixed
 * precision: matmul and attention operands stored as f16 (weights as an f16 copy of the f32 master weights),
 * f32 arithmetic and accumulation, f32 residual stream, layernorm statistics, logits, gradients and optimizer
 * state, and dynamic loss scaling. Needs the adapter feature `shader-f16`.
 */
export type Precision = "float32" | "float16";

/** The storage precisions a run can ask for. */
export const PRECISIONS: readonly Precision[] = ["float32", "float16"];

/**
 * Where dropout is applied (nanoGPT: the embedding's `drop`, each block's `resid_dropout` after the
 * attention and MLP projections, and `attn_dropout` on the attention probabilities, `attn`); with the layer
 * index this picks the hash stream of each dropout site.
 */
export type DropoutSite = "embedding" | "attn_resid" | "mlp_resid" | "attn";

/**
 * The counter-based hash stream for a dropout site: distinct per site and layer, shared by the GPU model
 * and the CPU reference so both draw the same masks. `micro` separates gradient-accumulation micro-steps.
 */
export function dropoutStream(site: DropoutSite, layer = 0, micro = 0): number {
  const s = site === "embedding"
    ? 0
    : site === "attn_resid"
    ? 1 + 2 * layer
    : site === "mlp_resid"
    ? 2 + 2 * layer
    : 0x8000 + layer;
  return (micro * 65536 + s) >>> 0;
}
