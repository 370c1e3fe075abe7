/**
 * Cross-entropy dispatchers: the fused log-softmax loss with dlogits written in place over the logits,
 * its forward-only twin for evaluation, and the deterministic loss-sum accumulator that keeps the loss
 * on the GPU.
 *
 * @module
 */
import source from "../../shaders/crossentropy.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";

/** "No target is ignored": the default `ignoreIndex`. */
export const NO_IGNORE: number = 0xffffffff;

/** Threads per row: small vocabularies (V=65) would leave most of 256 threads idle. */
function rowThreads(V: number): number {
  return V <= 2048 ? 64 : 256;
}

function checkShape(name: string, N: number, V: number): void {
  if (!Number.isInteger(N) || N < 0) throw new Error(`${name}: N=${N} is not a non-negative integer`);
  if (!Number.isInteger(V) || V < 1) throw new Error(`${name}: V=${V} must be a positive integer`);
}

/**
 * Loss and gradient of softmax cross-entropy, one workgroup per row.
 * logits [N, V] (read_write) is overwritten with dlogits = (softmax - onehot(target)) * scale;
 * losses [N] gets -log softmax(logits)[target]; targets [N] u32. Rows whose target equals `ignoreIndex`
 * (default 0xFFFFFFFF: none) get loss 0 and a zero gradient row. Activation gradient: written, not
 * accumulated.
 */
export async function crossEntropyForwardBackward(
  gpu: Gpu,
  b: { logits: Resource; losses: Resource; targets: Resource },
  s: { N: number; V: number; scale: number; ignoreIndex?: number },
): Promise<Dispatch> {
  checkShape("crossentropy_forward_backward", s.N, s.V);
  const k = await getKernel(gpu, {
    name: "crossentropy_forward_backward",
    source,
    entryPoint: "crossentropy_forward_backward",
    constants: { WG: rowThreads(s.V) },
  });
  return k.dispatch(
    { logits: b.logits, losses: b.losses, targets: b.targets },
    { N: s.N, V: s.V, scale: s.scale, ignore_index: s.ignoreIndex ?? NO_IGNORE },
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
): Promise<Dispatch> {
  checkShape("crossentropy_forward", s.N, s.V);
  const k = await getKernel(gpu, {
    name: "crossentropy_forward",
    source,
    entryPoint: "crossentropy_forward",
    constants: { WG: rowThreads(s.V) },
  });
  return k.dispatch(
    { logits: b.logits, losses: b.losses, targets: b.targets },
    { N: s.N, V: s.V, scale: 0, ignore_index: s.ignoreIndex ?? NO_IGNORE },
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
    source,
    entryPoint: "accumulate_loss",
    constants: { WG: 256 },
  });
  return k.dispatch(
    { acc: b.acc, losses: b.losses, targets: b.targets },
    { N: s.N, V: 0, scale: 0, ignore_index: s.ignoreIndex ?? NO_IGNORE },
    [1],
  );
}
