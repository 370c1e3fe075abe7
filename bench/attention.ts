import { type BenchBuilder, type BenchCase, comparison, randomStorage, timeCase } from "./harness.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import type { StorageType } from "../src/gpu/source.ts";
import {
  attentionBackward,
  attentionDsBytes,
  attentionForward,
  type AttentionOptions,
  attentionScratchBytes,
  type AttentionVariant,
} from "../src/kernels/attention.ts";

/** Bytes per value of a storage type. */
const size = (t: StorageType): number => t === "f16" ? 2 : 4;

/** Storage types of one benchmarked combination (the forward uses qkv and out). */
interface Types {
  qkv: StorageType;
  out: StorageType;
  dout: StorageType;
  dqkv: StorageType;
}

const F32: Types = { qkv: "f32", out: "f32", dout: "f32", dqkv: "f32" };
/** The model's mixed-precision combination: every attention operand f16 (lse and delta stay f32). */
const MODEL_F16: Types = { qkv: "f16", out: "f16", dout: "f16", dqkv: "f16" };

/**
 * Forward, backward and both for one shape and one type combination (names get `suffix`), the backward
 * and both again with the stored-dS backward (`_ds` after the suffix), and both with dropout 0.2 on the
 * probabilities (`_ds_dropout`, as the shakespeare_char recipe trains). FLOPs count the causal half: forward
 * 2*B*NH*T^2*HS (QK^T and PV over the lower triangle), backward 2.5x that (recomputed S, dP, dV, dK, dQ),
 * as FlashAttention reports, whatever a kernel recomputes. Bytes are the minimum traffic at each tensor's
 * storage type: forward reads qkv, writes out and lse (f32); backward reads qkv, out, dout, lse, writes
 * dqkv and writes then reads the f32 delta scratch (the stored-dS form also writes and reads the causal
 * half of dS in f32).
 */
async function cases(
  gpu: Gpu,
  B: number,
  T: number,
  C: number,
  NH: number,
  ty: Types,
  suffix: string,
  opts: AttentionOptions = {},
): Promise<BenchCase[]> {
  const s = { B, T, C, NH };
  const shape = `B=${B} T=${T} C=${C} NH=${NH} HS=${C / NH}`;
  const qkv = randomStorage(gpu, "qkv", B * T * 3 * C, 1, ty.qkv, "normal");
  const dout = randomStorage(gpu, "dout", B * T * C, 2, ty.dout, "normal");
  const out = createStorage(gpu, "out", B * T * C * size(ty.out)),
    lse = createStorage(gpu, "lse", B * NH * T * 4);
  const dqkv = createStorage(gpu, "dqkv", B * T * 3 * C * size(ty.dqkv));
  const scratch = createStorage(gpu, "scratch", attentionScratchBytes(s));
  const fwd = await attentionForward(
    gpu,
    { out, lse, qkv },
    { ...s, types: { qkv: ty.qkv, out: ty.out } },
    opts,
  );
  const bwd = await attentionBackward(gpu, { dqkv, dout, qkv, out, lse, scratch }, { ...s, types: ty }, opts);
  const ds = createStorage(gpu, "ds", attentionDsBytes(s, ty.dqkv));
  const bwdDs = await attentionBackward(
    gpu,
    { dqkv, dout, qkv, out, lse, scratch, ds },
    { ...s, types: ty },
    opts,
  );
  // Dropout 0.2 on the probabilities (the shakespeare_char recipe's), stored dS: as the model trains it.
  const rng = createStorage(gpu, "rng", 16);
  const dropout = { p: 0.2, stream: 0x8000 };
  const fwdDrop = await attentionForward(
    gpu,
    { out, lse, qkv, rng },
    { ...s, types: { qkv: ty.qkv, out: ty.out }, dropout },
    opts,
  );
  const bwdDrop = await attentionBackward(
    gpu,
    { dqkv, dout, qkv, out, lse, scratch, ds, rng },
    { ...s, types: ty, dropout },
    opts,
  );
  submitDispatches(gpu, [fwd], "attention bench setup"); // real out and lse for the backward-only case
  const flops = 2 * B * NH * T * T * (C / NH);
  const n = B * T * C, rows = B * NH * T;
  const fwdBytes = 3 * n * size(ty.qkv) + n * size(ty.out) + 4 * rows;
  const bwdBytes = 3 * n * size(ty.qkv) + n * size(ty.out) + n * size(ty.dout) + 4 * rows +
    3 * n * size(ty.dqkv) + 8 * rows;
  const dsBytes = 2 * 4 * B * NH * T * (T + 1) / 2;
  return [
    { name: `attention_forward${suffix}`, shape, dispatches: [fwd], flops, bytes: fwdBytes },
    { name: `attention_backward${suffix}`, shape, dispatches: bwd, flops: 2.5 * flops, bytes: bwdBytes },
    {
      name: `attention_forward_backward${suffix}`,
      shape,
      dispatches: [fwd, ...bwd],
      flops: 3.5 * flops,
      bytes: fwdBytes + bwdBytes,
    },
    {
      name: `attention_backward${suffix}_ds`,
      shape,
      dispatches: bwdDs,
      flops: 2.5 * flops,
      bytes: bwdBytes + dsBytes,
    },
    {
      name: `attention_forward_backward${suffix}_ds`,
      shape,
      dispatches: [fwd, ...bwdDs],
      flops: 3.5 * flops,
      bytes: fwdBytes + bwdBytes + dsBytes,
    },
    {
      name: `attention_forward_backward${suffix}_ds_dropout`,
      shape,
      dispatches: [fwdDrop, ...bwdDrop],
      flops: 3.5 * flops,
      bytes: fwdBytes + bwdBytes + dsBytes + 4,
    },
  ];
}

/** [B, T, C, NH] of the CPU adapter's comparison: the default `train` model, the peer benchmark's, CI's. */
const CPU_SHAPES: [number, number, number, number][] = [[16, 64, 64, 4], [8, 64, 128, 4], [4, 64, 64, 2]];
/** The comparison's further shapes: longer rows at head sizes 16 and 32; head size 64 (blocked by default). */
const BEYOND: [number, number, number, number][] = [[4, 256, 64, 4], [4, 256, 128, 4], [4, 128, 256, 4]];

/**
 * Causal attention; CI: tiny heads; large: GPT-2 small (T 1024, HS 64), shakespeare_char, and HS 128. Each
 * shape in f32 and, when the device has `shader-f16`, in the model's f16 combination (names end in `_f16`:
 * forward qkv and out f16; backward also dout and dqkv f16); at large, the GPT-2 shape also with 16 KiB
 * of workgroup memory (`_wg16k`: tiles of half the rows) to pick the tile size from. On a software adapter
 * at CI size, also the default `train` model's shape in both forms (`_cpu`, `_blocked`).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const shapes: [number, number, number, number][] = large
    ? [[8, 1024, 768, 12], [64, 256, 384, 6], [8, 1024, 1024, 8]]
    : [[1, 128, 64, 4], [1, 128, 128, 2]];
  const all: BenchCase[] = [];
  for (const [B, T, C, NH] of shapes) {
    all.push(...await cases(gpu, B, T, C, NH, F32, ""));
    if (gpu.features.f16) all.push(...await cases(gpu, B, T, C, NH, MODEL_F16, "_f16"));
  }
  // Tile-size knob at the GPT-2 shape: 16 KiB of workgroup memory (half the default tile rows).
  if (large) all.push(...await cases(gpu, 8, 1024, 768, 12, F32, "_wg16k", { workgroupBytes: 16384 }));
  if (gpu.software && !large) {
    const [B, T, C, NH] = CPU_SHAPES[0];
    for (const variant of ["cpu", "blocked"] as const) {
      all.push(...await cases(gpu, B, T, C, NH, F32, `_${variant}`, { variant }));
    }
  }
  return all;
};

/**
 * `deno run --allow-read=. --allow-env bench/attention.ts [--iters N]`: the cpu variant against the blocked
 * kernels (the baseline) on this adapter, forward and the stored-dS backward at the CPU shapes and beyond,
 * all timed in the same run, in turn per shape; one Markdown table with the ratios.
 */
async function compareVariants(): Promise<void> {
  const { gpu, iters } = await comparison(5);
  console.log("| kernels | shape | blocked ms | cpu ms | blocked GFLOP/s | cpu GFLOP/s | cpu / blocked |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const [B, T, C, NH] of [...CPU_SHAPES, ...BEYOND]) {
    const built = async (v: AttentionVariant) => await cases(gpu, B, T, C, NH, F32, "", { variant: v });
    const [blocked, cpu] = [await built("blocked"), await built("cpu")];
    for (const name of ["attention_forward", "attention_backward_ds", "attention_forward_backward_ds"]) {
      const pick = (all: BenchCase[]) => all.find((c) => c.name === name)!;
      const a = await timeCase(gpu, pick(blocked), iters), b = await timeCase(gpu, pick(cpu), iters);
      console.log(
        `| ${name} | ${a.shape} | ${a.ms.toFixed(3)} | ${b.ms.toFixed(3)} | ${a.gflops?.toFixed(2)} | ${
          b.gflops?.toFixed(2)
        } | ${(a.ms / b.ms).toFixed(2)} |`,
      );
    }
  }
}

if (import.meta.main) await compareVariants();
