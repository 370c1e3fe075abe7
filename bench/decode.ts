import type { BenchBuilder } from "./harness.ts";
import { createStorage, upload } from "../src/gpu/buffers.ts";
import { attentionDecode, commit, decodeEmbed, kvAppend } from "../src/kernels/decode.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * KV-cache decoding kernels, one decode step's worth each. attention_decode runs at the last position
 * (pos = maxT - 1, the longest cache walk) and reports GB/s of K and V cache read (the rest of its traffic,
 * q and y, is B*C floats each); kv_append, decode_embed and commit are tiny per-token kernels whose time is
 * mostly dispatch overhead. CI: B=1, maxT=256, C=128, NH=4. Large: B=64, maxT=1024, C=768, NH=12 (GPT-2
 * small), caches left zero (values do not change the work).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const [B, maxT, C, NH, V] = large ? [64, 1024, 768, 12, 50304] : [1, 256, 128, 4, 65];
  const HS = C / NH, pos = maxT - 1;
  const shape = `B=${B} maxT=${maxT} C=${C} NH=${NH} pos=${pos}`;
  const rng = new Rng(1);
  const cacheN = B * NH * maxT * HS;
  const cache = (name: string) =>
    large ? createStorage(gpu, name, cacheN * 4) : upload(gpu, name, rng.normalArray(cacheN));
  const kcache = cache("kcache"), vcache = cache("vcache");
  const qkv = upload(gpu, "qkv", rng.normalArray(B * 3 * C));
  const y = createStorage(gpu, "y", B * C * 4), x = createStorage(gpu, "x", B * C * 4);
  const state = upload(gpu, "state", Uint32Array.of(pos, 0, 0, 0));
  const seq = upload(gpu, "seq", Uint32Array.from({ length: B * maxT }, () => rng.int(V)));
  const wte = createStorage(gpu, "wte", V * C * 4), wpe = upload(gpu, "wpe", rng.normalArray(maxT * C));
  // commit advances its own state (saturating at maxT), so it gets a separate one.
  const commitState = upload(gpu, "commit_state", new Uint32Array(4));
  const rngBuf = upload(gpu, "rng", Uint32Array.of(7)), sampled = createStorage(gpu, "sampled", B * 4);
  const keys = pos + 1;
  return [
    {
      name: "attention_decode",
      shape,
      dispatches: [await attentionDecode(gpu, { y, qkv, kcache, vcache, state }, { B, maxT, C, NH })],
      flops: 4 * B * NH * keys * HS,
      bytes: 2 * B * NH * keys * HS * 4,
    },
    {
      name: "kv_append",
      shape,
      dispatches: [await kvAppend(gpu, { kcache, vcache, qkv, state }, { B, maxT, C, NH })],
      bytes: 4 * B * C * 4,
    },
    {
      name: "decode_embed",
      shape,
      dispatches: [await decodeEmbed(gpu, { x, seq, wte, wpe, state }, { B, maxT, C, V })],
      bytes: 3 * B * C * 4,
    },
    {
      name: "decode_commit",
      shape: `B=${B} maxT=${maxT}`,
      dispatches: [
        await commit(gpu, { seq, state: commitState, rng: rngBuf, sampled }, { B, maxT, forcedLen: 1 }),
      ],
      bytes: 2 * B * 4,
    },
  ];
};
