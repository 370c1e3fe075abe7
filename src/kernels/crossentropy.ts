/**
 * Cross-entropy dispatchers: the fused log-softmax loss with dlogits written in place over the logits
 * (or into a separate f32 or f16 buffer, optionally times a dynamic loss scale read on the GPU), its
 * forward-only twin for evaluation, and the deterministic loss-sum accumulator that keeps the loss on
 * the GPU.
 *
 * @module
 */
import source from "../../shaders/crossentropy.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { checkTypes, type StorageType, withFlags, withGrid, withTypes } from "../gpu/source.ts";

/** "No target is ignored": the default `ignoreIndex`. */
export const NO_IGNORE: number = 0xffffffff;

/** Options of the cross-entropy dispatchers. */
export interface CrossEntropyOptions {
  /**
   * Threads per row (one workgroup each), a power of two up to 256. Default: 64 for V <= 2048 (small
   * vocabularies would leave most of 256 threads idle), else 256; 8 on a software adapter, where each
   * level of the workgroup's reduction tree is a barrier that costs more than it saves (lavapipe, N 1024:
   * V 65 1.80 → 0.36 ms, V 2048 1.72 → 1.17 ms).
   */
  readonly threads?: number;
}

function rowThreads(gpu: Gpu, kernel: string, V: number, opts: CrossEntropyOptions): number {
  const t = opts.threads ?? (gpu.software ? 8 : V <= 2048 ? 64 : 256);
  if (!Number.isInteger(t) || t < 1 || t > 256 || (t & (t - 1)) !== 0) {
    throw new Error(`${kernel}: threads must be a power of two up to 256 (got ${t})`);
  }
  return t;
}

/** The shader with the OUT and LOSS_SCALE blocks chosen ({@linkcode withFlags}). */
function variant(flags: Readonly<Record<"OUT" | "LOSS_SCALE", boolean>>): string {
  return withGrid(withFlags(source, flags, "crossentropy.wgsl"));
}

/** The in-place, unscaled kernel text: what crossentropy_forward and accumulate_loss compile. */
const plain = variant({ OUT: false, LOSS_SCALE: false });

function checkShape(name: string, N: number, V: number): void {
  if (!Number.isInteger(N) || N < 0) throw new Error(`${name}: N=${N} is not a non-negative integer`);
  if (!Number.isInteger(V) || V < 1) throw new Error(`${name}: V=${V} must be a positive integer`);
}

/**
 * Loss and gradient of softmax cross-entropy, one workgroup per row: losses [N] gets
 * -log softmax(logits)[target] and the gradient
 * dlogits [N, V] = (softmax(logits) - onehot(target)) * scale (* lossScale[lossScaleIndex])
 * is WRITTEN (an activation gradient, not accumulated). Rows whose target equals `ignoreIndex`
 * (default 0xFFFFFFFF: none) get loss 0 and a zero gradient row. targets [N] u32.
 *
 * - Without `b.dlogits`, the gradient overwrites logits [N, V] (f32) in place.
 * - With `b.dlogits`, the gradient goes there and logits are left untouched; `s.types.dlogits` (default
 *   f32) is its storage type. An f16 dlogits ([N, V] at 2 bytes a value) holds the rounded f32 value;
 *   magnitudes beyond the f16 range (>= 65520) become +-Inf, for overflow detection downstream.
 * - With `b.lossScale` (a read-only f32 buffer), the gradient is also multiplied by its element
 *   `s.lossScaleIndex` (default 0): the dynamic loss scale of mixed-precision training, which the GPU
 *   updates between steps. The losses are never scaled.
 *
 * Buffers: the outputs (logits when in place, dlogits, losses) are read_write bindings and must not
 * share a buffer with targets or lossScale (read-only) in the same dispatch.
 */
export async function crossEntropyForwardBackward(
  gpu: Gpu,
  b: { logits: Resource; losses: Resource; targets: Resource; dlogits?: Resource; lossScale?: Resource },
  s: {
    N: number;
    V: number;
    scale: number;
    ignoreIndex?: number;
    lossScaleIndex?: number;
    types?: { dlogits?: StorageType };
  },
  opts: CrossEntropyOptions = {},
): Promise<Dispatch> {
  const name = "crossentropy_forward_backward";
  checkShape(name, s.N, s.V);
  const out = b.dlogits !== undefined, scaled = b.lossScale !== undefined;
  const gt = s.types?.dlogits ?? "f32";
  if (!out && gt !== "f32") {
    throw new Error(`${name}: types.dlogits = ${gt} needs a separate dlogits binding (in place is f32)`);
  }
  const lossScaleIndex = s.lossScaleIndex ?? 0;
  if (!Number.isInteger(lossScaleIndex) || lossScaleIndex < 0) {
    throw new Error(`${name}: lossScaleIndex=${lossScaleIndex} is not a non-negative integer`);
  }
  const types = { GT: gt };
  checkTypes(gpu, name, types);
  const k = await getKernel(gpu, {
    name: `${name}${out ? `_out_${gt}` : ""}${scaled ? "_scaled" : ""}`,
    source: withTypes(variant({ OUT: out, LOSS_SCALE: scaled }), types),
    entryPoint: name,
    constants: { WG: rowThreads(gpu, name, s.V, opts) },
  });
  const res: Record<string, Resource> = { logits: b.logits, losses: b.losses, targets: b.targets };
  if (b.dlogits) res.dlogits = b.dlogits;
  if (b.lossScale) res.loss_scale = b.lossScale;
  return k.dispatch(
    res,
    {
      N: s.N,
      V: s.V,
      scale: s.scale,
      ignore_index: s.ignoreIndex ?? NO_IGNORE,
      loss_scale_index: lossScaleIndex,
    },
    grid(s.N, 1),
  );
}

/**
 * Forward-only cross-entropy for evaluation: losses [N] = -log softmax(logits [N, V])[targets [N]], the
 * logits left untouched (the binding is still read_write, shared with the fused kernel). Rows whose
 * target equals `ignoreIndex` get loss 0.
 */
export async function crossEntropyLoss(
  gpu: Gpu,
  b: { losses: Resource; logits: Resource; targets: Resource },
  s: { N: number; V: number; ignoreIndex?: number },
  opts: CrossEntropyOptions = {},
): Promise<Dispatch> {
  checkShape("crossentropy_forward", s.N, s.V);
  const k = await getKernel(gpu, {
    name: "crossentropy_forward",
    source: plain,
    entryPoint: "crossentropy_forward",
    constants: { WG: rowThreads(gpu, "crossentropy_forward", s.V, opts) },
  });
  return k.dispatch(
    { logits: b.logits, losses: b.losses, targets: b.targets },
    { N: s.N, V: s.V, scale: 0, ignore_index: s.ignoreIndex ?? NO_IGNORE, loss_scale_index: 0 },
    grid(s.N, 1),
  );
}

/**
 * Deterministic loss accumulation in one workgroup (fixed summation order, no float atomics):
 * acc[0] += sum(losses[0..N)), acc[1] += number of targets[n] != `ignoreIndex` (as f32).
 * acc is a 2-float range; the caller zeroes it when a new sum starts. Mean loss = acc[0] / acc[1].
 */
export async function accumulateLoss(
  gpu: Gpu,
  b: { acc: Resource; losses: Resource; targets: Resource },
  s: { N: number; ignoreIndex?: number },
): Promise<Dispatch> {
  checkShape("accumulate_loss", s.N, 1);
  const k = await getKernel(gpu, {
    name: "accumulate_loss",
    source: plain,
    entryPoint: "accumulate_loss",
    constants: { WG: 256 },
  });
  return k.dispatch(
    { acc: b.acc, losses: b.losses, targets: b.targets },
    { N: s.N, V: 0, scale: 0, ignore_index: s.ignoreIndex ?? NO_IGNORE, loss_scale_index: 0 },
    [1],
  );
}
