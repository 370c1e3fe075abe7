/**
 * What the model sees and how sure it is, computed on the CPU: tforce's float64 reference model
 * (src/reference/gpt.ts, the forward the GPU kernels are tested against) run on the weights read back
 * from the GPU. Cheap for the page's models; a model too large for it is refused by
 * {@linkcode cpuViewFits} rather than freezing the page.
 *
 * Shapes: T positions (at most block_size), C channels, NH heads, HS = C / NH, V vocabulary.
 *
 * @module
 */
import type { ArenaLayout } from "../src/gpu/buffers.ts";
import type { Tokenizer } from "../src/data/tokenizer.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { modelTensors } from "../src/model/checkpoint.ts";
import { countParams } from "../src/model/params.ts";
import { gptForward, type RefParams } from "../src/reference/gpt.ts";

/** A model's weights on the host, by nanoGPT name, with its shape and tokenizer. */
export interface HostModel {
  config: GPTConfig;
  tokenizer: Tokenizer;
  params: RefParams;
}

/** The host model of a parameter-arena image `host` laid out by `layout`. */
export function hostModel(
  config: GPTConfig,
  tokenizer: Tokenizer,
  layout: ArenaLayout,
  host: Float32Array,
): HostModel {
  const [tensors] = modelTensors(config, tokenizer, layout, host);
  return { config, tokenizer, params: Object.fromEntries(tensors.map((t) => [t.name, t.data])) };
}

/** Floating-point operations the CPU may spend on one view (~1 s of float64 JavaScript). */
const CPU_BUDGET_FLOPS = 4e8;

/** Whether a forward over `tokens` positions of this model stays within the CPU budget. */
export function cpuViewFits(config: GPTConfig, tokens: number): boolean {
  const attention = 4 * config.n_layer * config.block_size * config.n_embd;
  return 2 * (countParams(config) + attention) * tokens <= CPU_BUDGET_FLOPS;
}

/** One candidate next token and its probability. */
export interface Choice {
  /** The token as text. */
  text: string;
  /** Its probability under the model (temperature 1). */
  p: number;
}

/** How sure the model was of the token at one position of a sequence. */
export interface TokenView {
  /** Position in the sequence. */
  position: number;
  /** The token there, as text. */
  text: string;
  /** Its probability given the tokens before it (temperature 1). */
  p: number;
  /** The five most likely tokens at that position. */
  top: Choice[];
  /** How many tokens before it the model read. */
  context: number;
}

/**
 * The model's probability of every token of `ids` from position `from` on, each given the tokens before
 * it: windows of block_size positions at a stride of half that, so every token is read with at least
 * half a block of context where the sequence has it (the generator slides its window the same way).
 */
export function tokenProbabilities(m: HostModel, ids: readonly number[], from: number): TokenView[] {
  const T = m.config.block_size, V = m.config.vocab_size, stride = Math.max(1, Math.floor(T / 2));
  const out: TokenView[] = [];
  const names = Array.from({ length: V }, (_, id) => m.tokenizer.decode([id]));
  let start = 0, windowKey = "";
  let logits: Float64Array = new Float64Array(0);
  for (let i = Math.max(1, from); i < ids.length; i++) {
    // The earliest window start whose window still holds position i - 1.
    while (i - 1 - start >= T) start += stride;
    const end = Math.min(ids.length, start + T);
    if (windowKey !== `${start}:${end}`) {
      const win = ids.slice(start, end);
      windowKey = `${start}:${end}`;
      logits = gptForward(m.config, m.params, win, win, 1, win.length).logits;
    }
    const row = logits.subarray((i - 1 - start) * V, (i - start) * V);
    const p = softmax(row);
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, 5);
    out.push({
      position: i,
      text: names[ids[i]],
      p: p[ids[i]],
      top: order.map((id) => ({ text: names[id], p: p[id] })),
      context: i - start,
    });
  }
  return out;
}

function softmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  const p = Float64Array.from(row, (v) => Math.exp(v - m));
  const s = p.reduce((a, b) => a + b, 0);
  return p.map((v) => v / s);
}

/** The attention weights of every layer and head over a short text. */
export interface AttentionMaps {
  /** The tokens, as text. */
  tokens: string[];
  /** weights(layer, head)[t][j]: how much position t attends to position j <= t (rows sum to 1). */
  weights(layer: number, head: number): Float64Array[];
}

/**
 * Attention weights of the model over `ids` (at most block_size tokens): softmax(q_t · k_j / sqrt(HS))
 * over j <= t for each layer and head, from the reference forward's q and k.
 */
export function attentionMaps(m: HostModel, ids: readonly number[]): AttentionMaps {
  const c = m.config, T = ids.length, C = c.n_embd, NH = c.n_head, HS = C / NH;
  if (T < 1 || T > c.block_size) throw new Error(`attention: 1 to ${c.block_size} tokens (got ${T})`);
  const { cache: run } = gptForward(c, m.params, ids, ids, 1, T);
  const scale = 1 / Math.sqrt(HS);
  return {
    tokens: ids.map((id) => m.tokenizer.decode([id])),
    weights(layer, head) {
      const qkv = run.layers[layer].qkv;
      return Array.from({ length: T }, (_, t) => {
        const s = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < HS; d++) {
            dot += qkv[t * 3 * C + head * HS + d] * qkv[j * 3 * C + C + head * HS + d];
          }
          s[j] = dot * scale;
        }
        return softmax(s);
      });
    },
  };
}
