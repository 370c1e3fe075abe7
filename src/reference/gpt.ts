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
  let x = x0;
  const layers: RefLayerCache[] = [];
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`;
    const ln1 = layernormForward(x, get(p, `${h}.ln_1.weight`), opt(p, `${h}.ln_1.bias`, c.bias), N, C);
    const qkv = matmulForward(
      ln1.out,
      get(p, `${h}.attn.c_attn.weight`),
      opt(p, `${h}.attn.c_attn.bias`, c.bias),
      N,
      C,
      3 * C,
    );
    const attDrop = c.dropout > 0 ? { p: c.dropout, seed, stream: dropoutStream("attn", l) } : undefined;
    const atty = attentionForward(qkv, B, T, C, c.n_head, attDrop).out;
    const proj = matmulForward(
      atty,
      get(p, `${h}.attn.c_proj.weight`),
      opt(p, `${h}.attn.c_proj.bias`, c.bias),
      N,
      C,
      C,
    );
    const x2 = add(x, drop(proj, dropoutStream("attn_resid", l)));
    const ln2 = layernormForward(x2, get(p, `${h}.ln_2.weight`), opt(p, `${h}.ln_2.bias`, c.bias), N, C);
    const fch = matmulForward(
      ln2.out,
      get(p, `${h}.mlp.c_fc.weight`),
      opt(p, `${h}.mlp.c_fc.bias`, c.bias),
      N,
      C,
      4 * C,
    );
    const fcg = geluForward(fch, c.activation);
    const fcp = matmulForward(
      fcg,
      get(p, `${h}.mlp.c_proj.weight`),
      opt(p, `${h}.mlp.c_proj.bias`, c.bias),
      N,
      4 * C,
      C,
    );
    const x3 = add(x2, drop(fcp, dropoutStream("mlp_resid", l)));
    layers.push({ xin: x, ln1, qkv, atty, x2, ln2, fch, fcg });
    x = x3;
  }
  const lnf = layernormForward(
    x,
    get(p, "transformer.ln_f.weight"),
    opt(p, "transformer.ln_f.bias", c.bias),
    N,
    C,
  );
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
  const wte = get(p, "transformer.wte.weight");
  const head = matmulBackward(cache.dlogits, cache.lnf.out, wte, N, C, V);
  acc("transformer.wte.weight", head.dweight);
  const f = layernormBackward(
    head.dinp,
    cache.xL,
    get(p, "transformer.ln_f.weight"),
    cache.lnf.mean,
    cache.lnf.rstd,
    N,
    C,
  );
  acc("transformer.ln_f.weight", f.dweight);
  if (c.bias) acc("transformer.ln_f.bias", f.dbias);
  let dres = f.dinp;
  for (let l = L - 1; l >= 0; l--) {
    const h = `transformer.h.${l}`;
    const a = cache.layers[l];
    const dfcp = dropB(dres, dropoutStream("mlp_resid", l));
    const mp = matmulBackward(dfcp, a.fcg, get(p, `${h}.mlp.c_proj.weight`), N, 4 * C, C);
    acc(`${h}.mlp.c_proj.weight`, mp.dweight);
    if (c.bias) acc(`${h}.mlp.c_proj.bias`, mp.dbias);
    const dfch = geluBackward(a.fch, mp.dinp, c.activation);
    const fc = matmulBackward(dfch, a.ln2.out, get(p, `${h}.mlp.c_fc.weight`), N, C, 4 * C);
    acc(`${h}.mlp.c_fc.weight`, fc.dweight);
    if (c.bias) acc(`${h}.mlp.c_fc.bias`, fc.dbias);
    const l2 = layernormBackward(fc.dinp, a.x2, get(p, `${h}.ln_2.weight`), a.ln2.mean, a.ln2.rstd, N, C);
    acc(`${h}.ln_2.weight`, l2.dweight);
    if (c.bias) acc(`${h}.ln_2.bias`, l2.dbias);
    dres = add(dres, l2.dinp);
    const dproj = dropB(dres, dropoutStream("attn_resid", l));
    const ap = matmulBackward(dproj, a.atty, get(p, `${h}.attn.c_proj.weight`), N, C, C);
    acc(`${h}.attn.c_proj.weight`, ap.dweight);
    if (c.bias) acc(`${h}.attn.c_proj.bias`, ap.dbias);
    const attDrop = c.dropout > 0 ? { p: c.dropout, seed, stream: dropoutStream("attn", l) } : undefined;
    const dqkv = attentionBackward(ap.dinp, a.qkv, B, T, C, c.n_head, attDrop);
    const qk = matmulBackward(dqkv, a.ln1.out, get(p, `${h}.attn.c_attn.weight`), N, C, 3 * C);
    acc(`${h}.attn.c_attn.weight`, qk.dweight);
    if (c.bias) acc(`${h}.attn.c_attn.bias`, qk.dbias);
    const l1 = layernormBackward(qk.dinp, a.xin, get(p, `${h}.ln_1.weight`), a.ln1.mean, a.ln1.rstd, N, C);
    acc(`${h}.ln_1.weight`, l1.dweight);
    if (c.bias) acc(`${h}.ln_1.bias`, l1.dbias);
    dres = add(dres, l1.dinp);
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
