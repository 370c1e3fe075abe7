/**
 * GELU dispatcher: exact GELU forward and its backward over a flat array of `n` floats.
 *
 * @module
 */
import source from "../../shaders/gelu.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";

const WG = 256;

/** out[i] = gelu(inp[i]) for i < n. */
export async function geluForward(
  gpu: Gpu,
  b: { out: Resource; inp: Resource },
  n: number,
): Promise<Dispatch> {
  const k = await getKernel(gpu, {
    name: "gelu_forward",
    source,
    entryPoint: "gelu_forward",
    constants: { WG },
  });
  return k.dispatch(b, { n }, grid(n, WG));
}

/** dinp[i] = dout[i] * gelu'(inp[i]) for i < n (written, not accumulated). */
export async function geluBackward(
  gpu: Gpu,
  b: { dinp: Resource; inp: Resource; dout: Resource },
  n: number,
): Promise<Dispatch> {
  const k = await getKernel(gpu, {
    name: "gelu_backward",
    source,
    entryPoint: "gelu_backward",
    constants: { WG },
  });
  return k.dispatch(b, { n }, grid(n, WG));
}
