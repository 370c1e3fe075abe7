/**
 * Fine-tune a trained model on new text: start from a checkpoint's weights, shape and tokenizer with a
 * fresh optimizer (`init_from`), then compare the loss on the new text before and after.
 *
 *   deno run --allow-read --allow-write examples/finetune.ts out/model.safetensors new.txt [steps]
 */
import { evaluateCheckpoint, train } from "@tforce/core";

const [checkpoint, data, steps = "200"] = Deno.args;
if (!checkpoint || !data) {
  console.error("usage: examples/finetune.ts CHECKPOINT FILE [steps]");
  Deno.exit(2);
}
const before = await evaluateCheckpoint(checkpoint, data);
console.log(`before fine-tuning: loss ${before.loss.toFixed(4)} on ${data}`);
await train({
  data,
  init_from: checkpoint,
  steps: Number(steps),
  lr: 3e-4, // gentler than from scratch: the weights are already good
  min_lr: 3e-5,
  warmup: 10,
  eval_interval: Number(steps),
  sample_chars: 0,
  out: "out/finetuned",
});
const after = await evaluateCheckpoint("out/finetuned/model.safetensors", data);
console.log(
  `after ${steps} steps: loss ${after.loss.toFixed(4)}; weights in out/finetuned/model.safetensors`,
);
