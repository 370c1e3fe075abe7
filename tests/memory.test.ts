/** The memory plan matches what GPT.create allocates, and a configuration too large is refused up front. */
import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { GPT } from "../src/model/gpt.ts";
import { memoryPlan } from "../src/model/memory.ts";

// [B, T, splitK, dropout]: a small step with dropout, and one of 512 rows without dropout (projections add
// into the residual stream in their epilogue) whose weight gradients split (scratch included).
const SHAPES = [[3, 7, false, 0.1], [8, 64, true, 0]] as const;
for (const dtype of ["float32", "float16"] as const) {
  for (const [B, T, splitK, dropout] of SHAPES) {
    Deno.test(`memoryPlan lists exactly the storage buffers GPT.create allocates (${dtype}, B=${B} T=${T} splitK=${splitK})`, async () => {
      const gpu = await testGpu();
      const c: GPTConfig = {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 64,
        vocab_size: 13,
        bias: true,
        dropout,
      };
      const sizes: number[] = [];
      const create = gpu.device.createBuffer.bind(gpu.device);
      gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
        if (d.usage & GPUBufferUsage.STORAGE) sizes.push(d.size);
        return create(d);
      };
      try {
        const model = await GPT.create(gpu, c, { B, T, dtype, splitK });
        const splits = model.backward.filter((d) => d.kernel === "matmul_backward_weight_split").length;
        assert.equal(splits > 0, splitK, `split-K dispatches: ${splits}`);
      } finally {
        gpu.device.createBuffer = create;
      }
      const planned = memoryPlan(c, B, T, false, dtype, splitK).map((b) => b.bytes);
      assert.deepEqual([...sizes].sort((a, b) => a - b), [...planned].sort((a, b) => a - b));
    });
  }
}

Deno.test("a configuration over the adapter's buffer limit is refused before allocating, naming both numbers", async () => {
  const gpu = await testGpu();
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const c: GPTConfig = {
    n_layer: 1,
    n_head: 1,
    n_embd: 16,
    block_size: 1024,
    vocab_size: 50304,
    bias: true,
    dropout: 0,
  };
  // logits [16384 x 50304] f32 = 3.07 GiB, far over lavapipe's 128 MiB (and any real GPU's 2-4 GiB binding limit).
  let created = 0;
  const create = gpu.device.createBuffer.bind(gpu.device);
  gpu.device.createBuffer = (d: GPUBufferDescriptor) => (created++, create(d));
  try {
    await assert.rejects(
      GPT.create(gpu, c, { B: 16, T: 1024 }),
      (e: unknown) =>
        e instanceof Error && e.message.includes("needs 3.07 GiB in one buffer (logits [16384 x 50304])") &&
        e.message.includes(`allows ${limit >= 1 << 30 ? "" : (limit / 2 ** 20) + " MiB"}`) &&
        !e.message.includes("\n"),
    );
  } finally {
    gpu.device.createBuffer = create;
  }
  assert.equal(created, 0, "nothing may be allocated before the check");
});
