/**
 * tforce as a peer of the comparison (bench/peers/protocol.ts): the products through the engine's tiled
 * matmul kernel, the training step through src/train/step.ts's TrainStep (the trainer's own step).
 *
 *   deno run --lock=deno.dev.lock --allow-read bench/peers/tforce_peer.ts DATA_DIR
 *
 * @module
 */
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { createGpu, type Gpu } from "../../src/gpu/device.ts";
import { encodeDispatches } from "../../src/gpu/kernel.ts";
import { matmulForward } from "../../src/kernels/matmul.ts";
import { weightsToArena } from "../../src/model/checkpoint.ts";
import { TrainStep } from "../../src/train/step.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { type MatmulReply, probeIndices, servePeer, type TrainReply } from "./protocol.ts";
import { readMatmul, readSetup } from "./inputs.ts";

/** B rows of T+1 tokens laid end to end: window b is [b·(T+1), (b+1)·(T+1)). */
function batchCorpus(tokens: Int32Array, targets: Int32Array, B: number, T: number): Uint32Array {
  const corpus = new Uint32Array(B * (T + 1));
  for (let b = 0; b < B; b++) {
    corpus.set(tokens.subarray(b * T, b * T + T), b * (T + 1));
    corpus[b * (T + 1) + T] = targets[b * T + T - 1];
  }
  return corpus;
}

/** Times `reps` products C = A·B (the kernel takes B transposed, as a Linear weight [N, K]) in one pass. */
async function matmul(gpu: Gpu, dir: string, n: number, reps: number): Promise<MatmulReply> {
  const { a, b } = await readMatmul(dir, n);
  const bt = new Float32Array(n * n);
  for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) bt[j * n + k] = b[k * n + j];
  const inp = createStorage(gpu, "A", a.byteLength, a), weight = createStorage(gpu, "Bt", bt.byteLength, bt);
  const out = createStorage(gpu, "C", 4 * n * n);
  const d = await matmulForward(gpu, { out, inp, weight }, { M: n, K: n, N: n });
  const run = async (count: number) => {
    const enc = gpu.device.createCommandEncoder({ label: "matmul" });
    const pass = enc.beginComputePass();
    encodeDispatches(pass, Array(count).fill(d));
    pass.end();
    gpu.device.queue.submit([enc.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.check();
  };
  await run(1); // warm-up: pipeline creation
  const t0 = performance.now();
  await run(reps);
  const ms = (performance.now() - t0) / reps;
  const c = await readF32(gpu, out);
  for (const x of [inp, weight, out]) x.destroy();
  return { ms, probe: probeIndices(n).map((i) => c[i]) };
}

/** The training step on the fixed batch, built once by `trainInit`. */
class Training {
  #steps = 0;
  readonly #losses: GPUBuffer;

  constructor(readonly gpu: Gpu, readonly step: TrainStep, readonly lr: number, maxSteps: number) {
    this.#losses = createStorage(gpu, "losses", 8 * maxSteps);
  }

  static async create(gpu: Gpu, dir: string): Promise<Training> {
    const s = await readSetup(dir);
    const corpus = batchCorpus(s.tokens, s.targets, s.B, s.T);
    const step = await TrainStep.create(gpu, s.config, {
      B: s.B,
      T: s.T,
      corpus: { tokens: corpus },
      optimizer: s.hyper,
    });
    step.load({ params: weightsToArena(s.weights, step.model.params.layout) });
    const offsets = Uint32Array.from({ length: s.B }, (_, b) => b * (s.T + 1));
    const lengths = new Uint32Array(s.B).fill(s.T + 1);
    step.prepare({ step: 0, lr: s.hyper.lr, batch: { offsets, lengths, seeds: new Uint32Array(1) } });
    return new Training(gpu, step, s.hyper.lr, 1024);
  }

  /** `steps` optimizer steps, one submission each, each step's loss sums copied aside; one wait at the end. */
  async run(steps: number): Promise<TrainReply> {
    if (steps > 1024) throw new Error("at most 1024 steps a request");
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      this.step.prepare({ step: this.#steps++, lr: this.lr });
      const enc = this.step.encode(`step ${this.#steps}`);
      enc.copyBufferToBuffer(this.step.model.lossAcc, 0, this.#losses, 8 * i, 8);
      this.gpu.device.queue.submit([enc.finish()]);
    }
    const acc = await readF32(this.gpu, this.#losses, 0, 2 * steps);
    const ms = (performance.now() - t0) / steps;
    this.gpu.check();
    return { ms, losses: Array.from({ length: steps }, (_, i) => acc[2 * i] / acc[2 * i + 1]) };
  }
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error("usage: deno run --allow-read bench/peers/tforce_peer.ts DATA_DIR");
    Deno.exit(2);
  }
  const gpu = await createGpu();
  let training: Training | null = null;
  await servePeer({
    info: () => ({ system: "tforce", version: denoJson.version, device: gpu.description }),
    matmul: (n, reps) => matmul(gpu, dir, n, reps),
    trainInit: async () => {
      training = await Training.create(gpu, dir);
      return { params: training.step.params };
    },
    train: (steps) => {
      if (!training) throw new Error("train before train_init");
      return training.run(steps);
    },
  });
  gpu.destroy();
}
