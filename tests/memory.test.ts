/** The memory plan matches what GPT.create allocates, and a configuration too large is refused up front. */
import assert from "node:assert/strict";
import { isStoredDsDq, testGpu } from "./helpers.ts";
import { tinyGPT } from "./fixtures.ts";
import { GPT2_SMALL, type GPTConfig } from "../src/model/config.ts";
import { Gpu } from "../src/gpu/device.ts";
import { GPT } from "../src/model/gpt.ts";
import { HEAD_CHUNK_BYTES, headRowsDefault, memoryPlan, storedDsDefault } from "../src/model/memory.ts";

// [B, T, splitK, dropout, storedDs, headRows]: a small step with dropout and attention's stored dS, and one
// of 512 rows without dropout (projections add into the residual stream in their epilogue) whose weight
// gradients split (scratch included), recomputing dS, with the head in chunks of 128 rows.
const SHAPES = [[3, 7, false, 0.1, true, undefined], [8, 64, true, 0, false, 128]] as const;
for (const dtype of ["float32", "float16"] as const) {
  for (const [B, T, splitK, dropout, storedDs, headRows] of SHAPES) {
    Deno.test(`memoryPlan lists exactly the storage buffers GPT.create allocates (${dtype}, B=${B} T=${T} splitK=${splitK} storedDs=${storedDs} headRows=${headRows ?? "all"})`, async () => {
      const gpu = await testGpu();
      const c = tinyGPT({ n_layer: 2, block_size: 64, vocab_size: 13, bias: true, dropout });
      const sizes: number[] = [];
      const create = gpu.device.createBuffer.bind(gpu.device);
      gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
        if (d.usage & GPUBufferUsage.STORAGE) sizes.push(d.size);
        return create(d);
      };
      try {
        const model = await GPT.create(gpu, c, { B, T, dtype, splitK, storedDs, headRows });
        assert.equal(model.headRows, headRows ?? B * T);
        const splits = model.backward.filter((d) => d.kernel === "matmul_backward_weight_split").length;
        assert.equal(splits > 0, splitK, `split-K dispatches: ${splits}`);
        const dqDs = model.backward.filter((d) => isStoredDsDq(d.kernel)).length;
        assert.equal(dqDs, storedDs ? c.n_layer : 0, `stored-dS dq dispatches: ${dqDs}`);
      } finally {
        gpu.device.createBuffer = create;
      }
      const planned = memoryPlan(c, { batch: B, time: T, dtype, splitK, storedDs, headRows }).map((b) =>
        b.bytes
      );
      assert.deepEqual([...sizes].sort((a, b) => a - b), [...planned].sort((a, b) => a - b));
    });
  }
}

Deno.test("attention's dS is stored by default only while it adds at most a quarter to the other buffers", async () => {
  const gpu = await testGpu();
  const c = tinyGPT({ block_size: 1024, vocab_size: 13, bias: true });
  const uses = async (T: number) =>
    (await GPT.create(gpu, c, { B: 1, T })).backward.some((d) => isStoredDsDq(d.kernel));
  // T 64: dS is 2 x 64 x 64 floats (32 KiB), a fraction of the rest; T 1024: 8 MiB, more than the rest.
  for (const [T, want] of [[64, true], [1024, false]] as const) {
    const plan = memoryPlan(c, { batch: 1, time: T });
    const ds = 4 * 2 * T * T, rest = plan.reduce((s, b) => s + b.bytes, 0);
    assert.equal(ds <= rest / 4, want, `T=${T}: dS ${ds} B, rest ${rest} B`);
    assert.equal(storedDsDefault(gpu, c, { batch: 1, time: T }), want);
    assert.equal(await uses(T), want);
  }
});

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
  // logits [16384 x 50304] f32 = 3.07 GiB, far over lavapipe's 128 MiB (and any real GPU's 2-4 GiB binding
  // limit), when the head is asked to hold every row's logits at once.
  let created = 0;
  const create = gpu.device.createBuffer.bind(gpu.device);
  gpu.device.createBuffer = (d: GPUBufferDescriptor) => (created++, create(d));
  try {
    await assert.rejects(
      GPT.create(gpu, c, { B: 16, T: 1024, headRows: 16384 }),
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

Deno.test("a large vocabulary's head goes in chunks that fit the binding limit; a small one never chunks", () => {
  const limits = (binding: number) =>
    ({ limits: { maxStorageBufferBindingSize: binding, maxBufferSize: 2 ** 40 } }) as unknown as Gpu;
  const gpt2 = GPT2_SMALL;
  // nanoGPT's GPT-2 micro-batch (12 x 1024) on an H200's 2 GiB binding limit: 2.3 GiB of logits whole.
  const R = headRowsDefault(limits(2 ** 31), gpt2, 12, 1024);
  assert.equal(R, 1280);
  assert.ok(R * 50257 * 4 <= HEAD_CHUNK_BYTES);
  const plan = memoryPlan(gpt2, { batch: 12, time: 1024, training: true, splitK: true, headRows: R });
  assert.ok(
    plan.every((b) => b.bytes <= 2 ** 31),
    plan.filter((b) => b.bytes > 2 ** 31).map((b) => b.name).join(),
  );
  assert.ok(plan.some((b) => b.name === "logits [1280 x 50257]"));
  // Under lavapipe's 128 MiB: the most rows of 64 that fit.
  const lava = headRowsDefault(limits(2 ** 27), gpt2, 12, 1024);
  assert.equal(lava % 64, 0);
  assert.ok(lava * 50257 * 4 <= 2 ** 27 && (lava + 64) * 50257 * 4 > 2 ** 27, `${lava}`);
  // Fewer rows than a chunk: never more rows than there are (the plan's check then refuses a huge head).
  assert.equal(headRowsDefault(limits(2 ** 31), { ...gpt2, vocab_size: 2_000_000 }, 1, 32), 32);
  // shakespeare_char (V 65, 16384 rows: 4.1 MiB of logits) keeps the whole head.
  assert.equal(headRowsDefault(limits(2 ** 27), { ...gpt2, vocab_size: 65 }, 64, 256), 16384);
});

Deno.test("over several buffers (binding limit 1 MiB), the plan lists exactly what GPT.create allocates", async () => {
  const real = await testGpu();
  const limit = 2 ** 20;
  const gpu = new Gpu(real.device, real.description, real.software, { maxStorageBufferBindingSize: limit });
  // wte [50257 x 16] (3.1 MiB) in 4 slices of up to 16384 rows; the head's logits [4 x 50257] whole.
  const c: GPTConfig = {
    n_layer: 2,
    n_head: 2,
    n_embd: 16,
    block_size: 64,
    vocab_size: 50257,
    bias: true,
    dropout: 0,
  };
  for (const dtype of ["float32", "float16"] as const) {
    const sizes: number[] = [];
    const create = gpu.device.createBuffer.bind(gpu.device);
    gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
      if (d.usage & GPUBufferUsage.STORAGE) sizes.push(d.size);
      return create(d);
    };
    let model: GPT;
    try {
      model = await GPT.create(gpu, c, { B: 2, T: 2, dtype });
    } finally {
      gpu.device.createBuffer = create;
    }
    assert.equal(model.params.buffers.length, 4);
    const plan = memoryPlan(c, {
      batch: 2,
      time: 2,
      dtype,
      splitK: false,
      maxBindingBytes: limit,
      storedDs: true,
    });
    assert.deepEqual([...sizes].sort((a, b) => a - b), plan.map((b) => b.bytes).sort((a, b) => a - b));
    assert.ok(
      plan.every((b) => b.bytes <= limit),
      plan.filter((b) => b.bytes > limit).map((b) => b.name).join(),
    );
    const names = plan.map((b) => b.name);
    for (const want of ["parameters 0 [262144 floats]", "gradients 3", "logits slice [4 x 16384]"]) {
      assert.ok(names.some((n) => n.startsWith(want)), `${want} not in ${names.join(", ")}`);
    }
  }
  // A tensor that cannot be cut (c_fc's weight [512 x 128], 256 KiB) over the limit is refused by name.
  const wide: GPTConfig = { ...c, n_embd: 128, vocab_size: 65 };
  const small = new Gpu(real.device, real.description, real.software, {
    maxStorageBufferBindingSize: 2 ** 17,
  });
  await assert.rejects(
    GPT.create(small, wide, { B: 1, T: 4 }),
    (e: unknown) =>
      e instanceof Error &&
      /needs 256 KiB in one buffer \(parameters \d+, transformer\.h\.0\.mlp\.c_fc\.weight \[65536 floats\]\)/
        .test(e.message),
  );
});

Deno.test("GPT-2 small under lavapipe's 128 MiB binding limit: every buffer fits, the arenas in four", () => {
  const gpt2 = GPT2_SMALL;
  const limit = 2 ** 27;
  const plan = memoryPlan(gpt2, {
    batch: 1,
    time: 64,
    training: true,
    splitK: false,
    maxBindingBytes: limit,
  });
  assert.ok(
    plan.every((b) => b.bytes <= limit),
    plan.filter((b) => b.bytes > limit).map((b) => b.name).join(),
  );
  for (const kind of ["parameters", "gradients", "adam_m", "adam_v"]) {
    const parts = plan.filter((b) => b.name.startsWith(`${kind} `));
    assert.equal(parts.length, 4, kind);
    // 124,439,808 floats: the image of the one-buffer layout, cut four ways.
    assert.equal(parts.reduce((s, b) => s + b.bytes, 0), 124_439_808 * 4, kind);
  }
  assert.ok(plan.some((b) => b.name === "logits slice [64 x 43690]"));
});
