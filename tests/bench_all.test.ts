/**
 * `deno task bench --all`: one JSON file per adapter with the adapter's features and limits, the
 * benchmark lines and the step's profiles (bench/all.ts), at CI sizes on whatever adapter the tests get.
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import { type AllResults, benchAll, defaultOut } from "../bench/all.ts";
import { benchModules } from "../bench/modules.ts";

Deno.test("bench --all: adapter report, benchmark lines and both profiles in one file", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce_bench_all_" });
  try {
    const out = `${dir}/sub/results.json`; // the folder is made
    const buffers = (gpu.device as { createBuffer: unknown }).createBuffer;
    const r = await benchAll(gpu, {
      large: false,
      iters: 1,
      modules: { gelu: benchModules.gelu },
      out,
      args: ["--all", "gelu"],
      trials: 1,
    });
    assert.equal(
      (gpu.device as { createBuffer: unknown }).createBuffer,
      buffers,
      "createBuffer left wrapped",
    );
    const file: AllResults = JSON.parse(await Deno.readTextFile(out));
    assert.deepEqual(file, JSON.parse(JSON.stringify(r)));
    assert.deepEqual(file.errors, []);
    assert.equal(file.large, false);
    assert.deepEqual(file.args, ["--all", "gelu"]);
    assert.equal(file.software, gpu.software);
    assert.ok(file.adapter && file.adapter.webgpu_adapter.length > 0);
    assert.ok(Array.isArray(file.adapter.features));
    assert.equal(file.adapter.features.includes("shader-f16"), gpu.features.f16);
    assert.ok(file.adapter.limits.maxStorageBufferBindingSize > 0, JSON.stringify(file.adapter.limits));
    assert.ok(file.benchmarks.length > 0 && file.benchmarks.every((l) => l.bench.startsWith("gelu")));
    assert.ok(file.benchmarks.every((l) => l.ms > 0));
    assert.deepEqual(Object.keys(file.profiles), gpu.features.f16 ? ["float32", "float16"] : ["float32"]);
    assert.ok(file.profiles.float32!.one_pass_ms > 0 && file.profiles.float32!.kernels.length > 0);
    if (gpu.features.f16) assert.match(file.profiles.float16!.shape, /float16/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench --all: a part that fails is recorded and the rest still runs", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "tforce_bench_all_" });
  try {
    const out = `${dir}/results.json`;
    const r = await benchAll(gpu, {
      large: false,
      iters: 1,
      modules: {
        broken: () => Promise.reject(new Error("no such kernel\nsecond line")),
        gather: benchModules.gather,
      },
      out,
      trials: 1,
    });
    assert.deepEqual(r.errors, [{ part: "broken", error: "no such kernel" }]);
    assert.ok(r.benchmarks.some((l) => l.bench.startsWith("gather")));
    assert.deepEqual(JSON.parse(await Deno.readTextFile(out)).errors, r.errors);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench --all: the default file is named after the adapter", () => {
  assert.equal(
    defaultOut("llvmpipe (LLVM 15.0.6, 256 bits)"),
    "bench/results/llvmpipe-llvm-15-0-6-256-bits.json",
  );
  assert.equal(defaultOut("NVIDIA H200"), "bench/results/nvidia-h200.json");
  assert.equal(defaultOut("()"), "bench/results/adapter.json");
});

Deno.test("bench: --all and --out usage errors exit 2 before opening a GPU", async () => {
  for (
    const [args, want] of [
      [["--all", "--profile"], /--all runs the profiles itself/],
      [["--all", "--dtype", "float16"], /--all runs the profiles itself/],
      [["--out", "/tmp/x.json"], /--out goes with --all/],
      [["--all", "nosuch"], /unknown benchmark 'nosuch'/],
    ] as const
  ) {
    const p = await new Deno.Command("deno", {
      args: ["run", "--lock=deno.dev.lock", "--allow-read=.", "--allow-env", "bench/run.ts", ...args],
      env: { XDG_RUNTIME_DIR: "/tmp" },
      stdout: "null",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(p.stderr);
    assert.equal(p.code, 2, `${args.join(" ")}: ${err}`);
    assert.match(err, want);
  }
});

Deno.test("variant comparisons: a bad --iters exits 2 with one line naming it, before opening a GPU", async () => {
  for (const script of ["attention", "layernorm", "matmul", "optimizer"]) {
    for (const value of ["0", "x"]) {
      const p = await new Deno.Command("deno", {
        args: [
          "run",
          "--lock=deno.dev.lock",
          "--allow-read=.",
          "--allow-env",
          `bench/${script}.ts`,
          "--iters",
          value,
        ],
        env: { XDG_RUNTIME_DIR: "/tmp" },
        stdout: "null",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(p.stderr);
      assert.equal(p.code, 2, `${script} --iters ${value}: ${err}`);
      assert.equal(err, `--iters must be a positive integer (got '${value}')\n`);
    }
  }
});
