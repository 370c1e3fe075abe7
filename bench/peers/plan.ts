/**
 * The pure parts of the peer comparison (bench/peers.ts): its command line, the round-robin order, the
 * statistics, the agreement checks and the ratio table. Nothing here touches a process or a file.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The systems compared, tforce first (the baseline of every ratio). */
export const SYSTEMS = ["tforce", "jax-js", "tfjs-webgpu", "torch-netlib", "torch-openblas"] as const;
/** One of {@linkcode SYSTEMS}. */
export type SystemName = typeof SYSTEMS[number];

/** What a run does. */
export interface PeersOptions {
  /** Matmul sizes N (products N³). */
  sizes: number[];
  /** Rounds of the timed workloads; each round visits every system once per workload. */
  rounds: number;
  /** Optimizer steps timed per system per round. */
  steps: number;
  /** Steps from the shared initial weights whose losses are compared across systems (untimed). */
  checkSteps: number;
  /** The systems to run (tforce always among them). */
  systems: SystemName[];
  /** Scratch folder for the npm install, OpenBLAS and the shared inputs. */
  scratch: string;
  /** Where peers.md and peers.jsonl go; null: print only. */
  outDir: string | null;
}

/** Defaults; `--quick` is the CI size (a few minutes on 2 cores). */
export const FULL = { sizes: [512, 1024], rounds: 5, steps: 3, checkSteps: 10 } as const;
/** `--quick`: smaller products, fewer rounds and steps. */
export const QUICK = { sizes: [256, 512], rounds: 3, steps: 2, checkSteps: 5 } as const;

/** The usage text. */
export const USAGE =
  `usage: deno task bench:peers [--quick] [--sizes N,N] [--rounds R] [--steps S] [--check-steps K]
                         [--systems ${SYSTEMS.join(",")}] [--scratch DIR] [--out DIR | --no-write]

Installs pinned TF.js and jax-js from npm into the scratch folder (default /tmp/tforce-peers), OpenBLAS
from Debian beside them, and compares tforce with them and PyTorch on the CPU: f32 A·B at each size and
one AdamW training step of a small GPT (same weights and batch everywhere; the first steps' losses must
agree). Prints one JSON line per system and workload and a ratio table (other time / tforce time), and
writes both to bench/results/peers.{md,jsonl} unless --no-write.
  --quick          sizes ${
    QUICK.sizes.join(",")
  }, ${QUICK.rounds} rounds, ${QUICK.steps} steps, ${QUICK.checkSteps} check steps
                   (default: sizes ${
    FULL.sizes.join(",")
  }, ${FULL.rounds} rounds, ${FULL.steps} steps, ${FULL.checkSteps} check steps)`;

function positiveInt(flag: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer (got '${v}')`);
  return n;
}

/** Parses the command line; throws an Error whose message is one line for the user. */
export function parsePeersArgs(args: string[]): PeersOptions | "help" {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      sizes: { type: "string" },
      rounds: { type: "string" },
      steps: { type: "string" },
      "check-steps": { type: "string" },
      systems: { type: "string" },
      scratch: { type: "string", default: "/tmp/tforce-peers" },
      out: { type: "string", default: "bench/results" },
      "no-write": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const base = values.quick ? QUICK : FULL;
  const sizes = values.sizes === undefined
    ? [...base.sizes]
    : values.sizes.split(",").map((s) => positiveInt("sizes", s.trim(), 0));
  const systems = values.systems === undefined
    ? [...SYSTEMS]
    : values.systems.split(",").map((s) => s.trim()) as SystemName[];
  const unknown = systems.find((s) => !SYSTEMS.includes(s));
  if (unknown !== undefined) throw new Error(`unknown system '${unknown}' (have: ${SYSTEMS.join(", ")})`);
  if (!systems.includes("tforce")) throw new Error("--systems must include tforce (the baseline)");
  return {
    sizes,
    rounds: positiveInt("rounds", values.rounds, base.rounds),
    steps: positiveInt("steps", values.steps, base.steps),
    checkSteps: positiveInt("check-steps", values["check-steps"], base.checkSteps),
    systems: SYSTEMS.filter((s) => systems.includes(s)),
    scratch: values.scratch!,
    outDir: values["no-write"] ? null : values.out!,
  };
}

/** Products per timed matmul request: about 1 GFLOP, at least 2 and at most 16. */
export function repsFor(n: number): number {
  return Math.min(16, Math.max(2, Math.round(2 ** 30 / (2 * n ** 3))));
}

/** `items` rotated left by `round` (round-robin: each round another system goes first). */
export function rotate<T>(items: readonly T[], round: number): T[] {
  const k = items.length ? round % items.length : 0;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** The median (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Largest |a - b| / |b| over the common length (b the baseline); Infinity when the lengths differ. */
export function maxRelDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || !a.length) return Infinity;
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));
}

/** Largest |a - b| over the common length; Infinity when the lengths differ. */
export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || !a.length) return Infinity;
  return Math.max(...a.map((x, i) => Math.abs(x - b[i])));
}

/** Losses agree when every step is within this relative difference of tforce's (nanogpt_check.py's f32 bound). */
export const LOSS_TOLERANCE = 1e-5;

/** Probed entries of an N³ product agree within this absolute difference (f32 sums of N terms of |x| < 1). */
export function probeTolerance(n: number): number {
  return 1e-5 * n;
}

/** One system's result on one workload. */
export interface PeerResult {
  system: SystemName;
  /** The system's version. */
  version: string;
  /** "matmul" or "train_step". */
  workload: string;
  /** e.g. "M=N=K=512" or "L=2 NH=4 C=128 T=64 B=8 V=65". */
  shape: string;
  /** Median over the rounds of ms per product / step. */
  ms: number;
  /** Every round's ms. */
  rounds: number[];
  /** Matmul: 2N³ / median time. */
  gflops?: number;
  /** Training step: B·T / median time. */
  tokens_per_s?: number;
  /** Agreement with tforce (probe entries or losses): the largest difference and whether it is within bounds. */
  agreement?: { max_diff: number; kind: "abs" | "rel"; ok: boolean };
  /** Training step: the untimed check steps' losses (the first steps from the shared weights). */
  check_losses?: number[];
  /** The device it ran on. */
  device: string;
}

/** "12.3" with 3 significant digits at most, for tables. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return x.toPrecision(3);
}

/**
 * The ratio table in Markdown: one row per workload, one column per system; each cell the median time,
 * the throughput and the ratio other / tforce (higher: slower than tforce). Missing cells are "-".
 */
export function ratioTable(results: readonly PeerResult[]): string {
  const systems = SYSTEMS.filter((s) => results.some((r) => r.system === s));
  const keys = [...new Set(results.map((r) => `${r.workload}\u0000${r.shape}`))];
  const head = systems.map((s) => {
    const v = results.find((r) => r.system === s)?.version;
    return v ? `${s} ${v}` : s;
  });
  const lines = [
    `| workload | ${head.join(" | ")} |`,
    `| --- | ${systems.map(() => "---").join(" | ")} |`,
  ];
  for (const key of keys) {
    const [workload, shape] = key.split("\u0000");
    const row = results.filter((r) => r.workload === workload && r.shape === shape);
    const base = row.find((r) => r.system === "tforce");
    const cells = systems.map((s) => {
      const r = row.find((x) => x.system === s);
      if (!r) return "-";
      const rate = r.gflops !== undefined
        ? `, ${fmt(r.gflops)} GFLOP/s`
        : r.tokens_per_s !== undefined
        ? `, ${fmt(r.tokens_per_s)} tok/s`
        : "";
      const ratio = base ? ` (x${(r.ms / base.ms).toFixed(2)})` : "";
      const bad = r.agreement && !r.agreement.ok ? " DISAGREES" : "";
      return `${fmt(r.ms)} ms${rate}${ratio}${bad}`;
    });
    lines.push(`| ${workload} ${shape} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}
