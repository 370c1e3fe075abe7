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
import { partialSums, totalParts } from "./optimizer.ts";

/** Threads per workgroup: the optimizer's, whose partial-sum layout (partialSums) this kernel shares. */
const WG = 256;

/**
 * Bytes of the scratch buffer {@linkcode gradCosine} needs for `n` floats, or buffers of `n[k]` floats each
 * (3 partial sums per workgroup).
 */
export function gradCosineScratchBytes(n: number | readonly number[]): number {
  return 12 * totalParts(partialSums(n));
}

/**
 * Two dispatches (run in this order, in one pass): partial sums of g·p, g·g, p·p over grads [n] and prev [n]
 * (prev is overwritten with grads), then gstats [3] = the three totals. scratch: at least
 * {@linkcode gradCosineScratchBytes}(n) bytes. An arena spread over several buffers: `prev` and `grads` list
 * them, `n` their float counts; one partial dispatch per buffer, then the one finish.
 */
export async function gradCosine(
  gpu: Gpu,
  b: {
    prev: Resource | readonly Resource[];
    grads: Resource | readonly Resource[];
    scratch: Resource;
    gstats: Resource;
  },
  s: { n: number | readonly number[] },
): Promise<Dispatch[]> {
  const sums = partialSums(s.n);
  const list = (r: Resource | readonly Resource[]) => Array.isArray(r) ? r : [r as Resource];
  const prev = list(b.prev), grads = list(b.grads);
  if (prev.length !== sums.length || grads.length !== sums.length) {
    throw new Error(
      `grad_cosine: ${prev.length} prev and ${grads.length} grads buffers for ${sums.length} sizes`,
    );
  }
  for (const { n } of sums) {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
      throw new Error(`grad_cosine: n = ${n} must be a positive u32`);
    }
  }
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
  const total = totalParts(sums);
  const out = sums.map((p, k) =>
    partial.dispatch({ prev: prev[k], grads: grads[k], scratch: b.scratch }, { ...p, total }, [p.parts])
  );
  const n = sums.reduce((a, p) => a + p.n, 0);
  out.push(
    finish.dispatch({ scratch: b.scratch, gstats: b.gstats }, { n, parts: total, part0: 0, total }, [1]),
  );
  return out;
}
