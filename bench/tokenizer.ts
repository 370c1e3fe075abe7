/**
 * Tokenizer throughput on the CPU, in MB/s of UTF-8 input: BPE training and encoding, char and word
 * encoding. The text is a deterministic 1 MB pseudo-English (a Zipf law over 30k syllable words, with
 * commas, full stops, numbers, newlines and some non-ASCII words), so BPE sees a realistic number of
 * distinct chunks. Prints one JSON line `{bench, mbps}` per case.
 *
 * `deno run bench/tokenizer.ts [--large]` (large: 10 MB of encoding).
 */
import { trainTokenizer } from "../src/data/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import { ONSETS } from "../src/data/language.ts";

/** Builds about `bytes` bytes of deterministic Zipf-distributed pseudo-English. */
export function benchText(bytes: number, seed = 1): string {
  const rng = new Rng(seed);
  const on = ONSETS; // the generated language's
  const vo = ["a", "e", "i", "o", "u", "ea", "ou", "é", "ü"];
  const co = ["", "", "", "n", "r", "s", "t", "ng", "ll"];
  const lexicon: string[] = [];
  const seen = new Set<string>();
  while (lexicon.length < 30_000) {
    let w = "";
    const syl = 1 + rng.int(4);
    for (let s = 0; s < syl; s++) {
      w += on[rng.int(on.length)] + vo[rng.int(vo.length)] + co[rng.int(co.length)];
    }
    if (!seen.has(w)) seen.add(w), lexicon.push(w);
  }
  const cdf = new Float64Array(lexicon.length);
  let acc = 0;
  for (let i = 0; i < lexicon.length; i++) cdf[i] = acc += 1 / (i + 2.7);
  const parts: string[] = [];
  let n = 0, cap = true;
  while (n < bytes) {
    const u = rng.uniform() * acc;
    let lo = 0, hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    let w = lexicon[lo];
    if (cap) w = w[0].toUpperCase() + w.slice(1);
    if (rng.uniform() < 0.02) w = String(rng.int(2000));
    const r = rng.uniform();
    const sep = r < 0.07 ? ". " : r < 0.08 ? ".\n" : r < 0.14 ? ", " : r < 0.145 ? "; " : " ";
    cap = sep[0] === ".";
    parts.push(w + sep);
    n += w.length + sep.length;
  }
  return parts.join("");
}

function mbps(bytes: number, ms: number): number {
  return Number((bytes / 1e6 / (ms / 1e3)).toFixed(3));
}

function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
}

/** Runs the tokenizer benchmarks and prints JSON lines `{bench, mbps}`; `large` encodes 10 MB. */
export async function runTokenizerBench(large = false): Promise<void> {
  await Promise.resolve();
  const text = benchText(1_000_000);
  const bytes = new TextEncoder().encode(text).length;
  const big = large ? text.repeat(10) : text;
  const bigBytes = large ? 10 * bytes : bytes;
  for (const v of [512, 4096]) {
    const [tok, ms] = timed(() => trainTokenizer("bpe", text, { vocabSize: v }));
    console.log(JSON.stringify({ bench: `bpe_train_v${v}`, mbps: mbps(bytes, ms) }));
    // First pass fills the per-chunk cache; the second is the steady state.
    const [ids, cold] = timed(() => tok.encode(big));
    console.log(JSON.stringify({ bench: `bpe_encode_cold_v${v}`, mbps: mbps(bigBytes, cold) }));
    const [, warm] = timed(() => tok.encode(big));
    console.log(JSON.stringify({ bench: `bpe_encode_v${v}`, mbps: mbps(bigBytes, warm) }));
    const [, dec] = timed(() => tok.decode(ids));
    console.log(JSON.stringify({ bench: `bpe_decode_v${v}`, mbps: mbps(bigBytes, dec) }));
  }
  const char = trainTokenizer("char", text);
  const [, cms] = timed(() => char.encode(big));
  console.log(JSON.stringify({ bench: "char_encode", mbps: mbps(bigBytes, cms) }));
  const word = trainTokenizer("word", text, { vocabSize: 8192 });
  const [, wms] = timed(() => word.encode(big));
  console.log(JSON.stringify({ bench: "word_encode_v8192", mbps: mbps(bigBytes, wms) }));
}

if (import.meta.main) await runTokenizerBench(Deno.args.includes("--large"));
