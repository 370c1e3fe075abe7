/**
 * Train a small GPT on your own text file, save it, and sample from the saved checkpoint.
 *
 *   deno run --allow-read --allow-write examples/train_own_text.ts input.txt [steps]
 */
import { Generator, train } from "@tforce/core";

const [data, steps = "300"] = Deno.args;
if (!data) {
  console.error("usage: examples/train_own_text.ts FILE [steps]");
  Deno.exit(2);
}
// Nothing is written during training: no `out` folder is given.
const result = await train({ data, steps: Number(steps), eval_interval: 100 }, {
  onRecord: (r) => {
    if (r.val_loss !== null) console.log(`step ${r.step}: val loss ${r.val_loss.toFixed(4)}`);
  },
});
await result.model.save("example.safetensors");
console.log(`best val loss ${result.bestValLoss.toFixed(4)}; weights in example.safetensors`);

const gen = await Generator.fromCheckpoint("example.safetensors", { temperature: 0.8, topK: 20 });
console.log(await gen.generateText("", 300));
