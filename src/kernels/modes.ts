/**
 * Token plumbing of the exposure-bias training modes (shaders/modes.wgsl): the start and end of a
 * free-running rollout through the KV-cache decoder, and the scheduled-sampling mix of gold tokens with
 * the model's own predictions. All read their randomness from the micro-step seed that gather wrote into
 * `rng[0]`, so they need no CPU input per step.
 *
 * Buffers (u32): tokens / targets [B, T], seq [B, maxT] (maxT >= T), rollState [4], rollRng [1+],
 * pred [B*T], rng [1+].
 *
 * @module
 */
import modesWgsl from "../../shaders/modes.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { withGrid, withHash } from "../gpu/source.ts";

const source = withGrid(withHash(modesWgsl));
const WG = 256;
const NONE = 0xffffffff;

function checkShape(name: string, s: { B: number; T: number; maxT?: number }): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) throw new Error(`${name}: ${k} = ${v} must be >= 1`);
  }
  if (s.maxT !== undefined && s.maxT < s.T) throw new Error(`${name}: maxT = ${s.maxT} < T = ${s.T}`);
  if (s.B * Math.max(s.T, s.maxT ?? 0) > 0xffffffff) throw new Error(`${name}: B*maxT must index in u32`);
}

function checkU32(name: string, k: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${name}: ${k} = ${v} is not a u32`);
}

async function kernel(gpu: Gpu, entryPoint: string) {
  return await getKernel(gpu, { name: entryPoint, source, entryPoint, constants: { WG } });
}

/**
 * Starts a rollout: seq[b, t] = tokens[b, t] for t < T (seq [B, maxT]); rollState [4] = 0;
 * rollRng[0] = hash3(rng[0], stream, 0). Record it before the decode steps of the rollout.
 */
export async function rolloutBegin(
  gpu: Gpu,
  b: { seq: Resource; rollState: Resource; rollRng: Resource; tokens: Resource; rng: Resource },
  s: { B: number; T: number; maxT: number; stream: number },
): Promise<Dispatch> {
  checkShape("rollout_begin", { B: s.B, T: s.T, maxT: s.maxT });
  checkU32("rollout_begin", "stream", s.stream);
  const k = await kernel(gpu, "rollout_begin");
  return k.dispatch(
    { tokens: b.tokens, seq: b.seq, roll_state: b.rollState, roll_rng: b.rollRng, rng: b.rng },
    { B: s.B, T: s.T, maxT: s.maxT, prefix: 1, ignore_id: NONE, stream: s.stream, eps: 0 },
    grid(s.B * s.T, WG),
  );
}

/**
 * Ends a rollout: tokens[b, t] = seq[b, t] for prefix <= t < T wherever targets[b, t - 1] != ignoreId
 * (padding stays). `prefix` >= 1 is the number of gold tokens the rollout kept (its forced length).
 */
export async function rolloutEnd(
  gpu: Gpu,
  b: { tokens: Resource; seq: Resource; targets: Resource },
  s: { B: number; T: number; maxT: number; prefix: number; ignoreId?: number },
): Promise<Dispatch> {
  checkShape("rollout_end", { B: s.B, T: s.T, maxT: s.maxT });
  if (!Number.isInteger(s.prefix) || s.prefix < 1) {
    throw new Error(`rollout_end: prefix = ${s.prefix} must be an integer >= 1`);
  }
  checkU32("rollout_end", "prefix", s.prefix);
  const ignore = s.ignoreId ?? NONE;
  checkU32("rollout_end", "ignoreId", ignore);
  const k = await kernel(gpu, "rollout_end");
  return k.dispatch(
    { tokens: b.tokens, seq: b.seq, targets: b.targets },
    { B: s.B, T: s.T, maxT: s.maxT, prefix: s.prefix, ignore_id: ignore, stream: 0, eps: 0 },
    grid(s.B * s.T, WG),
  );
}

/**
 * The scheduled-sampling mix: for 1 <= t < T where targets[b, t - 1] != ignoreId, with
 * u = uniform01(hash3(rng[0], stream, b*T + t)), tokens[b, t] becomes pred[b*T + t - 1] when u >= eps
 * (kept gold when u < eps). pred [B*T] holds a teacher-forced pass's choice per position. `eps` in [0, 1]
 * is rewritten each step with `Dispatch.update({ eps })`.
 */
export async function scheduledMix(
  gpu: Gpu,
  b: { tokens: Resource; targets: Resource; pred: Resource; rng: Resource },
  s: { B: number; T: number; eps: number; stream: number; ignoreId?: number },
): Promise<Dispatch> {
  checkShape("ss_mix", { B: s.B, T: s.T });
  if (!(s.eps >= 0 && s.eps <= 1)) throw new Error(`ss_mix: eps = ${s.eps} must be in [0, 1]`);
  checkU32("ss_mix", "stream", s.stream);
  const ignore = s.ignoreId ?? NONE;
  checkU32("ss_mix", "ignoreId", ignore);
  const k = await kernel(gpu, "ss_mix");
  return k.dispatch(
    { tokens: b.tokens, targets: b.targets, pred: b.pred, rng: b.rng },
    { B: s.B, T: s.T, maxT: s.T, prefix: 1, ignore_id: ignore, stream: s.stream, eps: s.eps },
    grid(s.B * s.T, WG),
  );
}
