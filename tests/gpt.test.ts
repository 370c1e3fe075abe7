/**
 * Whole-model proof: the GPU GPT's forward loss and every parameter gradient equal the float64 CPU
 * reference (src/reference/gpt.ts) within 1e-4 relative, on 2-layer toys with and without bias and
 * with dropout (both draw the same masks from the counter-based hash). Mixed precision (float16 storage of
 * matmul and attention operands) against the same float64 reference, with looser tolerances.
 */
import { assertClose, isStoredDsDq, testGpu } from "./helpers.ts";
import { readF32 } from "../src/gpu/buffers.ts";
import { Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { GPT, type GPTShape } from "../src/model/gpt.ts";
import { paramSpecs } from "../src/model/params.ts";
import { gptBackward, gptForward } from "../src/reference/gpt.ts";
import { Rng } from "../src/util/rng.ts";

/** Random parameters with O(1) activations: LN weights near 1, weights of std 0.2, small biases. */
function randomParams(c: GPTConfig, rng: Rng): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const p of paramSpecs(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const isLnWeight = /ln_\d\.weight|ln_f\.weight/.test(p.name);
    const t = rng.normalArray(n, p.name.endsWith(".bias") ? 0.05 : isLnWeight ? 0.1 : 0.2);
    if (isLnWeight) { for (let i = 0; i < n; i++) t[i] += 1; }
    out[p.name] = t;
  }
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * float16: every stored operand is rounded to 11 significant bits (relative 4.9e-4 per rounding), and the
 * roundings compound through the layers; measured: loss within 1.2e-4 relative, every gradient within 2.3e-3
 * of its tensor's largest element with f32 arithmetic (held to 1e-3 and 1e-2; f32: 1e-5 and 1e-4). The backward runs under loss scale 1024 and
 * the gradients are divided by it, as the optimizer does.
 */
const TOL = {
  float32: { loss: 1e-5, grad: 1e-4 },
  float16: { loss: 1e-3, grad: 1e-2 },
  // f16 arithmetic in the matmuls (16-term f16 partial sums): measured loss 2.2e-4, gradients 6.4e-3.
  float16_half_math: { loss: 2e-3, grad: 2e-2 },
};
const LOSS_SCALE = 1024;

async function checkModel(
  c: GPTConfig,
  B: number,
  T: number,
  seed: number,
  ignoreIndex?: number,
  dtype: Precision = "float32",
  splitK?: boolean,
  halfMath = false,
  { gpu: given, ...knobs }: Pick<GPTShape, "storedDs" | "headRows"> & { gpu?: Gpu } = {},
): Promise<GPT> {
  const tol = TOL[dtype === "float16" && halfMath ? "float16_half_math" : dtype];
  const gpu = given ?? await testGpu();
  const rng = new Rng(seed);
  const params = randomParams(c, rng);
  const N = B * T;
  const tokens = Uint32Array.from({ length: N }, () => rng.int(c.vocab_size));
  const targets = Uint32Array.from({ length: N }, () => rng.int(c.vocab_size));
  if (ignoreIndex !== undefined) { for (let i = 0; i < N; i += 3) targets[i] = ignoreIndex; // padding
   }
  const dropSeed = 1234;

  const model = await GPT.create(gpu, c, { B, T, ignoreIndex, dtype, splitK, halfMath, ...knobs });
  const unscale = model.lossScaler ? 1 / LOSS_SCALE : 1;
  if (model.lossScaler) gpu.device.queue.writeBuffer(model.lossScaler, 0, new Float32Array([LOSS_SCALE, 0]));
  const host = new Float32Array(model.params.layout.totalFloats);
  for (const e of model.params.layout.entries) host.set(params[e.name], e.offset);
  model.params.write(gpu, host);
  gpu.device.queue.writeBuffer(model.tokens, 0, tokens);
  gpu.device.queue.writeBuffer(model.targets, 0, targets);
  gpu.device.queue.writeBuffer(model.seed, 0, new Uint32Array([dropSeed, 0, 0, 0]));
  submitDispatches(gpu, [...model.forwardTrain, ...model.backward], "fwd+bwd");
  const acc = await readF32(gpu, model.lossAcc, 0, 2);
  const grads = (await model.grads.read(gpu)).map((g) => g * unscale);

  const ref = gptForward(c, params, tokens, targets, B, T, dropSeed, ignoreIndex);
  const scored = targets.filter((t) => t !== ignoreIndex).length;
  const refGrads = gptBackward(c, params, ref.cache);
  const loss = acc[0] / acc[1];
  assertClose("loss", [loss, acc[1]], [ref.loss, scored], { atol: 0, rtol: tol.loss });
  let worst = 0;
  for (const e of model.grads.layout.entries) {
    const g = grads.subarray(e.offset, e.offset + e.size);
    const r = refGrads[e.name];
    const scale = maxAbs(r);
    // Elementwise within TOL of the tensor's largest gradient: relative error in the max norm.
    assertClose(`d ${e.name}`, g, r, { atol: tol.grad * scale, rtol: 0, quiet: true });
    let err = 0;
    for (let i = 0; i < g.length; i++) err = Math.max(err, Math.abs(g[i] - r[i]));
    worst = Math.max(worst, err / scale);
  }
  console.log(
    `${dtype}${halfMath && dtype === "float16" ? " (f16 math)" : ""}: loss gpu ${loss.toFixed(7)} ref ${
      ref.loss.toFixed(7)
    }; worst gradient error ${worst.toExponential(2)}`,
  );
  return model;
}

const toy: GPTConfig = {
  n_layer: 2,
  n_head: 2,
  n_embd: 32,
  block_size: 8,
  vocab_size: 13,
  bias: true,
  dropout: 0,
};

Deno.test("GPT forward+backward equals the CPU reference (2 layers, bias)", async () => {
  await checkModel(toy, 2, 7, 1);
});

Deno.test("GPT forward+backward equals the CPU reference (no bias, T = block_size)", async () => {
  await checkModel({ ...toy, bias: false, vocab_size: 20 }, 3, 8, 2);
});

Deno.test("GPT forward+backward equals the CPU reference with dropout 0.2", async () => {
  await checkModel({ ...toy, dropout: 0.2 }, 2, 8, 3);
});

Deno.test("GPT: padded targets (ignore index) give no loss and no gradient, as the reference", async () => {
  await checkModel(toy, 2, 7, 4, 12);
});

Deno.test("GPT float16 (mixed precision) forward+backward is close to the float64 reference", async () => {
  for (const halfMath of [false, true]) {
    await checkModel(toy, 2, 7, 1, undefined, "float16", undefined, halfMath);
    await checkModel(
      { ...toy, bias: false, vocab_size: 20, dropout: 0.2 },
      3,
      8,
      2,
      19,
      "float16",
      undefined,
      halfMath,
    );
  }
});

Deno.test("GPT with split-K weight gradients (B*T = 512 rows) equals the reference, in both precisions", async () => {
  for (const dtype of ["float32", "float16"] as const) {
    const model = await checkModel({ ...toy, block_size: 128 }, 4, 128, 5, undefined, dtype, true, true);
    const kernels = model.backward.map((d) => d.kernel);
    // Every Linear layer's dW and the head's: 2 blocks x 4 + 1, each a split and a reduce dispatch.
    const splits = kernels.filter((k) => k === "matmul_backward_weight_split").length;
    const reduces = kernels.filter((k) => k === "matmul_backward_weight_reduce").length;
    if (splits !== 9 || reduces !== 9 || kernels.includes("matmul_backward_weight")) {
      throw new Error(
        `${dtype}: ${splits} split and ${reduces} reduce dispatches; kernels ${kernels.join(",")}`,
      );
    }
  }
});

Deno.test("float16 on an adapter without shader-f16 is refused with one line before allocating", async () => {
  const gpu = await testGpu();
  const noF16 = Object.create(gpu, { features: { value: { ...gpu.features, f16: false } } });
  let created = 0;
  const create = gpu.device.createBuffer.bind(gpu.device);
  gpu.device.createBuffer = (d: GPUBufferDescriptor) => (created++, create(d));
  try {
    let msg = "";
    await GPT.create(noF16, toy, { B: 2, T: 8, dtype: "float16" }).catch((e) => msg = String(e));
    if (!msg.includes("needs the adapter feature 'shader-f16'") || msg.includes("\n")) {
      throw new Error(`unexpected: ${msg}`);
    }
    if (created !== 0) throw new Error(`${created} buffers allocated before the refusal`);
  } finally {
    gpu.device.createBuffer = create;
  }
});

Deno.test("GPT with attention's dS recomputed (storedDs false) or stored equals the reference", async () => {
  for (const storedDs of [false, true]) {
    const model = await checkModel(toy, 2, 7, 7, undefined, "float32", undefined, false, { storedDs });
    const dqDs = model.backward.filter((d) => isStoredDsDq(d.kernel)).length;
    if (dqDs !== (storedDs ? toy.n_layer : 0)) throw new Error(`storedDs ${storedDs}: ${dqDs} stored-dS dq`);
  }
});

Deno.test("GPT with the head in chunks of 64 rows (the last one short) equals the reference, in both precisions", async () => {
  // B*T = 20 * 8 = 160 rows: chunks of 64, 64 and 32; ignored targets and split-K in the f16 run.
  for (const dtype of ["float32", "float16"] as const) {
    const model = await checkModel(toy, 20, 8, 8, 12, dtype, dtype === "float16", true, { headRows: 64 });
    const count = (k: string) => model.backward.filter((d) => d.kernel.startsWith(k)).length;
    // The head's matmul, loss and input gradient run once per chunk, in the backward; the forwards end
    // at the final layernorm.
    if (count("crossentropy_forward_backward") !== 3 || model.headRows !== 64) {
      throw new Error(
        `${dtype}: ${count("crossentropy_forward_backward")} loss dispatches, headRows ${model.headRows}`,
      );
    }
    const fwdKernels = model.forwardTrain.map((d) => d.kernel);
    if (fwdKernels.at(-1)?.startsWith("matmul")) throw new Error(`forward ends with ${fwdKernels.at(-1)}`);
  }
});

Deno.test("the evaluation loss is the same bits whether the head runs whole or in chunks", async () => {
  const gpu = await testGpu();
  const c = { ...toy, vocab_size: 37 };
  const rng = new Rng(9);
  const params = randomParams(c, rng);
  const B = 24, T = 8, N = B * T;
  const tokens = Uint32Array.from({ length: N }, () => rng.int(c.vocab_size));
  const targets = Uint32Array.from({ length: N }, () => rng.int(c.vocab_size));
  const losses: number[][] = [];
  for (const headRows of [N, 128, 64]) {
    const model = await GPT.create(gpu, c, { B, T, headRows });
    const host = new Float32Array(model.params.layout.totalFloats);
    for (const e of model.params.layout.entries) host.set(params[e.name], e.offset);
    gpu.device.queue.writeBuffer(model.params.buffer, 0, host);
    gpu.device.queue.writeBuffer(model.tokens, 0, tokens);
    gpu.device.queue.writeBuffer(model.targets, 0, targets);
    submitDispatches(gpu, [...model.forwardEval, ...model.lossOnly], "eval");
    losses.push([...await readF32(gpu, model.lossAcc, 0, 2), ...await readF32(gpu, model.losses)]);
  }
  assertClose("chunks of 128 vs whole", losses[1], losses[0], { atol: 0, rtol: 0, quiet: true });
  assertClose("chunks of 64 vs whole", losses[2], losses[0], { atol: 0, rtol: 0, quiet: true });
  // A chunk size that would misalign the bindings is refused in one line.
  let msg = "";
  await GPT.create(gpu, c, { B, T, headRows: 100 }).catch((e) => msg = String(e));
  if (!/headRows must be B\*T = 192 or a multiple of 64 below it \(got 100\)/.test(msg)) {
    throw new Error(`unexpected: ${msg}`);
  }
});

Deno.test("GPT over several buffers (binding limit 3 MiB: vocabulary 50257 in 3 slices) equals the reference and the one-buffer model", async () => {
  const real = await testGpu();
  const gpu = new Gpu(real.device, real.description, real.software, {
    maxStorageBufferBindingSize: 3 * 2 ** 20,
  });
  const c = { ...toy, vocab_size: 50257 };
  for (const dtype of ["float32", "float16"] as const) {
    const one = await checkModel(c, 2, 7, 10, 12, dtype);
    const many = await checkModel(c, 2, 7, 10, 12, dtype, undefined, false, { gpu });
    // wte [50257, 32] in slices of 24576 rows: three parameter buffers, the embedding and the head thrice.
    const slices = many.forwardTrain.filter((d) => d.kernel.startsWith("encoder_forward")).length;
    const copies = many.forwardTrain.filter((d) => d.kernel.startsWith("copy_columns")).length;
    if (many.params.buffers.length !== 3 || slices !== 3 || copies !== 3 || one.params.buffers.length !== 1) {
      throw new Error(`${many.params.buffers.length} buffers, ${slices} embedding and ${copies} head slices`);
    }
    const tol = dtype === "float32" ? 1e-5 : 2e-3;
    const [a, b] = [await readF32(real, one.lossAcc, 0, 2), await readF32(gpu, many.lossAcc, 0, 2)];
    assertClose(`${dtype} loss, several buffers vs one`, b, a, { atol: 0, rtol: tol });
    const [ga, gb] = [await one.grads.read(real), await many.grads.read(gpu)];
    assertClose(`${dtype} gradients, several buffers vs one`, gb, ga, { atol: tol * maxAbs(ga), rtol: 0 });
  }
});
