/**
 * GPT-2 small (124M parameters: 12 layers, 12 heads, C 768, block 1024, vocabulary 50257) with random
 * weights on whatever adapter is here: the memory plan by kind of buffer, a checkpoint round trip of the
 * weights (safetensors bytes and back), an evaluation, a few tokens sampled through the KV-cache decode
 * network, and timed training steps at a small batch (B 1, T 64 unless given). Under lavapipe's 128 MiB
 * binding limit the parameter, gradient and AdamW moment arenas spread over four buffers each and the
 * token embedding (154 MB) over two.
 *
 *   XDG_RUNTIME_DIR=/tmp deno run --lock=deno.dev.lock --allow-read=. --allow-env bench/gpt2_small.ts [steps] [T]
 *
 * Prints one line per phase and a JSON summary last.
 *
 * @module
 */
import { readF32 } from "../src/gpu/buffers.ts";
import { bindingLimit, createGpu, type Gpu } from "../src/gpu/device.ts";
import { encodeDispatches } from "../src/gpu/kernel.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.ts";
import { type BufferSpec, bufferTable, tableBuffers } from "../src/model/buffers.ts";
import { arenaToWeights, weightsToArena } from "../src/model/checkpoint.ts";
import { GPT2_SMALL, type GPTConfig } from "../src/model/config.ts";
import { Generator } from "../src/model/generate.ts";
import type { GPT } from "../src/model/gpt.ts";
import { formatBytes } from "../src/model/memory.ts";
import { countParams, WTE } from "../src/model/params.ts";
import { Rng } from "../src/util/rng.ts";
import { buildTrainingStep } from "./step.ts";

/** Bytes of the plan by kind: parameters, gradients, AdamW moments, logits, activations, scratch. */
function memoryByKind(gpu: Gpu, c: GPTConfig, B: number, T: number): Record<string, number> {
  const t = bufferTable(c, {
    batch: B,
    time: T,
    training: true,
    splitK: !gpu.software,
    maxBindingBytes: bindingLimit(gpu),
  });
  const sum = (specs: readonly (BufferSpec | undefined)[]) => specs.reduce((s, b) => s + (b?.bytes ?? 0), 0);
  const logits = sum([t.storage.logits, t.storage.logitsSlice, t.storage.dlogits16]);
  const scratch = tableBuffers(t).filter((b) => b.type === "byte");
  const arenas = sum([...t.arenas.params, ...t.arenas.grads, ...t.optimizer]);
  const total = sum(tableBuffers(t));
  return {
    parameters: sum(t.arenas.params),
    gradients: sum(t.arenas.grads),
    "AdamW moments": sum(t.optimizer),
    logits,
    scratch: sum(scratch),
    activations: total - arenas - logits - sum(scratch),
    total,
  };
}

/** Mean loss of `model` on random tokens and targets (forwardEval, then the loss alone). */
async function evaluate(gpu: Gpu, model: GPT, seed: number): Promise<number> {
  const rng = new Rng(seed), N = model.B * model.T, V = model.config.vocab_size;
  gpu.device.queue.writeBuffer(model.tokens, 0, Uint32Array.from({ length: N }, () => rng.int(V)));
  gpu.device.queue.writeBuffer(model.targets, 0, Uint32Array.from({ length: N }, () => rng.int(V)));
  const enc = gpu.device.createCommandEncoder({ label: "eval" });
  enc.clearBuffer(model.lossAcc);
  const pass = enc.beginComputePass({ label: "eval" });
  encodeDispatches(pass, [...model.forwardEval, ...model.lossOnly]);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  const [sum, count] = await readF32(gpu, model.lossAcc, 0, 2);
  return sum / count;
}

async function timed<T>(what: string, f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await f();
  const ms = performance.now() - t0;
  console.log(`${what}: ${(ms / 1000).toFixed(2)} s`);
  return [value, ms];
}

async function main(): Promise<void> {
  const steps = Number(Deno.args[0] ?? 3), T = Number(Deno.args[1] ?? 64), B = 1, c = GPT2_SMALL;
  const gpu = await createGpu();
  console.log(`${gpu.description}; binding limit ${formatBytes(bindingLimit(gpu))}`);
  console.log(`GPT-2 small: ${countParams(c).toLocaleString("en")} parameters, B ${B}, T ${T}`);
  const memory = memoryByKind(gpu, c, B, T);
  for (const [kind, bytes] of Object.entries(memory)) {
    console.log(`  ${kind.padEnd(14)} ${formatBytes(bytes)}`);
  }

  const [step, buildMs] = await timed(
    "build the step (random init)",
    () => buildTrainingStep(gpu, { config: c, B, T }),
  );
  const model = step.model, layout = model.params.layout;
  const wte = layout.slices(WTE).map((s) => s.rows);
  console.log(
    `  arenas in ${layout.buffers.length} buffers each; wte in ${wte.length} slices of ${
      wte.join(", ")
    } rows`,
  );

  const [loss0] = await timed("evaluate", () => evaluate(gpu, model, 7));
  const [, roundTripMs] = await timed("checkpoint round trip (read, safetensors, load)", async () => {
    const image = await model.params.read(gpu);
    const tensors = [...arenaToWeights(layout, image)].map(([name, data]) => ({
      name,
      shape: layout.get(name).shape,
      data,
    }));
    const file = decodeSafetensors(encodeSafetensors(tensors), "gpt2_small");
    step.load({ params: weightsToArena(new Map([...file.tensors].map(([k, t]) => [k, t.data])), layout) });
  });
  const loss1 = await evaluate(gpu, model, 7);
  if (loss1 !== loss0) throw new Error(`the reloaded weights evaluate to ${loss1}, not ${loss0}`);
  console.log(
    `  eval loss ${loss0.toFixed(4)} (ln V = ${Math.log(c.vocab_size).toFixed(4)}), the same after reload`,
  );

  const [tokens, sampleMs] = await timed("sample 8 tokens (KV-cache decode)", async () => {
    const gen = await Generator.create(gpu, c, model.params, 1);
    return (await gen.generate([464, 2068, 7586], 8, { temperature: 1, topK: 0, seed: 1 }))[0];
  });
  console.log(`  sampled ${tokens.join(" ")}`);

  const stepMs: number[] = [], losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    step.prepare({ step: i, lr: 6e-4 });
    const t0 = performance.now();
    gpu.device.queue.submit([step.encode(`step ${i}`).finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    stepMs.push(performance.now() - t0);
    const [sum, count] = await readF32(gpu, model.lossAcc, 0, 2);
    losses.push(sum / count);
    console.log(`step ${i}: loss ${losses[i].toFixed(4)}, ${(stepMs[i] / 1000).toFixed(2)} s`);
  }
  gpu.check();
  const median = [...stepMs].sort((a, b) => a - b)[Math.floor(stepMs.length / 2)];
  console.log(JSON.stringify({
    adapter: gpu.description,
    binding_limit: bindingLimit(gpu),
    params: countParams(c),
    B,
    T,
    buffers_per_arena: layout.buffers.length,
    wte_slices: wte,
    memory_bytes: memory,
    build_ms: Math.round(buildMs),
    checkpoint_round_trip_ms: Math.round(roundTripMs),
    eval_loss: loss0,
    sample_ms: Math.round(sampleMs),
    step_ms: stepMs.map(Math.round),
    step_ms_median: Math.round(median),
    losses,
  }));
}

if (import.meta.main) await main();
