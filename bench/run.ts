/**
 * `deno task bench [--large] [--iters N] [names...]`: runs the kernel benchmarks and prints JSON lines.
 * Default sizes fit lavapipe on a CI machine; `--large` uses real-GPU shapes. Names filter by module
 * (e.g. `deno task bench matmul gelu`).
 */
import { parseArgs } from "node:util";
import { createGpu } from "../src/gpu/device.ts";
import { timeCase } from "./harness.ts";
import { benchModules as modules } from "./modules.ts";

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: { large: { type: "boolean", default: false }, iters: { type: "string" } },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 2;
  }
  const names = args.positionals.length ? args.positionals : Object.keys(modules);
  const unknown = names.filter((n) => !(n in modules));
  if (unknown.length) {
    console.error(`bench: unknown benchmark '${unknown[0]}' (have: ${Object.keys(modules).join(", ")})`);
    return 2;
  }
  const gpu = await createGpu();
  console.error(`# adapter: ${gpu.description}`);
  const iters = Number(args.values.iters ?? (args.values.large ? 20 : 3));
  for (const n of names) {
    for (const c of await modules[n](gpu, args.values.large!)) {
      console.log(JSON.stringify(await timeCase(gpu, c, iters)));
    }
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
