/**
 * Matmul dispatchers for a Linear layer (weight [N, K] as in nanoGPT): forward with or without bias,
 * and the three backward products (input gradient written, weight and bias gradients accumulated).
 *
 * All three products run one tiled reduction loop (workgroup tiles of TM x TN outputs, 8x8 outputs a
 * thread held in 16 vec4 accumulators, BK = 16 reduction steps per tile); each entry point's shader keeps
 * its product's operand loads (`// #if FWD` / `BIN` / `BW`). The shader's storage access comes in a vec4
 * form and an element-by-element form for each contiguous dimension; the dispatcher picks vec4 for
 * buffers contiguous along K when K % 4 == 0 and for buffers contiguous along N when N % 4 == 0, by
 * keeping one branch of the shader's `// #if K4` / `// #if N4` blocks ({@linkcode matmulSource}).
 *
 * A Linear layer's weight gradient has few output tiles and a long reduction (over B*T rows), which
 * leaves most of a large GPU idle in one dispatch; {@linkcode matmulBackwardWeightSplit} splits the
 * reduction over slices of rows into a caller-provided scratch buffer and adds the slices in a fixed
 * order in a second dispatch (deterministic). {@linkcode matmulBackwardWeight} is the one-dispatch form.
 *
 * On Mesa's CPU adapter (llvmpipe, as lavapipe) the tiled products run in another tiling
 * (shaders/matmul_cpu.wgsl, {@linkcode MatmulVariant}): small workgroups, a register block of 32x8 outputs
 * per invocation, operands read straight from storage, no workgroup memory or barriers.
 *
 * Epilogue fusions (shaders/matmul_fused.wgsl): the forward can also write GELU of its output (`act`) or
 * add itself, after dropout, into a residual stream (`resid`); the input gradient can multiply by GELU'
 * (`pre`). Options choose f16 storage per operand (`types`), f16 arithmetic per tile (`math`) and the
 * workgroup tile (`tile`).
 *
 * WebGPU tracks buffer usage per whole buffer within one dispatch: the output (`out`, `act`, `dinp`,
 * `dweight`, `dbias`, `scratch`) must live in a different buffer than the inputs of the same dispatch.
 *
 * @module
 */
import source from "../../shaders/matmul.wgsl" with { type: "text" };
import fused from "../../shaders/matmul_fused.wgsl" with { type: "text" };
import cpuTiles from "../../shaders/matmul_cpu.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Kernel, type Resource, resourceBytes } from "../gpu/kernel.ts";
import {
  type Activation,
  checkTypes,
  type StorageType,
  withConsts,
  withFlags,
  withGeluMath,
  withGrid,
  withHash,
  withTypes,
} from "../gpu/source.ts";
import { dropoutDims } from "./residual.ts";

/** The reduction step (rows of the workgroup tiles; shaders/matmul.wgsl's BK). */
const BK = 16;
/** Bias backward: columns per workgroup and row lanes per workgroup (a power of two). */
const BX = 8, BY = 32;
/** Use 128x128 tiles when they give at least this many workgroups, 64x64 tiles otherwise. */
const BIG_TILE_MIN_GROUPS = 256;
/** Split-K weight gradient: aim for this many workgroups, with slices of at least SPLIT_MIN_ROWS rows. */
const SPLIT_TARGET_GROUPS = 512, SPLIT_MIN_ROWS = 256;
/** Threads per workgroup of the split-K reduction. */
const WG_REDUCE = 256;

/** The fused dropout's uniforms when there is none. */
const NO_DROP = { drop_threshold: 0, drop_scale: 1, drop_stream: 0 };

/**
 * The tiling of the matmul products: "tiled" (shaders/matmul.wgsl's workgroup tiles staged through
 * workgroup memory, for GPUs) or "cpu" (shaders/matmul_cpu.wgsl: per-invocation register blocks of 32 x 8
 * outputs read straight from storage, for CPU adapters, where workgroup memory and barriers are expensive
 * and every load costs one scalar load per SIMD lane); "cpu-wide" is "cpu" with 32 x 16 blocks (more
 * multiply-adds per load, twice the columns per workgroup).
 */
export type MatmulVariant = "tiled" | "cpu" | "cpu-wide";

/** Tile rows and columns of the "cpu" variant's workgroup (shaders/matmul_cpu.wgsl: CR, CC * CL). */
const CPU_ROWS = 32, CPU_COLS = 64;
/** Output columns from which llvmpipe's default is "cpu-wide" (and up to CPU_COLS; see `variant`). */
export const WIDE_MIN = 128;

/** Tuning and test options for the matmul dispatchers; the defaults suit every shape. */
export interface MatmulOptions {
  /**
   * The tiling ({@linkcode MatmulVariant}). Default: "cpu" on Mesa's llvmpipe (where it was measured
   * faster: bench/results/cpu_matmul.md) unless `tile` or `math: "f16"` is given (options of the GPU
   * tiles), else "tiled"; "cpu-wide" there when the output has at least {@linkcode WIDE_MIN} columns or at
   * most 64 (its 8 invocations then 4 along columns and 2 along rows), measured 1.1-2.1 times "cpu" at the
   * default model's shapes; between the two, wide blocks would leave invocations idle. "cpu-wide" runs as
   * "cpu" where the shape or `vec4: false` rules out the vec4 loads.
   * Other software adapters (SwiftShader, whose JIT differs) keep the tiles.
   */
  readonly variant?: MatmulVariant;
  /**
   * Output tile edge per workgroup: 128 (16x16 threads) or 64 (8x8 threads), each thread computing
   * 8x8 outputs. Default: 128 when that gives at least 256 workgroups, else 64; the split-K weight
   * gradient's slices default to 128. Measured on lavapipe: 64 runs the split weight gradient of the
   * default model's shapes (M 1024, K and N 64 to 256, where 128-wide tiles are up to half empty) 1.6 to
   * 2.8 times faster, while at the shakespeare_char shapes (M 16384, K and N 384 to 1536) 128 is faster.
   */
  readonly tile?: 64 | 128;
  /**
   * Use vec4 storage access where the shape allows it (default true). `false` forces the
   * element-by-element form everywhere (for tests of that path).
   */
  readonly vec4?: boolean;
  /**
   * Storage element types (default f32): `inp`, `weight` and `dout` are read as this type and widened to
   * f32; `out` is the type `out` (forward) or `dinp` (backward input) is rounded to. An f16 buffer holds 2
   * bytes per value. Accumulation is f32 always; dweight, dbias and the split-K scratch are f32.
   */
  readonly types?: MatmulTypes;
  /**
   * Arithmetic of the products (default "f32"). "f16": the workgroup tiles hold f16 and each tile's BK = 16
   * products are summed in f16, then added to f32 accumulators (twice the FMA rate where the GPU packs
   * half math; error per tile ~ 16 half ulps of the partial sums instead of f32's). Needs `shader-f16`;
   * meant for f16 operands. Bias and split-K reductions stay f32.
   */
  readonly math?: "f32" | "f16";
  /**
   * The fused GELU's form (forward `act`, backward-input `pre`): the exact GELU (default) or GPT-2's tanh
   * approximation, "gelu_new".
   */
  readonly activation?: Activation;
}

/** Storage element types of a matmul's operands ({@linkcode MatmulOptions.types}). */
export interface MatmulTypes {
  /** Activation input (forward, weight gradient). */
  readonly inp?: StorageType;
  /** Weight (forward, input gradient). */
  readonly weight?: StorageType;
  /** Output gradient (all backward products). */
  readonly dout?: StorageType;
  /** The written output: `out` and `act` (forward) or `dinp` (input gradient). */
  readonly out?: StorageType;
  /** The GELU input `pre` of the fused input gradient. */
  readonly pre?: StorageType;
}

/** The shader's alias for each operand type. */
const ALIAS = { inp: "TI", weight: "TW", dout: "TD", out: "TO", pre: "TP" } as const;

/**
 * The shader for `entry`: flags applied, then the storage types of the operands `entry` touches (others
 * left f32, so unrelated type choices never compile a second pipeline).
 */
function shaderFor(
  gpu: Gpu,
  entry: string,
  flags: Readonly<Record<string, boolean>>,
  types: MatmulTypes | undefined,
  used: readonly (keyof MatmulTypes)[],
  math: "f32" | "f16" = "f32",
  tile = 128,
  activation: Activation = "gelu",
  variant: MatmulVariant = "tiled",
  lanesAlongColumns = 8,
): string {
  if (math !== "f32" && math !== "f16") throw new Error(`${entry}: math must be f32 or f16 (got ${math})`);
  const t: Record<string, StorageType> = {};
  for (const k of used) if (types?.[k] && types[k] !== "f32") t[ALIAS[k]] = types[k];
  if (math === "f16") t.TT = "f16";
  checkTypes(gpu, entry, t);
  // withTypes last: it prefixes line 1
  if (math === "f16" && variant !== "tiled") {
    throw new Error(`${entry}: the cpu variant computes in f32 only`);
  }
  const flagged = matmulSource({ ...flags, HALF_MATH: math === "f16" }, entry, activation, variant);
  const consts = { WGX: tile / 8, WGY: tile / 8, ...(variant === "tiled" ? {} : { LC: lanesAlongColumns }) };
  const src = withConsts(flagged, consts, "matmul.wgsl");
  return withTypes(src, t);
}

/** The forward entry points' product and operands. */
const FORWARD = { product: "FWD", uses: ["inp", "weight", "out"] } as const;

/**
 * What each entry point compiles: its product (the shader's `// #if FWD` / `BIN` / `BW` operand loads),
 * its epilogue (`// #if OUT` ... block of the tile's stores; also the `_bias` forward entry points' BIAS)
 * and the operands whose storage types it reads ({@linkcode shaderFor}). The split reduce and the bias
 * gradient have no tile: any product and epilogue keeps their text compiling.
 */
const ENTRIES: Readonly<Record<string, EntrySpec>> = {
  matmul_forward: { ...FORWARD, epilogue: "OUT" },
  matmul_forward_bias: { ...FORWARD, epilogue: "OUT", bias: true },
  matmul_forward_gelu: { ...FORWARD, epilogue: "OUT_GELU" },
  matmul_forward_gelu_bias: { ...FORWARD, epilogue: "OUT_GELU", bias: true },
  matmul_forward_residual: { ...FORWARD, epilogue: "OUT_RESID" },
  matmul_forward_residual_bias: { ...FORWARD, epilogue: "OUT_RESID", bias: true },
  matmul_forward_residual_dropout: { ...FORWARD, epilogue: "OUT_RESID_DROP" },
  matmul_forward_residual_dropout_bias: { ...FORWARD, epilogue: "OUT_RESID_DROP", bias: true },
  matmul_backward_input: { product: "BIN", epilogue: "DINP", uses: ["dout", "weight", "out"] },
  matmul_backward_input_gelu: {
    product: "BIN",
    epilogue: "DINP_GELU",
    uses: ["dout", "weight", "out", "pre"],
  },
  matmul_backward_weight: { product: "BW", epilogue: "DWEIGHT", uses: ["dout", "inp"] },
  matmul_backward_weight_split: { product: "BW", epilogue: "SCRATCH", uses: ["dout", "inp"] },
  matmul_backward_weight_reduce: { product: "FWD", epilogue: "OUT", uses: [] },
  matmul_backward_bias: { product: "FWD", epilogue: "OUT", uses: ["dout"] },
};

/** One entry point's blocks and operands ({@linkcode ENTRIES}). */
interface EntrySpec {
  readonly product: "FWD" | "BIN" | "BW";
  /** The tile-store block (shaders/matmul.wgsl OUT, DINP, DWEIGHT, SCRATCH; matmul_fused.wgsl the rest). */
  readonly epilogue:
    | "OUT"
    | "DINP"
    | "DWEIGHT"
    | "SCRATCH"
    | "OUT_GELU"
    | "OUT_RESID"
    | "OUT_RESID_DROP"
    | "DINP_GELU";
  readonly bias?: boolean;
  readonly uses: readonly (keyof MatmulTypes)[];
}

/** Options for the split-K weight gradient ({@linkcode matmulBackwardWeightSplit}). */
export interface MatmulSplitOptions extends MatmulOptions {
  /**
   * Number of slices of M to split the reduction into (rounded so each slice is a multiple of 16 rows;
   * 1 = no split). Default: enough slices of 128x128 tiles for about 512 workgroups, each slice at
   * least 256 rows, or 1 when the output alone gives 256 workgroups.
   */
  readonly splits?: number;
}

/**
 * The shader text for entry point `entry` with one branch of each `// #if NAME` / `// #else` /
 * `// #endif` block kept (NAME in `flags` and true keeps the first branch; HALF_MATH defaults to false;
 * the product, epilogue and BIAS flags come from `entry` ({@linkcode ENTRIES}): only its product's operand
 * loads and its epilogue are kept, so the other entry points in the text are not to be compiled from it);
 * the dropped lines and the directives become empty lines so WGSL error line numbers still match
 * shaders/matmul.wgsl. Blocks do not nest. HALF_MATH also needs `alias TT = f16` ({@linkcode withTypes}).
 * shaders/matmul_fused.wgsl (the epilogue fusions), GELU math and the hash functions are appended; with
 * `variant` "cpu" also shaders/matmul_cpu.wgsl, whose entry point `matmul_cpu` then stands for `entry`.
 */
export function matmulSource(
  flags: Readonly<Record<string, boolean>>,
  entry = "matmul_forward",
  activation: Activation = "gelu",
  variant: MatmulVariant = "tiled",
): string {
  const spec = ENTRIES[entry];
  if (!spec) throw new Error(`matmulSource: no entry point '${entry}'`);
  const all: Record<string, boolean> = {
    HALF_MATH: false,
    ...flags,
    FWD: spec.product === "FWD",
    BIN: spec.product === "BIN",
    BW: spec.product === "BW",
    BIAS: spec.bias ?? false,
  };
  for (const { epilogue } of Object.values(ENTRIES)) all[epilogue] = spec.epilogue === epilogue;
  // The fusions come after the core file, so the core's line numbers hold; the fused file's lines are
  // offset by the core's line count in compiler messages.
  let text = `${withFlags(source, all, "matmul.wgsl")}\n${withFlags(fused, all, "matmul_fused.wgsl")}`;
  if (variant !== "tiled") {
    text += `\n${withFlags(cpuTiles, { ...all, WIDE: variant === "cpu-wide" }, "matmul_cpu.wgsl")}`;
  }
  return withGrid(withHash(withGeluMath(text, activation)));
}

function checkDims(kernel: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`${kernel}: ${k} must be a positive integer (got ${v})`);
    }
  }
  const { M, K = 1, N } = dims;
  if (Math.max(M * K, N * K, M * N) > 0xffffffff) {
    throw new Error(`${kernel}: matrix of ${Math.max(M * K, N * K, M * N)} elements exceeds u32 indexing`);
  }
}

/** The tiling `opts` choose on `gpu` ({@linkcode MatmulOptions.variant}) for an output of `S` columns. */
function variantOf(gpu: Gpu, opts: MatmulOptions, shape: { S: number; vec4: boolean }): MatmulVariant {
  const wide = shape.vec4 && (shape.S <= CPU_COLS || shape.S >= WIDE_MIN);
  const v = opts.variant ??
    (gpu.llvmpipe && opts.tile === undefined && opts.math !== "f16" ? wide ? "cpu-wide" : "cpu" : "tiled");
  // The element-by-element loads make the wide block's code too large for llvmpipe's compiler (minutes).
  if (v === "cpu-wide" && !shape.vec4) return "cpu";
  if (v !== "cpu" && v !== "cpu-wide" && v !== "tiled") {
    throw new Error(`matmul: variant must be tiled, cpu or cpu-wide (got ${v})`);
  }
  return v;
}

/**
 * The compiled tiled product `entry` in the tiling `opts` choose, and its workgroup grid for an output
 * of R x S in Z slices.
 */
async function productKernel(
  gpu: Gpu,
  entry: string,
  flags: { K4: boolean; N4: boolean },
  out: { R: number; S: number; Z?: number },
  opts: MatmulOptions,
  tile = 128,
): Promise<{ kernel: Kernel; groups: [number, number, number] }> {
  const variant = variantOf(gpu, opts, { ...out, vec4: flags.K4 && flags.N4 });
  // A wide block over at most 64 output columns: 4 invocations along them and 2 along rows, none idle.
  const lc = variant === "cpu-wide" && out.S <= CPU_COLS ? 4 : 8;
  const source = shaderFor(
    gpu,
    entry,
    flags,
    opts.types,
    ENTRIES[entry].uses,
    opts.math,
    tile,
    opts.activation,
    variant,
    lc,
  );
  const cpu = variant !== "tiled";
  const kernel = await getKernel(gpu, { name: entry, source, entryPoint: cpu ? "matmul_cpu" : entry });
  const cc = variant === "cpu-wide" ? 16 : 8; // columns per invocation
  const [tm, tn] = cpu ? [CPU_ROWS * (8 / lc), cc * lc] : [tile, tile];
  return { kernel, groups: [Math.ceil(out.S / tn), Math.ceil(out.R / tm), out.Z ?? 1] };
}

/**
 * Compiles the entry point for an output of R x S (R, S the output's rows and columns) and returns
 * its dispatch: vec4 forms as the shape allows, tiling by {@linkcode MatmulOptions.variant} and
 * {@linkcode MatmulOptions.tile}.
 */
async function tiled(
  gpu: Gpu,
  entry: string,
  resources: Record<string, Resource>,
  s: { M: number; K: number; N: number },
  R: number,
  S: number,
  opts: MatmulOptions,
  drop: Partial<typeof NO_DROP> = {},
): Promise<Dispatch> {
  const { M, K, N } = s;
  checkDims(entry, { M, K, N });
  const vec = opts.vec4 ?? true;
  const count = (t: number) => Math.ceil(R / t) * Math.ceil(S / t);
  const tile = opts.tile ?? (count(128) >= BIG_TILE_MIN_GROUPS ? 128 : 64);
  if (tile !== 64 && tile !== 128) throw new Error(`${entry}: tile must be 64 or 128 (got ${tile})`);
  const flags = { K4: vec && K % 4 === 0, N4: vec && N % 4 === 0 };
  const { kernel, groups } = await productKernel(gpu, entry, flags, { R, S }, opts, tile);
  return kernel.dispatch(resources, { M, K, N, MS: M, ...NO_DROP, ...drop }, groups);
}

/**
 * Forward: out[M, N] = inp[M, K] · weight[N, K]ᵀ + bias[N] (no bias term when `bias` is absent).
 * `out` is written. With `act` (the MLP's fused GELU), act[M, N] = gelu(out) is written too, in the same
 * storage type as `out`. With `resid` (f32 [M, N], a projection added to the residual stream): out = resid
 * + inp · weightᵀ (+ bias); not together with `act`. With `resid`, `rng` and `s.dropout` as well:
 * out = resid + dropout(inp · weightᵀ (+ bias)) with the mask kernels/residual.ts dropoutForward would
 * draw over the flat [M, N] product for seed rng[0] and `s.dropout.stream` (so dropoutBackward undoes it).
 */
export function matmulForward(
  gpu: Gpu,
  b: {
    out: Resource;
    inp: Resource;
    weight: Resource;
    bias?: Resource;
    act?: Resource;
    resid?: Resource;
    rng?: Resource;
  },
  s: { M: number; K: number; N: number; dropout?: { p: number; stream: number } },
  opts: MatmulOptions = {},
): Promise<Dispatch> {
  if (b.act && b.resid) {
    throw new Error("matmul_forward: act (fused GELU) and resid (fused residual) exclude each other");
  }
  if (!!s.dropout !== !!b.rng || (s.dropout && !b.resid)) {
    throw new Error("matmul_forward: a fused dropout needs resid, rng and s.dropout together");
  }
  const res: Record<string, Resource> = { out: b.out, inp: b.inp, weight: b.weight };
  if (b.bias) res.bias = b.bias;
  if (b.act) res.act = b.act;
  if (b.resid) res.resid = b.resid;
  if (b.rng) res.rng = b.rng;
  const fused = b.act ? "_gelu" : b.resid ? (s.dropout ? "_residual_dropout" : "_residual") : "";
  const entry = `matmul_forward${fused}${b.bias ? "_bias" : ""}`;
  let drop = {};
  if (s.dropout) {
    const d = dropoutDims(entry, s.M * s.N, s.dropout.p, s.dropout.stream);
    if (s.M * s.N > 0xffffffff) throw new Error(`${entry}: M*N exceeds u32 dropout indexing`);
    drop = { drop_threshold: d.threshold, drop_scale: d.scale, drop_stream: d.stream };
  }
  return tiled(gpu, entry, res, { M: s.M, K: s.K, N: s.N }, s.M, s.N, opts, drop);
}

/**
 * Backward, input gradient: dinp[M, K] = dout[M, N] · weight[N, K] (written). With `pre` (the MLP's fused
 * GELU backward, pre = the GELU's input [M, K]): dinp = (dout · weight) * gelu'(pre).
 */
export function matmulBackwardInput(
  gpu: Gpu,
  b: { dinp: Resource; dout: Resource; weight: Resource; pre?: Resource },
  s: { M: number; K: number; N: number },
  opts: MatmulOptions = {},
): Promise<Dispatch> {
  const res: Record<string, Resource> = { dinp: b.dinp, dout: b.dout, weight: b.weight };
  if (b.pre) res.pre = b.pre;
  const entry = b.pre ? "matmul_backward_input_gelu" : "matmul_backward_input";
  // dout read element by element (N % 4 != 0, e.g. the tied head's vocabulary): the GPU tiles, which read
  // each element once per workgroup, measured faster on lavapipe than the CPU blocks, which read it 8 times.
  const o = opts.variant === undefined && s.N % 4 !== 0 ? { ...opts, variant: "tiled" as const } : opts;
  return tiled(gpu, entry, res, s, s.M, s.K, o);
}

/** Backward, weight gradient: dweight[N, K] += dout[M, N]ᵀ · inp[M, K] (accumulated). */
export function matmulBackwardWeight(
  gpu: Gpu,
  b: { dweight: Resource; dout: Resource; inp: Resource },
  s: { M: number; K: number; N: number },
  opts: MatmulOptions = {},
): Promise<Dispatch> {
  const res = { dweight: b.dweight, dout: b.dout, inp: b.inp };
  return tiled(gpu, "matmul_backward_weight", res, s, s.N, s.K, opts);
}

/**
 * Backward, bias gradient: dbias[N] += sum over m of dout[m, n] for dout [M, N] (accumulated), in a
 * fixed summation order (deterministic, no atomics).
 */
export async function matmulBackwardBias(
  gpu: Gpu,
  b: { dbias: Resource; dout: Resource },
  s: { M: number; N: number },
  opts: { types?: Pick<MatmulTypes, "dout"> } = {},
): Promise<Dispatch> {
  const entry = "matmul_backward_bias";
  const { M, N } = s;
  checkDims(entry, { M, N });
  const k = await getKernel(gpu, {
    name: entry,
    source: shaderFor(gpu, entry, { K4: false, N4: false }, opts.types, ENTRIES[entry].uses),
    entryPoint: entry,
    constants: { BX, BY },
  });
  // K and MS are not used by this entry point; the shared dims struct still needs values.
  return k.dispatch({ dbias: b.dbias, dout: b.dout }, { M, K: 0, N, MS: M, ...NO_DROP }, [Math.ceil(N / BX)]);
}

/** How the split-K weight gradient divides M: `Z` slices of `MS` rows (the last may be shorter). */
function splitPlan(s: { M: number; K: number; N: number }, opts: MatmulSplitOptions) {
  const { M, K, N } = s;
  const tile = opts.tile ?? 128;
  const tiles = Math.ceil(N / tile) * Math.ceil(K / tile);
  let z = opts.splits ??
    (tiles >= BIG_TILE_MIN_GROUPS
      ? 1
      : Math.min(Math.ceil(SPLIT_TARGET_GROUPS / tiles), Math.floor(M / SPLIT_MIN_ROWS)));
  if (!Number.isInteger(z) || z < 0) throw new Error(`matmul_backward_weight_split: bad splits ${z}`);
  z = Math.max(1, z);
  const MS = Math.ceil(Math.ceil(M / z) / BK) * BK; // slices are whole reduction steps: no tile straddles two
  return { tile, Z: Math.ceil(M / MS), MS };
}

/**
 * Bytes of the scratch buffer {@linkcode matmulBackwardWeightSplit} needs for this shape and options:
 * Z * N * K floats for Z slices, or 0 when it does not split. Allocate the largest over the shapes that
 * share one scratch (their dispatches run one after another in a pass).
 */
export function matmulBackwardWeightScratchBytes(
  s: { M: number; K: number; N: number },
  opts: MatmulSplitOptions = {},
): number {
  checkDims("matmul_backward_weight_split", s);
  const { Z } = splitPlan(s, opts);
  return Z > 1 ? Z * s.N * s.K * 4 : 0;
}

/**
 * Weight gradient dweight[N, K] += dout[M, N]ᵀ · inp[M, K] (accumulated), split along M for outputs
 * too small to fill the GPU (a Linear layer's weight: few output tiles, a long reduction over B*T).
 * Two dispatches: each slice z of M writes its product into `scratch` [Z, N, K], then a reduction adds
 * the Z partials to dweight in slice order (deterministic). When the output is large enough (or M is
 * short) it is the single {@linkcode matmulBackwardWeight} dispatch and `scratch` is not used.
 * `scratch` needs {@linkcode matmulBackwardWeightScratchBytes} bytes, in a buffer other than dweight's.
 */
export async function matmulBackwardWeightSplit(
  gpu: Gpu,
  b: { dweight: Resource; dout: Resource; inp: Resource; scratch?: Resource },
  s: { M: number; K: number; N: number },
  opts: MatmulSplitOptions = {},
): Promise<Dispatch[]> {
  const { M, K, N } = s;
  checkDims("matmul_backward_weight_split", { M, K, N });
  const { tile, Z, MS } = splitPlan(s, opts);
  if (Z === 1) {
    return [await matmulBackwardWeight(gpu, { dweight: b.dweight, dout: b.dout, inp: b.inp }, s, opts)];
  }
  const need = Z * N * K * 4;
  if (!b.scratch || resourceBytes(b.scratch) < need) {
    throw new Error(
      `matmul_backward_weight_split: a scratch of matmulBackwardWeightScratchBytes(${
        JSON.stringify(s)
      }) = ${need} bytes is required`,
    );
  }
  if (tile !== 64 && tile !== 128) throw new Error(`matmul_backward_weight_split: tile must be 64 or 128`);
  const K4 = (opts.vec4 ?? true) && K % 4 === 0;
  const flags = { K4, N4: (opts.vec4 ?? true) && N % 4 === 0 };
  const { kernel: split, groups } = await productKernel(
    gpu,
    "matmul_backward_weight_split",
    flags,
    { R: N, S: K, Z },
    opts,
    tile,
  );
  const reduce = await getKernel(gpu, {
    name: "matmul_backward_weight_reduce",
    source: matmulSource({ K4: flags.K4, N4: flags.N4 }, "matmul_backward_weight_reduce"),
    entryPoint: "matmul_backward_weight_reduce",
    constants: { WG: WG_REDUCE },
  });
  const dims = { M, K, N, MS, ...NO_DROP };
  return [
    split.dispatch({ scratch: b.scratch, dout: b.dout, inp: b.inp }, dims, groups),
    reduce.dispatch(
      { dweight: b.dweight, partials: b.scratch },
      dims,
      grid((N * K) / (K4 ? 4 : 1), WG_REDUCE),
    ),
  ];
}
