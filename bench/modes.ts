import type { BenchBuilder } from "./harness.ts";
import { createStorage, upload } from "../src/gpu/buffers.ts";
import { rolloutBegin, rolloutEnd, scheduledMix } from "../src/kernels/modes.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * Token plumbing of the training modes, one micro-step's worth each: rollout_begin / rollout_end (copy
 * a [B, T] batch into and out of the decoder rows) and ss_mix (one hash, one coin per position). Tiny
 * kernels: GB/s of the token ids moved. CI: B=16, T=64; large: B=64, T=256 (shakespeare_char).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const [B, T] = large ? [64, 256] : [16, 64];
  const maxT = T, N = B * T, V = 65, rng = new Rng(2);
  const ids = () => Uint32Array.from({ length: N }, () => rng.int(V));
  const tokens = upload(gpu, "tokens", ids()), targets = upload(gpu, "targets", ids());
  const pred = upload(gpu, "pred", ids()), seq = createStorage(gpu, "seq", B * maxT * 4);
  const seed = upload(gpu, "rng", Uint32Array.of(12345));
  const rollState = createStorage(gpu, "roll_state", 16), rollRng = createStorage(gpu, "roll_rng", 16);
  const shape = `B=${B} T=${T}`;
  return [
    {
      name: "rollout_begin",
      shape,
      dispatches: [
        await rolloutBegin(gpu, { seq, rollState, rollRng, tokens, rng: seed }, { B, T, maxT, stream: 1 }),
      ],
      bytes: 8 * N,
    },
    {
      name: "rollout_end",
      shape,
      dispatches: [await rolloutEnd(gpu, { tokens, seq, targets }, { B, T, maxT, prefix: T / 4 })],
      bytes: 12 * N,
    },
    {
      name: "ss_mix",
      shape,
      dispatches: [
        await scheduledMix(gpu, { tokens, targets, pred, rng: seed }, { B, T, eps: 0.5, stream: 3 }),
      ],
      bytes: 12 * N,
    },
  ];
};
