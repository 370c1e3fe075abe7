/**
 * Gradient accumulation: B windows a micro-step over M micro-steps is one batch of B·M windows. The loss
 * is a mean over all N·M positions, so each micro-step's gradient carries 1/(N·M); AdamW's near scale
 * invariance would hide a wrong factor in the weights, so the gradient norm (before clipping) and the
 * loss of the step are compared directly, for the same windows.
 */
import assert from "node:assert/strict";
import { train } from "../src/train/trainer.ts";
import { tinyTrain } from "./fixtures.ts";
import { testGpu } from "./helpers.ts";

Deno.test("4 windows as 2 micro-steps of 2 give the gradient of one batch of 4", async () => {
  const gpu = await testGpu();
  // Window offsets are drawn one window at a time from one stream, so both runs see the same 4 windows.
  const step = async (batch: number, accum: number) => {
    const r = await train(
      { ...tinyTrain, batch_size: batch, grad_accum: accum, steps: 1, log_interval: 1, eval_interval: 1 },
      { gpu, noSave: true },
    );
    const rec = r.history.find((h) => h.train_loss !== null)!;
    return { loss: rec.train_loss!, norm: rec.grad_norm! };
  };
  const whole = await step(4, 1), split = await step(2, 2), quarters = await step(1, 4);
  console.log(`loss ${whole.loss} / ${split.loss} / ${quarters.loss}; norm ${whole.norm} / ${split.norm}`);
  for (const [what, r] of [["2 x 2", split], ["4 x 1", quarters]] as const) {
    assert.ok(Math.abs(r.loss - whole.loss) <= 1e-6 * whole.loss, `${what}: loss ${r.loss} vs ${whole.loss}`);
    assert.ok(
      Math.abs(r.norm - whole.norm) <= 1e-5 * whole.norm,
      `${what}: grad norm ${r.norm} vs ${whole.norm}`,
    );
  }
});
