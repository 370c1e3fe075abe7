/**
 * `deno run --allow-read=DIR --allow-write=DIR bench/collect.ts DIR [--dry]`: assembles the figures of one
 * GPU run (bench/h200.sh) into DIR/h200.json and prints it. `--dry` or a DIR/dry.txt marks a dry run.
 *
 * Reads every `*.jsonl` file in DIR and keeps the lines that parse as JSON objects: `deno task bench` lines
 * ({"bench", "shape", "ms", ...}), `--profile` lines ({"profile": "step" | "kernel", ...}),
 * `.gpu/torch_mm.py` lines ({"torch": "fp32", "n", "tflops"}), `.gpu/torch_gpt.py` lines ({"torch":
 * "fp32-flash", "ms_per_step"}) and bench/h200.sh's own PyTorch lines ({"torch": "fp32_shape" |
 * "sdpa_fp32", ...}) and bench/adapter.ts's line ({"webgpu_adapter", "features", "limits"}). Optional: DIR/gpu.txt (nvidia-smi's name and driver), DIR/status.txt ("name rc"
 * per part of the run), DIR/shakespeare.json ({"val_loss", "train_seconds", ...} of a training run) or, when
 * that is absent, DIR/recipe/log.jsonl (the log of `deno task train --preset shakespeare-char`, summarised
 * by {@linkcode recipeSummary}).
 * Every figure that is missing is null, so a run without PyTorch still gives a valid file.
 *
 * @module
 */

/** One matmul product at one shape and precision under each tuning variant (bench/matmul.ts tuneSuffix). */
export interface TuningRow {
  /** The case name without its tuning suffix, e.g. "matmul_forward" or "matmul_forward_f16math". */
  bench: string;
  /** "M=4096 K=4096 N=4096". */
  shape: string;
  /** TFLOP/s by variant: default, prefetch, bk32, prefetch_bk32, tile64, unroll (null when not measured). */
  tflops: {
    default: number | null;
    prefetch: number | null;
    bk32: number | null;
    prefetch_bk32: number | null;
    tile64: number | null;
    unroll: number | null;
  };
  /** The fastest measured variant. */
  best: string;
}

/** One parsed JSON line. */
type Line = Record<string, unknown>;

/** A model-shape matmul next to cuBLAS at the same shape. */
export interface ShapeRow {
  /** Our benchmark name, e.g. "matmul_backward_weight". */
  bench: string;
  /** "M=16384 K=384 N=1152". */
  shape: string;
  /** Our TFLOP/s. */
  tflops: number;
  /** cuBLAS TFLOP/s (TF32 off) at the same form and shape, or null. */
  cublas_tflops: number | null;
  /** tflops / cublas_tflops, or null. */
  ratio: number | null;
}

/** The assembled figures (the keys of bench/results/h200.json, issue 5, then extras). */
export interface H200Figures {
  matmul_4096_tflops: number | null;
  cublas_4096_tflops: number | null;
  matmul_8192_tflops: number | null;
  cublas_8192_tflops: number | null;
  step_ms: number | null;
  torch_fp32_step_ms: number | null;
  torch_tf32_step_ms: number | null;
  torch_bf16_step_ms: number | null;
  f16_step_ms: number | null;
  shakespeare_val_loss: number | null;
  shakespeare_train_seconds: number | null;
  /** The part of shakespeare_train_seconds spent evaluating (200 batches every 250 steps) and checkpointing. */
  shakespeare_eval_seconds: number | null;
  /** Training seconds (evaluations included) at the first evaluation with val loss <= 1.47 (issue 5's bar). */
  shakespeare_seconds_to_147: number | null;
  date: string;
  deno: string;
  /** True for a dry run at CI sizes (never commit such a file as GPU figures). */
  dry: boolean;
  /** WebGPU adapter description. */
  adapter: string | null;
  /** Every optional feature the adapter offers (bench/adapter.ts), sorted. */
  adapter_features: string[] | null;
  /** Every limit the adapter reports (bench/adapter.ts). */
  adapter_limits: Record<string, number> | null;
  /** nvidia-smi's name and driver, when present. */
  gpu: string | null;
  /** The shape step_ms was measured at. */
  step_shape: string | null;
  step_tokens_per_s: number | null;
  /** Wall clock per step, one submit per step back to back (from the profile). */
  step_wall_ms: number | null;
  /** The whole step as one pass, from the profile's timestamps. */
  step_profile_ms: number | null;
  step_dispatches: number | null;
  torch_fp32_manual_step_ms: number | null;
  /** Square matmuls with f16 operands: f32 arithmetic (f16) and per-tile f16 sums (f16math). */
  matmul_f16_4096_tflops: number | null;
  matmul_f16_8192_tflops: number | null;
  matmul_f16math_4096_tflops: number | null;
  matmul_f16math_8192_tflops: number | null;
  /** 4096^3 forward with the tuning knobs (bench/matmul.ts `_pf`, `_bk32`, `_pf_bk32`). */
  matmul_4096_tuned_tflops: { prefetch: number | null; bk32: number | null; prefetch_bk32: number | null };
  /** The float32 step without split-K weight gradients (bench step --large on a hardware GPU). */
  step_nosplit_ms: number | null;
  /** The float32 step with attention's dS recomputed in dq (the default stores it at this shape). */
  step_recompute_ds_ms: number | null;
  /** The float32 step with a vocabulary of 8192, the head whole and in 4 chunks of rows (GPTShape.headRows). */
  step_vocab8192_ms: number | null;
  step_vocab8192_chunks_ms: number | null;
  /** The step with the matmul tuning knobs over the whole model, float32 and float16 (bench/step.ts). */
  step_tuned_ms: Record<
    "prefetch" | "bk32" | "prefetch_bk32" | "unroll",
    { float32: number | null; float16: number | null }
  >;
  /** The float16 step as one pass, from its profile's timestamps. */
  f16_step_profile_ms: number | null;
  /** Ratios: ours / cuBLAS for matmuls (target >= 0.8), torch / ours for the step (target >= 1). */
  ratios: {
    matmul_4096_vs_cublas: number | null;
    matmul_8192_vs_cublas: number | null;
    step_vs_torch_fp32: number | null;
    step_vs_torch_tf32: number | null;
    attention_1024_vs_sdpa: number | null;
  };
  /**
   * Attention forward+backward at T 1024, HS 64 (B 8, NH 12): ours (the faster backward: dS stored or
   * recomputed, each also given) and PyTorch SDPA fp32.
   */
  attention_1024_ms: number | null;
  attention_1024_stored_ds_ms: number | null;
  attention_1024_recompute_ds_ms: number | null;
  torch_sdpa_1024_ms: number | null;
  /** The model-shape matmuls against cuBLAS at the same shapes (target >= 0.6). */
  model_matmuls: ShapeRow[];
  /** Per product and shape with tuning variants: TFLOP/s of each, and the fastest (to pick defaults). */
  matmul_tuning: TuningRow[];
  /** The profile's five largest kernels: name, ms per step, share of the per-pass sum. */
  top_kernels: { kernel: string; count: number; ms: number; share: number }[];
  /** Exit status of each part of the run (from status.txt). */
  parts: Record<string, number>;
}

const num = (x: unknown): number | null => typeof x === "number" && Number.isFinite(x) ? x : null;
const r3 = (x: number | null): number | null => x === null ? null : Math.round(x * 1000) / 1000;
const ratio = (a: number | null, b: number | null): number | null =>
  a !== null && b !== null && b > 0 ? r3(a / b) : null;

/** Parses JSON-object lines out of text, skipping anything else (warnings, task banners). */
export function parseLines(text: string): Line[] {
  const out: Line[] = [];
  for (const raw of text.split("\n")) {
    const s = raw.trim();
    if (!s.startsWith("{")) continue;
    try {
      const v = JSON.parse(s);
      if (v && typeof v === "object" && !Array.isArray(v)) out.push(v as Line);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

/** Assembles the figures from parsed lines and the run's metadata. */
export function collect(
  lines: readonly Line[],
  meta: {
    dry: boolean;
    deno: string;
    date: string;
    gpu?: string | null;
    adapter?: string | null;
    parts?: Record<string, number>;
    shakespeare?: {
      val_loss?: unknown;
      train_seconds?: unknown;
      eval_seconds?: unknown;
      seconds_to_147?: unknown;
    } | null;
  },
): H200Figures {
  const bench = (name: string, shape?: string) =>
    lines.find((l) => l.bench === name && (shape === undefined || l.shape === shape));
  const tflops = (l: Line | undefined) => {
    const g = num(l?.gflops);
    return g === null ? null : r3(g / 1000);
  };
  const square = (n: number, suffix = "") => tflops(bench(`matmul_forward${suffix}`, `M=${n} K=${n} N=${n}`));
  const cublas = (n: number) => num(lines.find((l) => l.torch === "fp32" && l.n === n)?.tflops);
  const torchStep = (mode: string) => num(lines.find((l) => l.torch === mode)?.ms_per_step);
  const step = bench("train_step");
  const stepMs = num(step?.ms);
  // Profiles of the float32 step (the float16 one, profile_f16, is summarised apart).
  const isF16 = (l: Line) => String(l.shape ?? "").includes("float16");
  const profile = lines.find((l) => l.profile === "step" && !isF16(l));
  const profile16 = lines.find((l) => l.profile === "step" && isF16(l));
  const kernels = lines.filter((l) => l.profile === "kernel" && !isF16(l))
    .map((l) => ({
      kernel: String(l.kernel),
      count: num(l.count) ?? 0,
      ms: num(l.ms) ?? 0,
      share: num(l.share) ?? 0,
    }))
    .sort((a, b) => b.ms - a.ms);

  const torchShape = (form: string, shape: string) =>
    num(
      lines.find((l) => l.torch === "fp32_shape" && l.form === form && `M=${l.M} K=${l.K} N=${l.N}` === shape)
        ?.tflops,
    );
  const modelMatmuls: ShapeRow[] = [];
  for (const l of lines) {
    const name = String(l.bench ?? "");
    if (!name.startsWith("matmul_") || name === "matmul_backward_bias") continue;
    const shape = String(l.shape);
    const m = /^M=(\d+) K=(\d+) N=(\d+)$/.exec(shape);
    if (!m || (m[1] === m[2] && m[2] === m[3])) continue; // square sizes are reported above
    const form = name.replace(/^matmul_/, "").replace(/(_pf)?(_bk32)?(_t64)?(_ur)?$/, "").replace(
      /_f16(math)?$/,
      "",
    )
      .replace(/_split.*$/, "").replace(/_bias$/, "");
    const ours = tflops(l);
    if (ours === null) continue;
    const cb = torchShape(form, shape);
    modelMatmuls.push({ bench: name, shape, tflops: ours, cublas_tflops: cb, ratio: ratio(ours, cb) });
  }

  const att1024 = "B=8 T=1024 C=768 NH=12 HS=64";
  const attRecompute = num(bench("attention_forward_backward", att1024)?.ms);
  const attStored = num(bench("attention_forward_backward_ds", att1024)?.ms);
  const attMs = attRecompute === null
    ? attStored
    : attStored === null
    ? attRecompute
    : Math.min(attRecompute, attStored);
  const sdpa = num(
    lines.find((l) => l.torch === "sdpa_fp32" && l.pass === "forward_backward" && l.T === 1024 && l.HS === 64)
      ?.ms,
  );
  const report = lines.find((l) => typeof l.webgpu_adapter === "string");
  const f16 = bench("train_step_f16");
  const nosplit = bench("train_step_nosplit");
  const torchFp32 = torchStep("fp32-flash"), torchTf32 = torchStep("tf32-flash");
  const m4096 = square(4096), m8192 = square(8192), c4096 = cublas(4096), c8192 = cublas(8192);
  return {
    matmul_4096_tflops: m4096,
    cublas_4096_tflops: c4096,
    matmul_8192_tflops: m8192,
    cublas_8192_tflops: c8192,
    step_ms: stepMs,
    torch_fp32_step_ms: torchFp32,
    torch_tf32_step_ms: torchTf32,
    torch_bf16_step_ms: torchStep("bf16-flash"),
    f16_step_ms: num(f16?.ms),
    shakespeare_val_loss: num(meta.shakespeare?.val_loss),
    shakespeare_train_seconds: num(meta.shakespeare?.train_seconds),
    shakespeare_eval_seconds: num(meta.shakespeare?.eval_seconds),
    shakespeare_seconds_to_147: num(meta.shakespeare?.seconds_to_147),
    date: meta.date,
    deno: meta.deno,
    dry: meta.dry,
    adapter: typeof profile?.adapter === "string"
      ? profile.adapter
      : meta.adapter ?? (report ? String(report.webgpu_adapter) : null),
    adapter_features: Array.isArray(report?.features) ? report.features.map(String) : null,
    adapter_limits: report?.limits && typeof report.limits === "object"
      ? Object.fromEntries(
        Object.entries(report.limits as Record<string, unknown>).filter(([, v]) => typeof v === "number"),
      ) as Record<string, number>
      : null,
    gpu: meta.gpu ?? null,
    step_shape: typeof step?.shape === "string" ? step.shape : null,
    step_tokens_per_s: num(step?.tokens_per_s),
    step_wall_ms: num(profile?.wall_ms),
    step_profile_ms: num(profile?.one_pass_ms),
    step_dispatches: num(profile?.dispatches),
    torch_fp32_manual_step_ms: torchStep("fp32-manual"),
    matmul_f16_4096_tflops: square(4096, "_f16"),
    matmul_f16_8192_tflops: square(8192, "_f16"),
    matmul_f16math_4096_tflops: square(4096, "_f16math"),
    matmul_f16math_8192_tflops: square(8192, "_f16math"),
    matmul_4096_tuned_tflops: {
      prefetch: square(4096, "_pf"),
      bk32: square(4096, "_bk32"),
      prefetch_bk32: square(4096, "_pf_bk32"),
    },
    step_nosplit_ms: num(nosplit?.ms),
    step_recompute_ds_ms: num(bench("train_step_recompute_ds")?.ms),
    step_vocab8192_ms: num(bench("train_step_vocab8192")?.ms),
    step_vocab8192_chunks_ms: num(bench("train_step_vocab8192_chunks")?.ms),
    step_tuned_ms: {
      prefetch: { float32: num(bench("train_step_pf")?.ms), float16: num(bench("train_step_f16_pf")?.ms) },
      bk32: { float32: num(bench("train_step_bk32")?.ms), float16: num(bench("train_step_f16_bk32")?.ms) },
      prefetch_bk32: {
        float32: num(bench("train_step_pf_bk32")?.ms),
        float16: num(bench("train_step_f16_pf_bk32")?.ms),
      },
      unroll: { float32: num(bench("train_step_ur")?.ms), float16: num(bench("train_step_f16_ur")?.ms) },
    },
    f16_step_profile_ms: num(profile16?.one_pass_ms),
    ratios: {
      matmul_4096_vs_cublas: ratio(m4096, c4096),
      matmul_8192_vs_cublas: ratio(m8192, c8192),
      step_vs_torch_fp32: ratio(torchFp32, stepMs),
      step_vs_torch_tf32: ratio(torchTf32, stepMs),
      attention_1024_vs_sdpa: ratio(sdpa, attMs),
    },
    attention_1024_ms: attMs,
    attention_1024_stored_ds_ms: attStored,
    attention_1024_recompute_ds_ms: attRecompute,
    torch_sdpa_1024_ms: sdpa,
    model_matmuls: modelMatmuls,
    matmul_tuning: tuning(lines),
    top_kernels: kernels.slice(0, 5),
    parts: meta.parts ?? {},
  };
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function main(args: string[]): Promise<number> {
  const dir = args.find((a) => !a.startsWith("--"));
  if (!dir) {
    console.error("usage: deno run --allow-read=DIR --allow-write=DIR bench/collect.ts DIR [--dry]");
    return 2;
  }
  const lines: Line[] = [];
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".jsonl")) files.push(e.name);
  for (const f of files.sort()) lines.push(...parseLines(await Deno.readTextFile(`${dir}/${f}`)));
  const parts: Record<string, number> = {};
  for (const l of (await readOptional(`${dir}/status.txt`) ?? "").split("\n")) {
    const m = /^(\S+)\s+(-?\d+)$/.exec(l.trim());
    if (m) parts[m[1]] = Number(m[2]);
  }
  let adapter: string | null = null;
  for (const f of files) {
    const log = await readOptional(`${dir}/${f.replace(/\.jsonl$/, ".log")}`);
    adapter ??= /^# adapter: (.+)$/m.exec(log ?? "")?.[1] ?? null;
  }
  const gpu = (await readOptional(`${dir}/gpu.txt`))?.trim() || null;
  const sk = await readOptional(`${dir}/shakespeare.json`);
  const recipeLog = sk ? null : await readOptional(`${dir}/recipe/log.jsonl`);
  const figures = collect(lines, {
    // Dry: asked for, or DIR holds a dry run's marker (bench/h200.sh writes dry.txt; a merge copies it).
    dry: args.includes("--dry") || (await readOptional(`${dir}/dry.txt`)) !== null,
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    gpu,
    adapter,
    parts,
    shakespeare: sk ? JSON.parse(sk) : recipeLog ? recipeSummary(recipeLog) : null,
  });
  const text = JSON.stringify(figures, null, 2) + "\n";
  await Deno.writeTextFile(`${dir}/h200.json`, text);
  console.log(text.trimEnd());
  return 0;
}

/** Groups the matmul cases measured with tuning suffixes with their default-tuned twins. */
export function tuning(lines: readonly Line[]): TuningRow[] {
  const variants = {
    prefetch: "_pf",
    bk32: "_bk32",
    prefetch_bk32: "_pf_bk32",
    tile64: "_t64",
    unroll: "_ur",
  } as const;
  const gflops = (l: Line | undefined) => typeof l?.gflops === "number" ? r3(l.gflops / 1000) : null;
  const find = (bench: string, shape: string) => lines.find((l) => l.bench === bench && l.shape === shape);
  const rows: TuningRow[] = [];
  const seen = new Set<string>();
  for (const l of lines) {
    const name = String(l.bench ?? "");
    const m = /^(matmul_.+?)(_pf_bk32|_pf|_bk32|_t64|_ur)$/.exec(name);
    if (!m || seen.has(`${m[1]} ${l.shape}`)) continue;
    seen.add(`${m[1]} ${l.shape}`);
    const shape = String(l.shape);
    const tflops = {
      default: gflops(find(m[1], shape)),
      prefetch: gflops(find(m[1] + variants.prefetch, shape)),
      bk32: gflops(find(m[1] + variants.bk32, shape)),
      prefetch_bk32: gflops(find(m[1] + variants.prefetch_bk32, shape)),
      tile64: gflops(find(m[1] + variants.tile64, shape)),
      unroll: gflops(find(m[1] + variants.unroll, shape)),
    };
    const best = Object.entries(tflops).filter(([, v]) => v !== null).sort((a, b) => b[1]! - a[1]!)[0]?.[0];
    rows.push({ bench: m[1], shape, tflops, best: best ?? "none" });
  }
  return rows;
}

/** The figures {@linkcode recipeSummary} reads from a training log. */
export interface RecipeSummary {
  /** Best validation loss. */
  val_loss: number | null;
  /** Training seconds at the last record, evaluations included (as nanoGPT's wall-clock figure). */
  train_seconds: number | null;
  /** The part of train_seconds spent evaluating and checkpointing (logs that record `eval_s`). */
  eval_seconds: number | null;
  /** Training seconds at the first evaluation with val loss <= 1.47. */
  seconds_to_147: number | null;
  /** Steps done. */
  steps: number | null;
}

/** The figures of a training run from its log.jsonl; nulls when absent. */
export function recipeSummary(logText: string): RecipeSummary {
  const recs = parseLines(logText);
  const vals = recs.map((r) => r.val_loss).filter((v): v is number => typeof v === "number");
  const last = recs.at(-1);
  const hit = recs.find((r) => typeof r.val_loss === "number" && r.val_loss <= 1.47);
  return {
    val_loss: vals.length ? Math.min(...vals) : null,
    train_seconds: num(last?.elapsed_s),
    eval_seconds: num(last?.eval_s),
    seconds_to_147: num(hit?.elapsed_s),
    steps: num(last?.step),
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
