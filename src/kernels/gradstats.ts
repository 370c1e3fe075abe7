/**
 * Successive-gradient agreement (shaders/gradstats.wgsl): sum g·p, sum g·g and sum p·p of this step's
 * gradient g and the previous step's p, in a deterministic two-stage reduction that also stores g as the
 * next step's p. The cosine similarity of successive gradients is gstats[0] / sqrt(gstats[1] * gstats[2]).
 *
 * @module
 */
import source from "../../shaders/gradstats.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, type Resource } from "../gpu/kernel.ts";

const WG = 256;
/** At most this many partial sums per statistic. */
const MAX_PARTS = 1024;

function parts(n: number): number {
  return Math.max(1, Math.min(MAX_PARTS, Math.ceil(n / (4 * WG))));
}

/** Bytes of the scratch buffer {@linkcode gradCosine} needs for `n` floats (3 partial sums per workgroup). */
export function gradCosineScratchBytes(n: number): number {
  return 12 * parts(n);
}

/**
 * Two dispatches (run in this order, in one pass): partial sums of g·p, g·g, p·p over grads [n] and prev [n]
 * (prev is overwritten with grads), then gstats [3] = the three totals. scratch: at least
 * {@linkcode gradCosineScratchBytes}(n) bytes.
 */
export async function gradCosine(
  gpu: Gpu,
  b: { prev: Resource; grads: Resource; scratch: Resource; gstats: Resource },
  s: { n: number },
): Promise<Dispatch[]> {
  if (!Number.isInteger(s.n) || s.n < 1 || s.n > 0xffffffff) {
    throw new Error(`grad_cosine: n = ${s.n} must be a positive u32`);
  }
  const p = parts(s.n);
  const [partial, finish] = await Promise.all([
    getKernel(gpu, {
      name: "grad_cosine_partial",
      source,
      entryPoint: "grad_cosine_partial",
      constants: { WG },
    }),
    getKernel(gpu, {
      name: "grad_cosine_finish",
      source,
      entryPoint: "grad_cosine_finish",
      constants: { WG },
    }),
  ]);
  const u = { n: s.n, parts: p };
  return [
    partial.dispatch({ prev: b.prev, grads: b.grads, scratch: b.scratch }, u, [p]),
    finish.dispatch({ scratch: b.scratch, gstats: b.gstats }, u, [1]),
  ];
}
