/**
 * Memory planning: the buffers a GPT of a given config and (B, T) allocates, computed before any
 * allocation, so a configuration that cannot fit the adapter is refused with both numbers instead of
 * failing inside WebGPU. WebGPU reports per-buffer limits (maxStorageBufferBindingSize, maxBufferSize),
 * not the device's total memory, so the total is reported for information.
 *
 * @module
 */
import { bindingLimit, type Gpu } from "../gpu/device.ts";
import { type BufferOptions, bufferTable, tableBuffers } from "./buffers.ts";
import type { GPTConfig } from "./config.ts";
import { InputError } from "../util/errors.ts";

/** One planned buffer. */
export interface PlannedBuffer {
  /** What it holds, with its shape, e.g. "logits [16384 x 65]". */
  name: string;
  /** Size in bytes. */
  bytes: number;
}

/**
 * Every buffer GPT.create allocates for `o` (model/buffers.ts bufferTable, the table allocation reads
 * too), plus the AdamW moments when `o.training` (the trainer's two extra parameter-sized arenas).
 */
export function memoryPlan(c: GPTConfig, o: BufferOptions): PlannedBuffer[] {
  return tableBuffers(bufferTable(c, o)).map(({ name, bytes }) => ({ name, bytes }));
}

/**
 * Whether a model keeps attention's dS for its backward by default (kernels/attention.ts attentionBackward
 * `ds`: the dq kernel reads dS instead of recomputing S and dP, 5 instead of 7 products of T^2 HS per head,
 * 23-32% less backward time on lavapipe): when the buffer, one T x T square per (batch, head) in f32 (f16 in
 * mixed precision), fits one binding and adds at most a quarter to the bytes of the model's other buffers
 * (the plan of `o` without dS), so that long contexts with small models keep FlashAttention's linear memory.
 */
export function storedDsDefault(gpu: Gpu, c: GPTConfig, o: BufferOptions): boolean {
  const rest = memoryPlan(c, { ...o, storedDs: false }).reduce((s, b) => s + b.bytes, 0);
  const bytes = bufferTable(c, { ...o, storedDs: true }).storage.attDs!.bytes;
  return bytes <= bindingLimit(gpu) && bytes <= rest / 4;
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
  const cap = Math.min(HEAD_CHUNK_BYTES, bindingLimit(gpu));
  if (N * rowBytes <= cap) return N;
  // At least 64 rows (an absurd vocabulary is then refused by checkMemory with its size), at most N.
  return Math.min(N, Math.max(64, Math.floor(cap / rowBytes / 64) * 64));
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
  const limit = bindingLimit(gpu);
  const total = plan.reduce((s, b) => s + b.bytes, 0);
  const worst = plan.reduce((a, b) => b.bytes > a.bytes ? b : a);
  if (worst.bytes > limit) {
    throw new InputError(
      `this configuration needs ${formatBytes(worst.bytes)} in one buffer (${worst.name}) but the adapter ` +
        `allows ${formatBytes(limit)} per storage buffer (${formatBytes(total)} in total); ${hint}`,
    );
  }
}
