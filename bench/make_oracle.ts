/**
 * Writes the committed order-k chain file the experiment's second oracle report uses
 * (reports/oracles/order3.json), deterministically:
 *
 *   deno run --allow-write=reports/oracles bench/make_oracle.ts [--out FILE] [--order K] [--seed N]
 *
 * The chain over the alphabet " aeinrst": after a context x_1..x_k (x_k the newest), every character has a
 * floor of `floor` per mille (so every history is possible and the oracle's KL to a model finite); the
 * rest goes to two characters, a primary and a secondary one that depend on the last two, x_{k-1} x_k, the
 * primary's share (55% to 90%) set by x_1, the oldest. So most of what can be predicted comes from the last
 * two characters, which a small model learns in a few hundred steps, and the rest needs all k: the law is
 * order k, not less. Whole per mille, so each row's decimals sum to 1 exactly.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rng } from "../src/util/rng.ts";

/** Settings of {@linkcode orderKChainJson}. */
export interface ChainSpec {
  /** k >= 1. */
  order: number;
  /** The characters, one code point each (at least 2). */
  alphabet: string[];
  /** Seed of the primary and secondary characters and the shares. */
  seed: number;
  /** Per-mille floor of every character (default 4). */
  floor?: number;
}

/** The chain of the module doc as the JSON text `loadOracleFile` reads (one context per line). */
export function orderKChainJson(spec: ChainSpec): string {
  const { order: k, alphabet, seed } = spec;
  const A = alphabet.length, floor = spec.floor ?? 4;
  if (!(k >= 1 && A >= 2 && floor * A < 1000)) throw new Error("make_oracle: bad order, alphabet or floor");
  const rng = new Rng(seed);
  const primary = Array.from({ length: A * A }, () => rng.int(A));
  const secondary = Array.from({ length: A * A }, (_, pair) => {
    const c = rng.int(A - 1); // any character but the pair's primary
    return c >= primary[pair] ? c + 1 : c;
  });
  const share = Array.from({ length: A }, () => 0.55 + 0.35 * rng.uniform());
  const lines: string[] = [];
  for (let x = 0; x < A ** k; x++) {
    const digit = (i: number) => Math.floor(x / A ** (k - i)) % A; // x_i, i = 1..k
    const last = digit(k), prev = k >= 2 ? digit(k - 1) : last, oldest = digit(1);
    const key = Array.from({ length: k }, (_, i) => alphabet[digit(i + 1)]).join("");
    const counts = new Array(A).fill(floor);
    const rest = 1000 - floor * A, first = Math.round(rest * share[oldest]);
    counts[primary[prev * A + last]] += first;
    counts[secondary[prev * A + last]] += rest - first;
    lines.push(`    ${JSON.stringify(key)}: [${counts.map((n) => n / 1000).join(", ")}]`);
  }
  return `{\n  "order": ${k},\n  "alphabet": ${JSON.stringify(alphabet)},\n  "probs": {\n${
    lines.join(",\n")
  }\n  }\n}\n`;
}

/** The committed file's settings. */
export const ORDER3: ChainSpec = { order: 3, alphabet: [..." aeinrst"], seed: 3, floor: 4 };

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, order: { type: "string" }, seed: { type: "string" } },
  });
  const spec = { ...ORDER3 };
  if (values.order !== undefined) spec.order = Number(values.order);
  if (values.seed !== undefined) spec.seed = Number(values.seed);
  const out = values.out ?? `reports/oracles/order${spec.order}.json`;
  await Deno.writeTextFile(out, orderKChainJson(spec));
  console.log(`wrote ${out}`);
}
