/** The learning-rate schedule against nanoGPT's get_lr at its edges, with values worked out by hand. */
import assert from "node:assert/strict";
import { learningRate, type LrSchedule } from "../src/train/schedule.ts";

const close = (got: number, want: number, what: string) =>
  assert.ok(Math.abs(got - want) <= 1e-15 + 1e-12 * Math.abs(want), `${what}: ${got} vs ${want}`);

Deno.test("learningRate is nanoGPT's get_lr: warmup, cosine, its end and after it", () => {
  // nanoGPT's shakespeare_char recipe: learning_rate 1e-3, min_lr 1e-4, warmup_iters 100, lr_decay_iters 5000.
  const s: LrSchedule = { lr: 1e-3, minLr: 1e-4, warmup: 100, decaySteps: 5000 };
  close(learningRate(0, s), 1e-3 * 1 / 101, "first warmup step: lr (it+1)/(warmup+1)");
  close(learningRate(99, s), 1e-3 * 100 / 101, "last warmup step");
  close(learningRate(100, s), 1e-3, "warmup ends: the cosine starts at its peak");
  close(learningRate(2550, s), 1e-4 + 0.5 * 9e-4, "half way through the decay: coefficient 1/2");
  close(learningRate(1325, s), 1e-4 + (0.5 + 0.5 * Math.SQRT1_2) * 9e-4, "a quarter of the way: cos(pi/4)");
  close(learningRate(5000, s), 1e-4, "the decay's last step reaches min_lr");
  close(learningRate(5001, s), 1e-4, "after it: min_lr");
  close(learningRate(1e6, s), 1e-4, "long after it: min_lr");
});

Deno.test("learningRate without warmup, and with a decay no longer than the warmup", () => {
  close(learningRate(0, { lr: 2, minLr: 0, warmup: 0, decaySteps: 10 }), 2, "no warmup: peak at step 0");
  close(learningRate(5, { lr: 2, minLr: 0, warmup: 0, decaySteps: 10 }), 1, "no warmup: half way");
  close(learningRate(10, { lr: 2, minLr: 0, warmup: 0, decaySteps: 10 }), 0, "no warmup: end");
  const short = { lr: 1, minLr: 0.5, warmup: 10, decaySteps: 10 };
  close(learningRate(9, short), 10 / 11, "still warming up");
  close(learningRate(10, short), 0.5, "decay shorter than warmup: min_lr once warmup ends");
});
