/**
 * Token selection dispatchers for generation: argmax and temperature + top-k + top-p (nucleus) sampling,
 * one workgroup per row of logits, one u32 token per row.
 *
 * @module
 */
import sampleWgsl from "../../shaders/sample.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { withGrid, withHash } from "../gpu/source.ts";

const source = withGrid(withHash(sampleWgsl));
const WG = 256;

/** Rows of logits: N rows of `stride` (default V) floats, of which the first V are the ids considered. */
export interface Rows {
  /** Rows (one token chosen per row). */
  N: number;
  /** Ids considered per row, [0, V). */
  V: number;
  /** Floats per row, >= V: a padded vocabulary's rows (ids >= V are never chosen). Default V. */
  stride?: number;
}

/** The shape uniforms of `s`, checked. */
function rows(name: string, s: Rows): { N: number; V: number; stride: number } {
  const { N, V, stride = s.V } = s;
  if (!Number.isInteger(N) || N < 0) throw new Error(`${name}: N=${N} is not a non-negative integer`);
  if (!Number.isInteger(V) || V < 1) throw new Error(`${name}: V=${V} must be a positive integer`);
  if (!Number.isInteger(stride) || stride < V) {
    throw new Error(`${name}: stride=${stride} must be an integer >= V=${V}`);
  }
  return { N, V, stride };
}

/** out[n] = the first index of the maximum of logits[n, 0..V) for n < N; out [N] u32, logits [N, stride]. */
export async function argmax(
  gpu: Gpu,
  b: { out: Resource; logits: Resource },
  s: Rows,
): Promise<Dispatch> {
  const shape = rows("argmax", s);
  const k = await getKernel(gpu, { name: "argmax", source, entryPoint: "argmax", constants: { WG } });
  return k.dispatch(
    { out: b.out, logits: b.logits },
    { ...shape, temperature: 1, top_k: 0, stream: 0, row0: 0, top_p: 1 },
    grid(s.N, 1),
  );
}

/** The sampling restrictions of {@linkcode sample} and {@linkcode keepThreshold}. */
export interface Restriction {
  /** Softmax temperature, finite and > 0. */
  temperature: number;
  /** Keep the topK largest logits (0 or >= V: all; ties at the K-th value all kept). */
  topK: number;
  /** Then keep the smallest set of largest logits whose probability reaches topP (0 < topP <= 1; 1: all). */
  topP?: number;
}

function checkRestriction(name: string, s: Restriction): void {
  if (!(s.temperature > 0) || !Number.isFinite(s.temperature)) {
    throw new Error(`${name}: temperature ${s.temperature} must be finite and > 0 (use argmax for 0)`);
  }
  if (!Number.isInteger(s.topK) || s.topK < 0) {
    throw new Error(`${name}: topK=${s.topK} must be an integer >= 0`);
  }
  const p = s.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new Error(`${name}: topP=${p} must be in (0, 1]`);
}

/** The uniforms of a restriction: temperature, top_k (clamped to u32) and top_p. */
function restrictionUniforms(s: Restriction): { temperature: number; top_k: number; top_p: number } {
  return { temperature: s.temperature, top_k: Math.min(s.topK, 0xffffffff), top_p: s.topP ?? 1 };
}

/**
 * Samples one token per row: out [N] u32 from logits [N, stride] (ids 0..V) at `temperature` (> 0; use
 * {@linkcode argmax} for greedy decoding) restricted to the `topK` largest logits (0 or >= V: the whole
 * vocabulary; ties at the K-th value all kept), then to the nucleus of that renormalised distribution:
 * the smallest set of largest logits whose probability reaches `topP` (default 1: no restriction; ties
 * at the boundary all kept; the mass is summed in fixed point, see shaders/sample.wgsl for its error).
 * The row's uniform is u = uniform01(hash3(rng[0], stream, row0 + row)), so the caller writes a fresh seed
 * into `rng` [1] u32 for every generated token; the chosen token is the smallest id whose cumulative
 * probability exceeds u. `row0` (default 0): the index of logits row 0 in a batch handled in chunks of
 * rows, so a chunk draws the same tokens as the whole batch. `temperature`, `top_k`, `top_p`, `stream`
 * and `row0` can be changed later with `Dispatch.update`.
 */
export async function sample(
  gpu: Gpu,
  b: { out: Resource; logits: Resource; rng: Resource },
  s: Restriction & Rows & { stream: number; row0?: number },
): Promise<Dispatch> {
  const shape = rows("sample", s);
  checkRestriction("sample", s);
  const k = await getKernel(gpu, { name: "sample", source, entryPoint: "sample", constants: { WG } });
  return k.dispatch(
    { out: b.out, logits: b.logits, rng: b.rng },
    { ...shape, ...restrictionUniforms(s), stream: s.stream, row0: s.row0 ?? 0 },
    grid(s.N, 1),
  );
}

/**
 * The keep threshold of each row under {@linkcode sample}'s restrictions: out [N] u32, the
 * order-preserving key of the smallest kept logit of logits [N, V] (the f32 bits with the sign bit set
 * for x >= 0, all bits flipped for x < 0, -0 as +0), 0 when every logit is kept. For tests and inspection.
 */
export async function keepThreshold(
  gpu: Gpu,
  b: { out: Resource; logits: Resource },
  s: Restriction & Rows,
): Promise<Dispatch> {
  const shape = rows("keepThreshold", s);
  checkRestriction("keepThreshold", s);
  const k = await getKernel(gpu, {
    name: "sample_threshold",
    source,
    entryPoint: "sample_threshold",
    constants: { WG },
  });
  return k.dispatch(
    { out: b.out, logits: b.logits },
    { ...shape, ...restrictionUniforms(s), stream: 0, row0: 0 },
    grid(s.N, 1),
  );
}
