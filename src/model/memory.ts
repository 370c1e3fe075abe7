/**
 * Memory planning: the buffers a GPT of a given config and (B, T) allocates, computed before any
 * allocation, so a configuration that cannot fit the adapter is refused with both numbers instead of
 * failing inside WebGPU. WebGPU reports per-buffer limits (maxStorageBufferBindingSize, maxBufferSize),
 * not the device's total memory, so the total is reported for information.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { attentionDsBytes, attentionScratchBytes } from "../kernels/attention.ts";
import { encoderScratchBytes } from "../kernels/encoder.ts";
import { layernormScratchBytes } from "../kernels/layernorm.ts";
import { matmulBackwardWeightScratchBytes } from "../kernels/matmul.ts";
import type { GPTConfig, Precision } from "./config.ts";
import { paramLayout } from "./params.ts";
import { InputError } from "../util/errors.ts";

/** One planned buffer. */
export interface PlannedBuffer {
  /** What it holds, with its shape, e.g. "logits [16384 x 65]". */
  name: string;
  /** Size in bytes. */
  bytes: number;
}

/**
 * Every buffer GPT.create allocates for (B, T), plus the AdamW moments when `training` (the trainer's
 * two extra parameter-sized arenas). With dtype "float16" the matmul and attention operands take 2 bytes a
 * value, plus the f16 weight copy, the f16 loss gradient and the loss scaler; `splitK` adds the split-K
 * weight-gradient scratch where a shape splits; `storedDs` the attention backward's dS buffer (see
 * {@linkcode storedDsDefault}); `headRows` the rows of logits held at a time (see {@linkcode headRowsDefault}).
 * Mirrors src/model/gpt.ts; a test checks the two agree.
 */
export function memoryPlan(
  c: GPTConfig,
  B: number,
  T: number,
  training = false,
  dtype: Precision = "float32",
  splitK = true,
  storedDs = false,
  headRows = B * T,
): PlannedBuffer[] {
  const C = c.n_embd, V = c.vocab_size, L = c.n_layer, N = B * T, NH = c.n_head, R = headRows;
  const P = paramLayout(c).layout.totalFloats * 4;
  const f = (name: string, floats: number): PlannedBuffer => ({ name, bytes: Math.max(4, floats * 4) });
  const half = dtype === "float16";
  // An operand buffer: f16 in mixed precision (rounded up to 4 bytes like every buffer).
  const h = (name: string, n: number): PlannedBuffer =>
    half ? { name, bytes: Math.max(4, Math.ceil(n / 2) * 4) } : f(name, n);
  const out: PlannedBuffer[] = [
    { name: `parameters [${P / 4} floats]`, bytes: P },
    { name: `gradients [${P / 4} floats]`, bytes: P },
    f("tokens", N),
    f("targets", N),
    f("rng", 4),
    f(`logits [${R} x ${V}]`, R * V),
    f("losses", N),
    f("loss_acc", 4),
  ];
  if (training) out.push({ name: "adam_m", bytes: P }, { name: "adam_v", bytes: P });
  for (let l = 0; l <= L; l++) out.push(f(`residual ${l} [${N} x ${C}]`, N * C));
  if (c.dropout > 0) out.push(f("emb", N * C));
  for (let l = 0; l < L; l++) {
    out.push(
      h(`h${l}.ln1`, N * C),
      f(`h${l}.ln1_mean`, N),
      f(`h${l}.ln1_rstd`, N),
      h(`h${l}.qkv [${N} x ${3 * C}]`, N * 3 * C),
      h(`h${l}.atty`, N * C),
      f(`h${l}.lse`, B * NH * T),
      f(`h${l}.x2`, N * C),
      h(`h${l}.ln2`, N * C),
      f(`h${l}.ln2_mean`, N),
      f(`h${l}.ln2_rstd`, N),
      h(`h${l}.fch [${N} x ${4 * C}]`, N * 4 * C),
      h(`h${l}.fcg [${N} x ${4 * C}]`, N * 4 * C),
    );
  }
  out.push(h("lnf", N * C), f("lnf_mean", N), f("lnf_rstd", N));
  out.push(
    f("dres", N * C),
    f("d_c", N * C),
    h("d_atty", N * C),
    h("d_4c_b", N * 4 * C),
  );
  if (half) {
    out.push(
      { name: `f16 parameters [${P / 4} halves]`, bytes: P / 2 },
      h(`f16 dlogits [${R} x ${V}]`, R * V),
      { name: "loss scaler", bytes: 8 },
    );
  }
  out.push({ name: "attention scratch", bytes: Math.max(4, attentionScratchBytes({ B, T, C, NH })) });
  const ln = layernormScratchBytes({ N, C });
  if (ln > 0) out.push({ name: "layernorm scratch", bytes: ln });
  out.push({ name: "embedding scratch", bytes: Math.max(4, encoderScratchBytes({ B, T, C, V })) });
  const split = splitK
    ? Math.max(0, ...linearWeightShapes(c, N).map((s) => matmulBackwardWeightScratchBytes(s)))
    : 0;
  if (split > 0) out.push({ name: "split-K weight-gradient scratch", bytes: split });
  if (storedDs) out.push(storedDsBuffer(c, B, T, dtype));
  return out;
}

/** The attention backward's dS buffer (one for all layers; f16 in mixed precision, like dqkv). */
export function storedDsBuffer(
  c: GPTConfig,
  B: number,
  T: number,
  dtype: Precision = "float32",
): PlannedBuffer {
  const NH = c.n_head;
  return {
    name: `attention dS [${B * NH} x ${T} x ${T}]`,
    bytes: attentionDsBytes({ B, T, C: c.n_embd, NH }, dtype === "float16" ? "f16" : "f32"),
  };
}

/**
 * Whether a model keeps attention's dS for its backward by default (kernels/attention.ts attentionBackward
 * `ds`: the dq kernel reads dS instead of recomputing S and dP, 5 instead of 7 products of T^2 HS per head,
 * 23-32% less backward time on lavapipe): when the buffer, one T x T square per (batch, head) in f32 (f16 in
 * mixed precision), fits one binding and adds at most a quarter to the bytes of the model's other buffers
 * (`plan`), so that long contexts with small models keep FlashAttention's linear memory.
 */
export function storedDsDefault(
  gpu: Gpu,
  c: GPTConfig,
  B: number,
  T: number,
  plan: readonly PlannedBuffer[],
  dtype: Precision = "float32",
): boolean {
  const { bytes } = storedDsBuffer(c, B, T, dtype);
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  return bytes <= limit && bytes <= plan.reduce((s, b) => s + b.bytes, 0) / 4;
}

/** Bytes of f32 logits the tied head holds at a time at most, below the adapter's binding limit. */
export const HEAD_CHUNK_BYTES: number = 256 * 2 ** 20;

/**
 * Rows of logits the tied head and the loss compute at a time (GPTShape.headRows): all B*T rows while the
 * f32 logits [B*T, V] take at most min(256 MiB, the adapter's binding limit); else as many rows as fit, a
 * multiple of 64 so that every chunk's binding offsets stay 256-byte aligned. GPT-2's 50257-token
 * vocabulary at B*T = 12288 (nanoGPT's micro-batch) needs 2.3 GiB of logits, more than an H200 binds (2 GiB):
 * chunks of 1280 rows take 245 MiB. A vocabulary of 65 never chunks.
 */
export function headRowsDefault(gpu: Gpu, c: GPTConfig, B: number, T: number): number {
  const N = B * T, rowBytes = c.vocab_size * 4;
  const cap = Math.min(HEAD_CHUNK_BYTES, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (N * rowBytes <= cap) return N;
  // At least 64 rows (an absurd vocabulary is then refused by checkMemory with its size), at most N.
  return Math.min(N, Math.max(64, Math.floor(cap / rowBytes / 64) * 64));
}

/**
 * The weight-gradient products of one step as matmul shapes {M: rows, K: in features, N: out features}:
 * each block's four Linear layers and the tied head (N = vocab); M = B*T. The model sizes one split-K
 * scratch for the largest (src/kernels/matmul.ts matmulBackwardWeightSplit).
 */
export function linearWeightShapes(c: GPTConfig, M: number): { M: number; K: number; N: number }[] {
  const C = c.n_embd;
  return [
    { M, K: C, N: 3 * C },
    { M, K: C, N: C },
    { M, K: C, N: 4 * C },
    { M, K: 4 * C, N: C },
    { M, K: C, N: c.vocab_size },
  ];
}

/** Human-readable bytes: "128 MiB", "3.07 GiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${Number.isInteger(x) ? x : x.toFixed(2)} ${units[i]}`;
}

/**
 * Throws a one-line {@linkcode InputError} (a configuration too large for the adapter is bad input)
 * when a planned buffer exceeds what the adapter can bind or allocate, naming the buffer, its size, the
 * limit and the plan's total.
 */
export function checkMemory(gpu: Gpu, plan: readonly PlannedBuffer[], hint: string): void {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const total = plan.reduce((s, b) => s + b.bytes, 0);
  const worst = plan.reduce((a, b) => b.bytes > a.bytes ? b : a);
  if (worst.bytes > limit) {
    throw new InputError(
      `this configuration needs ${formatBytes(worst.bytes)} in one buffer (${worst.name}) but the adapter ` +
        `allows ${formatBytes(limit)} per storage buffer (${formatBytes(total)} in total); ${hint}`,
    );
  }
}
