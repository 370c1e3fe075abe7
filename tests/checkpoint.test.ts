/** Model checkpoints: nanoGPT names and shapes, tied head, and one-line refusals of files that do not fit. */
import assert from "node:assert/strict";
import { arenaToWeights, decodeModel, encodeModel, weightsToArena } from "../src/model/checkpoint.ts";
import { Arena, readF32 } from "../src/gpu/buffers.ts";
import { Gpu } from "../src/gpu/device.ts";
import { testGpu } from "./helpers.ts";
import { paramLayout, paramSpecs } from "../src/model/params.ts";
import { initParams } from "../src/model/init.ts";
import { trainTokenizer } from "../src/data/tokenizer.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.ts";
import { tinyGPT } from "./fixtures.ts";

const c = tinyGPT({ n_layer: 2, n_embd: 8, block_size: 4, vocab_size: 6, bias: true });
const tok = trainTokenizer("char", "abcdef");

function goodFile(): Uint8Array {
  const { layout } = paramLayout(c);
  return encodeModel(c, tok, layout, initParams(c, layout, 1));
}

function rewrite(
  f: (t: { name: string; shape: readonly number[]; data: Float32Array }[], m: Record<string, string>) => void,
): Uint8Array {
  const file = decodeSafetensors(goodFile());
  const tensors = [...file.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
  const meta = { ...file.metadata };
  f(tensors, meta);
  return encodeSafetensors(tensors, meta);
}

Deno.test("a checkpoint holds nanoGPT's state_dict: names, [out, in] shapes, lm_head tied to wte", () => {
  const file = decodeSafetensors(goodFile());
  const names = [...file.tensors.keys()].sort();
  const want = [...paramSpecs(c).map((p) => p.name), "lm_head.weight"].sort();
  assert.deepEqual(names, want);
  assert.deepEqual(file.tensors.get("transformer.h.1.attn.c_attn.weight")!.shape, [24, 8]);
  assert.deepEqual(file.tensors.get("transformer.h.0.mlp.c_proj.weight")!.shape, [8, 32]);
  assert.deepEqual(
    file.tensors.get("lm_head.weight")!.data,
    file.tensors.get("transformer.wte.weight")!.data,
  );
  assert.deepEqual(JSON.parse(file.metadata.config), c);
  assert.deepEqual(JSON.parse(file.metadata.tokenizer), {
    type: "char",
    vocab: ["a", "b", "c", "d", "e", "f"],
  });
  const ck = decodeModel(goodFile());
  assert.equal(ck.weights.size, paramSpecs(c).length);
});

Deno.test("checkpoints that do not fit their config are refused with one line each", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "missing tensor",
      rewrite((t) => t.splice(t.findIndex((x) => x.name.endsWith("ln_f.bias")), 1)),
      /missing tensor 'transformer.ln_f.bias'/,
    ],
    [
      "wrong shape",
      rewrite((t) => {
        const i = t.findIndex((x) => x.name === "transformer.wpe.weight");
        t[i] = { name: t[i].name, shape: [8, 4], data: t[i].data };
      }),
      /'transformer.wpe.weight' has shape \[8,4\] but the config needs \[4,8\]/,
    ],
    [
      "untied head",
      rewrite((t) => {
        const i = t.findIndex((x) => x.name === "lm_head.weight");
        const d = t[i].data.slice();
        d[0] += 1;
        t[i] = { ...t[i], data: d };
      }),
      /lm_head.weight differs/,
    ],
    [
      "extra tensor",
      rewrite((t) => t.push({ name: "bogus", shape: [1], data: new Float32Array(1) })),
      /unexpected tensor 'bogus'/,
    ],
    ["bad config", rewrite((_, m) => m.config = '{"n_layer":2}'), /config has no 'n_head'/],
    [
      "indivisible heads",
      rewrite((_, m) => m.config = JSON.stringify({ ...c, n_head: 3 })),
      /divisible by n_head/,
    ],
    ["no tokenizer", rewrite((_, m) => delete m.tokenizer), /no 'tokenizer'/],
    [
      "vocab too small",
      rewrite((_, m) => m.tokenizer = JSON.stringify({ type: "char", vocab: "abcdefgh".split("") })),
      /tokenizer has 8 tokens/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    assert.throws(() => decodeModel(bytes, "ck"), (e: unknown) => {
      const m = (e as Error).message;
      assert.match(m, pattern, what);
      assert.ok(m.startsWith("ck: ") && !m.includes("\n"), `${what}: ${m}`);
      return true;
    });
  }
});

Deno.test("checkpoint weights through an arena over several buffers come back the same; wte slices bind their rows", async () => {
  // wte [1000 x 64] (250 KiB) and the rest under a 64 KiB binding limit: wte in 4 slices of 256 rows.
  const real = await testGpu();
  const gpu = new Gpu(real.device, real.description, real.software, { maxStorageBufferBindingSize: 2 ** 16 });
  const big = tinyGPT({ n_layer: 2, n_embd: 64, block_size: 8, vocab_size: 1000, bias: true });
  const one = paramLayout(big).layout;
  const weights = arenaToWeights(one, initParams(big, one, 3));
  const arena = new Arena(gpu, "params", one);
  const layout = arena.layout;
  assert.ok(layout.buffers.length > 4 && layout.buffers.every((b) => b.floats * 4 <= 2 ** 16));
  assert.equal(layout.totalFloats, one.totalFloats, "the image does not depend on the split");
  arena.write(gpu, weightsToArena(weights, layout));
  const back = arenaToWeights(layout, await arena.read(gpu));
  for (const [name, t] of weights) assert.deepEqual(back.get(name), t, name);
  const wte = weights.get("transformer.wte.weight")!;
  const slices = arena.slices("transformer.wte.weight");
  assert.deepEqual(slices.map((s) => [s.row0, s.rows]), [[0, 256], [256, 256], [512, 256], [768, 232]]);
  for (const s of slices) {
    const got = await readF32(gpu, s.binding.buffer, s.binding.offset! / 4, s.rows * 64);
    assert.deepEqual(got, wte.slice(s.row0 * 64, (s.row0 + s.rows) * 64), `rows from ${s.row0}`);
  }
  assert.throws(() => arena.bind("transformer.wte.weight"), /split across 4 buffers/);
  assert.throws(() => arena.buffer, /spans \d+ buffers/);
});
