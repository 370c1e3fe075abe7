/**
 * Causal multi-head self-attention dispatchers (FlashAttention-2 style; see shaders/attention.wgsl).
 *
 * Shapes: qkv [B, T, 3C] (q, k, v side by side, head h in columns h*HS .. h*HS+HS-1 of each), out [B, T, C],
 * lse [B, NH, T], dqkv [B, T, 3C], HS = C / NH. Head sizes: multiples of 4 up to 32, of 8 up to 64, of 16
 * up to 128 (vec4 data, and a thread's share of a row must fit the shader's register arrays).
 *
 * The shader is specialised per head size: the dispatcher rewrites its `const HS` and `const DP` lines
 * (private register arrays need const sizes) and picks the workgroup size, tile length and exchange
 * buffer through `override` constants, sizing tiles to the workgroup-memory budget.
 *
 * Storage types: qkv, out, dout and dqkv may each be f16 (`types` in the shape argument; needs the device's
 * `shader-f16`): an f16 buffer holds 2 bytes per value, so its binding's byte offset and size are half the
 * f32 ones. Arithmetic, lse and the backward's delta scratch stay f32 whatever the types.
 *
 * @module
 */
import source from "../../shaders/attention.wgsl" with { type: "text" };
import forwardSource from "../../shaders/attention_forward.wgsl" with { type: "text" };
import dqSource from "../../shaders/attention_dq.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Kernel, type Resource } from "../gpu/kernel.ts";
import { checkTypes, type StorageType, withTypes } from "../gpu/source.ts";

/** Attention shape: batch, time, channels, heads (head size C / NH). */
interface AttentionShape {
  /** Batch size. */
  readonly B: number;
  /** Sequence length. */
  readonly T: number;
  /** Channels (all heads). */
  readonly C: number;
  /** Number of heads. */
  readonly NH: number;
}

/** Tuning options for the attention dispatchers. */
export interface AttentionOptions {
  /**
   * Workgroup-memory budget in bytes for tile sizing; default min(device limit, 32 KiB). Tests use 16384
   * (WebGPU's default limit) to exercise the smaller tiles a browser gets.
   */
  readonly workgroupBytes?: number;
}

const WG = 64; // threads per workgroup, every kernel
const MAX_TILE = 64;
const DEFAULT_BUDGET = 32768;

/** How one kernel is laid out for one head size. */
interface Plan {
  /** Threads per row (each holds HS / DP of the row's dims). */
  dp: number;
  /** Rows of the streamed tile. */
  bc: number;
  /** vec4s of the partial-sum exchange buffer. */
  red: number;
}

/** Largest share of a row one thread holds in registers, in floats (the shader's arrays are sized so). */
const MAX_SHARE = { forward: 64, dkdv: 32, dq: 32 } as const;

/**
 * Threads per row for `kind`: the fewest (1, 2 or 4) whose share of a row, HS / DP floats, is whole vec4s
 * and at most MAX_SHARE[kind]; 0 if none.
 */
function threadsPerRow(kind: keyof typeof MAX_SHARE, hs: number): number {
  return [1, 2, 4].find((d) => (hs / 4) % d === 0 && hs / d <= MAX_SHARE[kind]) ?? 0;
}

/** Checks the shape and returns the head size; throws a plain Error naming what is unsupported. */
function headSize(s: AttentionShape): number {
  const { B, T, C, NH } = s;
  for (const [k, v] of Object.entries({ B, T, C, NH })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`attention: ${k} = ${v} must be a positive integer`);
  }
  if (C % NH !== 0) throw new Error(`attention: C = ${C} is not divisible by NH = ${NH}`);
  const hs = C / NH;
  if (hs % 4 !== 0 || hs > 128 || threadsPerRow("forward", hs) === 0 || threadsPerRow("dkdv", hs) === 0) {
    throw new Error(
      `attention: head size HS = C / NH = ${hs} is unsupported; supported: multiples of 4 up to 32, ` +
        `of 8 up to 64, of 16 up to 128`,
    );
  }
  return hs;
}

/**
 * Layout of `kind` for head size `hs` within `budget` bytes of workgroup memory. Registers per thread:
 * forward q, o (2 HS / DP floats), dkdv k, v, dk, dv (4 HS / DP), dq q, dout, dq (3 HS / DP).
 */
function plan(kind: keyof typeof MAX_SHARE, hs: number, budget: number): Plan {
  const dp = threadsPerRow(kind, hs);
  const perThread = kind === "forward" ? 1 : 2; // vec4 partial sums exchanged per group of 4 rows
  const red = dp > 1 ? 2 * perThread * WG : 1;
  const fixed = 16 * red;
  const perRow = 8 * hs + (kind === "dkdv" ? 8 : 0); // tile_a + tile_b (+ tile_s) bytes per tile row
  const bc = Math.min(MAX_TILE, Math.floor((budget - fixed) / perRow / 4) * 4);
  if (bc < 4) throw new Error(`attention: ${budget} bytes of workgroup memory is too little for HS = ${hs}`);
  return { dp, bc, red };
}

/** Layout of the blocked forward (shaders/attention_forward.wgsl) for one head size: its const lines. */
interface ForwardPlan {
  HS: number;
  /** Query vec4s per thread: 32 * RV rows per workgroup. */
  RV: number;
  /** Key quads per thread: 32 * KV keys per tile. */
  KV: number;
  /** Head dims per staged Q/K chunk. */
  BD: number;
  /** Keys per staged V chunk. */
  KC: number;
  /** vec4s of the staging buffer. */
  STAGE: number;
}

/**
 * The blocked forward's layout for head size `hs` within `budget` bytes of workgroup memory: the largest
 * blocks that fit, with at most 16 vec4 output accumulators per thread (RV * ceil(HS / 32) <= 4).
 */
function forwardPlan(hs: number, budget: number): ForwardPlan {
  const hs4 = hs / 4;
  const BD = hs % 16 === 0 ? 16 : hs % 8 === 0 ? 8 : 4;
  for (const [RV, KV] of [[2, 2], [2, 1], [1, 2], [1, 1]]) {
    if (RV * Math.ceil(hs4 / 8) > 4) continue;
    const BR = 32 * RV, BC = 32 * KV;
    const qk = BD * (BR + BC) / 4;
    let KC = BC;
    while (KC > 4 && KC * hs4 > qk) KC /= 2;
    const STAGE = Math.max(qk, KC * hs4);
    if (16 * (STAGE + BC * BR / 4 + BR / 4) <= budget) return { HS: hs, RV, KV, BD, KC, STAGE };
  }
  throw new Error(`attention: ${budget} bytes of workgroup memory is too little for HS = ${hs}`);
}

/** Layout of the blocked dq kernel (shaders/attention_dq.wgsl) for one head size: its const lines. */
interface DqPlan {
  HS: number;
  /** Query vec4s per thread: 32 * RV rows per workgroup. */
  RV: number;
  /** Head dims per staged Q/dO/K/V chunk. */
  BD: number;
  /** Keys per staged K chunk. */
  KC: number;
  /** vec4s of the staging buffer. */
  STAGE: number;
}

/** The dq kernel's layout for head size `hs` within `budget` bytes: the largest blocks and chunks that fit. */
function dqPlan(hs: number, budget: number): DqPlan {
  const hs4 = hs / 4, BC = 32;
  for (const RV of [2, 1]) {
    if (RV * Math.ceil(hs4 / 8) > 4) continue;
    for (const BD of [16, 8, 4]) {
      if (hs % BD !== 0) continue;
      const BR = 32 * RV, chunks = BD * (2 * BR + 2 * BC) / 4;
      let KC = BC;
      while (KC > 4 && KC * hs4 > chunks) KC /= 2;
      const STAGE = Math.max(chunks, KC * hs4);
      if (16 * (STAGE + BC * BR / 4) <= budget) return { HS: hs, RV, BD, KC, STAGE };
    }
  }
  throw new Error(`attention: ${budget} bytes of workgroup memory is too little for HS = ${hs}`);
}

/** `src` with each `const NAME: u32 = <n>u;` line of `values` rewritten to the given number. */
function withConsts(src: string, values: Readonly<Record<string, number>>, file: string): string {
  let out = src;
  for (const [name, v] of Object.entries(values)) {
    const line = new RegExp(`^const ${name}: u32 = \\d+u;`, "m");
    if (!line.test(out)) throw new Error(`${file}: line 'const ${name}: u32 = ...;' not found`);
    out = out.replace(line, `const ${name}: u32 = ${v}u;`);
  }
  return out;
}

/** The shader with its head size and threads per row filled in. */
function specialize(hs: number, dp: number): string {
  const hsLine = /^const HS: u32 = \d+u;/m, dpLine = /^const DP: u32 = \d+u;/m;
  if (!hsLine.test(source) || !dpLine.test(source)) throw new Error("attention.wgsl: HS/DP lines not found");
  return source.replace(hsLine, `const HS: u32 = ${hs}u;`).replace(dpLine, `const DP: u32 = ${dp}u;`);
}

function budgetOf(gpu: Gpu, opts: AttentionOptions): number {
  return Math.min(gpu.limits.maxComputeWorkgroupStorageSize, opts.workgroupBytes ?? DEFAULT_BUDGET);
}

function uniforms(s: AttentionShape): Record<string, number> {
  return { T: s.T, C4: s.C / 4, NH: s.NH, n: s.B * s.NH * s.T };
}

async function tiledKernel(
  gpu: Gpu,
  entry: string,
  kind: keyof typeof MAX_SHARE,
  hs: number,
  budget: number,
  types: Record<string, StorageType>,
): Promise<{ kernel: Kernel; rows: number }> {
  const p = plan(kind, hs, budget);
  const kernel = await getKernel(gpu, {
    name: entry,
    source: withTypes(specialize(hs, p.dp), types), // withTypes last: it prefixes line 1
    entryPoint: entry,
    constants: { WG, BC: p.bc, RED: p.red },
  });
  return { kernel, rows: WG / p.dp };
}

/**
 * Causal attention forward: out[b, t, head h] = softmax_j<=t(scale * q_t . k_j) v_j with scale 1/sqrt(HS),
 * and lse[b, h, t] = the natural logsumexp of those scaled scores (kept for the backward).
 * out [B, T, C] and lse [B, NH, T] are written; qkv [B, T, 3C] is read. One dispatch.
 *
 * `s.types` sets the storage type of qkv and out (default f32 each); an f16 buffer holds 2 bytes per value
 * (rounded to nearest on store, widened to f32 on load). lse is always f32. f16 needs `shader-f16`: without
 * it this throws a one-line error.
 */
export async function attentionForward(
  gpu: Gpu,
  b: { out: Resource; lse: Resource; qkv: Resource },
  s: { B: number; T: number; C: number; NH: number; types?: { qkv?: StorageType; out?: StorageType } },
  opts: AttentionOptions = {},
): Promise<Dispatch> {
  const hs = headSize(s);
  const types = { QT: s.types?.qkv ?? "f32", OT: s.types?.out ?? "f32" };
  checkTypes(gpu, "attention_forward", types);
  const p = forwardPlan(hs, budgetOf(gpu, opts));
  const kernel = await getKernel(gpu, {
    name: "attention_forward",
    // withTypes last: it prefixes line 1
    source: withTypes(withConsts(forwardSource, { ...p }, "attention_forward.wgsl"), types),
    entryPoint: "attention_forward",
  });
  return kernel.dispatch(
    { out: b.out, lse: b.lse, qkv: b.qkv },
    { T: s.T, C4: s.C / 4, NH: s.NH },
    [Math.ceil(s.T / (32 * p.RV)), s.NH, s.B],
  );
}

/**
 * Causal attention backward by recomputation: writes dqkv [B, T, 3C] entirely (=, not +=) from dout [B, T, C],
 * qkv, the forward's out and lse. `scratch` ({@linkcode attentionScratchBytes} bytes) receives
 * delta = rowsum(dout * out) [B, NH, T]. Three dispatches, in order: delta, dk/dv, dq.
 *
 * `s.types` sets the storage type of qkv, out (the forward's, as it wrote it), dout and dqkv (default f32
 * each); an f16 buffer holds 2 bytes per value (rounded to nearest on store, widened to f32 on load). lse
 * and scratch are always f32. f16 needs `shader-f16`: without it this throws a one-line error.
 */
export async function attentionBackward(
  gpu: Gpu,
  b: { dqkv: Resource; dout: Resource; qkv: Resource; out: Resource; lse: Resource; scratch: Resource },
  s: {
    B: number;
    T: number;
    C: number;
    NH: number;
    types?: { qkv?: StorageType; out?: StorageType; dout?: StorageType; dqkv?: StorageType };
  },
  opts: AttentionOptions = {},
): Promise<Dispatch[]> {
  const hs = headSize(s);
  const t = s.types ?? {};
  const QT = t.qkv ?? "f32", OT = t.out ?? "f32", DT = t.dout ?? "f32", GT = t.dqkv ?? "f32";
  checkTypes(gpu, "attention_backward", { QT, OT, DT, GT });
  const budget = budgetOf(gpu, opts);
  const u = uniforms(s);
  // Each kernel gets only the types it reads or writes, so combinations that agree on them share pipelines.
  const deltaKernel = await getKernel(gpu, {
    name: "attention_backward_delta",
    source: withTypes(specialize(hs, 1), { OT, DT }),
    entryPoint: "attention_backward_delta",
    constants: { WG },
  });
  const dkdv = await tiledKernel(gpu, "attention_backward_dkdv", "dkdv", hs, budget, { QT, DT, GT });
  const dqp = dqPlan(hs, budget);
  const dq = await getKernel(gpu, {
    name: "attention_backward_dq",
    source: withTypes(withConsts(dqSource, { ...dqp }, "attention_dq.wgsl"), { QT, DT, GT }),
    entryPoint: "attention_backward_dq",
  });
  return [
    deltaKernel.dispatch({ delta: b.scratch, dout: b.dout, fwd_out: b.out }, u, grid(u.n, WG)),
    dkdv.kernel.dispatch(
      { dqkv: b.dqkv, qkv: b.qkv, dout: b.dout, fwd_lse: b.lse, delta_in: b.scratch },
      u,
      [Math.ceil(s.T / dkdv.rows), s.NH, s.B],
    ),
    dq.dispatch(
      { dqkv: b.dqkv, qkv: b.qkv, dout: b.dout, fwd_lse: b.lse, delta_in: b.scratch },
      { T: s.T, C4: s.C / 4, NH: s.NH },
      [Math.ceil(s.T / (32 * dqp.RV)), s.NH, s.B],
    ),
  ];
}

/** Bytes of the `scratch` buffer {@linkcode attentionBackward} needs: delta [B, NH, T] as f32. */
export function attentionScratchBytes(s: { B: number; T: number; C: number; NH: number }): number {
  return 4 * s.B * s.NH * s.T;
}
