/**
 * Shared test tools: one GPU device for the whole run, tolerance comparisons that print max abs/rel
 * error and the first mismatches, finite differences, a submit-and-read shortcut, a watch on queue
 * submissions, a one-line-refusal check and a file test.
 */
import assert from "node:assert/strict";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { readF32 } from "../src/gpu/buffers.ts";
import { type Dispatch, submitDispatches } from "../src/gpu/kernel.ts";
import { InputError } from "../src/util/errors.ts";

let shared: Promise<Gpu> | null = null;

/** The process-wide test device (lavapipe on CI). */
export function testGpu(): Promise<Gpu> {
  if (!shared) {
    shared = createGpu();
    // Release the device when this test module ends (deno test runs every module in one process), so
    // devices are not all torn down together at process exit.
    const gpu = shared;
    globalThis.addEventListener("unload", () => {
      gpu.then((g) => g.destroy(), () => {});
    });
  }
  return shared;
}

/** Options for {@linkcode assertClose}. */
export interface Tolerance {
  atol?: number;
  rtol?: number;
  /** Print the error summary even when it passes (default true). */
  quiet?: boolean;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise; prints max abs and rel error and,
 * on failure, the first mismatches. NaN in either never passes.
 */
export function assertClose(
  label: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, quiet = false }: Tolerance = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let maxAbs = 0, maxRel = 0;
  const bad: string[] = [];
  let nBad = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const abs = Math.abs(a - e);
    const rel = abs / Math.max(Math.abs(e), 1e-30);
    if (!(abs <= atol + rtol * Math.abs(e))) {
      nBad++;
      if (bad.length < 6) bad.push(`[${i}] got ${a} want ${e}`);
    }
    if (abs > maxAbs || Number.isNaN(abs)) maxAbs = abs;
    if (Math.abs(e) > atol && rel > maxRel) maxRel = rel;
  }
  const summary = `${label}: n=${actual.length} max abs ${maxAbs.toExponential(2)} max rel ${
    maxRel.toExponential(2)
  }`;
  if (nBad > 0) throw new Error(`${summary}; ${nBad} outside atol ${atol} rtol ${rtol}: ${bad.join(", ")}`);
  if (!quiet) console.log(summary);
}

/**
 * Central finite differences of a scalar function of `x` (float64), all coordinates.
 * Used to check every reference backward against its forward.
 */
export function finiteDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-6): Float64Array {
  const p = Float64Array.from(x);
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const old = p[i];
    p[i] = old + eps;
    const fp = f(p);
    p[i] = old - eps;
    const fm = f(p);
    p[i] = old;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** Dot product, float64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Submits `dispatches` in one pass, then reads back `buffer` as f32. */
export async function runAndRead(gpu: Gpu, dispatches: Dispatch[], buffer: GPUBuffer): Promise<Float32Array> {
  submitDispatches(gpu, dispatches, "test");
  return await readF32(gpu, buffer);
}

/**
 * Runs `f` while every queue submission passes its command buffers' labels to `onSubmit` (then submits
 * them as usual); the queue is restored afterwards.
 */
export async function watchSubmits<T>(
  gpu: Gpu,
  onSubmit: (label: string) => void,
  f: () => Promise<T>,
): Promise<T> {
  const queue = gpu.device.queue;
  const submit = queue.submit.bind(queue);
  queue.submit = (bufs: GPUCommandBuffer[]) => {
    for (const b of bufs) onSubmit(b.label);
    return submit(bufs);
  };
  try {
    return await f();
  } finally {
    queue.submit = submit;
  }
}

/** Asserts `f` throws or rejects with a one-line InputError matching `re`; returns the message. */
export async function refuses(f: () => unknown, re: RegExp): Promise<string> {
  try {
    await f();
  } catch (e) {
    assert.ok(e instanceof InputError, `not an InputError: ${(e as Error).stack}`);
    assert.ok(!e.message.includes("\n"), `more than one line: ${e.message}`);
    assert.match(e.message, re);
    return e.message;
  }
  throw new assert.AssertionError({ message: `expected a refusal matching ${re}` });
}

/** Whether `path` names a file, folder or link. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Whether a dispatch's kernel is attention's dq reading a stored dS (either form: blocked or `_cpu`). */
export function isStoredDsDq(kernel: string): boolean {
  return /^attention_backward_dq(_cpu)?_ds$/.test(kernel);
}
