/**
 * Causal multi-head self-attention dispatchers (FlashAttention-2 style; the math is in
 * shaders/attention.wgsl).
 *
 * Shapes: qkv [B, T, 3C] (q, k, v side by side, head h in columns h*HS .. h*HS+HS-1 of each), out [B, T, C],
 * lse [B, NH, T], dqkv [B, T, 3C], HS = C / NH any multiple of 4 up to 128.
 *
 * Forward, dk/dv and dq are register-blocked kernels: 64 threads as an 8 x 8 grid compute each tile's
 * products as small matmuls with up to 8 x 8 results per thread (shaders/attention_forward.wgsl,
 * attention_dkdv.wgsl, attention_dq.wgsl). Each is specialised per head size and workgroup-memory budget:
 * the dispatcher rewrites its `const` lines with a plan from src/kernels/attention_plan.ts.
 *
 * On Mesa's llvmpipe the three run in a form shaped for a CPU adapter instead (shaders/attention_cpu.wgsl:
 * two rows per invocation, 8-invocation workgroups, no workgroup memory; {@linkcode AttentionOptions.variant}).
 *
 * Storage types: qkv, out, dout and dqkv may each be f16 (`types` in the shape argument; needs the device's
 * `shader-f16`): an f16 buffer holds 2 bytes per value, so its binding's byte offset and size are half the
 * f32 ones. Arithmetic, lse and the backward's delta scratch stay f32 whatever the types.
 *
 * Dropout on the attention probabilities (nanoGPT's attn_dropout; `s.dropout` with `b.rng`, the seed in
 * rng[0]): the forward keeps each p_tj with the counter-based hash mask of src/reference/attention.ts
 * (attentionDropFactor) and scales it by 1 / (1 - p); the backward regenerates the mask. No mask is stored.
 *
 * @module
 */
import deltaSource from "../../shaders/attention.wgsl" with { type: "text" };
import forwardSource from "../../shaders/attention_forward.wgsl" with { type: "text" };
import dkdvSource from "../../shaders/attention_dkdv.wgsl" with { type: "text" };
import dqSource from "../../shaders/attention_dq.wgsl" with { type: "text" };
import cpuSource from "../../shaders/attention_cpu.wgsl" with { type: "text" };
import stageSnippet from "../../shaders/attention_shared.wgsl" with { type: "text" };
import dropoutSnippet from "../../shaders/attention_dropout.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Kernel, type Resource, resourceBytes } from "../gpu/kernel.ts";
import { checkTypes, type StorageType, withConsts, withFlags, withHash, withTypes } from "../gpu/source.ts";
import { dropoutDims } from "./residual.ts";
import { dkdvPlan, dqPlan, forwardPlan, supportedHeadSize } from "./attention_plan.ts";

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

/**
 * The attention kernels' form: "blocked", the register-blocked GPU kernels (64 threads staging tiles in
 * workgroup memory); "cpu", one row per invocation without workgroup memory (shaders/attention_cpu.wgsl).
 */
export type AttentionVariant = "blocked" | "cpu";

/** Tuning options for the attention dispatchers. */
export interface AttentionOptions {
  /**
   * The kernels' form ({@linkcode AttentionVariant}). Default: "cpu" on Mesa's llvmpipe for head sizes up
   * to {@linkcode CPU_MAX_HS} (measured 1.3-3 times faster there; the blocked kernels win from 64:
   * bench/results/cpu_attention.md), else "blocked".
   */
  readonly variant?: AttentionVariant;
  /**
   * Workgroup-memory budget in bytes for tile sizing; default min(device limit, 32 KiB). Tests use 16384
   * (WebGPU's default limit) to exercise the smaller tiles a browser gets.
   */
  readonly workgroupBytes?: number;
}

const DEFAULT_BUDGET = 32768;
const CPU_ROWS = 16; // rows per workgroup of the cpu variant: 8 invocations of RQ = 2 (attention_cpu.wgsl)
/** The largest head size whose default on llvmpipe is the cpu variant (measured: bench/results/cpu_attention.md). */
export const CPU_MAX_HS = 32;
const WG = 64; // threads per workgroup of the delta kernel

/** Checks the shape and returns the head size; throws a plain Error naming what is unsupported. */
function headSize(s: AttentionShape): number {
  const { B, T, C, NH } = s;
  for (const [k, v] of Object.entries({ B, T, C, NH })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`attention: ${k} = ${v} must be a positive integer`);
  }
  if (C % NH !== 0) throw new Error(`attention: C = ${C} is not divisible by NH = ${NH}`);
  const hs = C / NH;
  if (!supportedHeadSize(hs)) {
    throw new Error(
      `attention: head size HS = C / NH = ${hs} is unsupported; supported: multiples of 4 up to 128`,
    );
  }
  return hs;
}

/** The variant `opts` choose on `gpu` for head size `hs`; throws a one-line error for an unknown one. */
function variantOf(gpu: Gpu, opts: AttentionOptions, hs: number): AttentionVariant {
  const v = opts.variant ?? (gpu.llvmpipe && hs <= CPU_MAX_HS ? "cpu" : "blocked");
  if (v !== "blocked" && v !== "cpu") throw new Error(`attention: variant must be blocked or cpu (got ${v})`);
  return v;
}

function budgetOf(gpu: Gpu, opts: AttentionOptions): number {
  return Math.min(gpu.limits.maxComputeWorkgroupStorageSize, opts.workgroupBytes ?? DEFAULT_BUDGET);
}

/** Dropout on the attention probabilities: drop probability p and the hash stream of its masks. */
export interface AttentionDropoutSpec {
  /** Drop probability in [0, 1); 0 means no dropout. */
  readonly p: number;
  /** Hash stream (model/config.ts dropoutStream("attn", layer)). */
  readonly stream: number;
}

/** The blocked kernels' uniforms (the dropout fields 0, 1, 0 without dropout). */
function dims(s: AttentionShape, drop?: AttentionDropoutSpec): Record<string, number> {
  const d = drop ? dropoutDims("attention", 0, drop.p, drop.stream) : { threshold: 0, scale: 1, stream: 0 };
  return {
    T: s.T,
    C4: s.C / 4,
    NH: s.NH,
    drop_threshold: d.threshold,
    drop_scale: d.scale,
    drop_stream: d.stream,
  };
}

/**
 * The dropout of `s` when it drops anything (p > 0), checked against `rng`: both or neither. Throws a
 * one-line error naming `kernel`.
 */
function dropoutOf(
  kernel: string,
  s: { dropout?: AttentionDropoutSpec },
  rng: Resource | undefined,
): AttentionDropoutSpec | undefined {
  if (!!s.dropout !== !!rng) throw new Error(`${kernel}: dropout needs both s.dropout and the rng buffer`);
  if (s.dropout && !(s.dropout.p >= 0 && s.dropout.p < 1)) {
    throw new Error(`${kernel}: dropout p must be in [0, 1) (got ${s.dropout.p})`);
  }
  return s.dropout && s.dropout.p > 0 ? s.dropout : undefined;
}

/**
 * Compiles (or finds cached) one blocked kernel: `source` with `plan`'s const lines, `flags`' blocks and
 * storage `types`, with shaders/attention_shared.wgsl (staging), attention_dropout.wgsl (dropout masks) and
 * hash.wgsl appended (WGSL declarations may come in any order; appending keeps the file's line numbers).
 * `name` labels it (profiles, errors).
 */
function blockedKernel(
  gpu: Gpu,
  entry: string,
  source: string,
  file: string,
  plan: object,
  types: Record<string, StorageType>,
  flags: Record<string, boolean> = {},
  name = entry,
) {
  const sized = withHash(
    withConsts(`${source}\n${stageSnippet}\n${dropoutSnippet}`, plan as Record<string, number>, file),
  );
  return getKernel(gpu, {
    name,
    source: withTypes(withFlags(sized, flags, file), types), // withTypes last: it prefixes line 1
    entryPoint: entry,
  });
}

/** Every flag of shaders/attention_cpu.wgsl, all off. */
const CPU_FLAGS = { FWD: false, BWD: false, DKDV: false, DQ: false, DQ_DS: false, DS: false, DROP: false };

/**
 * Compiles (or finds cached) one entry point of shaders/attention_cpu.wgsl for head size `hs`, with the
 * `on` flags' blocks and storage `types`; `name` labels it.
 */
function cpuKernel(
  gpu: Gpu,
  entry: string,
  hs: number,
  types: Record<string, StorageType>,
  on: (keyof typeof CPU_FLAGS)[],
  name: string,
) {
  const flags = { ...CPU_FLAGS };
  for (const f of on) flags[f] = true;
  const file = "attention_cpu.wgsl";
  const sized = withHash(withConsts(`${cpuSource}\n${dropoutSnippet}`, { HS: hs }, file));
  return getKernel(gpu, { name, source: withTypes(withFlags(sized, flags, file), types), entryPoint: entry });
}

/**
 * Causal attention forward: out[b, t, head h] = softmax_j<=t(scale * q_t . k_j) v_j with scale 1/sqrt(HS),
 * and lse[b, h, t] = the natural logsumexp of those scaled scores (kept for the backward).
 * out [B, T, C] and lse [B, NH, T] are written; qkv [B, T, 3C] is read. One dispatch.
 *
 * `s.types` sets the storage type of qkv and out (default f32 each); an f16 buffer holds 2 bytes per value
 * (rounded to nearest on store, widened to f32 on load). lse is always f32. f16 needs `shader-f16`: without
 * it this throws a one-line error. `s.dropout` with `b.rng`: dropout on the probabilities (lse stays that
 * of the undropped softmax).
 */
export async function attentionForward(
  gpu: Gpu,
  b: { out: Resource; lse: Resource; qkv: Resource; rng?: Resource },
  s: {
    B: number;
    T: number;
    C: number;
    NH: number;
    types?: { qkv?: StorageType; out?: StorageType };
    dropout?: AttentionDropoutSpec;
  },
  opts: AttentionOptions = {},
): Promise<Dispatch> {
  const hs = headSize(s);
  const types = { QT: s.types?.qkv ?? "f32", OT: s.types?.out ?? "f32" };
  checkTypes(gpu, "attention_forward", types);
  const drop = dropoutOf("attention_forward", s, b.rng);
  const res = { out: b.out, lse: b.lse, qkv: b.qkv, ...(drop ? { rng: b.rng! } : {}) };
  if (variantOf(gpu, opts, hs) === "cpu") {
    const name = `attention_forward_cpu${drop ? "_dropout" : ""}`;
    const kernel = await cpuKernel(
      gpu,
      "attention_forward_cpu",
      hs,
      types,
      drop ? ["FWD", "DROP"] : ["FWD"],
      name,
    );
    return kernel.dispatch(res, dims(s, drop), [Math.ceil(s.T / CPU_ROWS), s.NH, s.B]);
  }
  const p = forwardPlan(hs, budgetOf(gpu, opts));
  const kernel = await blockedKernel(
    gpu,
    "attention_forward",
    forwardSource,
    "attention_forward.wgsl",
    p,
    types,
    { DROP: !!drop },
    drop ? "attention_forward_dropout" : "attention_forward",
  );
  return kernel.dispatch(res, dims(s, drop), [
    Math.ceil(s.T / (32 * p.RV)),
    s.NH,
    s.B,
  ]);
}

/**
 * Causal attention backward by recomputation: writes dqkv [B, T, 3C] entirely (=, not +=) from dout [B, T, C],
 * qkv, the forward's out and lse. `scratch` ({@linkcode attentionScratchBytes} bytes) receives
 * delta = rowsum(dout * out) [B, NH, T]. Three dispatches, in order: delta, dk/dv, dq.
 *
 * With `ds` ({@linkcode attentionDsBytes} bytes: dS [B, NH, T, T rounded up to 4] in dqkv's type) the dk/dv
 * kernel also stores dS there and the dq kernel reads it back instead of recomputing S and dP: 5 products of
 * T^2 HS per head instead of 7, for T^2 floats of memory per head. Same results up to rounding order.
 * `s.dropout` with `b.rng` (the forward's, same seed): the backward of dropout on the probabilities.
 *
 * `s.types` sets the storage type of qkv, out (the forward's, as it wrote it), dout and dqkv (default f32
 * each); an f16 buffer holds 2 bytes per value (rounded to nearest on store, widened to f32 on load). lse
 * and scratch are always f32. f16 needs `shader-f16`: without it this throws a one-line error.
 */
export async function attentionBackward(
  gpu: Gpu,
  b: {
    dqkv: Resource;
    dout: Resource;
    qkv: Resource;
    out: Resource;
    lse: Resource;
    scratch: Resource;
    ds?: Resource;
    rng?: Resource;
  },
  s: {
    B: number;
    T: number;
    C: number;
    NH: number;
    types?: { qkv?: StorageType; out?: StorageType; dout?: StorageType; dqkv?: StorageType };
    dropout?: AttentionDropoutSpec;
  },
  opts: AttentionOptions = {},
): Promise<Dispatch[]> {
  const hs = headSize(s);
  const drop = dropoutOf("attention_backward", s, b.rng);
  const t = s.types ?? {};
  const QT = t.qkv ?? "f32", OT = t.out ?? "f32", DT = t.dout ?? "f32", GT = t.dqkv ?? "f32";
  checkTypes(gpu, "attention_backward", { QT, OT, DT, GT });
  // Each kernel gets only the types it reads or writes, so combinations that agree on them share pipelines.
  const delta = await getKernel(gpu, {
    name: "attention_backward_delta",
    source: withTypes(deltaSource, { OT, DT }),
    entryPoint: "attention_backward_delta",
    constants: { WG },
  });
  const stored = b.ds !== undefined;
  if (b.ds) {
    const have = resourceBytes(b.ds);
    const need = attentionDsBytes(s, GT);
    if (have < need) {
      throw new Error(`attention_backward: the ds buffer holds ${have} bytes; dS needs ${need}`);
    }
  }
  const pair = variantOf(gpu, opts, hs) === "cpu"
    ? await cpuBackward(gpu, hs, { QT, DT, GT }, stored, !!drop)
    : await blockedBackward(gpu, hs, budgetOf(gpu, opts), { QT, DT, GT }, stored, !!drop);
  const n = s.B * s.NH * s.T;
  const inputs = { dqkv: b.dqkv, qkv: b.qkv, dout: b.dout, fwd_lse: b.lse, delta_in: b.scratch };
  const dkdvIn: Record<string, Resource> = { ...inputs };
  if (drop) dkdvIn.rng = b.rng!;
  if (b.ds) dkdvIn.ds_out = b.ds;
  const dqIn: Record<string, Resource> = b.ds ? { dqkv: b.dqkv, qkv: b.qkv, ds_in: b.ds } : { ...dkdvIn };
  return [
    delta.dispatch(
      { delta: b.scratch, dout: b.dout, fwd_out: b.out },
      { C4: s.C / 4, NH: s.NH, T: s.T, HS4: hs / 4, n },
      grid(n, WG),
    ),
    pair.dkdv.dispatch(dkdvIn, dims(s, drop), [Math.ceil(s.T / pair.keyRows), s.NH, s.B]),
    pair.dq.dispatch(dqIn, dims(s, drop), [Math.ceil(s.T / pair.queryRows), s.NH, s.B]),
  ];
}

/** The dk/dv and dq kernels of one backward and the rows (keys, queries) each workgroup owns. */
interface BackwardPair {
  dkdv: Kernel;
  dq: Kernel;
  keyRows: number;
  queryRows: number;
}

/**
 * The blocked backward's kernels for head size `hs` in `budget` bytes of workgroup memory, storage types
 * QT, DT, GT; `stored`: the stored-dS form; `drop`: dropout on the probabilities.
 */
async function blockedBackward(
  gpu: Gpu,
  hs: number,
  budget: number,
  { QT, DT, GT }: Record<"QT" | "DT" | "GT", StorageType>,
  stored: boolean,
  drop: boolean,
): Promise<BackwardPair> {
  const sfx = stored ? "_ds" : "", dsfx = drop ? "_dropout" : "";
  // With stored dS the dq kernel needs no mask: dS already has it.
  const kvFlags = { DS: stored, DROP: drop }, qFlags = { DS: stored, DROP: drop && !stored };
  const kv = dkdvPlan(hs, budget), q = dqPlan(hs, budget, stored);
  const dkdv = await blockedKernel(
    gpu,
    "attention_backward_dkdv",
    dkdvSource,
    "attention_dkdv.wgsl",
    kv,
    { QT, DT, GT },
    kvFlags,
    `attention_backward_dkdv${dsfx}${sfx}`,
  );
  const dq = await blockedKernel(
    gpu,
    "attention_backward_dq",
    dqSource,
    "attention_dq.wgsl",
    q,
    stored ? { QT, GT } : { QT, DT, GT },
    qFlags,
    `attention_backward_dq${qFlags.DROP ? dsfx : ""}${sfx}`,
  );
  return { dkdv, dq, keyRows: 32, queryRows: 32 * q.RV }; // low key blocks (most work) first
}

/** {@linkcode blockedBackward} in the cpu variant (shaders/attention_cpu.wgsl). */
async function cpuBackward(
  gpu: Gpu,
  hs: number,
  { QT, DT, GT }: Record<"QT" | "DT" | "GT", StorageType>,
  stored: boolean,
  drop: boolean,
): Promise<BackwardPair> {
  const sfx = stored ? "_ds" : "", dsfx = drop ? "_dropout" : "";
  const kvFlags: (keyof typeof CPU_FLAGS)[] = ["BWD", "DKDV"];
  if (stored) kvFlags.push("DS");
  if (drop) kvFlags.push("DROP");
  const dkdv = await cpuKernel(
    gpu,
    "attention_dkdv_cpu",
    hs,
    { QT, DT, GT },
    kvFlags,
    `attention_backward_dkdv_cpu${dsfx}${sfx}`,
  );
  // With stored dS the dq kernel needs no mask: dS already has it.
  const dq = stored
    ? await cpuKernel(
      gpu,
      "attention_dq_ds_cpu",
      hs,
      { QT, GT },
      ["BWD", "DQ_DS"],
      "attention_backward_dq_cpu_ds",
    )
    : await cpuKernel(
      gpu,
      "attention_dq_cpu",
      hs,
      { QT, DT, GT },
      drop ? ["BWD", "DQ", "DROP"] : ["BWD", "DQ"],
      `attention_backward_dq_cpu${dsfx}`,
    );
  return { dkdv, dq, keyRows: CPU_ROWS, queryRows: CPU_ROWS };
}

/** Bytes of the `scratch` buffer {@linkcode attentionBackward} needs: delta [B, NH, T] as f32. */
export function attentionScratchBytes(s: { B: number; T: number; C: number; NH: number }): number {
  return 4 * s.B * s.NH * s.T;
}

/**
 * Bytes of the optional `ds` buffer of {@linkcode attentionBackward}: dS [B, NH, T, 4 ceil(T / 4)] stored as
 * `type`, dqkv's storage type (the whole square per head; only its causal half is written and read).
 */
export function attentionDsBytes(
  s: { B: number; T: number; C: number; NH: number },
  type: StorageType = "f32",
): number {
  return (type === "f16" ? 8 : 16) * s.B * s.NH * s.T * Math.ceil(s.T / 4);
}
