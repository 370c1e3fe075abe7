import type { BenchBuilder, BenchCase } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { encoderBackward, encoderForward, encoderScratchBytes } from "../src/kernels/encoder.ts";
import { Rng } from "../src/util/rng.ts";

/** Skewed token ids (id = floor(V u^3)): low ids frequent, like text, so the sort sees long runs. */
function tokens(n: number, V: number, seed: number): Uint32Array {
  const rng = new Rng(seed);
  return Uint32Array.from({ length: n }, () => Math.min(V - 1, Math.floor(V * rng.uniform() ** 3)));
}

async function cases(gpu: Gpu, B: number, T: number, C: number, V: number): Promise<BenchCase[]> {
  const s = { B, T, C, V }, N = B * T;
  const shape = `B=${B} T=${T} C=${C} V=${V}`;
  const tok = createStorage(gpu, "tokens", N * 4, tokens(N, V, 1));
  const wte = createStorage(gpu, "wte", V * C * 4, new Rng(2).uniformArray(V * C));
  const wpe = createStorage(gpu, "wpe", T * C * 4, new Rng(3).uniformArray(T * C));
  const out = createStorage(gpu, "out", N * C * 4);
  const dout = createStorage(gpu, "dout", N * C * 4, new Rng(4).uniformArray(N * C));
  const dwte = createStorage(gpu, "dwte", V * C * 4), dwpe = createStorage(gpu, "dwpe", T * C * 4);
  const scratch = createStorage(gpu, "scratch", encoderScratchBytes(s));
  return [
    {
      name: "encoder_forward",
      shape,
      dispatches: [await encoderForward(gpu, { out, tokens: tok, wte, wpe }, s)],
      // out written, one wte row read per position, wpe and tokens read once.
      bytes: 4 * (2 * N * C + T * C + N),
    },
    {
      name: "encoder_backward",
      shape,
      dispatches: await encoderBackward(gpu, { dwte, dwpe, dout, tokens: tok, scratch }, s),
      // Lower bound: dout read twice (dwpe, dwte) and dwpe read-modify-written; ignores the sort and dwte.
      bytes: 4 * (2 * N * C + 2 * T * C),
    },
  ];
}

/**
 * Token + position embedding forward (GB/s) and deterministic backward (time; GB/s on a lower bound of
 * its traffic). Large sizes: shakespeare_char (B=64 T=256 C=384 V=65) and GPT-2 small (B=16 T=1024 C=768
 * V=50304).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const shapes: [number, number, number, number][] = large
    ? [[64, 256, 384, 65], [16, 1024, 768, 50304]]
    : [[4, 64, 64, 65], [2, 128, 64, 50304], [4, 64, 30, 65]]; // C = 30: the scalar (non-vec4) forward
  const out: BenchCase[] = [];
  for (const [B, T, C, V] of shapes) out.push(...await cases(gpu, B, T, C, V));
  return out;
};
