/**
 * The parameter layout: nanoGPT's state_dict names and shapes in one arena.
 *
 * Tensors that get weight decay (nanoGPT: every tensor with >= 2 dims: embeddings and Linear weights)
 * come first and the rest (biases, LayerNorm weights) after, so AdamW decays the element range
 * [0, decayEnd) of the parameter arena. lm_head.weight is tied to transformer.wte.weight and has no
 * storage of its own.
 *
 * @module
 */
import { ArenaLayout } from "../gpu/buffers.ts";
import type { GPTConfig } from "./config.ts";

/** One parameter tensor: its nanoGPT name and shape. */
export interface ParamSpec {
  /** nanoGPT state_dict key. */
  readonly name: string;
  /** Shape, outermost first (Linear weights are [out, in]). */
  readonly shape: readonly number[];
}

/** All parameter tensors in nanoGPT's module order. */
export function paramSpecs(c: GPTConfig): ParamSpec[] {
  const C = c.n_embd;
  const out: ParamSpec[] = [
    { name: "transformer.wte.weight", shape: [c.vocab_size, C] },
    { name: "transformer.wpe.weight", shape: [c.block_size, C] },
  ];
  const lin = (p: string, o: number, i: number) => {
    out.push({ name: `${p}.weight`, shape: [o, i] });
    if (c.bias) out.push({ name: `${p}.bias`, shape: [o] });
  };
  const ln = (p: string) => {
    out.push({ name: `${p}.weight`, shape: [C] });
    if (c.bias) out.push({ name: `${p}.bias`, shape: [C] });
  };
  for (let l = 0; l < c.n_layer; l++) {
    const h = `transformer.h.${l}`;
    ln(`${h}.ln_1`);
    lin(`${h}.attn.c_attn`, 3 * C, C);
    lin(`${h}.attn.c_proj`, C, C);
    ln(`${h}.ln_2`);
    lin(`${h}.mlp.c_fc`, 4 * C, C);
    lin(`${h}.mlp.c_proj`, C, 4 * C);
  }
  ln("transformer.ln_f");
  return out;
}

/** True for tensors that nanoGPT puts in the weight-decay group (>= 2 dims). */
export function decays(p: ParamSpec): boolean {
  return p.shape.length >= 2;
}

/** Name of the token embedding: the one parameter tensor an arena may split across buffers (by rows). */
export const WTE = "transformer.wte.weight";

/**
 * The arena layout: decayed tensors first; `decayEnd` is the first float of the non-decayed group. With
 * `maxBindingBytes` (the adapter's binding limit) the arena spreads over as many buffers as it needs, the
 * token embedding cut into row slices where it does not fit one buffer (src/gpu/buffers.ts ArenaLayout).
 */
export function paramLayout(
  c: GPTConfig,
  maxBindingBytes = Infinity,
): { layout: ArenaLayout; decayEnd: number } {
  const specs = paramSpecs(c);
  const ordered = [...specs.filter(decays), ...specs.filter((p) => !decays(p))];
  // 128 floats: 256-byte (WebGPU's default minStorageBufferOffsetAlignment) offsets in an f16 copy too.
  const layout = new ArenaLayout(ordered, 128, { maxBytes: maxBindingBytes, splittable: WTE });
  const firstNoDecay = ordered.find((p) => !decays(p));
  const decayEnd = firstNoDecay ? layout.get(firstNoDecay.name).offset : layout.totalFloats;
  return { layout, decayEnd };
}

/** Number of trainable parameters (the tied head counted once), as nanoGPT reports (without wpe when asked). */
export function countParams(c: GPTConfig, includePositions = true): number {
  return paramSpecs(c).reduce(
    (n, p) =>
      n + (includePositions || p.name !== "transformer.wpe.weight" ? p.shape.reduce((a, b) => a * b, 1) : 0),
    0,
  );
}
