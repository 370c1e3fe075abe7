import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import { createStorage, readU32, upload } from "../src/gpu/buffers.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { gather, NO_TOKEN } from "../src/kernels/gather.ts";
import * as ref from "../src/reference/gather.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("reference gather: targets are the inputs shifted by one (teacher forcing)", () => {
  const corpus = [10, 11, 12, 13, 14, 15];
  const { tokens, targets } = ref.gather(corpus, [1, 0], [4, 3], 2, 3, 99, 77);
  assert.deepEqual([...tokens], [11, 12, 13, 10, 11, 12]);
  assert.deepEqual([...targets], [12, 13, 14, 11, 12, 77]);
});

for (const [B, T, M] of [[1, 1, 1], [3, 7, 2], [5, 300, 3]]) {
  Deno.test(`gather matches the reference, B=${B} T=${T} micro-steps=${M}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(B * T);
    const n = 2000;
    const corpus = Uint32Array.from({ length: n }, () => rng.int(50));
    const offsets = Uint32Array.from({ length: M * B }, () => rng.int(n - T - 1));
    // Mix full windows (T+1) with short padded ones.
    const lengths = Uint32Array.from({ length: M * B }, (_, i) => i % 2 ? T + 1 : 1 + rng.int(T + 1));
    const seeds = Uint32Array.from({ length: M }, () => rng.nextU32());
    const tokens = createStorage(gpu, "tokens", B * T * 4),
      targets = createStorage(gpu, "targets", B * T * 4);
    const rngBuf = createStorage(gpu, "rng", 16);
    const bind = {
      tokens,
      targets,
      rng: rngBuf,
      corpus: upload(gpu, "corpus", corpus),
      offsets: upload(gpu, "offsets", offsets),
      lengths: upload(gpu, "lengths", lengths),
      seeds: upload(gpu, "seeds", seeds),
    };
    for (let m = 0; m < M; m++) {
      submitDispatches(gpu, [await gather(gpu, bind, { B, T, micro: m, padId: 60, ignoreId: NO_TOKEN })]);
      const want = ref.gather(
        corpus,
        offsets.subarray(m * B),
        lengths.subarray(m * B),
        B,
        T,
        60,
        NO_TOKEN,
      );
      assert.deepEqual([...await readU32(gpu, tokens)], [...want.tokens]);
      assert.deepEqual([...await readU32(gpu, targets)], [...want.targets]);
      assert.equal((await readU32(gpu, rngBuf, 0, 1))[0], seeds[m]);
    }
  });
}
