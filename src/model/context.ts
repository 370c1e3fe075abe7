/**
 * What the recorded passes of a GPT share (model/forward.ts, model/backward.ts, model/head.ts): its
 * dimensions and buffers, bindings of parameters, gradients and the matmuls' weights, and the storage
 * types and arithmetic of each matmul.
 *
 * Mixed precision (dtype "float16"): the operands of matmuls and attention are f16 (the weights as an f16
 * copy of the f32 arena); a matmul whose two operands are f16 sums each 16-term tile in f16 arithmetic
 * unless `halfMath` is false.
 *
 * @module
 */
import type { Arena, ArenaSlice } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Resource } from "../gpu/kernel.ts";
import type { StorageType } from "../gpu/source.ts";
import type { MatmulOptions, MatmulSplitOptions } from "../kernels/matmul.ts";
import type { AllocatedBuffers, ModelBuffers } from "./buffers.ts";
import type { GPTConfig } from "./config.ts";
import { WTE } from "./params.ts";

/** The dimensions of the passes. */
export interface PassDims {
  /** Sequences per micro-batch. */
  readonly B: number;
  /** Positions per sequence. */
  readonly T: number;
  /** Rows, B*T. */
  readonly N: number;
  /** Channels. */
  readonly C: number;
  /** Heads. */
  readonly NH: number;
  /** Vocabulary. */
  readonly V: number;
  /** Layers. */
  readonly L: number;
  /** Rows of logits computed at a time (GPTShape.headRows). */
  readonly R: number;
}

/** The loss's settings. */
export interface LossSettings {
  /** dlogits = (softmax - onehot) * meanFactor (GPTShape.meanFactor). */
  readonly meanFactor: number;
  /** Targets equal to this id give no loss and no gradient. */
  readonly ignoreIndex?: number;
}

/**
 * Rows row0 .. row0+rows-1 of the token embedding as one buffer holds them: the whole of it unless the
 * arenas spread over several buffers and cut it (model/params.ts paramLayout). The tied head and the
 * embedding run once per slice.
 */
export interface VocabSlice {
  /** First token id (row) of the slice. */
  readonly row0: number;
  /** Token ids (rows) in the slice. */
  readonly rows: number;
  /** The slice's parameters, f32. */
  readonly param: Resource;
  /** The slice as the matmuls read it: the f16 copy in mixed precision. */
  readonly weight: Resource;
  /** The slice's gradient. */
  readonly grad: Resource;
}

/** What every recorded pass of one GPT reads. */
export interface PassContext {
  /** The device. */
  readonly gpu: Gpu;
  /** The model's configuration. */
  readonly config: GPTConfig;
  /** Dimensions. */
  readonly dims: PassDims;
  /** The loss's settings. */
  readonly loss: LossSettings;
  /** Parameters. */
  readonly params: Arena;
  /** Gradients. */
  readonly grads: Arena;
  /** float16 only: the dynamic loss scale the loss gradient is multiplied by. */
  readonly lossScaler?: GPUBuffer;
  /** Activation and scratch buffers. */
  readonly buffers: ModelBuffers;
  /** Storage type of matmul and attention operands: f16 in mixed precision. */
  readonly operand: StorageType;
  /** Bytes of one operand value. */
  readonly operandBytes: number;
  /** The token embedding's row slices, one per buffer holding part of it (one unless it is split). */
  readonly vocabSlices: readonly VocabSlice[];
  /** A parameter tensor, f32. */
  param(name: string): Resource;
  /** A parameter tensor as the matmuls read it: the f16 copy in mixed precision (same element offsets). */
  weight(name: string): Resource;
  /** A gradient tensor. */
  grad(name: string): Resource;
  /** `{ bias }` bound to the parameter `name` when the model has biases, else nothing. */
  bias(name: string): { bias?: Resource };
  /** `{ dbias }` bound to the gradient `name` when the model has biases, else nothing. */
  dbias(name: string): { dbias?: Resource };
  /** Options of a forward matmul writing `out` (inp and weight are operands). */
  forwardMatmul(out: StorageType): MatmulOptions;
  /** Options of an input gradient reading `dout` and writing `dinp` (weight is an operand). */
  inputGradMatmul(dout: StorageType, dinp?: StorageType): MatmulOptions;
  /** Options of a weight gradient reading `dout` (inp is an operand), split or not as the scratch says. */
  weightGradMatmul(dout: StorageType): MatmulSplitOptions;
  /** The split-K scratch binding of a weight gradient, or nothing when weight gradients do not split. */
  readonly splitScratch: { scratch?: Resource };
}

/** Options of {@linkcode passContext}. */
export interface PassOptions {
  /** Sequences per micro-batch. */
  readonly batch: number;
  /** Positions per sequence. */
  readonly time: number;
  /** Rows of logits computed at a time. */
  readonly headRows: number;
  /** The loss's settings. */
  readonly loss: LossSettings;
  /** float16 only: f16 arithmetic where both operands of a matmul are f16 (GPTShape.halfMath). */
  readonly halfMath: boolean;
}

/** The shared state of a GPT's passes over its allocated buffers. */
export function passContext(gpu: Gpu, c: GPTConfig, a: AllocatedBuffers, o: PassOptions): PassContext {
  const params16 = a.storage.params16;
  const half = params16 !== undefined;
  const A: StorageType = half ? "f16" : "f32";
  // A slice of the parameters as the matmuls read it: in mixed precision the f16 copy, same element
  // offsets at 2 bytes each, as whole words (the arena is padded).
  const operandOf = (s: ArenaSlice & { binding: GPUBufferBinding }): Resource =>
    params16
      ? { buffer: params16[s.buffer], offset: s.offset * 2, size: Math.ceil(s.size / 2) * 4 }
      : s.binding;
  const gradSlices = a.grads.slices(WTE);
  const vocabSlices = a.params.slices(WTE).map((s, k) => ({
    row0: s.row0,
    rows: s.rows,
    param: s.binding,
    weight: operandOf(s),
    grad: gradSlices[k].binding,
  }));
  const halfMath = half && o.halfMath;
  const math = (x: StorageType, y: StorageType) => halfMath && x === "f16" && y === "f16" ? "f16" : "f32";
  const splitScratch = a.storage.splitScratch;
  return {
    gpu,
    config: c,
    dims: {
      B: o.batch,
      T: o.time,
      N: o.batch * o.time,
      C: c.n_embd,
      NH: c.n_head,
      V: c.vocab_size,
      L: c.n_layer,
      R: o.headRows,
    },
    loss: o.loss,
    params: a.params,
    grads: a.grads,
    lossScaler: a.lossScaler,
    buffers: a.storage,
    operand: A,
    operandBytes: half ? 2 : 4,
    param: (name) => a.params.bind(name),
    vocabSlices,
    weight: (name) => {
      const s = a.params.slices(name);
      if (s.length !== 1) throw new Error(`weight: tensor '${name}' is split across ${s.length} buffers`);
      return operandOf(s[0]);
    },
    grad: (name) => a.grads.bind(name),
    bias: (name) => c.bias ? { bias: a.params.bind(name) } : {},
    dbias: (name) => c.bias ? { dbias: a.grads.bind(name) } : {},
    forwardMatmul: (out) => ({ types: { inp: A, weight: A, out }, math: math(A, A) }),
    inputGradMatmul: (dout, dinp = "f32") => ({ types: { dout, weight: A, out: dinp }, math: math(dout, A) }),
    weightGradMatmul: (dout) => ({
      types: { dout, inp: A },
      math: math(dout, A),
      ...(splitScratch ? {} : { splits: 1 }),
    }),
    splitScratch: splitScratch ? { scratch: splitScratch } : {},
  };
}

/** The first `values` values of `b`, `bytes` each, as whole 4-byte words (an odd f16 count rounds up). */
export function view(b: GPUBuffer, values: number, bytes = 4): Resource {
  return { buffer: b, offset: 0, size: Math.ceil((values * bytes) / 4) * 4 };
}

/** Rows r0 .. r0+n-1 of a row-major [rows, width] buffer of `bytes`-byte values. */
export function rows(b: GPUBuffer, r0: number, n: number, width: number, bytes = 4): Resource {
  return { buffer: b, offset: r0 * width * bytes, size: Math.ceil((n * width * bytes) / 4) * 4 };
}
