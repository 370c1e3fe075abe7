/**
 * The GPT on the GPU: parameter and gradient arenas, activation buffers for a fixed (B, T), and the
 * forward and backward passes as lists of dispatches, recorded once and replayed every step.
 *
 * The buffers and their shapes are model/buffers.ts's table; the passes are model/forward.ts,
 * model/head.ts (the tied head and the loss, in chunks of rows for a large vocabulary) and
 * model/backward.ts.
 *
 * Mixed precision (dtype "float16"): the forward starts by refreshing an f16 copy of the parameter arena;
 * ln1/ln2/lnf, qkv, the attention output, fch/gelu and the gradients of the attention output, of qkv and of
 * fch are stored as f16 (the operands of matmuls and attention), and the loss gradient goes to a separate
 * f16 [N,V] buffer, multiplied by the dynamic loss scale in `lossScaler`. Residual stream and its gradient,
 * layernorm statistics, lse, logits and the parameter gradients stay f32; arithmetic is f32 (the matmuls
 * whose two operands are f16 sum each 16-term tile in f16 unless `halfMath` is false).
 *
 * @module
 */
import type { Arena } from "../gpu/buffers.ts";
import { bindingLimit, type Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/kernel.ts";
import { recordBackward } from "./backward.ts";
import { allocateBuffers, type BufferOptions, bufferTable, tableBuffers } from "./buffers.ts";
import { type GPTConfig, type Precision, validateConfig } from "./config.ts";
import { passContext } from "./context.ts";
import { recordForward } from "./forward.ts";
import { type HeadChunk, recordLossBackward, recordLossOnly } from "./head.ts";
import { checkMemory, headRowsDefault, storedDsDefault } from "./memory.ts";

export type { HeadChunk };

type GPTParts = { [K in Exclude<keyof GPT, "gatherOutputs">]: GPT[K] };

/** Options for {@linkcode GPT.create}. */
export interface GPTShape {
  /** Sequences per micro-batch. */
  B: number;
  /** Positions per sequence (<= block_size). */
  T: number;
  /**
   * The mean's factor in the backward: dlogits = (softmax - onehot) * meanFactor. Default 1/(B*T), the mean
   * over this micro-batch's positions; 1/(B*T*M) for the mean over M accumulated micro-batches. (The f16
   * loss scale is a different thing: `lossScaler`.)
   */
  meanFactor?: number;
  /** Targets equal to this id (padding) give no loss and no gradient; default: none. */
  ignoreIndex?: number;
  /** Count the optimizer's two moment arenas in the memory check (the trainer allocates them). */
  training?: boolean;
  /** Storage precision (default "float32"); "float16" needs the adapter feature `shader-f16`. */
  dtype?: Precision;
  /**
   * Split the weight gradients' reduction over B*T when their output has too few tiles to fill a GPU
   * (kernels/matmul.ts matmulBackwardWeightSplit decides per shape); false: one dispatch each. Default:
   * true, except on a software adapter (`gpu.software`: lavapipe measured 5-13% slower with the split at
   * the default training shape, its 2 threads being busy anyway).
   */
  splitK?: boolean;
  /**
   * float16 only: matmuls whose two operands are both f16 sum each 16-term tile in f16 arithmetic (twice
   * the FMA rate on GPUs with packed half math), widening into f32 accumulators per tile (default true).
   * false: f32 arithmetic on f16-stored operands.
   */
  halfMath?: boolean;
  /**
   * Attention's backward keeps dS in a [B, NH, T, T] f32 buffer, written by the dk/dv kernel and read by
   * the dq kernel instead of recomputing S and dP (model/memory.ts storedDsDefault). Default: when that
   * buffer fits one binding and adds at most a quarter to the model's other buffers.
   */
  storedDs?: boolean;
  /**
   * Rows of logits computed at a time by the tied head and the loss: B*T (the default while the f32
   * logits take at most min(256 MiB, the binding limit): model/memory.ts headRowsDefault), or fewer, a
   * multiple of 64. With fewer, the forwards end at the final layernorm, the head runs chunk by chunk in
   * the backward and in `lossOnly`, and `logits` holds one chunk at a time: a consumer of every row's
   * logits after `forwardEval` goes through `headChunks` (scheduled sampling) or asks for B*T (the exposure
   * measure, which reads them all back).
   */
  headRows?: number;
}

/**
 * A GPT with its buffers and recorded passes for one (B, T). Inputs: write token ids into `tokens`
 * and next-token targets into `targets` (u32 [B,T]), and the dropout seed into `rng[0]`.
 */
export class GPT {
  /** The model's configuration. */
  readonly config: GPTConfig;
  /** Sequences per micro-batch. */
  readonly B: number;
  /** Positions per sequence. */
  readonly T: number;
  /** Parameters, nanoGPT names, decayed tensors first. */
  readonly params: Arena;
  /** Gradients, same layout as params (accumulated by the backward: clear before a step). */
  readonly grads: Arena;
  /** First float of the non-decayed parameter group. */
  readonly decayEnd: number;
  /** Input token ids, u32 [B,T]. */
  readonly tokens: GPUBuffer;
  /** Target token ids, u32 [B,T]. */
  readonly targets: GPUBuffer;
  /**
   * The seed of the step's random draws, u32 [4] (element 0 used): dropout masks, and the samples of
   * free running and scheduled sampling. Kernels bind it as `rng`.
   */
  readonly seed: GPUBuffer;

  /** What the window gather (src/kernels/gather.ts) writes for this model: its inputs, targets and seed. */
  get gatherOutputs(): { tokens: GPUBuffer; targets: GPUBuffer; rng: GPUBuffer } {
    return { tokens: this.tokens, targets: this.targets, rng: this.seed };
  }
  /**
   * Logits [headRows, V]: every row's after `forwardEval` or `forwardTrain` when headRows = B*T (after
   * the backward they hold dlogits in float32; float16 writes dlogits elsewhere); else one chunk's scratch.
   */
  readonly logits: GPUBuffer;
  /** Rows of logits computed at a time (GPTShape.headRows). */
  readonly headRows: number;
  /**
   * The head's chunks of rows, in order: batch rows r0 .. r0+rows-1, and the dispatches that compute their
   * logits into rows 0 .. rows-1 of `logits` after `forwardEval` (none when headRows = B*T: the forward
   * computed every row's logits itself). For consumers of every row's logits, such as scheduled sampling.
   */
  readonly headChunks: readonly HeadChunk[];
  /** Per-position losses [B*T]. */
  readonly losses: GPUBuffer;
  /** Loss accumulator: [0] += sum of losses, [1] += count of scored positions. */
  readonly lossAcc: GPUBuffer;
  /** Storage precision of the passes. */
  readonly dtype: Precision;
  /**
   * float16 only: [loss scale S, good steps], 2 f32 (optimizer.ts createLossScaler, starting at 2^16). The
   * backward's gradients are S times the true ones; the trainer's gradNorm unscales them and updates S.
   */
  readonly lossScaler?: GPUBuffer;
  /** Forward to logits with dropout (training). */
  readonly forwardTrain: Dispatch[];
  /** Forward to logits without dropout (evaluation, sampling). */
  readonly forwardEval: Dispatch[];
  /** Loss, dlogits in place, loss accumulation, backward into `grads`. */
  readonly backward: Dispatch[];
  /** Loss only (logits untouched) and loss accumulation: for evaluation after forwardEval. */
  readonly lossOnly: Dispatch[];

  private constructor(init: GPTParts) {
    this.config = init.config;
    this.B = init.B;
    this.T = init.T;
    this.params = init.params;
    this.grads = init.grads;
    this.decayEnd = init.decayEnd;
    this.tokens = init.tokens;
    this.targets = init.targets;
    this.seed = init.seed;
    this.logits = init.logits;
    this.headRows = init.headRows;
    this.headChunks = init.headChunks;
    this.losses = init.losses;
    this.lossAcc = init.lossAcc;
    this.dtype = init.dtype;
    this.lossScaler = init.lossScaler;
    this.forwardTrain = init.forwardTrain;
    this.forwardEval = init.forwardEval;
    this.backward = init.backward;
    this.lossOnly = init.lossOnly;
  }

  /** Allocates the arenas and activations for (B, T) and records the passes. */
  static async create(gpu: Gpu, config: GPTConfig, shape: GPTShape): Promise<GPT> {
    const o = resolveShape(gpu, config, shape);
    const table = bufferTable(config, o);
    checkMemory(
      gpu,
      tableBuffers(table),
      "reduce the batch size, the block size, the model or the vocabulary",
    );
    const allocated = allocateBuffers(gpu, table);
    const { params, grads, decayEnd, lossScaler, storage: b } = allocated;
    const { B, T } = shape;
    const ctx = passContext(gpu, config, allocated, {
      batch: B,
      time: T,
      headRows: o.headRows,
      loss: { meanFactor: shape.meanFactor ?? 1 / (B * T), ignoreIndex: shape.ignoreIndex },
      halfMath: shape.halfMath ?? true,
    });
    const backward = [...await recordLossBackward(ctx), ...await recordBackward(ctx)];
    const { lossOnly, headChunks } = await recordLossOnly(ctx);
    const forwardTrain = await recordForward(ctx, { dropout: true });
    // Without dropout the two forwards are the same dispatches: share them rather than record twice.
    const forwardEval = config.dropout > 0 ? await recordForward(ctx, { dropout: false }) : forwardTrain;
    return new GPT({
      config,
      B,
      T,
      params,
      grads,
      decayEnd,
      tokens: b.tokens,
      targets: b.targets,
      seed: b.seed,
      logits: b.logits,
      headRows: o.headRows,
      headChunks,
      losses: b.losses,
      lossAcc: b.lossAcc,
      dtype: o.dtype,
      lossScaler,
      forwardTrain,
      forwardEval,
      backward,
      lossOnly,
    });
  }
}

/** `shape` checked against the config and the adapter, with every buffer option's default filled in. */
function resolveShape(gpu: Gpu, c: GPTConfig, shape: GPTShape): Required<BufferOptions> {
  validateConfig(c);
  const { B, T } = shape, N = B * T;
  if (!(Number.isInteger(B) && B >= 1)) throw new Error(`batch size must be a positive integer (got ${B})`);
  if (!(Number.isInteger(T) && T >= 1 && T <= c.block_size)) {
    throw new Error(`sequence length ${T} must be in [1, block_size=${c.block_size}]`);
  }
  const dtype = shape.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float16") {
    throw new Error(`dtype must be float32 or float16 (got ${dtype})`);
  }
  if (dtype === "float16" && !gpu.features.f16) {
    throw new Error(
      "dtype float16 needs the adapter feature 'shader-f16', which this GPU lacks; use float32",
    );
  }
  const headRows = shape.headRows ?? headRowsDefault(gpu, c, B, T);
  const wholeOr64 = headRows === N || headRows % 64 === 0;
  if (!(Number.isInteger(headRows) && headRows >= 1 && headRows <= N && wholeOr64)) {
    throw new Error(`headRows must be B*T = ${N} or a multiple of 64 below it (got ${headRows})`);
  }
  const o = {
    batch: B,
    time: T,
    training: shape.training ?? false,
    dtype,
    splitK: shape.splitK ?? !gpu.software,
    headRows,
    maxBindingBytes: bindingLimit(gpu),
  };
  return { ...o, storedDs: shape.storedDs ?? storedDsDefault(gpu, c, o) };
}
