/**
 * Gather dispatcher: forms a micro-step's teacher-forced inputs and targets from corpus windows.
 *
 * @module
 */
import source from "../../shaders/gather.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { withGrid } from "../gpu/source.ts";

const WG = 256;

/** "No padding / nothing ignored" marker for pad and ignore ids. */
export const NO_TOKEN = 0xffffffff;

/** Bindings of {@linkcode gather}. */
export interface GatherBindings {
  /** u32 [B,T], written. */
  tokens: Resource;
  /** u32 [B,T], written. */
  targets: Resource;
  /** u32 [>=1]: rng[0] receives seeds[micro]. */
  rng: Resource;
  /** u32 corpus token ids. */
  corpus: Resource;
  /** u32 [M,B] window starts. */
  offsets: Resource;
  /** u32 [M,B] usable tokens per window (T+1 for a stream). */
  lengths: Resource;
  /** u32 [M] dropout seeds. */
  seeds: Resource;
}

/** tokens/targets of micro-step `micro` from corpus windows (see shaders/gather.wgsl). */
export async function gather(
  gpu: Gpu,
  b: GatherBindings,
  s: { B: number; T: number; micro: number; padId?: number; ignoreId?: number },
): Promise<Dispatch> {
  const k = await getKernel(gpu, {
    name: "gather",
    source: withGrid(source),
    entryPoint: "gather",
    constants: { WG },
  });
  return k.dispatch(b as unknown as Record<string, Resource>, {
    B: s.B,
    T: s.T,
    micro: s.micro,
    pad_id: s.padId ?? NO_TOKEN,
    ignore_id: s.ignoreId ?? NO_TOKEN,
  }, grid(s.B * s.T, WG));
}
