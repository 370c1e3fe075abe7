import type { BenchBuilder, BenchCase } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { argmax, keepThreshold, sample } from "../src/kernels/sample.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * Token selection for generation, one row per sequence: argmax and temperature + top-k + top-p sampling
 * over a GPT-2 sized vocabulary. Reported in GB/s of the logits read once (sampling reads them several
 * times).
 */
export const build: BenchBuilder = async (gpu, large) => {
  const N = large ? 64 : 4, V = 50304;
  const logits = createStorage(gpu, "logits", N * V * 4, new Rng(3).normalArray(N * V, 2));
  const out = createStorage(gpu, "out", N * 4);
  const rng = createStorage(gpu, "rng", 4, new Uint32Array([12345]));
  const shape = `N=${N} V=${V}`;
  const bytes = 4 * N * V + 4 * N;
  const cases: BenchCase[] = [
    { name: "argmax", shape, dispatches: [await argmax(gpu, { out, logits }, { N, V })], bytes },
  ];
  for (const topK of [0, 50, 25000]) {
    cases.push({
      name: "sample",
      shape: `${shape} K=${topK}`,
      dispatches: [await sample(gpu, { out, logits, rng }, { N, V, temperature: 0.8, topK, stream: 0 })],
      bytes,
    });
  }
  cases.push({
    name: "sample",
    shape: `${shape} P=0.9`,
    dispatches: [
      await sample(gpu, { out, logits, rng }, { N, V, temperature: 0.8, topK: 0, topP: 0.9, stream: 0 }),
    ],
    bytes,
  }, {
    name: "keepThreshold",
    shape: `${shape} K=50 P=0.9`,
    dispatches: [await keepThreshold(gpu, { out, logits }, { N, V, temperature: 0.8, topK: 50, topP: 0.9 })],
    bytes,
  });
  return cases;
};
