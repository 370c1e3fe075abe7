/**
 * `deno run --allow-read --allow-write=README.md bench/h200_table.ts FIGURES.json [--readme]`: the README's
 * table of issue 5's H200 targets from a bench/collect.ts figures file (bench/results/h200.json), each row
 * with our figure, the PyTorch/cuBLAS reference, the ratio and whether the target is met. Prints the table;
 * with `--readme` also writes it between the `<!-- h200:begin -->` and `<!-- h200:end -->` lines of
 * README.md (atomically). A dry-run file (CI sizes) is refused: its figures are not GPU figures.
 *
 * @module
 */
import type { H200Figures, ShapeRow } from "./collect.ts";
import { writeFileAtomic } from "../src/io/atomic.ts";

/** One row: what, ours, the reference, the ratio (higher is better for us) and the target's verdict. */
interface Row {
  what: string;
  ours: string;
  reference: string;
  ratio: number | null;
  target: string;
  met: boolean | null;
}

const fmt = (x: number | null, digits = 1, unit = ""): string =>
  x === null ? "—" : `${x.toFixed(digits)}${unit ? ` ${unit}` : ""}`;

/** ratio >= bar: met; either missing: unknown (null). */
const atLeast = (r: number | null, bar: number): boolean | null => r === null ? null : r >= bar;

const div = (a: number | null, b: number | null): number | null =>
  a !== null && b !== null && b > 0 ? a / b : null;

/** The model-shape matmul with the lowest ratio to cuBLAS (null when none has one). */
function worstShape(rows: readonly ShapeRow[]): ShapeRow | null {
  let worst: ShapeRow | null = null;
  for (const r of rows) if (r.ratio !== null && (worst === null || r.ratio < worst.ratio!)) worst = r;
  return worst;
}

/** The rows of issue 5's targets from one run's figures. */
export function targetRows(f: H200Figures): Row[] {
  const worst = worstShape(f.model_matmuls);
  const sdpaRatio = div(f.torch_sdpa_1024_ms, f.attention_1024_ms);
  const val = f.shakespeare_val_loss, t147 = f.shakespeare_seconds_to_147;
  return [
    {
      what: "f32 matmul 4096³ vs cuBLAS SGEMM (TF32 off)",
      ours: fmt(f.matmul_4096_tflops, 1, "TFLOP/s"),
      reference: fmt(f.cublas_4096_tflops, 1, "TFLOP/s"),
      ratio: f.ratios.matmul_4096_vs_cublas,
      target: "≥ 0.8",
      met: atLeast(f.ratios.matmul_4096_vs_cublas, 0.8),
    },
    {
      what: "f32 matmul 8192³ vs cuBLAS SGEMM",
      ours: fmt(f.matmul_8192_tflops, 1, "TFLOP/s"),
      reference: fmt(f.cublas_8192_tflops, 1, "TFLOP/s"),
      ratio: f.ratios.matmul_8192_vs_cublas,
      target: "≥ 0.8",
      met: atLeast(f.ratios.matmul_8192_vs_cublas, 0.8),
    },
    {
      what: `model-shape matmuls, the worst${worst ? ` (${worst.bench}, ${worst.shape})` : ""}`,
      ours: fmt(worst?.tflops ?? null, 1, "TFLOP/s"),
      reference: fmt(worst?.cublas_tflops ?? null, 1, "TFLOP/s"),
      ratio: worst?.ratio ?? null,
      target: "≥ 0.6",
      met: atLeast(worst?.ratio ?? null, 0.6),
    },
    {
      what: "shakespeare_char training step, float32 vs PyTorch fp32 + SDPA",
      ours: fmt(f.step_ms, 1, "ms"),
      reference: fmt(f.torch_fp32_step_ms, 1, "ms"),
      ratio: f.ratios.step_vs_torch_fp32,
      target: "≥ 1.0 (aim 1.3)",
      met: atLeast(f.ratios.step_vs_torch_fp32, 1),
    },
    {
      what: "the same step, float16 mixed precision vs PyTorch TF32",
      ours: fmt(f.f16_step_ms, 1, "ms"),
      reference: fmt(f.torch_tf32_step_ms, 1, "ms"),
      ratio: div(f.torch_tf32_step_ms, f.f16_step_ms),
      target: "> 1.0",
      met: f.f16_step_ms === null || f.torch_tf32_step_ms === null
        ? null
        : f.f16_step_ms < f.torch_tf32_step_ms,
    },
    {
      what: "PyTorch bf16 step (reference only)",
      ours: "",
      reference: fmt(f.torch_bf16_step_ms, 1, "ms"),
      ratio: null,
      target: "",
      met: null,
    },
    {
      what: "attention forward+backward, T 1024, HS 64 (B 8, NH 12) vs SDPA fp32",
      ours: fmt(f.attention_1024_ms, 2, "ms"),
      reference: fmt(f.torch_sdpa_1024_ms, 2, "ms"),
      ratio: sdpaRatio,
      target: "≥ 0.5 (within 2×)",
      met: atLeast(sdpaRatio, 0.5),
    },
    {
      what: "shakespeare_char recipe: best val loss, training seconds (evaluation included)",
      ours: `${fmt(val, 4)} in ${fmt(f.shakespeare_train_seconds, 0, "s")}`,
      reference: "nanoGPT: 1.4697 in about 3 min (A100)",
      ratio: null,
      target: "≤ 1.47 within 180 s",
      met: val === null ? null : val <= 1.47 && t147 !== null && t147 <= 180,
    },
  ];
}

/** The Markdown table (with a line naming the run) for the README. */
export function h200Table(f: H200Figures): string {
  const verdict = (m: boolean | null) => m === null ? "—" : m ? "met" : "not met";
  const lines = [
    `H200 figures of ${f.date.slice(0, 10)} (Deno ${f.deno}${
      f.gpu ? `, ${f.gpu}` : ""
    }; bench/results/h200.json):`,
    "",
    "| figure | tforce | reference | ratio | target | |",
    "| --- | --- | --- | --- | --- | --- |",
    ...targetRows(f).map((r) =>
      `| ${r.what} | ${r.ours} | ${r.reference} | ${
        r.ratio === null ? "—" : r.ratio.toFixed(2)
      } | ${r.target} | ${verdict(r.met)} |`
    ),
  ];
  if (f.shakespeare_seconds_to_147 !== null || f.shakespeare_eval_seconds !== null) {
    lines.push(
      "",
      `Recipe: val ≤ 1.47 first reached at ${fmt(f.shakespeare_seconds_to_147, 0, "s")}; evaluation and ` +
        `checkpoints took ${fmt(f.shakespeare_eval_seconds, 0, "s")} of the run.`,
    );
  }
  const adapter = adapterLine(f);
  if (adapter) lines.push("", adapter);
  return lines.join("\n");
}

/**
 * What WebGPU offered on the run's adapter (bench/adapter.ts), or null without that report: the features
 * that decide the f16 target (tensor cores need a cooperative- or subgroup-matrix feature) and the limits
 * that size the model.
 */
export function adapterLine(f: H200Figures): string | null {
  const features = f.adapter_features;
  if (!features) return null;
  const matrix = features.filter((x) => /matrix|cooperative/i.test(x));
  const limit = (name: string, unit: number, suffix: string) => {
    const v = f.adapter_limits?.[name];
    return v === undefined ? null : `${name} ${Math.round(v / unit)} ${suffix}`;
  };
  const limits = [
    limit("maxStorageBufferBindingSize", 2 ** 20, "MiB"),
    limit("maxBufferSize", 2 ** 20, "MiB"),
    limit("maxComputeWorkgroupStorageSize", 2 ** 10, "KiB"),
  ].filter((x) => x !== null);
  return `WebGPU on this adapter (${f.adapter ?? "unknown"}; bench/adapter.ts): ` +
    `${features.length ? features.map((x) => `\`${x}\``).join(", ") : "no optional features"}. ` +
    (matrix.length
      ? `Matrix features offered: ${matrix.join(", ")}. `
      : "No cooperative- or subgroup-matrix feature, so no tensor cores; " +
        `\`subgroups\` ${features.includes("subgroups") ? "offered" : "not offered"}. `) +
    (limits.length ? `Limits: ${limits.join(", ")}.` : "");
}

const BEGIN = "<!-- h200:begin -->", END = "<!-- h200:end -->";

/** `readme` with the text between its BEGIN and END marker lines replaced by `table`. */
export function replaceTable(readme: string, table: string): string {
  const a = readme.indexOf(BEGIN), b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no '${BEGIN}' ... '${END}' section`);
  return `${readme.slice(0, a + BEGIN.length)}\n${table}\n${readme.slice(b)}`;
}

async function main(args: string[]): Promise<number> {
  const file = args.find((a) => !a.startsWith("--"));
  if (!file) {
    console.error(
      "usage: deno run --allow-read --allow-write=README.md bench/h200_table.ts FIGURES.json [--readme]",
    );
    return 2;
  }
  let f: H200Figures;
  try {
    f = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    console.error(`h200_table: cannot read ${file}: ${(e as Error).message.split("\n")[0]}`);
    return 1;
  }
  if (f.dry || /llvmpipe|lavapipe|swiftshader/i.test(f.adapter ?? "")) {
    console.error(`h200_table: ${file} is a dry run or from a software adapter, not GPU figures`);
    return 1;
  }
  const table = h200Table(f);
  console.log(table);
  if (args.includes("--readme")) {
    await writeFileAtomic("README.md", replaceTable(await Deno.readTextFile("README.md"), table));
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
