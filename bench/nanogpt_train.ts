/**
 * The engine's first training steps on one fixed batch, for bench/nanogpt_check.py --train to repeat in
 * PyTorch (llm.c's check: the same losses step after step from the same weights):
 *
 *   deno run --allow-read --allow-write bench/nanogpt_train.ts OUT_DIR [float32|float16]
 *
 * Writes OUT_DIR/init.safetensors (nanoGPT's initialisation as the engine draws it, nanoGPT names, config
 * metadata) and OUT_DIR/train.json ({tokens, targets, losses per step, hyper-parameters}). The steps are
 * the trainer's own step object (src/train/step.ts): gather, forward, loss, backward, global-norm clip to 1,
 * AdamW (lr 1e-3, betas 0.9/0.99, eps 1e-8, weight decay 0.1 on >= 2-D tensors), one queue submission each.
 *
 * @module
 */
import { readF32 } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import type { GPTConfig, Precision } from "../src/model/config.ts";
import { initParams } from "../src/model/init.ts";
import { paramSpecs } from "../src/model/params.ts";
import { encodeSafetensors } from "../src/io/safetensors.ts";
import { type OptimizerSettings, TrainStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";
import { SHAKESPEARE_OPTIMIZER } from "./step.ts";

/** The optimizer settings of the run (nanoGPT's shakespeare_char ones), as nanogpt_check.py reads them. */
export const HYPER: Required<OptimizerSettings> = SHAKESPEARE_OPTIMIZER;

/** What bench/nanogpt_check.py --train reads. */
export interface EngineRun {
  /** Input ids [B][T]. */
  tokens: number[][];
  /** Target ids [B][T]. */
  targets: number[][];
  /** Mean training loss of each step, before its update. */
  losses: number[];
  /** The optimizer settings. */
  hyper: Required<OptimizerSettings>;
  /** Storage precision of the engine's run. */
  dtype: Precision;
}

/**
 * Runs `steps` training steps of `config` (dropout must be 0) from nanoGPT's initialisation (seed 1), all
 * on one batch of B windows of T+1 tokens cut from a random corpus: the trainer's step object
 * (src/train/step.ts), gather included. Returns the run and the initial weights as safetensors bytes.
 */
export async function engineSteps(
  gpu: Gpu,
  config: GPTConfig,
  B: number,
  steps: number,
  dtype: Precision = "float32",
): Promise<{ run: EngineRun; init: Uint8Array }> {
  const T = config.block_size, V = config.vocab_size;
  const rng = new Rng(7);
  const corpus = Uint32Array.from({ length: B * (T + 1) }, () => rng.int(V));
  const step = await TrainStep.create(gpu, config, {
    B,
    T,
    corpus: { tokens: corpus },
    optimizer: HYPER,
    model: { dtype },
  });
  const layout = step.model.params.layout;
  const host = initParams(config, layout, 1);
  step.load({ params: host });
  const tensors = paramSpecs(config).map((p) => {
    const e = layout.get(p.name);
    return { name: p.name, shape: p.shape, data: host.subarray(e.offset, e.offset + e.size) };
  });
  const wte = tensors.find((t) => t.name === "transformer.wte.weight")!;
  tensors.push({ name: "lm_head.weight", shape: wte.shape, data: wte.data });
  const init = encodeSafetensors(tensors, { config: JSON.stringify(config) });

  // Window b is corpus[b(T+1) .. (b+1)(T+1)): inputs its first T tokens, targets its last T.
  const batch = {
    offsets: Uint32Array.from({ length: B }, (_, b) => b * (T + 1)),
    lengths: new Uint32Array(B).fill(T + 1),
    seeds: new Uint32Array(1),
  };
  const losses: number[] = [];
  for (let t = 0; t < steps; t++) {
    step.prepare({ step: t, lr: HYPER.lr, batch });
    gpu.device.queue.submit([step.encode(`step ${t}`).finish()]);
    const acc = await readF32(gpu, step.model.lossAcc, 0, 2);
    losses.push(acc[0] / acc[1]);
  }
  const rows = (first: number) =>
    Array.from(
      { length: B },
      (_, b) => Array.from(corpus.subarray(b * (T + 1) + first, b * (T + 1) + first + T)),
    );
  return { run: { tokens: rows(0), targets: rows(1), losses, hyper: HYPER, dtype }, init };
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
