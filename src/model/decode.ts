/**
 * The KV-cache decode network: the dispatches that turn the token at the GPU-side position into the
 * next-token logits, one position at a time. Recorded once, replayed once per position inside one compute
 * pass (every kernel reads the position from `state[0]`); the caller adds the pick (argmax or sample) and
 * the commit that stores the token and advances the position. The Generator (sampling) and the
 * free-running rollout of training (src/train/modes.ts) both run this network.
 *
 * One position, B rows:
 *
 *   decodeEmbed -> L x (layernorm -> qkv matmul -> kvAppend -> attentionDecode -> proj matmul -> residual
 *                       -> layernorm -> fc matmul -> GELU -> proj matmul -> residual)
 *   -> final layernorm -> tied head matmul (logits)
 *
 * Shapes: seq u32 [B, maxT] (maxT = block_size); activations [B, C], [B, 3C], [B, 4C]; caches
 * [B, NH, maxT, HS] per layer; logits [B, V].
 *
 * A token embedding split across buffers (model/params.ts paramLayout) is embedded a vocabulary slice at a
 * time, and the tied head computes each slice's logits [B, W] and copies them into their columns of the
 * full-width logits (as model/head.ts), so the pick reads rows of width V as always.
 *
 * @module
 */
import { type Arena, createStorage } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { copyColumns } from "../kernels/columns.ts";
import { attentionDecode, decodeEmbed, kvAppend } from "../kernels/decode.ts";
import { geluForward } from "../kernels/gelu.ts";
import { layernormForward } from "../kernels/layernorm.ts";
import { matmulForward } from "../kernels/matmul.ts";
import { residualForward } from "../kernels/residual.ts";
import type { GPTConfig } from "./config.ts";
import { WTE } from "./params.ts";

/** The buffers a decode network shares with its caller. */
export interface DecodeBindings {
  /** u32 [B, block_size]: the token rows; the network reads the token at the current position. */
  seq: GPUBuffer;
  /** u32 [4]: state[0] is the position being decoded (kernels/decode.ts). */
  state: GPUBuffer;
}

/** One decode position of a model over its parameters, and where its logits land. */
export interface DecodeNetwork {
  /** embed -> blocks -> final layernorm -> head, for the position in `state[0]`. */
  readonly dispatches: Dispatch[];
  /** f32 [B, V]: the next-token logits of each row after the dispatches ran. */
  readonly logits: GPUBuffer;
}

/**
 * Builds the decode network of `config` for `B` rows over the parameters in `params` (nanoGPT layout).
 * It allocates its activations, its per-layer K and V caches and its logits, labelled `${label}.NAME`.
 */
export async function createDecodeNetwork(
  gpu: Gpu,
  config: GPTConfig,
  params: Arena,
  io: DecodeBindings,
  opts: { B: number; label: string },
): Promise<DecodeNetwork> {
  const c = config, C = c.n_embd, V = c.vocab_size, NH = c.n_head, maxT = c.block_size;
  const { B, label } = opts;
  const { seq, state } = io;
  const f32 = (name: string, n: number) => createStorage(gpu, `${label}.${name}`, n * 4);
  const logits = f32("logits", B * V);
  const xa = f32("xa", B * C), xb = f32("xb", B * C), x2 = f32("x2", B * C);
  const ln = f32("ln", B * C), mean = f32("mean", B), rstd = f32("rstd", B);
  const qkv = f32("qkv", B * 3 * C), y = f32("y", B * C), proj = f32("proj", B * C);
  const fch = f32("fch", B * 4 * C), fcg = f32("fcg", B * 4 * C);
  const P = (n: string) => params.bind(n);
  const PB = (n: string) => c.bias ? { bias: P(n) } : {};
  const wte = params.slices(WTE), sliced = wte.length > 1;
  const slice = sliced ? f32("logits_slice", B * Math.max(...wte.map((s) => s.rows))) : null;
  // layernorm of `inp` into ln (weights `${name}.weight`, `${name}.bias`).
  const lnF = (inp: GPUBuffer, name: string) =>
    layernormForward(gpu, { out: ln, mean, rstd, inp, weight: P(`${name}.weight`), ...PB(`${name}.bias`) }, {
      N: B,
      C,
    });
  // out [B, N] = inp [B, K] · W^T (+ bias), W = `${name}.weight`.
  const lin = (out: GPUBuffer, inp: GPUBuffer, name: string, K: number, N: number) =>
    matmulForward(gpu, { out, inp, weight: P(`${name}.weight`), ...PB(`${name}.bias`) }, { M: B, K, N });
  const ds: Dispatch[] = [];
  for (const s of wte) {
    const b = { x: xa, seq, wte: s.binding, wpe: P("transformer.wpe.weight"), state };
    ds.push(await decodeEmbed(gpu, b, { B, maxT, C, V, ...(sliced ? { slice: s } : {}) }));
  }
  let x = xa, other = xb;
  for (let l = 0; l < c.n_layer; l++) {
    const h = `transformer.h.${l}`;
    const kcache = f32(`k${l}`, B * maxT * C), vcache = f32(`v${l}`, B * maxT * C);
    ds.push(await lnF(x, `${h}.ln_1`));
    ds.push(await lin(qkv, ln, `${h}.attn.c_attn`, C, 3 * C));
    ds.push(await kvAppend(gpu, { kcache, vcache, qkv, state }, { B, maxT, C, NH }));
    ds.push(await attentionDecode(gpu, { y, qkv, kcache, vcache, state }, { B, maxT, C, NH }));
    ds.push(await lin(proj, y, `${h}.attn.c_proj`, C, C));
    ds.push(await residualForward(gpu, { out: x2, a: x, b: proj }, B * C));
    ds.push(await lnF(x2, `${h}.ln_2`));
    ds.push(await lin(fch, ln, `${h}.mlp.c_fc`, C, 4 * C));
    ds.push(await geluForward(gpu, { out: fcg, inp: fch }, B * 4 * C, {}, config.activation));
    ds.push(await lin(proj, fcg, `${h}.mlp.c_proj`, 4 * C, C));
    ds.push(await residualForward(gpu, { out: other, a: x2, b: proj }, B * C));
    [x, other] = [other, x];
  }
  ds.push(await lnF(x, "transformer.ln_f"));
  for (const s of wte) {
    const out = slice ? { buffer: slice, offset: 0, size: B * s.rows * 4 } : logits;
    ds.push(await matmulForward(gpu, { out, inp: ln, weight: s.binding }, { M: B, K: C, N: s.rows }));
    if (!slice) continue;
    const cols = { rows: B, cols: s.rows, src: { width: s.rows, col: 0 }, dst: { width: V, col: s.row0 } };
    ds.push(await copyColumns(gpu, { dst: logits, src: out }, cols));
  }
  return { dispatches: ds, logits };
}
