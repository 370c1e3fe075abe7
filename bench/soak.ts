/**
 * Soak benchmark (not run in CI): trains a tiny model for many steps and reports host memory and GPU
 * buffer churn over time. A healthy run creates no GPU buffers per step (every buffer is allocated up
 * front; readbacks destroy their staging buffers) and its host memory stays flat.
 *
 *   deno run --allow-read --allow-write=/tmp --allow-env bench/soak.ts [steps=10000] [float32|float16]
 *
 * Prints JSON lines {step, rss_mib, heap_mib, buffers_live, buffers_created} every 10% of the run.
 */
import { createGpu } from "../src/gpu/device.ts";
import { DEFAULT_TRAIN } from "../src/train/config.ts";
import type { Precision } from "../src/model/config.ts";
import { train } from "../src/train/trainer.ts";

const steps = Number(Deno.args[0] ?? 10000);
const dtype = (Deno.args[1] ?? "float32") as Precision;
const gpu = await createGpu();
let created = 0, destroyed = 0;
const create = gpu.device.createBuffer.bind(gpu.device);
gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
  created++;
  const b = create(d);
  const destroy = b.destroy.bind(b);
  b.destroy = () => {
    destroyed++;
    destroy();
  };
  return b;
};
const every = Math.max(1, Math.floor(steps / 10));
const mib = (n: number) => Math.round(n / 2 ** 20 * 10) / 10;
const t0 = performance.now();
const report = (step: number) => {
  const m = Deno.memoryUsage();
  console.log(JSON.stringify({
    step,
    rss_mib: mib(m.rss),
    heap_mib: mib(m.heapUsed),
    buffers_live: created - destroyed,
    buffers_created: created,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  }));
};
await train({
  ...DEFAULT_TRAIN,
  n_layer: 1,
  n_head: 2,
  n_embd: 32,
  block_size: 32,
  batch_size: 4,
  steps,
  eval_interval: every,
  eval_iters: 2,
  log_interval: 50,
  sample_chars: 0,
  dtype,
  out: "/tmp/tforce-soak",
}, {
  gpu,
  onRecord: (r) => {
    if (r.val_loss !== null) report(r.step);
  },
});
