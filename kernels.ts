/**
 * The engine below the trainer: the WebGPU device, buffers and parameter arenas, reflected kernels and
 * their dispatch, every kernel dispatcher, and the GPT as lists of dispatches. Each dispatcher returns
 * the Dispatch of one WGSL entry point for given buffers and shapes; record them with
 * `encodeDispatches` or `submitDispatches`. The float64 reference each is tested against is in
 * `@tforce/core/reference`.
 *
 * @example Run one kernel
 * ```ts
 * import { createGpu, createStorage, geluForward, readF32, submitDispatches, upload } from "@tforce/core/kernels";
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
export * from "./src/kernels/mod.ts";
export * from "./src/gpu/device.ts";
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
  type ArenaBuffer,
  type ArenaEntry,
  ArenaLayout,
  type ArenaSlice,
  type ArenaSplit,
  createStorage,
  numel,
  readBytes,
  readF16,
  readF32,
  readU32,
  roundF16,
  STORAGE,
  upload,
  uploadF16,
  writeArray,
} from "./src/gpu/buffers.ts";
export { type Activation, type StorageType } from "./src/gpu/source.ts";
export { GPT, type GPTShape, type HeadChunk } from "./src/model/gpt.ts";
export { countParams, paramLayout, type ParamSpec, paramSpecs } from "./src/model/params.ts";
export { initParams } from "./src/model/init.ts";
export { encodeModel, saveModel, weightsToArena } from "./src/model/checkpoint.ts";
export { Rng } from "./src/util/rng.ts";
