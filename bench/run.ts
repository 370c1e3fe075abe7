/**
 * `deno task bench [--large] [--iters N] [names...]`: runs the kernel benchmarks and prints JSON lines.
 * Default sizes fit lavapipe on a CI machine; `--large` uses real-GPU shapes. Names filter by module
 * (e.g. `deno task bench matmul gelu`).
 *
 * `deno task bench --profile [--large] [--iters N] [--dtype float16] [--bytes]`: per-kernel GPU time of one
 * whole training step (bench/profile.ts), largest first; `--iters` sets the number of trials; `--bytes`
 * only records the step and lists the bytes each kernel binds and the dispatch count (no timing).
 *
 * `deno task bench --table [--large] [--iters N] [names...]`: the same benchmarks, printed as one Markdown table
 * at the end (what CI prints after the tests; timings are reported, never judged).
 *
 * `deno task bench --all [--large] [--iters N] [--out FILE] [names...]`: every benchmark (or the named
 * modules), the step's profile in float32 and float16, and the adapter's features and limits, into one
 * JSON file, by default `bench/results/<adapter>.json` (bench/all.ts). `deno task bench` may write only
 * under bench/results; for another FILE run `deno run --allow-read=. --allow-env --allow-write=FILE
 * bench/run.ts --all --out FILE`.
 */
import { parseArgs } from "node:util";
import { createGpu } from "../src/gpu/device.ts";
import { type BenchResult, resultsTable, timeCase } from "./harness.ts";
import { runProfile } from "./profile.ts";
import { type Precision, PRECISIONS } from "../src/model/config.ts";
import { benchModules as modules } from "./modules.ts";
import { benchAll, defaultOut } from "./all.ts";

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        large: { type: "boolean", default: false },
        iters: { type: "string" },
        profile: { type: "boolean", default: false },
        dtype: { type: "string" },
        bytes: { type: "boolean", default: false },
        all: { type: "boolean", default: false },
        table: { type: "boolean", default: false },
        out: { type: "string" },
      },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 2;
  }
  const itersArg = args.values.iters;
  if (itersArg !== undefined && !(Number.isInteger(Number(itersArg)) && Number(itersArg) >= 1)) {
    console.error(`bench: --iters must be a positive integer (got '${itersArg}')`);
    return 2;
  }
  if (args.values.all && (args.values.profile || args.values.bytes || args.values.dtype !== undefined)) {
    console.error(
      "bench: --all runs the profiles itself (float32 and float16); drop --profile, --bytes, --dtype",
    );
    return 2;
  }
  if (args.values.out !== undefined && !args.values.all) {
    console.error("bench: --out goes with --all");
    return 2;
  }
  if (args.values.profile) {
    if (args.positionals.length) {
      console.error(`bench: --profile profiles the training step and takes no benchmark names`);
      return 2;
    }
    const dtype = (args.values.dtype ?? "float32") as Precision;
    if (!PRECISIONS.includes(dtype)) {
      console.error(`bench: --dtype must be ${PRECISIONS.join(" or ")} (got '${dtype}')`);
      return 2;
    }
    const gpu = await createGpu();
    await runProfile(gpu, {
      large: args.values.large!,
      trials: itersArg === undefined ? undefined : Number(itersArg),
      dtype,
      bytesOnly: args.values.bytes,
    });
    return 0;
  }
  const names = args.positionals.length ? args.positionals : Object.keys(modules);
  const unknown = names.filter((n) => !(n in modules));
  if (unknown.length) {
    console.error(`bench: unknown benchmark '${unknown[0]}' (have: ${Object.keys(modules).join(", ")})`);
    return 2;
  }
  const gpu = await createGpu();
  console.error(`# adapter: ${gpu.description}`);
  const iters = Number(itersArg ?? (args.values.large ? 20 : 3));
  if (args.values.all) {
    const out = args.values.out ?? defaultOut(gpu.description);
    const r = await benchAll(gpu, {
      large: args.values.large!,
      iters,
      modules: Object.fromEntries(names.map((n) => [n, modules[n]])),
      out,
      args: Deno.args,
    });
    console.error(
      `# bench --all: ${r.benchmarks.length} cases, ${Object.keys(r.profiles).length} profiles, ` +
        `${r.errors.length} failed parts; wrote ${out}`,
    );
    return r.errors.length ? 1 : 0;
  }
  const results: BenchResult[] = [];
  for (const n of names) {
    for (const c of await modules[n](gpu, args.values.large!)) {
      const r = await timeCase(gpu, c, iters);
      if (args.values.table) results.push(r);
      else console.log(JSON.stringify(r));
    }
  }
  if (args.values.table) console.log(`${gpu.description}\n\n${resultsTable(results)}`);
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
