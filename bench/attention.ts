import type { BenchBuilder, BenchCase } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { attentionBackward, attentionForward, attentionScratchBytes } from "../src/kernels/attention.ts";
import { Rng } from "../src/util/rng.ts";

/** A buffer of `n` floats filled with a repeated random block (cheap to make at any size). */
function randomBuffer(gpu: Gpu, label: string, n: number, seed: number): GPUBuffer {
  const buf = createStorage(gpu, label, n * 4);
  const block = new Rng(seed).normalArray(Math.min(n, 1 << 20));
  for (let off = 0; off < n; off += block.length) {
    gpu.device.queue.writeBuffer(
      buf,
      off * 4,
      block as Float32Array<ArrayBuffer>,
      0,
      Math.min(block.length, n - off),
    );
  }
  return buf;
}

/**
 * Forward, backward and both for one shape. FLOPs count the causal half: forward 2*B*NH*T^2*HS (QK^T and
 * PV over the lower triangle), backward 2.5x that (recomputed S, dP, dV, dK, dQ), as FlashAttention reports.
 */
async function cases(gpu: Gpu, B: number, T: number, C: number, NH: number): Promise<BenchCase[]> {
  const s = { B, T, C, NH };
  const shape = `B=${B} T=${T} C=${C} NH=${NH} HS=${C / NH}`;
  const qkv = randomBuffer(gpu, "qkv", B * T * 3 * C, 1), dout = randomBuffer(gpu, "dout", B * T * C, 2);
  const out = createStorage(gpu, "out", B * T * C * 4), lse = createStorage(gpu, "lse", B * NH * T * 4);
  const dqkv = createStorage(gpu, "dqkv", B * T * 3 * C * 4);
  const scratch = createStorage(gpu, "scratch", attentionScratchBytes(s));
  const fwd = await attentionForward(gpu, { out, lse, qkv }, s);
  const bwd = await attentionBackward(gpu, { dqkv, dout, qkv, out, lse, scratch }, s);
  submitDispatches(gpu, [fwd], "attention bench setup"); // real out and lse for the backward-only case
  const flops = 2 * B * NH * T * T * (C / NH);
  return [
    { name: "attention_forward", shape, dispatches: [fwd], flops },
    { name: "attention_backward", shape, dispatches: bwd, flops: 2.5 * flops },
    { name: "attention_forward_backward", shape, dispatches: [fwd, ...bwd], flops: 3.5 * flops },
  ];
}

/** Causal attention; CI: tiny heads; large: GPT-2 small (T 1024, HS 64), shakespeare_char, and HS 128. */
export const build: BenchBuilder = async (gpu, large) => {
  const shapes: [number, number, number, number][] = large
    ? [[8, 1024, 768, 12], [64, 256, 384, 6], [8, 1024, 1024, 8]]
    : [[1, 128, 64, 4], [1, 128, 128, 2]];
  const all: BenchCase[] = [];
  for (const [B, T, C, NH] of shapes) all.push(...await cases(gpu, B, T, C, NH));
  return all;
};
