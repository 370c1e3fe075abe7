/**
 * CPU reference of the training-mode token kernels (shaders/modes.wgsl) and of a whole free-running
 * rollout over the reference GPT.
 *
 * @module
 */
import type { GPTConfig } from "../model/config.ts";
import { gptForward, type RefParams } from "./gpt.ts";
import { hash3, uniform01 } from "../util/hash.ts";

/** rollout_begin: seq [B, maxT] with seq[b, t] = tokens[b, t] for t < T (other entries of `seq` kept). */
export function rolloutBegin(
  tokens: ArrayLike<number>,
  seq: ArrayLike<number>,
  B: number,
  T: number,
  maxT: number,
): Uint32Array {
  const out = Uint32Array.from(seq);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out[b * maxT + t] = tokens[b * T + t];
  return out;
}

/** rollout_begin's new sampling seed: hash3(rng0, stream, 0). */
export function rolloutSeed(rng0: number, stream: number): number {
  return hash3(rng0, stream, 0);
}

/**
 * rollout_end: tokens [B, T] with tokens[b, t] = seq[b, t] for prefix <= t < T where
 * targets[b, t - 1] != ignoreId; everything else as given.
 */
export function rolloutEnd(
  tokens: ArrayLike<number>,
  seq: ArrayLike<number>,
  targets: ArrayLike<number>,
  B: number,
  T: number,
  maxT: number,
  prefix: number,
  ignoreId: number,
): Uint32Array {
  const out = Uint32Array.from(tokens);
  for (let b = 0; b < B; b++) {
    for (let t = Math.max(1, prefix); t < T; t++) {
      if (targets[b * T + t - 1] !== ignoreId) out[b * T + t] = seq[b * maxT + t];
    }
  }
  return out;
}

/**
 * ss_mix: for 1 <= t < T where targets[b, t - 1] != ignoreId, tokens[b, t] = pred[b*T + t - 1] when
 * uniform01(hash3(seed, stream, b*T + t)) >= eps, else kept.
 */
export function scheduledMix(
  tokens: ArrayLike<number>,
  targets: ArrayLike<number>,
  pred: ArrayLike<number>,
  B: number,
  T: number,
  eps: number,
  seed: number,
  stream: number,
  ignoreId: number,
): Uint32Array {
  const out = Uint32Array.from(tokens);
  // The GPU compares an f32 eps: round it the same way.
  const e = Math.fround(eps);
  for (let b = 0; b < B; b++) {
    for (let t = 1; t < T; t++) {
      const i = b * T + t;
      if (targets[i - 1] === ignoreId) continue;
      if (uniform01(hash3(seed, stream, i)) >= e) out[i] = pred[i - 1];
    }
  }
  return out;
}

/**
 * A greedy free-running rollout of the reference GPT: row b keeps tokens[b, 0..prefix) and continues with
 * the argmax of the model's next-token logits given everything before, up to T tokens. Returns [B, T].
 */
export function greedyRollout(
  config: GPTConfig,
  params: RefParams,
  tokens: ArrayLike<number>,
  B: number,
  T: number,
  prefix: number,
): Uint32Array {
  const out = Uint32Array.from(tokens);
  const V = config.vocab_size;
  for (let b = 0; b < B; b++) {
    const row = Array.from(out.subarray(b * T, b * T + prefix));
    while (row.length < T) {
      const f = gptForward(config, params, row, row, 1, row.length);
      const last = f.logits.subarray((row.length - 1) * V, row.length * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
      row.push(best);
    }
    out.set(row, b * T);
  }
  return out;
}
