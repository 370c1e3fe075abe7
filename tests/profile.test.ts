import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import {
  dispatchFlops,
  formatProfile,
  profileLines,
  profileStep,
  recordStep,
  stepBytes,
} from "../bench/profile.ts";
import { CI_STEP, stepFlops } from "../bench/step.ts";

Deno.test("dispatchFlops: 2·M·K·N for each matmul form from its bound sizes; attention per FlashAttention", () => {
  const M = 6, K = 4, N = 5, f = 4; // bytes per float
  const want = 2 * M * K * N;
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * b;
  const fwd = dispatchFlops("matmul_forward", { out: M * N * f, inp: M * K * f, weight: N * K * f }, CI_STEP);
  const bias = dispatchFlops(
    "matmul_forward_bias",
    { out: M * N * f, inp: M * K * f, weight: N * K * f, bias: N * f },
    CI_STEP,
  );
  const bin = dispatchFlops(
    "matmul_backward_input",
    { dinp: M * K * f, dout: M * N * f, weight: N * K * f },
    CI_STEP,
  );
  const bw = dispatchFlops(
    "matmul_backward_weight",
    { dweight: N * K * f, dout: M * N * f, inp: M * K * f },
    CI_STEP,
  );
  for (const [what, got] of Object.entries({ fwd, bias, bin, bw })) {
    assert(close(got, want), `${what}: ${got}`);
  }
  assert.deepEqual(dispatchFlops("matmul_backward_bias", { dbias: N * f, dout: M * N * f }, CI_STEP), 0);
  assert.deepEqual(dispatchFlops("gelu_forward", { out: 64, inp: 64 }, CI_STEP), 0);
  const { B, T } = CI_STEP, C = CI_STEP.config.n_embd;
  assert.deepEqual(dispatchFlops("attention_forward", {}, CI_STEP), 2 * B * T * T * C);
  assert.deepEqual(
    dispatchFlops("attention_backward_dkdv", {}, CI_STEP) +
      dispatchFlops("attention_backward_dq", {}, CI_STEP),
    2.5 * 2 * B * T * T * C,
  );
  assert.deepEqual(
    dispatchFlops("attention_backward_dkdv_ds", {}, CI_STEP) +
      dispatchFlops("attention_backward_dq_ds", {}, CI_STEP),
    2.5 * 2 * B * T * T * C,
  );
  // The cpu form of the kernels: the same model FLOPs.
  assert.deepEqual(
    dispatchFlops("attention_forward_cpu", {}, CI_STEP) +
      dispatchFlops("attention_backward_dkdv_cpu_ds", {}, CI_STEP) +
      dispatchFlops("attention_backward_dq_cpu_ds", {}, CI_STEP),
    3.5 * 2 * B * T * T * C,
  );
  // With dropout on the probabilities: the same model FLOPs.
  assert.deepEqual(dispatchFlops("attention_forward_dropout", {}, CI_STEP), 2 * B * T * T * C);
  assert.deepEqual(
    dispatchFlops("attention_backward_dkdv_dropout_ds", {}, CI_STEP) +
      dispatchFlops("attention_backward_dq_dropout", {}, CI_STEP),
    2.5 * 2 * B * T * T * C,
  );
});

Deno.test("profile: the CI training step, per-kernel times and counts consistent with the step", async () => {
  const gpu = await testGpu();
  const rec = await recordStep(gpu, CI_STEP);
  assert(!Object.hasOwn(gpu.device, "createBindGroup"), "createBindGroup left wrapped");
  const { step } = rec;
  const model = step.model;
  // gather, forward, loss + backward, grad norm (2 dispatches), AdamW
  assert.deepEqual(step.dispatches.length, 1 + model.forwardTrain.length + model.backward.length + 3);
  const p = await profileStep(gpu, rec, { trials: 1, wallSteps: 1 });

  assert.deepEqual(p.dispatches, step.dispatches.length);
  assert.deepEqual(p.kernels.reduce((a, k) => a + k.count, 0), step.dispatches.length);
  assert.deepEqual(new Set(p.kernels.map((k) => k.kernel)), new Set(step.dispatches.map((d) => d.kernel)));
  for (const k of p.kernels) assert(Number.isFinite(k.ms) && k.ms >= 0, `${k.kernel}: ${k.ms} ms`);
  const sum = p.kernels.reduce((a, k) => a + k.ms, 0);
  assert(sum > 0, `per-kernel times sum to ${sum}`);
  assert(Math.abs(sum - p.per_pass_sum_ms) < 1e-3 * Math.max(1, sum), `${sum} vs ${p.per_pass_sum_ms}`);
  for (let i = 1; i < p.kernels.length; i++) assert(p.kernels[i - 1].ms >= p.kernels[i].ms, "not sorted");
  assert(p.one_pass_ms > 0 && p.wall_ms > 0 && p.clear_ms >= 0, JSON.stringify(p));

  // FLOPs from the bound matrix sizes agree with the closed form of the step.
  const want = stepFlops(CI_STEP);
  assert(Math.abs(p.flops - want) <= 1e-6 * want, `flops ${p.flops} vs ${want}`);
  // AdamW binds params, m, v, grads (whole arenas) and the 2-float stats (16-byte buffer).
  const arena = model.params.layout.totalFloats * 4;
  assert.deepEqual(p.kernels.find((k) => k.kernel.startsWith("adamw"))!.bytes, 4 * arena + 16); // either variant

  const lines = profileLines(p).map((l) => JSON.parse(l));
  assert.deepEqual(lines[0].profile, "step");
  assert.deepEqual(lines.length, 1 + p.kernels.length);
  assert.deepEqual(lines.slice(1).map((l) => l.kernel), p.kernels.map((k) => k.kernel));
  const table = formatProfile(p);
  assert(table.includes("WHOLE STEP, ONE PASS") && table.includes("per-pass mode"), table);
});

Deno.test("step bytes: float16 binds fewer bytes than float32 in every matmul and attention kernel", async () => {
  const gpu = await testGpu();
  const b32 = stepBytes(await recordStep(gpu, CI_STEP));
  const rec16 = await recordStep(gpu, { ...CI_STEP, dtype: "float16" });
  const b16 = stepBytes(rec16);
  const by = (ks: typeof b32) => new Map(ks.map((k) => [k.kernel, k]));
  const m32 = by(b32), m16 = by(b16);
  // One more dispatch: the f16 weight copy; the same kernels otherwise.
  assert.equal(m16.get("cast_f16")?.count, 1);
  assert.equal(rec16.step.dispatches.length, b32.reduce((a, k) => a + k.count, 0) + 1);
  const attention = b32.find((k) => k.kernel.startsWith("attention_forward"))!.kernel; // either form
  for (const name of ["matmul_forward", "matmul_backward_input", "matmul_backward_weight", attention]) {
    assert.ok(
      m16.get(name)!.bytes < m32.get(name)!.bytes,
      `${name}: ${m16.get(name)!.bytes} >= ${m32.get(name)!.bytes}`,
    );
  }
  const total = (ks: typeof b32) => ks.reduce((a, k) => a + k.bytes, 0);
  assert.ok(total(b16) < total(b32));
});
