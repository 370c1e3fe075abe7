/**
 * GELU dispatcher: exact GELU forward and its backward over a flat array of `n` elements, each array
 * stored as f32 (default) or f16 (`types`; arithmetic is f32 either way).
 *
 * @module
 */
import source from "../../shaders/gelu.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Kernel, type Resource } from "../gpu/kernel.ts";
import {
  type Activation,
  checkTypes,
  type StorageType,
  withGeluMath,
  withGrid,
  withTypes,
} from "../gpu/source.ts";

const WG = 256;

/** Storage types of {@linkcode geluForward}'s arrays (each f32 unless given). */
export interface GeluForwardTypes {
  /** Element type of inp. */
  readonly inp?: StorageType;
  /** Element type of out. */
  readonly out?: StorageType;
}

/** Storage types of {@linkcode geluBackward}'s arrays (each f32 unless given). */
export interface GeluBackwardTypes {
  /** Element type of inp (the forward's input). */
  readonly inp?: StorageType;
  /** Element type of dout. */
  readonly dout?: StorageType;
  /** Element type of dinp. */
  readonly dinp?: StorageType;
}

/** The entry point compiled with its arrays' storage types (keyed by the shader's alias names). */
async function kernel(
  gpu: Gpu,
  entry: string,
  types: Record<string, StorageType>,
  activation: Activation,
): Promise<Kernel> {
  checkTypes(gpu, entry, types);
  return await getKernel(gpu, {
    name: entry,
    source: withTypes(withGrid(withGeluMath(source, activation)), types),
    entryPoint: entry,
    constants: { WG },
  });
}

/**
 * out[i] = gelu(inp[i]) for i < n. Shapes: inp, out [n]. `types` gives each array's storage type
 * (default f32); an f16 array is bound as n * 2 bytes (rounded up to a multiple of 4). `activation`:
 * the exact GELU (default) or GPT-2's tanh form, "gelu_new".
 */
export async function geluForward(
  gpu: Gpu,
  b: { out: Resource; inp: Resource },
  n: number,
  types: GeluForwardTypes = {},
  activation: Activation = "gelu",
): Promise<Dispatch> {
  const k = await kernel(gpu, "gelu_forward", { IT: types.inp ?? "f32", OT: types.out ?? "f32" }, activation);
  return k.dispatch(b, { n }, grid(n, WG));
}

/**
 * dinp[i] = dout[i] * gelu'(inp[i]) for i < n (written, not accumulated). Shapes: dinp, inp, dout [n].
 * `types` gives each array's storage type (default f32); `activation` as {@linkcode geluForward}'s.
 */
export async function geluBackward(
  gpu: Gpu,
  b: { dinp: Resource; inp: Resource; dout: Resource },
  n: number,
  types: GeluBackwardTypes = {},
  activation: Activation = "gelu",
): Promise<Dispatch> {
  const k = await kernel(gpu, "gelu_backward", {
    IT: types.inp ?? "f32",
    DT: types.dout ?? "f32",
    GT: types.dinp ?? "f32",
  }, activation);
  return k.dispatch(b, { n }, grid(n, WG));
}
