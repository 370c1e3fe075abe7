import type { BenchBuilder, BenchCase } from "./harness.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import {
  accumulateLoss,
  crossEntropyForwardBackward,
  crossEntropyLoss,
} from "../src/kernels/crossentropy.ts";
import { Rng } from "../src/util/rng.ts";

/**
 * Fused cross-entropy (loss + dlogits in place), its forward-only twin and the loss accumulator:
 * memory-bound, reported in GB/s of the minimum traffic (logits read once, dlogits written once). The
 * fused kernel also runs as the mixed-precision model uses it: dlogits into a separate f16 buffer (2
 * bytes a value), times a loss scale read from the GPU.
 */
export const build: BenchBuilder = async (gpu, large) => {
  const shapes = large ? [[16384, 65], [8192, 50304]] : [[4096, 65], [16, 50304]];
  const cases: BenchCase[] = [];
  for (const [N, V] of shapes) {
    const rng = new Rng(N + V);
    const logits = createStorage(gpu, "logits", N * V * 4, rng.uniformArray(N * V, -4, 4));
    const t = new Uint32Array(N);
    for (let n = 0; n < N; n++) t[n] = rng.int(V);
    const targets = createStorage(gpu, "targets", N * 4, t);
    const losses = createStorage(gpu, "losses", N * 4);
    const acc = createStorage(gpu, "acc", 8);
    const dlogits16 = createStorage(gpu, "dlogits16", N * V * 2);
    const lossScale = createStorage(gpu, "lossScale", 4, new Float32Array([1024]));
    const shape = `N=${N} V=${V}`;
    cases.push(
      {
        name: "crossentropy_forward_backward",
        shape,
        // Repeats run on the previous dlogits: still finite, same work.
        dispatches: [
          await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { N, V, scale: 1 / N }),
        ],
        bytes: 8 * N * V + 8 * N,
      },
      {
        name: "crossentropy_forward_backward",
        shape: `${shape} dlogits=f16 lossScale`,
        dispatches: [
          await crossEntropyForwardBackward(gpu, { logits, losses, targets, dlogits: dlogits16, lossScale }, {
            N,
            V,
            scale: 1 / N,
            types: { dlogits: "f16" },
          }),
        ],
        bytes: 6 * N * V + 8 * N,
      },
      {
        name: "crossentropy_forward",
        shape,
        dispatches: [await crossEntropyLoss(gpu, { losses, logits, targets }, { N, V })],
        bytes: 4 * N * V + 8 * N,
      },
      {
        name: "accumulate_loss",
        shape: `N=${N}`,
        dispatches: [await accumulateLoss(gpu, { acc, losses, targets }, { N })],
        bytes: 8 * N,
      },
    );
  }
  return cases;
};
