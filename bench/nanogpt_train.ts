/**
 * The engine's first training steps on one fixed batch, for bench/nanogpt_check.py --train to repeat in
 * PyTorch (llm.c's check: the same losses step after step from the same weights):
 *
 *   deno run --allow-read --allow-write bench/nanogpt_train.ts OUT_DIR [float32|float16]
 *
 * Writes OUT_DIR/init.safetensors (nanoGPT's initialisation as the engine draws it, nanoGPT names, config
 * metadata) and OUT_DIR/train.json ({tokens, targets, losses per step, hyper-parameters}). The steps are
 * the trainer's: forward, loss, backward, global-norm clip to 1, AdamW (lr 1e-3, betas 0.9/0.99, eps 1e-8,
 * weight decay 0.1 on >= 2-D tensors), one queue submission each.
 *
 * @module
 */
import { createStorage, readF32, writeArray } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { encodeDispatches } from "../src/gpu/kernel.ts";
import {
  adamw,
  adamwUniforms,
  gradNorm,
  gradNormScratchBytes,
  STATS_FLOATS,
} from "../src/kernels/optimizer.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { GPT } from "../src/model/gpt.ts";
import { initParams } from "../src/model/init.ts";
import { paramSpecs } from "../src/model/params.ts";
import { encodeSafetensors } from "../src/io/safetensors.ts";
import { Rng } from "../src/util/rng.ts";
import { Arena } from "../src/gpu/buffers.ts";

/** The optimizer settings of the run (nanoGPT's shakespeare_char ones). */
export const HYPER = { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };

/** What bench/nanogpt_check.py --train reads. */
export interface EngineRun {
  /** Input ids [B][T]. */
  tokens: number[][];
  /** Target ids [B][T]. */
  targets: number[][];
  /** Mean training loss of each step, before its update. */
  losses: number[];
  /** The optimizer settings. */
  hyper: typeof HYPER;
  /** Storage precision of the engine's run. */
  dtype: Precision;
}

/**
 * Runs `steps` training steps of `config` (dropout must be 0) on one random batch of B sequences from
 * nanoGPT's initialisation (seed 1). Returns the run and the initial weights as safetensors bytes.
 */
export async function engineSteps(
  gpu: Gpu,
  config: GPTConfig,
  B: number,
  steps: number,
  dtype: Precision = "float32",
): Promise<{ run: EngineRun; init: Uint8Array }> {
  const T = config.block_size, V = config.vocab_size, N = B * T;
  const model = await GPT.create(gpu, config, { B, T, training: true, dtype });
  const layout = model.params.layout;
  const host = initParams(config, layout, 1);
  writeArray(gpu, model.params.buffer, host);
  const tensors = paramSpecs(config).map((p) => {
    const e = layout.get(p.name);
    return { name: p.name, shape: p.shape, data: host.subarray(e.offset, e.offset + e.size) };
  });
  const wte = tensors.find((t) => t.name === "transformer.wte.weight")!;
  tensors.push({ name: "lm_head.weight", shape: wte.shape, data: wte.data });
  const init = encodeSafetensors(tensors, { config: JSON.stringify(config) });

  const rng = new Rng(7);
  const tokens = Uint32Array.from({ length: N }, () => rng.int(V));
  const targets = Uint32Array.from({ length: N }, () => rng.int(V));
  writeArray(gpu, model.tokens, tokens);
  writeArray(gpu, model.targets, targets);
  const n = layout.totalFloats;
  const m = new Arena(gpu, "adam_m", layout), v = new Arena(gpu, "adam_v", layout);
  const stats = createStorage(gpu, "grad_stats", 4 * STATS_FLOATS);
  const scratch = createStorage(gpu, "grad_norm_scratch", gradNormScratchBytes(n));
  const scaler = model.lossScaler ? { scaler: model.lossScaler } : {};
  const norm = await gradNorm(gpu, { stats, grads: model.grads.buffer, scratch, ...scaler }, {
    n,
    maxNorm: HYPER.gradClip,
  });
  const opt = await adamw(gpu, {
    params: model.params.buffer,
    m: m.buffer,
    v: v.buffer,
    grads: model.grads.buffer,
    stats,
  }, { n, decayEnd: model.decayEnd, ...HYPER, step: 1 });
  const losses: number[] = [];
  for (let t = 1; t <= steps; t++) {
    opt.update(adamwUniforms({ lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, step: t }));
    const enc = gpu.device.createCommandEncoder({ label: `step ${t}` });
    enc.clearBuffer(model.grads.buffer);
    enc.clearBuffer(model.lossAcc);
    const pass = enc.beginComputePass();
    encodeDispatches(pass, [...model.forwardTrain, ...model.backward, ...norm, opt]);
    pass.end();
    gpu.device.queue.submit([enc.finish()]);
    const acc = await readF32(gpu, model.lossAcc, 0, 2);
    losses.push(acc[0] / acc[1]);
  }
  const rows = (a: Uint32Array) =>
    Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, b * T + T)));
  return { run: { tokens: rows(tokens), targets: rows(targets), losses, hyper: HYPER, dtype }, init };
}

/** The model of the check: 2 layers, 4 heads, 64 channels, context 32, 65 tokens, with biases. */
export const CHECK_CONFIG: GPTConfig = {
  n_layer: 2,
  n_head: 4,
  n_embd: 64,
  block_size: 32,
  vocab_size: 65,
  bias: true,
  dropout: 0,
};

if (import.meta.main) {
  const [dir, dtype = "float32"] = Deno.args;
  if (!dir || (dtype !== "float32" && dtype !== "float16")) {
    console.error(
      "usage: deno run --allow-read --allow-write bench/nanogpt_train.ts OUT_DIR [float32|float16]",
    );
    Deno.exit(2);
  }
  const { run, init } = await engineSteps(await createGpu(), CHECK_CONFIG, 4, 10, dtype);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/init.safetensors`, init);
  await Deno.writeTextFile(`${dir}/train.json`, JSON.stringify(run));
  console.log(`nanogpt_train: losses ${run.losses.map((x) => x.toFixed(5)).join(" ")}`);
}
