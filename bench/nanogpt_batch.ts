/**
 * `deno run --allow-read --allow-write bench/nanogpt_batch.ts CHECKPOINT OUT.json [B]`: the engine's loss
 * and logits on a fixed random batch of a checkpoint, for bench/nanogpt_check.py to compare with the same
 * weights loaded into a nanoGPT-layout PyTorch module by `load_state_dict(strict=True)`.
 *
 * Writes {tokens, targets: [B][T] ints, loss: mean cross-entropy, logits: [V] floats of the last position
 * of the first sequence, config}. B defaults to 4, T is the checkpoint's block_size.
 *
 * @module
 */
import { readF32, writeArray } from "../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { submitDispatches } from "../src/gpu/kernel.ts";
import { loadModel, weightsToArena } from "../src/model/checkpoint.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { GPT } from "../src/model/gpt.ts";
import { Rng } from "../src/util/rng.ts";

/** The batch and the engine's results on it, as bench/nanogpt_check.py reads them. */
export interface NanoGptBatch {
  /** The checkpoint's config (nanoGPT names). */
  config: GPTConfig;
  /** Input ids [B][T]. */
  tokens: number[][];
  /** Target ids [B][T]. */
  targets: number[][];
  /** Mean cross-entropy over the batch. */
  loss: number;
  /** Logits [V] of the first sequence's last position. */
  logits: number[];
}

/** Runs the checkpoint at `path` (float32, no dropout) on a fixed random batch of B sequences. */
export async function nanogptBatch(gpu: Gpu, path: string, B = 4): Promise<NanoGptBatch> {
  const ck = await loadModel(path);
  const T = ck.config.block_size, V = ck.config.vocab_size;
  // Forward only: no dS buffer, every row's logits.
  const model = await GPT.create(gpu, { ...ck.config, dropout: 0 }, {
    B,
    T,
    storedDs: false,
    headRows: B * T,
  });
  writeArray(gpu, model.params.buffer, weightsToArena(ck.weights, model.params.layout));
  const rng = new Rng(20261130);
  const tokens = Uint32Array.from({ length: B * T }, () => rng.int(V));
  const targets = Uint32Array.from({ length: B * T }, () => rng.int(V));
  writeArray(gpu, model.tokens, tokens);
  writeArray(gpu, model.targets, targets);
  submitDispatches(gpu, [...model.forwardEval, ...model.lossOnly], "nanogpt batch");
  const acc = await readF32(gpu, model.lossAcc, 0, 2);
  const logits = await readF32(gpu, model.logits, (T - 1) * V, V);
  const rows = (a: Uint32Array) =>
    Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, b * T + T)));
  return {
    config: ck.config,
    tokens: rows(tokens),
    targets: rows(targets),
    loss: acc[0] / acc[1],
    logits: [...logits],
  };
}

async function main(args: string[]): Promise<number> {
  const [ckPath, outPath, bArg] = args;
  if (!ckPath || !outPath) {
    console.error(
      "usage: deno run --allow-read --allow-write bench/nanogpt_batch.ts CHECKPOINT OUT.json [B]",
    );
    return 2;
  }
  const batch = await nanogptBatch(await createGpu(), ckPath, Number(bArg ?? 4));
  await Deno.writeTextFile(outPath, JSON.stringify(batch));
  console.log(`nanogpt_batch: loss ${batch.loss.toFixed(6)} -> ${outPath}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
