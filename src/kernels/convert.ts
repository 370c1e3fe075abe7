/**
 * Storage type conversion: the f16 working copy of f32 tensors (shaders/convert.wgsl).
 *
 * @module
 */
import source from "../../shaders/convert.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { checkTypes, withGrid } from "../gpu/source.ts";

const WG = 256;

/**
 * out[i] = f16(inp[i]) for i < n (round to nearest even): `inp` holds n f32 values, `out` n f16 values
 * (2 bytes each). n must be a multiple of 4 (arena totals are). Needs the `shader-f16` feature.
 */
export async function castToF16(gpu: Gpu, b: { out: Resource; inp: Resource }, n: number): Promise<Dispatch> {
  if (!Number.isInteger(n) || n < 4 || n % 4 !== 0) {
    throw new Error(`cast_f16: n must be a positive multiple of 4 (got ${n})`);
  }
  checkTypes(gpu, "cast_f16", { out: "f16" });
  const k = await getKernel(gpu, {
    name: "cast_f16",
    source: withGrid(source),
    entryPoint: "cast_f16",
    constants: { WG },
  });
  return k.dispatch(b, { n4: n / 4 }, grid(n / 4, WG));
}
