/**
 * LayerNorm dispatchers: forward (saving mean and rstd) and backward over N rows of C channels, with
 * or without bias (nanoGPT `bias=True` / `bias=False`).
 *
 * WebGPU tracks buffer usage per whole buffer within one dispatch, so a buffer bound as an output
 * (`read_write`) must not also be bound as an input (`read`) of the same dispatch, even at another
 * range: keep `out`/`mean`/`rstd` out of the buffer holding `inp`/`weight`/`bias`, and `dinp` and the
 * scratch out of the buffers holding `dout`/`inp`/`weight`/`mean`/`rstd`. `dweight` and `dbias` may
 * share one (gradient) buffer.
 *
 * The forward's `out` may be stored as f16 (`types.out`); mean, rstd and the whole backward stay f32.
 *
 * @module
 */
import source from "../../shaders/layernorm.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { checkTypes, type StorageType, withFlags, withTypes } from "../gpu/source.ts";

/**
 * Threads that reduce one row together by a tree in workgroup memory, a power of two dividing 128: 32 (one
 * warp on NVIDIA) by default; 8 on a software adapter, where each tree level is a barrier that costs more
 * than the arithmetic it saves (lavapipe, N 1024, C 64: forward 1.10 → 0.46 ms, backward 1.14 → 0.75 ms;
 * C 384: 4.5 → 3.3 and 6.4 → 5.4 ms).
 */
export type LayernormTeam = 4 | 8 | 16 | 32;

/**
 * The kernels' variant: "teams", rows reduced by teams of threads through workgroup memory; "cpu", one row
 * per invocation through vec4 views, with no workgroup memory or barriers (the backward's column sums 4
 * columns per invocation), for CPU adapters; it needs C a multiple of 4.
 */
export type LayernormVariant = "teams" | "cpu";

/** Options of the LayerNorm dispatchers. */
export interface LayernormOptions {
  /**
   * The kernels' variant ({@linkcode LayernormVariant}). Default: "cpu" on Mesa's llvmpipe where C is a
   * multiple of 4, as it needs (measured faster there: bench/results/cpu_layernorm.md), else "teams".
   */
  readonly variant?: LayernormVariant;
  /** Threads per row's reduction team of the "teams" variant (default: 32, or 8 on a software adapter). */
  readonly team?: LayernormTeam;
}

function variantOf(gpu: Gpu, kernel: string, C: number, opts: LayernormOptions): LayernormVariant {
  const v = opts.variant ?? (gpu.llvmpipe && C % 4 === 0 ? "cpu" : "teams");
  if (v !== "teams" && v !== "cpu") throw new Error(`${kernel}: variant must be teams or cpu (got ${v})`);
  if (v === "cpu" && C % 4 !== 0) {
    throw new Error(`${kernel}: the cpu variant needs C a multiple of 4 (got ${C})`);
  }
  return v;
}

function teamOf(gpu: Gpu, kernel: string, opts: LayernormOptions): number {
  const team = opts.team ?? (gpu.software ? 8 : 32);
  if (![4, 8, 16, 32].includes(team)) throw new Error(`${kernel}: team must be 4, 8, 16 or 32 (got ${team})`);
  return team;
}
/** Forward workgroup: WG_FORWARD / TEAM rows, one team each. */
const WG_FORWARD = 256;
/** Backward workgroup: WG_BACKWARD / TEAM teams share a chunk's rows; then one thread per column. */
const WG_BACKWARD = 128;
/** Rows per backward workgroup; each chunk writes one row of column partials to the scratch. */
const ROWS = 16;
/** Rows (forward, backward) or column quads (backward partials) per workgroup of the cpu variant (RW). */
const CPU_ROWS = 8;
/** Columns per workgroup of the finishing column reduction (matches FC in the shader). */
const FC = 32;

/** The shader with its bias terms (forward bias, finish dbias) kept or dropped. */
function biasSource(bias: boolean): string {
  return withFlags(source, { BIAS: bias }, "layernorm.wgsl");
}

/** Number of row chunks R the backward splits N into. */
function chunks(N: number): number {
  return Math.ceil(N / ROWS);
}

function checkShape(kernel: string, N: number, C: number): void {
  if (!Number.isInteger(N) || !Number.isInteger(C) || N < 1 || C < 1) {
    throw new Error(`${kernel}: N and C must be positive integers (got N=${N}, C=${C})`);
  }
  if (N * C > 0xffffffff) throw new Error(`${kernel}: N*C = ${N * C} exceeds u32 indexing`);
}

/**
 * Bytes of the scratch buffer {@linkcode layernormBackward} needs for (N, C): the column partial sums
 * of dweight and dbias, [2, ceil(N/16), C] floats. Allocate it once and share it between all LayerNorm
 * backward calls of the same (N, C) (they run one after another in a pass).
 */
export function layernormScratchBytes(s: { N: number; C: number }): number {
  return 2 * chunks(s.N) * s.C * 4;
}

/**
 * out[n, c] = (inp[n, c] - mean[n]) * rstd[n] * weight[c] + bias[c] (no bias term when `bias` is
 * absent), saving mean [N] and rstd [N] = 1/sqrt(var + eps) (biased variance) for the backward.
 * Shapes: out, inp [N, C]; weight, bias [C]. `eps` defaults to 1e-5 (torch).
 * `types.out` (default f32) is the storage type of `out`; f16 (2 bytes a value) rounds the f32 result.
 */
export async function layernormForward(
  gpu: Gpu,
  b: { out: Resource; mean: Resource; rstd: Resource; inp: Resource; weight: Resource; bias?: Resource },
  s: { N: number; C: number; eps?: number; types?: { out?: StorageType } },
  opts: LayernormOptions = {},
): Promise<Dispatch> {
  const { N, C, eps = 1e-5 } = s;
  const entry = b.bias ? "layernorm_forward" : "layernorm_forward_nobias";
  checkShape(entry, N, C);
  const TEAM = teamOf(gpu, entry, opts);
  const types = { OT: s.types?.out ?? "f32" };
  checkTypes(gpu, entry, types);
  const cpu = variantOf(gpu, entry, C, opts) === "cpu";
  const k = await getKernel(gpu, {
    name: entry + (cpu ? "_cpu" : ""),
    source: withTypes(biasSource(!!b.bias), types),
    entryPoint: cpu ? "layernorm_forward_cpu" : "layernorm_forward",
    constants: cpu ? {} : { WG: WG_FORWARD, TEAM },
  });
  const res: Record<string, Resource> = cpu
    ? { out4: b.out, mean: b.mean, rstd: b.rstd, inp4: b.inp, weight4: b.weight }
    : { out: b.out, mean: b.mean, rstd: b.rstd, inp: b.inp, weight: b.weight };
  if (b.bias) res[cpu ? "bias4" : "bias"] = b.bias;
  return k.dispatch(res, { N, C, eps }, grid(N, cpu ? CPU_ROWS : WG_FORWARD / TEAM));
}

/**
 * LayerNorm backward, two dispatches:
 * 1. dinp [N, C] = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)) with g = weight * dout and
 *    xhat = (inp - mean) * rstd, WRITTEN, or ADDED to dinp when `accumulate` is true; plus per-chunk
 *    column partials of dout * xhat and dout into `scratch` ({@linkcode layernormScratchBytes} bytes).
 * 2. dweight [C] += sum_n dout * xhat and dbias [C] += sum_n dout (when `dbias` is given), summing the
 *    partials in a fixed order: deterministic, no atomics.
 * `mean` and `rstd` [N] are the forward's saved values. `scratch` is required.
 */
export async function layernormBackward(
  gpu: Gpu,
  b: {
    dinp: Resource;
    dweight: Resource;
    dbias?: Resource;
    dout: Resource;
    inp: Resource;
    weight: Resource;
    mean: Resource;
    rstd: Resource;
    scratch?: Resource;
  },
  s: { N: number; C: number; accumulate?: boolean },
  opts: LayernormOptions = {},
): Promise<Dispatch[]> {
  const { N, C, accumulate = false } = s;
  checkShape("layernorm_backward", N, C);
  const TEAM = teamOf(gpu, "layernorm_backward", opts);
  if (!b.scratch) {
    throw new Error(
      `layernorm_backward: a scratch buffer of layernormScratchBytes(${JSON.stringify({ N, C })}) = ${
        layernormScratchBytes({ N, C })
      } bytes is required`,
    );
  }
  const name = accumulate ? "layernorm_backward_acc" : "layernorm_backward";
  const cpu = variantOf(gpu, name, C, opts) === "cpu";
  const main = await getKernel(gpu, {
    name: cpu ? `${name}_cpu` : name,
    source: biasSource(false),
    entryPoint: cpu ? "layernorm_backward_cpu" : "layernorm_backward",
    constants: cpu
      ? { ACCUMULATE: accumulate ? 1 : 0 }
      : { WG: WG_BACKWARD, TEAM, ROWS, ACCUMULATE: accumulate ? 1 : 0 },
  });
  const finish = await getKernel(gpu, {
    name: b.dbias ? "layernorm_backward_finish" : "layernorm_backward_finish_nobias",
    source: biasSource(!!b.dbias),
    entryPoint: "layernorm_backward_finish",
    constants: { ROWS },
  });
  const dims = { N, C, eps: 0 };
  const fin: Record<string, Resource> = { dweight: b.dweight, partials: b.scratch };
  if (b.dbias) fin.dbias = b.dbias;
  if (!cpu) {
    const ins = { inp: b.inp, weight: b.weight, dout: b.dout, smean: b.mean, srstd: b.rstd };
    return [
      main.dispatch({ dinp: b.dinp, scratch: b.scratch, ...ins }, dims, grid(chunks(N), 1)),
      finish.dispatch(fin, dims, grid(C, FC)),
    ];
  }
  const rows = { inp4: b.inp, dout4: b.dout, smean: b.mean, srstd: b.rstd };
  const partials = await getKernel(gpu, {
    name: "layernorm_backward_partials_cpu",
    source: biasSource(false),
    entryPoint: "layernorm_backward_partials_cpu",
    constants: { ROWS },
  });
  return [
    main.dispatch({ dinp4: b.dinp, weight4: b.weight, ...rows }, dims, grid(N, CPU_ROWS)),
    partials.dispatch(
      { scratch4: b.scratch, ...rows },
      dims,
      grid(chunks(N) * Math.ceil(C / 4 / CPU_ROWS), 1),
    ),
    finish.dispatch(fin, dims, grid(C, FC)),
  ];
}
