/** bench/collect.ts: the H200 figures from a run's JSON lines (synthetic lines here; the GPU run is elsewhere). */
import assert from "node:assert/strict";
import { collect, parseLines, recipeSummary, tuning } from "../bench/collect.ts";
import { adapterLine, h200Table, replaceTable, targetRows } from "../bench/h200_table.ts";
import { adapterReport } from "../bench/adapter.ts";

const meta = { dry: false, deno: "2.9.6", date: "2026-11-30T00:00:00Z" };

Deno.test("collect: ratios, float16 and no-split steps, float32 profile kept apart from the float16 one", () => {
  const shape = "L=6 NH=6 C=384 T=256 B=64 V=65";
  const lines = parseLines([
    JSON.stringify({ bench: "matmul_forward", shape: "M=4096 K=4096 N=4096", ms: 1, gflops: 40960 }),
    JSON.stringify({ torch: "fp32", n: 4096, tflops: 51.2 }),
    JSON.stringify({ bench: "matmul_forward_f16math", shape: "M=4096 K=4096 N=4096", ms: 1, gflops: 35000 }),
    JSON.stringify({
      bench: "matmul_backward_input_f16",
      shape: "M=16384 K=384 N=1536",
      ms: 1,
      gflops: 20000,
    }),
    JSON.stringify({ torch: "fp32_shape", form: "backward_input", M: 16384, K: 384, N: 1536, tflops: 40 }),
    JSON.stringify({ bench: "train_step", shape, ms: 40, tokens_per_s: 409600 }),
    JSON.stringify({ bench: "train_step_f16", shape: `${shape} float16`, ms: 30 }),
    JSON.stringify({ bench: "train_step_nosplit", shape: `${shape} nosplit`, ms: 55 }),
    JSON.stringify({ bench: "train_step_recompute_ds", shape: `${shape} recompute-ds`, ms: 42 }),
    JSON.stringify({ bench: "train_step_vocab8192", shape: shape.replace("V=65", "V=8192"), ms: 50 }),
    JSON.stringify({
      bench: "train_step_vocab8192_chunks",
      shape: `${shape.replace("V=65", "V=8192")} head-rows=4096`,
      ms: 51,
    }),
    JSON.stringify({ bench: "attention_forward_backward", shape: "B=8 T=1024 C=768 NH=12 HS=64", ms: 9 }),
    JSON.stringify({
      bench: "attention_forward_backward_ds",
      shape: "B=8 T=1024 C=768 NH=12 HS=64",
      ms: 7.5,
    }),
    JSON.stringify({ torch: "sdpa_fp32", pass: "forward_backward", T: 1024, HS: 64, ms: 5 }),
    JSON.stringify({ bench: "train_step_f16_pf", shape: `${shape} float16 prefetch`, ms: 28 }),
    JSON.stringify({ torch: "fp32-flash", ms_per_step: 37.5 }),
    JSON.stringify({ torch: "tf32-flash", ms_per_step: 20.1 }),
    JSON.stringify({ profile: "step", shape, one_pass_ms: 39, dispatches: 200 }),
    JSON.stringify({ profile: "kernel", shape, kernel: "matmul_forward", count: 25, ms: 10, share: 0.3 }),
    JSON.stringify({ profile: "step", shape: `${shape} float16`, one_pass_ms: 29, dispatches: 201 }),
    JSON.stringify({
      profile: "kernel",
      shape: `${shape} float16`,
      kernel: "cast_f16",
      count: 1,
      ms: 99,
      share: 1,
    }),
    "not json",
  ].join("\n"));
  const f = collect(lines, { ...meta, shakespeare: { val_loss: 1.47, train_seconds: 170 } });
  assert.equal(f.matmul_4096_tflops, 40.96);
  assert.equal(f.ratios.matmul_4096_vs_cublas, 0.8);
  assert.equal(f.matmul_f16math_4096_tflops, 35);
  assert.equal(f.matmul_f16_4096_tflops, null);
  // A model-shape f16 product is compared with cuBLAS fp32 at the same form and shape.
  const row = f.model_matmuls.find((r) => r.bench === "matmul_backward_input_f16");
  assert.deepEqual([row?.tflops, row?.cublas_tflops, row?.ratio], [20, 40, 0.5]);
  assert.equal(f.step_ms, 40);
  assert.equal(f.f16_step_ms, 30);
  assert.equal(f.step_nosplit_ms, 55);
  assert.equal(f.step_recompute_ds_ms, 42);
  assert.deepEqual([f.step_vocab8192_ms, f.step_vocab8192_chunks_ms], [50, 51]);
  // Attention at T 1024: the faster backward form, both kept.
  assert.deepEqual(
    [
      f.attention_1024_ms,
      f.attention_1024_stored_ds_ms,
      f.attention_1024_recompute_ds_ms,
      f.torch_sdpa_1024_ms,
    ],
    [7.5, 7.5, 9, 5],
  );
  assert.ok(Math.abs(f.ratios.attention_1024_vs_sdpa! - 5 / 7.5) < 1e-3);
  assert.deepEqual(f.step_tuned_ms.prefetch, { float32: null, float16: 28 });
  assert.equal(f.step_profile_ms, 39);
  assert.equal(f.f16_step_profile_ms, 29);
  assert.equal(f.step_dispatches, 200);
  assert.deepEqual(f.top_kernels.map((k) => k.kernel), ["matmul_forward"]);
  assert.equal(f.shakespeare_val_loss, 1.47);
  assert.ok(Math.abs(f.ratios.step_vs_torch_fp32! - 37.5 / 40) < 1e-3);
});

Deno.test("matmul tuning rows: each variant next to its default twin, and the fastest named", () => {
  const shape = "M=4096 K=4096 N=4096";
  const line = (bench: string, gflops: number) => ({ bench, shape, ms: 1, gflops });
  const rows = tuning([
    line("matmul_forward", 24000),
    line("matmul_forward_pf", 27000),
    line("matmul_forward_bk32", 25000),
    line("matmul_forward_pf_bk32", 26000),
    line("matmul_forward_t64", 28000),
    line("matmul_forward_ur", 29000),
    line("matmul_forward_f16math_pf", 33000),
    line("matmul_forward_f16math", 35000),
  ]);
  assert.deepEqual(rows, [
    {
      bench: "matmul_forward",
      shape,
      tflops: { default: 24, prefetch: 27, bk32: 25, prefetch_bk32: 26, tile64: 28, unroll: 29 },
      best: "unroll",
    },
    {
      bench: "matmul_forward_f16math",
      shape,
      tflops: { default: 35, prefetch: 33, bk32: null, prefetch_bk32: null, tile64: null, unroll: null },
      best: "default",
    },
  ]);
});

Deno.test("recipeSummary: best validation loss, seconds and steps at the last record of a train log", () => {
  const log = [
    { step: 250, train_loss: null, val_loss: 1.9, elapsed_s: 10, eval_s: 1 },
    { step: 500, train_loss: null, val_loss: 1.46, elapsed_s: 20, eval_s: 2 },
    { step: 750, train_loss: null, val_loss: 1.45, elapsed_s: 30, eval_s: 3 },
    { step: 760, train_loss: 1.4, val_loss: null, elapsed_s: 30.5, eval_s: 3 },
  ].map((r) => JSON.stringify(r)).join("\n");
  assert.deepEqual(recipeSummary(log), {
    val_loss: 1.45,
    train_seconds: 30.5,
    eval_seconds: 3,
    seconds_to_147: 20,
    steps: 760,
  });
  const none = { val_loss: null, train_seconds: null, eval_seconds: null, seconds_to_147: null, steps: null };
  assert.deepEqual(recipeSummary(""), none);
});

Deno.test("h200 table: each target's ratio and verdict from the figures, written between the README markers", () => {
  const shape = "L=6 NH=6 C=384 T=256 B=64 V=65";
  const lines = parseLines([
    JSON.stringify({ bench: "matmul_forward", shape: "M=4096 K=4096 N=4096", ms: 1, gflops: 41000 }),
    JSON.stringify({ torch: "fp32", n: 4096, tflops: 51.25 }),
    JSON.stringify({ bench: "matmul_forward", shape: "M=8192 K=8192 N=8192", ms: 1, gflops: 30000 }),
    JSON.stringify({ torch: "fp32", n: 8192, tflops: 50 }),
    JSON.stringify({ bench: "matmul_backward_input", shape: "M=16384 K=384 N=1536", ms: 1, gflops: 20000 }),
    JSON.stringify({ torch: "fp32_shape", form: "backward_input", M: 16384, K: 384, N: 1536, tflops: 40 }),
    JSON.stringify({ bench: "train_step", shape, ms: 30 }),
    JSON.stringify({ bench: "train_step_f16", shape: `${shape} float16`, ms: 25 }),
    JSON.stringify({ torch: "fp32-flash", ms_per_step: 37.5 }),
    JSON.stringify({ torch: "tf32-flash", ms_per_step: 20.1 }),
    JSON.stringify({ bench: "attention_forward_backward_ds", shape: "B=8 T=1024 C=768 NH=12 HS=64", ms: 8 }),
    JSON.stringify({ torch: "sdpa_fp32", pass: "forward_backward", T: 1024, HS: 64, ms: 5 }),
  ].join("\n"));
  const f = collect(lines, {
    ...meta,
    gpu: "NVIDIA H200",
    shakespeare: { val_loss: 1.465, train_seconds: 200, eval_seconds: 30, seconds_to_147: 170 },
  });
  const rows = targetRows(f);
  const verdicts = Object.fromEntries(rows.map((r) => [r.what.split(" vs ")[0], r.met]));
  assert.deepEqual(verdicts, {
    "f32 matmul 4096³": true, // 41 / 51.25 = 0.8
    "f32 matmul 8192³": false, // 0.6
    "model-shape matmuls, the worst (matmul_backward_input, M=16384 K=384 N=1536)": false, // 20 / 40
    "shakespeare_char training step, float32": true, // 37.5 / 30
    "the same step, float16 mixed precision": false, // 25 ms is not under 20.1
    "PyTorch bf16 step (reference only)": null,
    "attention forward+backward, T 1024, HS 64 (B 8, NH 12)": true, // 5 / 8 = 0.625 >= 0.5
    "shakespeare_char recipe: best val loss, training seconds (evaluation included)": true, // 1.465 at 170 s
  });
  const table = h200Table(f);
  assert.match(
    table,
    /^H200 figures of 2026-11-30 \(Deno 2\.9\.6, NVIDIA H200; bench\/results\/h200\.json\):/,
  );
  assert.match(
    table,
    /\| f32 matmul 8192³ vs cuBLAS SGEMM \| 30\.0 TFLOP\/s \| 50\.0 TFLOP\/s \| 0\.60 \| ≥ 0\.8 \| not met \|/,
  );
  assert.match(
    table,
    /Recipe: val ≤ 1\.47 first reached at 170 s; evaluation and checkpoints took 30 s of the run\./,
  );
  // Missing figures give dashes and no verdict, not a crash.
  const empty = targetRows(collect([], meta));
  assert.ok(empty.every((r) => r.met === null && r.ratio === null));
  // The README section between the markers is replaced, the rest kept; no markers: one-line error.
  const readme = "intro\n<!-- h200:begin -->\nold\n<!-- h200:end -->\nrest\n";
  assert.equal(replaceTable(readme, "NEW"), "intro\n<!-- h200:begin -->\nNEW\n<!-- h200:end -->\nrest\n");
  assert.throws(() => replaceTable("no markers", "x"), /^Error: README\.md has no '<!-- h200:begin -->'/);
});

Deno.test("adapter report: features and limits from bench/adapter.ts into h200.json and the table's last line", async () => {
  // This machine's adapter, as the GPU run records it.
  const report = await adapterReport();
  assert.ok(report, "no adapter");
  assert.ok(report.features.includes("timestamp-query"), `features: ${report.features}`);
  assert.deepEqual(report.features, [...report.features].sort());
  assert.ok(report.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20, JSON.stringify(report.limits));
  assert.equal(report.webgpu_adapter, report.info.description || report.info.vendor || "unknown adapter");

  // Collected from a run's lines (synthetic H200 figures here) and rendered under the table.
  const line = {
    webgpu_adapter: "NVIDIA H200",
    info: { vendor: "nvidia", description: "NVIDIA H200" },
    features: ["shader-f16", "timestamp-query"],
    limits: { maxStorageBufferBindingSize: 2 ** 31, maxComputeWorkgroupStorageSize: 49152, bogus: "x" },
  };
  const f = collect(parseLines(JSON.stringify(line)), meta);
  assert.equal(f.adapter, "NVIDIA H200");
  assert.deepEqual(f.adapter_features, ["shader-f16", "timestamp-query"]);
  assert.deepEqual(f.adapter_limits, {
    maxStorageBufferBindingSize: 2 ** 31,
    maxComputeWorkgroupStorageSize: 49152,
  });
  assert.equal(
    adapterLine(f),
    "WebGPU on this adapter (NVIDIA H200; bench/adapter.ts): `shader-f16`, `timestamp-query`. No cooperative- " +
      "or subgroup-matrix feature, so no tensor cores; `subgroups` not offered. Limits: " +
      "maxStorageBufferBindingSize 2048 MiB, maxComputeWorkgroupStorageSize 48 KiB.",
  );
  assert.match(h200Table(f), /\n\nWebGPU on this adapter \(NVIDIA H200;/);
  // A matrix feature, if a later wgpu offers one, is named instead.
  const withMatrix = collect(
    parseLines(JSON.stringify({ ...line, features: ["subgroup-matrix", "subgroups"] })),
    meta,
  );
  assert.match(adapterLine(withMatrix)!, /Matrix features offered: subgroup-matrix\. Limits:/);
  // No report: no line, and null fields.
  const none = collect([], meta);
  assert.equal(none.adapter_features, null);
  assert.equal(none.adapter_limits, null);
  assert.equal(adapterLine(none), null);
});
