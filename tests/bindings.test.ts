/**
 * Every shader entry point is built by some dispatcher, and every dispatcher binds exactly what its
 * entry point declares (Kernel.dispatch rejects a missing or undeclared binding, so building every
 * benchmark case proves it). Each CI-sized benchmark case also runs once, so `deno task bench` keeps
 * working.
 */
import assert from "node:assert/strict";
import { WgslReflect } from "wgsl_reflect";
import { testGpu } from "./helpers.ts";
import { builtKernels } from "../src/gpu/kernel.ts";
import { benchModules } from "../bench/modules.ts";
import { timeCase } from "../bench/harness.ts";

async function entryPoints(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const f of Deno.readDir("shaders")) {
    if (!f.name.endsWith(".wgsl")) continue;
    const src = await Deno.readTextFile(`shaders/${f.name}`);
    // Shaders with `// #if` blocks or const substitutions still parse as written (both branches present).
    for (const e of new WgslReflect(src).entry.compute) {
      assert.ok(!out.has(e.name), `entry point ${e.name} is declared in ${out.get(e.name)} and ${f.name}`);
      out.set(e.name, f.name);
    }
  }
  return out;
}

Deno.test("every shader entry point is built and bound by a dispatcher; every CI benchmark runs", async () => {
  const gpu = await testGpu();
  const entries = await entryPoints();
  assert.ok(entries.size > 20, `found only ${entries.size} entry points`);
  for (const [name, build] of Object.entries(benchModules)) {
    for (const c of await build(gpu, false)) {
      const r = await timeCase(gpu, c, 1, 1);
      assert.ok(r.ms > 0 && Number.isFinite(r.ms), `${name}/${c.name}: bad time ${r.ms}`);
    }
  }
  const built = new Set((await builtKernels(gpu)).map((k) => k.spec.entryPoint));
  const unused = [...entries.keys()].filter((e) => !built.has(e));
  assert.deepEqual(unused, [], `entry points no dispatcher builds: ${unused.join(", ")}`);
});
