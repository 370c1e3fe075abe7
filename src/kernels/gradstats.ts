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

/** Floats of each buffer: one count, or one per buffer of an arena spread over several. */
function counts(n: number | readonly number[]): readonly number[] {
  return typeof n === "number" ? [n] : n;
}

/**
 * Bytes of the scratch buffer {@linkcode gradCosine} needs for `n` floats, or buffers of `n[k]` floats each
 * (3 partial sums per workgroup).
 */
export function gradCosineScratchBytes(n: number | readonly number[]): number {
  return 12 * counts(n).reduce((s, x) => s + parts(x), 0);
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
  const ns = counts(s.n);
  const list = (r: Resource | readonly Resource[]) => Array.isArray(r) ? r : [r as Resource];
  const prev = list(b.prev), grads = list(b.grads);
  if (prev.length !== ns.length || grads.length !== ns.length) {
    throw new Error(
      `grad_cosine: ${prev.length} prev and ${grads.length} grads buffers for ${ns.length} sizes`,
    );
  }
  for (const n of ns) {
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
  const total = ns.reduce((a, n) => a + parts(n), 0);
  const out: Dispatch[] = [];
  let part0 = 0;
  ns.forEach((n, k) => {
    const p = parts(n);
    out.push(
      partial.dispatch(
        { prev: prev[k], grads: grads[k], scratch: b.scratch },
        { n, parts: p, part0, total },
        [p],
      ),
    );
    part0 += p;
  });
  const n = ns.reduce((a, x) => a + x, 0);
  out.push(
    finish.dispatch({ scratch: b.scratch, gstats: b.gstats }, { n, parts: total, part0: 0, total }, [1]),
  );
  return out;
}
