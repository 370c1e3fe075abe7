/**
 * CPU reference of the whole GPT (nanoGPT's model), forward and backward, composed from the per-kernel
 * references in float64. It is the oracle for the GPU model: same parameter names, same dropout masks
 * (the counter-based hash with the same streams), same loss (mean cross-entropy over the targets that
 * are not `ignoreIndex`).
 *
 * @module
 */
import { dropoutStream, type GPTConfig } from "../model/config.ts";
import { attentionBackward, attentionForward } from "./attention.ts";
import { crossEntropy } from "./crossentropy.ts";
import { encoderBackward, encoderForward } from "./encoder.ts";
import { geluBackward, geluForward } from "./gelu.ts";
import { layernormBackward, layernormForward } from "./layernorm.ts";
import { matmulBackward, matmulForward } from "./matmul.ts";
import { dropoutBackward, dropoutForward } from "./residual.ts";

/** Parameters by nanoGPT name. */
export type RefParams = Readonly<Record<string, ArrayLike<number>>>;

/** Activations kept by {@linkcode gptForward} for {@linkcode gptBackward}. */
export interface RefCache {
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Input token ids [B,T]. */
  tokens: ArrayLike<number>;
  /** Target token ids [B,T]. */
  targets: ArrayLike<number>;
  /** Dropout seed of the forward. */
  seed: number;
  /** Per layer, the tensors the backward needs. */
  layers: RefLayerCache[];
  /** Embedding output after dropout [B*T, C]. */
  x0: Float64Array;
  /** Final layernorm output and statistics. */
  lnf: { out: Float64Array; mean: Float64Array; rstd: Float64Array };
  /** Residual stream after the last block [B*T, C]. */
  xL: Float64Array;
  /** Gradient of the mean loss with respect to the logits [B*T, V]. */
  dlogits: Float64Array;
}

/** One block's saved activations. */
export interface RefLayerCache {
  /** Block input (residual stream) [B*T, C]. */
  xin: Float64Array;
  /** First layernorm output and statistics. */
  ln1: { out: Float64Array; mean: Float64Array; rstd: Float64Array };
  /** c_attn output [B*T, 3C]. */
  qkv: Float64Array;
  /** Attention output, heads merged [B*T, C]. */
  atty: Float64Array;
  /** Residual stream after attention [B*T, C]. */
  x2: Float64Array;
  /** Second layernorm output and statistics. */
  ln2: { out: Float64Array; mean: Float64Array; rstd: Float64Array };
  /** c_fc output [B*T, 4C]. */
  fch: Float64Array;
  /** GELU output [B*T, 4C]. */
  fcg: Float64Array;
}

/** Forward result: mean loss, logits and the cache for the backward. */
export interface RefForward {
  /** Mean cross-entropy over the scored positions. */
  loss: number;
  /** Per-position losses [B*T]. */
  losses: Float64Array;
  /** Logits [B*T, V]. */
  logits: Float64Array;
  /** Saved activations. */
  cache: RefCache;
}

const get = (p: RefParams, name: string): ArrayLike<number> => {
  const t = p[name];
  if (!t) throw new Error(`reference gpt: missing parameter '${name}'`);
  return t;
};
const opt = (p: RefParams, name: string, on: boolean): ArrayLike<number> | null => on ? get(p, name) : null;

function add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const o = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = a[i] + b[i];
  return o;
}

/**
 * Forward pass over tokens [B,T] with targets [B,T]. `seed` is the dropout seed (ignored when
 * config.dropout is 0). Targets equal to `ignoreIndex` give no loss and no gradient; the loss is the
 * mean over the other positions, while dlogits keep the scale 1/(B*T) (as the GPU model's default).
 */
export function gptForward(
  c: GPTConfig,
  p: RefParams,
  tokens: ArrayLike<number>,
  targets: ArrayLike<number>,
  B: number,
  T: number,
  seed = 0,
  ignoreIndex = -1,
): RefForward {
  const C = c.n_embd, V = c.vocab_size, N = B * T, L = c.n_layer;
  const drop = (x: Float64Array, stream: number) =>
    c.dropout > 0 ? dropoutForward(x, c.dropout, seed, stream) : x;
  const x0 = drop(
    encoderForward(tokens, get(p, "transformer.wte.weight"), get(p, "transformer.wpe.weight"), B, T, C),
    dropoutStream("embedding"),
  );
  // The LayerNorm and the Linear layer (K inputs, M outputs) named `name`, over the N rows of x.
  const norm = (x: ArrayLike<number>, name: string) =>
    layernormForward(x, get(p, `${name}.weight`), opt(p, `${name}.bias`, c.bias), N, C);
  const linear = (x: ArrayLike<number>, name: string, K: number, M: number) =>
    matmulForward(x, get(p, `${name}.weight`), opt(p, `${name}.bias`, c.bias), N, K, M);
  let x = x0;
  const layers: RefLayerCache[] = [];
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`;
    const ln1 = norm(x, `${h}.ln_1`);
    const qkv = linear(ln1.out, `${h}.attn.c_attn`, C, 3 * C);
    const attDrop = c.dropout > 0 ? { p: c.dropout, seed, stream: dropoutStream("attn", l) } : undefined;
    const atty = attentionForward(qkv, B, T, C, c.n_head, attDrop).out;
    const proj = linear(atty, `${h}.attn.c_proj`, C, C);
    const x2 = add(x, drop(proj, dropoutStream("attn_resid", l)));
    const ln2 = norm(x2, `${h}.ln_2`);
    const fch = linear(ln2.out, `${h}.mlp.c_fc`, C, 4 * C);
    const fcg = geluForward(fch, c.activation);
    const fcp = linear(fcg, `${h}.mlp.c_proj`, 4 * C, C);
    const x3 = add(x2, drop(fcp, dropoutStream("mlp_resid", l)));
    layers.push({ xin: x, ln1, qkv, atty, x2, ln2, fch, fcg });
    x = x3;
  }
  const lnf = norm(x, "transformer.ln_f");
  const logits = matmulForward(lnf.out, get(p, "transformer.wte.weight"), null, N, C, V);
  const { losses, dlogits } = crossEntropy(logits, targets, N, V, 1 / N, ignoreIndex);
  let loss = 0, count = 0;
  for (let i = 0; i < N; i++) {
    if (targets[i] === ignoreIndex) continue;
    loss += losses[i];
    count++;
  }
  loss /= count;
  return { loss, losses, logits, cache: { B, T, tokens, targets, seed, layers, x0, lnf, xL: x, dlogits } };
}

/** Backward pass of the mean loss: gradients by parameter name (the tied head folded into wte). */
export function gptBackward(c: GPTConfig, p: RefParams, cache: RefCache): Record<string, Float64Array> {
  const { B, T, seed } = cache;
  const C = c.n_embd, V = c.vocab_size, N = B * T, L = c.n_layer;
  const g: Record<string, Float64Array> = {};
  const acc = (name: string, d: Float64Array) => {
    if (g[name]) { for (let i = 0; i < d.length; i++) g[name][i] += d[i]; }
    else g[name] = Float64Array.from(d);
  };
  const dropB = (d: Float64Array, stream: number) =>
    c.dropout > 0 ? dropoutBackward(d, c.dropout, seed, stream) : d;
  // Parameter gradients of layer `name` (its weight, and its bias when the model has biases).
  const accLayer = (name: string, d: { dweight: Float64Array; dbias: Float64Array }) => {
    acc(`${name}.weight`, d.dweight);
    if (c.bias) acc(`${name}.bias`, d.dbias);
  };
  // Backward of the LayerNorm `name` (forward input x, its saved statistics st) and of the Linear layer
  // `name` (input x, K inputs, M outputs): their gradients accumulated, the input gradient returned.
  const normBack = (d: ArrayLike<number>, x: ArrayLike<number>, st: RefLayerCache["ln1"], name: string) => {
    const r = layernormBackward(d, x, get(p, `${name}.weight`), st.mean, st.rstd, N, C);
    accLayer(name, r);
    return r.dinp;
  };
  const linearBack = (d: ArrayLike<number>, x: ArrayLike<number>, name: string, K: number, M: number) => {
    const r = matmulBackward(d, x, get(p, `${name}.weight`), N, K, M);
    accLayer(name, r);
    return r.dinp;
  };
  const wte = get(p, "transformer.wte.weight");
  const head = matmulBackward(cache.dlogits, cache.lnf.out, wte, N, C, V);
  acc("transformer.wte.weight", head.dweight);
  let dres = normBack(head.dinp, cache.xL, cache.lnf, "transformer.ln_f");
  for (let l = L - 1; l >= 0; l--) {
    const h = `transformer.h.${l}`;
    const a = cache.layers[l];
    const dfcp = dropB(dres, dropoutStream("mlp_resid", l));
    const dfch = geluBackward(a.fch, linearBack(dfcp, a.fcg, `${h}.mlp.c_proj`, 4 * C, C), c.activation);
    const dln2 = linearBack(dfch, a.ln2.out, `${h}.mlp.c_fc`, C, 4 * C);
    dres = add(dres, normBack(dln2, a.x2, a.ln2, `${h}.ln_2`));
    const dproj = dropB(dres, dropoutStream("attn_resid", l));
    const datty = linearBack(dproj, a.atty, `${h}.attn.c_proj`, C, C);
    const attDrop = c.dropout > 0 ? { p: c.dropout, seed, stream: dropoutStream("attn", l) } : undefined;
    const dqkv = attentionBackward(datty, a.qkv, B, T, C, c.n_head, attDrop);
    const dln1 = linearBack(dqkv, a.ln1.out, `${h}.attn.c_attn`, C, 3 * C);
    dres = add(dres, normBack(dln1, a.xin, a.ln1, `${h}.ln_1`));
  }
  const demb = dropB(dres, dropoutStream("embedding"));
  const e = encoderBackward(demb, cache.tokens, B, T, C, V);
  acc("transformer.wte.weight", e.dwte);
  // wpe has block_size rows; only the first T receive gradient.
  const dwpe = new Float64Array(c.block_size * C);
  dwpe.set(e.dwpe);
  acc("transformer.wpe.weight", dwpe);
  return g;
}
