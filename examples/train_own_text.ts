/**
 * Train a small GPT on your own text file, then sample from it.
 *
 *   deno run --allow-read --allow-write examples/train_own_text.ts input.txt [steps]
 */
import { DEFAULT_TRAIN, Generator, train } from "../mod.ts";

const [data, steps = "300"] = Deno.args;
if (!data) {
  console.error("usage: examples/train_own_text.ts FILE [steps]");
  Deno.exit(2);
}
const result = await train({
  ...DEFAULT_TRAIN,
  data,
  steps: Number(steps),
  eval_interval: 100,
  out: "out/example",
}, {
  onRecord: (r) => {
    if (r.val_loss !== null) console.log(`step ${r.step}: val loss ${r.val_loss.toFixed(4)}`);
  },
});
console.log(`best val loss ${result.bestValLoss.toFixed(4)}; weights in out/example/model.safetensors`);
const gen = await Generator.create(result.gpu, result.model.config, result.model.params);
const tok = result.corpus.tokenizer;
const [ids] = await gen.generate(tok.encode(tok.decode([0])), 300, { temperature: 0.8, topK: 20 });
console.log(tok.decode(ids));
