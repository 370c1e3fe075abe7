/**
 * bench/gpu_pack.sh packs only the npm packages it names for the offline device run (bench/h200.sh runs
 * deno with --node-modules-dir=manual there). An npm import added to the engine, the benchmarks or the CLI
 * that the list lacks would fail that rare run at start-up, so the module graphs are checked here.
 */
import assert from "node:assert/strict";

/** The npm package names (scope included, version dropped) in the module graph of `root`. */
async function npmPackages(root: string): Promise<Set<string>> {
  const out = await new Deno.Command("deno", { args: ["info", "--json", root], stderr: "inherit" }).output();
  assert.equal(out.code, 0, `deno info ${root} failed`);
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: { specifier: string }[] };
  const names = new Set<string>();
  for (const { specifier } of graph.modules) {
    // e.g. "npm:/wgsl_reflect@1.6.0/wgsl_reflect.module.js", "npm:/@scope/name@1.2.3/x.js"
    const match = /^npm:\/?((?:@[^/]+\/)?[^@/]+)@/.exec(specifier);
    if (match) names.add(match[1]);
  }
  return names;
}

/** The `runtime_packages=(...)` list of bench/gpu_pack.sh. */
async function packedPackages(): Promise<string[]> {
  const script = await Deno.readTextFile(new URL("../bench/gpu_pack.sh", import.meta.url));
  const match = /^runtime_packages=\(([^)]*)\)$/m.exec(script);
  assert.ok(match, "bench/gpu_pack.sh has no runtime_packages=(...) line");
  return match[1].trim().split(/\s+/);
}

Deno.test("gpu_pack: the device run's entry points import only the npm packages gpu_pack.sh packs", async () => {
  const packed = await packedPackages();
  const used = new Set<string>();
  for (const root of ["bench/run.ts", "bench/collect.ts", "cli.ts"]) {
    for (const name of await npmPackages(root)) used.add(name);
  }
  assert.ok(used.has("wgsl_reflect"), `the graph parse found no wgsl_reflect: ${[...used]}`);
  const missing = [...used].filter((name) => !packed.includes(name));
  assert.deepEqual(missing, [], `bench/gpu_pack.sh's runtime_packages lacks ${missing.join(", ")}`);
});
