/**
 * Residual-add and dropout dispatchers over flat arrays of `n` floats (nanoGPT's
 * `x = x + dropout(c_proj(y))` and the embedding dropout). Dropout on the attention probabilities is inside
 * the attention kernels (kernels/attention.ts), from the same hash.
 *
 * Dropout masks come from the counter-based hash (shaders/hash.wgsl): element i is kept when
 * `uniform01(hash3(seed, stream, i)) >= p`, with `seed = rng[0]` read from a u32 storage buffer the
 * trainer rewrites each step and `stream` a constant distinct per call site; kept values are scaled by
 * 1/(1-p). The backward regenerates the same mask, so no mask is stored. src/reference/residual.ts
 * computes the identical mask on the CPU.
 *
 * WebGPU forbids binding one buffer as both an output (read_write) and an input (read) in a dispatch,
 * so every op here is out of place (out must not alias inp, a or b) except {@linkcode addInPlace}.
 *
 * @module
 */
import source from "../../shaders/residual.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { withGrid, withHash } from "../gpu/source.ts";

const WG = 256;
const full = withGrid(withHash(source));

/**
 * The dropout uniforms for probability p on `stream` over n elements: the exact integer keep threshold
 * (keep iff (hash >> 8) >= threshold) and the scale 1 / (1 - p). Throws naming `kernel` on a bad p or stream.
 */
export function dropoutDims(
  kernel: string,
  n: number,
  p: number,
  stream: number,
): { n: number; threshold: number; scale: number; stream: number } {
  if (!(p >= 0 && p <= 1)) throw new Error(`${kernel}: dropout p must be in [0, 1] (got ${p})`);
  if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) {
    throw new Error(`${kernel}: stream must be a u32 (got ${stream})`);
  }
  // keep iff (h >> 8) / 2^24 >= p  <=>  (h >> 8) >= ceil(p * 2^24); p * 2^24 is exact in float64.
  return { n, threshold: Math.ceil(p * 16777216), scale: p < 1 ? 1 / (1 - p) : 0, stream };
}

/** Entry point `entry` over n elements, labelled `name` (profiles, errors). */
async function run(
  gpu: Gpu,
  entry: string,
  b: Readonly<Record<string, Resource>>,
  dims: { n: number; threshold: number; scale: number; stream: number },
  name = entry,
): Promise<Dispatch> {
  if (!Number.isInteger(dims.n) || dims.n < 0 || dims.n > 0xffffffff) {
    throw new Error(`${name}: n must be a u32 (got ${dims.n})`);
  }
  const k = await getKernel(gpu, { name, source: full, entryPoint: entry, constants: { WG } });
  return k.dispatch(b, dims, grid(dims.n, WG));
}

/** out[i] = a[i] + b[i] for i < n (written). Backward: both inputs receive dout unchanged. */
export function residualForward(
  gpu: Gpu,
  b: { out: Resource; a: Resource; b: Resource },
  n: number,
): Promise<Dispatch> {
  return run(gpu, "residual_forward", b, { n, threshold: 0, scale: 0, stream: 0 });
}

/** acc[i] += inp[i] for i < n: adds a branch gradient into the residual-stream gradient. */
export function addInPlace(
  gpu: Gpu,
  b: { acc: Resource; inp: Resource },
  n: number,
): Promise<Dispatch> {
  return run(gpu, "add_in_place", b, { n, threshold: 0, scale: 0, stream: 0 });
}

/**
 * out[i] = keep(i) ? inp[i] / (1 - p) : 0 for i < n, keep(i) = uniform01(hash3(rng[0], stream, i)) >= p.
 * `rng` is a u32 buffer whose element 0 is the seed; `stream` distinguishes call sites. p in [0, 1]
 * (p = 0 is the identity, p = 1 gives zeros).
 */
export function dropoutForward(
  gpu: Gpu,
  b: { out: Resource; inp: Resource; rng: Resource },
  s: { n: number; p: number; stream: number },
): Promise<Dispatch> {
  return run(gpu, "dropout_forward", b, dropoutDims("dropout_forward", s.n, s.p, s.stream));
}

/**
 * dinp[i] = keep(i) ? dout[i] / (1 - p) : 0 for i < n (written), with the forward's mask regenerated
 * from the same rng[0], stream and p: the forward's kernel applied to dout.
 */
export function dropoutBackward(
  gpu: Gpu,
  b: { dinp: Resource; dout: Resource; rng: Resource },
  s: { n: number; p: number; stream: number },
): Promise<Dispatch> {
  const dims = dropoutDims("dropout_backward", s.n, s.p, s.stream);
  return run(gpu, "dropout_forward", { out: b.dinp, inp: b.dout, rng: b.rng }, dims, "dropout_backward");
}

/**
 * out[i] = a[i] + dropout(b[i]) for i < n: the residual add fused with the branch's dropout (same mask
 * as {@linkcode dropoutForward} on b with this stream). Backward: da = dout, db = dropoutBackward(dout).
 */
export function residualDropoutForward(
  gpu: Gpu,
  bind: { out: Resource; a: Resource; b: Resource; rng: Resource },
  s: { n: number; p: number; stream: number },
): Promise<Dispatch> {
  return run(
    gpu,
    "residual_dropout_forward",
    bind,
    dropoutDims("residual_dropout_forward", s.n, s.p, s.stream),
  );
}
