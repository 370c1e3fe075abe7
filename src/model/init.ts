/**
 * nanoGPT's initialisation, as a host image of the parameter arena: every Linear and Embedding weight
 * N(0, 0.02), residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2*n_layer)), biases 0,
 * LayerNorm weights 1 and biases 0.
 *
 * @module
 */
import type { ArenaLayout } from "../gpu/buffers.ts";
import { Rng } from "../util/rng.ts";
import type { GPTConfig } from "./config.ts";

/** The initial parameter arena (padding zero), reproducible from `seed`. */
export function initParams(c: GPTConfig, layout: ArenaLayout, seed: number): Float32Array {
  const host = new Float32Array(layout.totalFloats);
  const rng = new Rng(seed);
  const residStd = 0.02 / Math.sqrt(2 * c.n_layer);
  // Fill in nanoGPT's module order (not arena order) so the stream does not depend on the layout.
  const names = [...layout.entries].sort((a, b) => order(a.name) - order(b.name));
  for (const e of names) {
    const view = host.subarray(e.offset, e.offset + e.size);
    if (/\.ln_\d\.weight$|ln_f\.weight$/.test(e.name)) view.fill(1);
    else if (e.name.endsWith(".bias")) view.fill(0);
    else {
      const std = /c_proj\.weight$/.test(e.name) ? residStd : 0.02;
      for (let i = 0; i < view.length; i++) view[i] = std * rng.normal();
    }
  }
  return host;
}

/** Position of a parameter in nanoGPT's module order: embeddings, blocks in order, final norm. */
function order(name: string): number {
  if (name.startsWith("transformer.wte")) return 0;
  if (name.startsWith("transformer.wpe")) return 1;
  const m = /^transformer\.h\.(\d+)\.(.*)$/.exec(name);
  if (!m) return 1e9;
  const parts = [
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
  ];
  return 2 + Number(m[1]) * 16 + parts.indexOf(m[2]);
}
