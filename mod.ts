/**
 * tforce: train GPT-style language models with teacher forcing on WebGPU.
 *
 * Hand-written WGSL compute kernels (matmul, causal attention, fused cross-entropy, layernorm, GELU,
 * embeddings, AdamW), each with a pure-TypeScript CPU reference, driven by a scheduler that records a
 * whole training step into one queue submission.
 *
 * @example Run a kernel
 * ```ts
 * import { createGpu, geluForward, readF32, submitDispatches, upload, createStorage } from "@tforce/core";
 *
 * const gpu = await createGpu();
 * const inp = upload(gpu, "inp", new Float32Array([-1, 0, 1, 2]));
 * const out = createStorage(gpu, "out", 16);
 * submitDispatches(gpu, [await geluForward(gpu, { out, inp }, 4)]);
 * console.log(await readF32(gpu, out)); // ≈ [-0.1587, 0, 0.8413, 1.9545]
 * ```
 *
 * @module
 */
export {
  createGpu,
  Gpu,
  GpuError,
  type GpuFeatures,
  type GpuOptions,
  NO_ADAPTER_HELP,
} from "./src/gpu/device.ts";
export {
  type BindingInfo,
  type Dispatch,
  encodeDispatches,
  getKernel,
  grid,
  Kernel,
  type KernelSpec,
  reflectBindings,
  type Resource,
  submitDispatches,
} from "./src/gpu/kernel.ts";
export {
  Arena,
  type ArenaEntry,
  ArenaLayout,
  createStorage,
  numel,
  readBytes,
  readF32,
  readU32,
  STORAGE,
  upload,
} from "./src/gpu/buffers.ts";
export { geluBackward, geluForward } from "./src/kernels/gelu.ts";
export { Rng } from "./src/util/rng.ts";
