/** The GPU layer itself: reflected layouts, binding checks, uniforms, errors naming the kernel. */
import assert from "node:assert/strict";
import { testGpu } from "./helpers.ts";
import { createStorage, readF32, snapshotF32 } from "../src/gpu/buffers.ts";
import { GpuError } from "../src/gpu/device.ts";
import { getKernel, grid, reflectBindings, submitDispatches } from "../src/gpu/kernel.ts";
import geluSource from "../shaders/gelu.wgsl" with { type: "text" };
import { withGeluMath, withGrid } from "../src/gpu/source.ts";

const scaleShader = `
struct Dims { n: u32, scale: f32, shift: i32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<uniform> dims: Dims;
@compute @workgroup_size(64)
fn scale(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < dims.n) { out[g.x] = inp[g.x] * dims.scale + f32(dims.shift); }
}`;

Deno.test("reflectBindings reads each entry point's own bindings, kinds and uniform members", () => {
  const fwd = reflectBindings(geluSource, "gelu_forward");
  assert.deepEqual(fwd.map((b) => [b.name, b.binding, b.kind]), [
    ["out", 0, "storage"],
    ["inp", 1, "read-only-storage"],
    ["dims", 2, "uniform"],
  ]);
  const bwd = reflectBindings(geluSource, "gelu_backward");
  assert.deepEqual(bwd.map((b) => b.name), ["inp", "dims", "dinp", "dout"]);
  const s = reflectBindings(scaleShader, "scale").find((b) => b.kind === "uniform")!;
  assert.deepEqual(s.members, [
    { name: "n", offset: 0, type: "u32" },
    { name: "scale", offset: 4, type: "f32" },
    { name: "shift", offset: 8, type: "i32" },
  ]);
  assert.equal(s.size, 16);
});

Deno.test("dispatch rejects missing, extra and misnamed bindings and uniforms", async () => {
  const gpu = await testGpu();
  const k = await getKernel(gpu, { name: "scale", source: scaleShader, entryPoint: "scale" });
  const out = createStorage(gpu, "out", 16), inp = createStorage(gpu, "inp", 16);
  const u = { n: 4, scale: 2, shift: -1 };
  assert.throws(() => k.dispatch({ out }, u, [1]), /missing binding 'inp'/);
  assert.throws(() => k.dispatch({ out, inp, extra: inp }, u, [1]), /'extra' is not declared/);
  assert.throws(() => k.dispatch({ out, inp }, { n: 4, scale: 2 }, [1]), /missing uniform 'shift'/);
  assert.throws(() => k.dispatch({ out, inp }, { ...u, bogus: 1 }, [1]), /unknown uniform 'bogus'/);
  assert.throws(() => k.dispatch({ out, inp }, { ...u, n: -1 }, [1]), /not a u32/);
  assert.throws(() => k.dispatch({ out, inp }, u, [70000]), /workgroup count/);
});

Deno.test("uniforms are packed by name and Dispatch.update rewrites them between submissions", async () => {
  const gpu = await testGpu();
  const k = await getKernel(gpu, { name: "scale", source: scaleShader, entryPoint: "scale" });
  const out = createStorage(gpu, "out", 16);
  const inp = createStorage(gpu, "inp", 16, new Float32Array([1, 2, 3, 4]));
  const d = k.dispatch({ out, inp }, { n: 3, scale: 2, shift: -1 }, [1]);
  submitDispatches(gpu, [d]);
  assert.deepEqual([...await readF32(gpu, out)], [1, 3, 5, 0]);
  d.update({ scale: 0.5 });
  submitDispatches(gpu, [d]);
  assert.deepEqual([...await readF32(gpu, out)], [-0.5, 0, 0.5, 0]);
});

Deno.test("pipelines are cached by shader, entry point and constants", async () => {
  const gpu = await testGpu();
  const a = await getKernel(gpu, { name: "scale", source: scaleShader, entryPoint: "scale" });
  const b = await getKernel(gpu, { name: "scale", source: scaleShader, entryPoint: "scale" });
  assert.equal(a, b);
  const c = await getKernel(gpu, {
    name: "gelu_forward",
    source: withGrid(withGeluMath(geluSource)),
    entryPoint: "gelu_forward",
    constants: { WG: 64 },
  });
  const d = await getKernel(gpu, {
    name: "gelu_forward",
    source: withGrid(withGeluMath(geluSource)),
    entryPoint: "gelu_forward",
    constants: { WG: 128 },
  });
  assert.notEqual(c, d);
});

Deno.test("a WGSL error throws a GpuError naming the kernel and the line", async () => {
  const gpu = await testGpu();
  const bad = scaleShader.replace("dims.scale", "dims.nonexistent");
  await assert.rejects(
    getKernel(gpu, { name: "broken_scale", source: bad, entryPoint: "scale" }),
    (e: unknown) =>
      e instanceof GpuError &&
      /^broken_scale: WGSL error at line 8:\d+: .*invalid field accessor/.test(e.message),
  );
});

Deno.test("a validation error at submit is re-thrown by check() with the kernel's label", async () => {
  const gpu = await testGpu();
  const k = await getKernel(gpu, { name: "scale_small", source: scaleShader, entryPoint: "scale" });
  const out = createStorage(gpu, "out", 16), inp = createStorage(gpu, "inp", 16);
  const d = k.dispatch({ out, inp }, { n: 4, scale: 1, shift: 0 }, [1]);
  out.destroy(); // submitting work that uses a destroyed buffer is a validation error
  submitDispatches(gpu, [d]);
  await gpu.device.queue.onSubmittedWorkDone();
  assert.throws(() => gpu.check(), (e: unknown) => e instanceof GpuError && e.message.length > 0);
  gpu.check(); // cleared after being thrown once
});

Deno.test("grid folds large workgroup counts into two dimensions", () => {
  assert.deepEqual(grid(1000, 256), [4, 1]);
  const [x, y] = grid(100_000 * 256, 256);
  assert.ok(x <= 65535 && x * y >= 100_000);
});

Deno.test("snapshotF32 captures a buffer as of its call, leaving later work's errors to check()", async () => {
  const gpu = await testGpu();
  const k = await getKernel(gpu, { name: "scale_snapshot", source: scaleShader, entryPoint: "scale" });
  const buf = createStorage(gpu, "weights", 16, new Float32Array([1, 2, 3, 4]));
  const snap = snapshotF32(gpu, buf); // queued before the work below
  // Later work: a dispatch that doubles the buffer in place, then one on a destroyed buffer (an error).
  const inp = createStorage(gpu, "inp", 16, new Float32Array([1, 2, 3, 4]));
  submitDispatches(gpu, [k.dispatch({ out: buf, inp }, { n: 4, scale: 2, shift: 0 }, [1])]);
  const gone = createStorage(gpu, "gone", 16);
  const bad = k.dispatch({ out: gone, inp }, { n: 4, scale: 1, shift: 0 }, [1]);
  gone.destroy();
  submitDispatches(gpu, [bad]);
  assert.deepEqual([...await snap], [1, 2, 3, 4]);
  // readF32, by contrast, raises the destroyed buffer's validation error (and clears it).
  await assert.rejects(readF32(gpu, buf), (e: unknown) => e instanceof GpuError);
  assert.deepEqual([...await readF32(gpu, buf)], [2, 4, 6, 8]);
  // A copy that fails itself is thrown.
  const dead = createStorage(gpu, "dead", 16);
  dead.destroy();
  await assert.rejects(
    snapshotF32(gpu, dead),
    (e: unknown) => e instanceof GpuError && /dead\.snapshot/.test(String(e)),
  );
  gpu.check();
});
