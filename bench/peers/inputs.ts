/**
 * The inputs every system of the peer comparison reads, so all start from the same numbers: the data
 * folder holds
 *
 *   setup.json          {config, B, T, hyper, seed}: the model, the batch shape, AdamW's settings
 *   init.safetensors    nanoGPT's initialisation as tforce draws it (seed), nanoGPT state_dict names,
 *                       `lm_head.weight` equal to `transformer.wte.weight`
 *   batch.json          {tokens, targets}: u32 [B][T] each, targets the tokens shifted by one
 *   matmul_N.f32        A then B, f32 [N, N] row-major each, uniform in [-1, 1)
 *
 * Making them is pure and deterministic ({@linkcode makeInputs}); {@linkcode writeInputs} stores them and
 * {@linkcode readSetup} / {@linkcode readMatmul} read them back in a Deno peer.
 *
 * @module
 */
import { decodeSafetensors, encodeSafetensors } from "../../src/io/safetensors.ts";
import type { GPTConfig } from "../../src/model/config.ts";
import { initParams } from "../../src/model/init.ts";
import { paramLayout, paramSpecs } from "../../src/model/params.ts";
import { Rng } from "../../src/util/rng.ts";

/** AdamW after global-norm clipping, as nanoGPT's shakespeare_char (decay on >= 2-D tensors only). */
export interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number;
}

/** The training workload: model, batch shape, optimizer, seed. */
export interface TrainSetup {
  config: GPTConfig;
  B: number;
  T: number;
  hyper: Hyper;
  seed: number;
}

/** The step the comparison trains: 2 layers, 4 heads, C 128, T 64, B 8, vocabulary 65, no bias or dropout. */
export const PEER_SETUP: TrainSetup = {
  config: { n_layer: 2, n_head: 4, n_embd: 128, block_size: 64, vocab_size: 65, bias: false, dropout: 0 },
  B: 8,
  T: 64,
  hyper: { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 },
  seed: 1,
};

/** "L=2 NH=4 C=128 T=64 B=8 V=65". */
export function describeSetup(s: TrainSetup): string {
  const c = s.config;
  return `L=${c.n_layer} NH=${c.n_head} C=${c.n_embd} T=${s.T} B=${s.B} V=${c.vocab_size}`;
}

/** The files of the data folder, as bytes or text. */
export interface PeerInputs {
  /** File name -> contents. */
  files: Map<string, Uint8Array | string>;
}

/** Name of the matmul input file for size N. */
export function matmulFile(n: number): string {
  return `matmul_${n}.f32`;
}

/** The initial weights as nanoGPT-named tensors (the tied head included), drawn by tforce's initialisation. */
export function initialTensors(
  s: TrainSetup,
): { name: string; shape: readonly number[]; data: Float32Array }[] {
  const { layout } = paramLayout(s.config);
  const host = initParams(s.config, layout, s.seed);
  const tensors = paramSpecs(s.config).map((p) => {
    const e = layout.get(p.name);
    return { name: p.name, shape: p.shape, data: host.slice(e.offset, e.offset + e.size) };
  });
  tensors.push({ name: "lm_head.weight", shape: tensors[0].shape, data: tensors[0].data });
  return tensors;
}

/** B rows of T+1 random tokens: inputs are the first T of each row, targets the last T. */
export function makeBatch(s: TrainSetup): { tokens: number[][]; targets: number[][] } {
  const rng = new Rng(s.seed + 1000);
  const rows = Array.from(
    { length: s.B },
    () => Array.from({ length: s.T + 1 }, () => rng.int(s.config.vocab_size)),
  );
  return { tokens: rows.map((r) => r.slice(0, s.T)), targets: rows.map((r) => r.slice(1)) };
}

/** A then B for an N³ product, uniform in [-1, 1), from a seed of their own. */
export function makeMatmul(n: number): Float32Array {
  const rng = new Rng(0x5eed + n);
  return Float32Array.from({ length: 2 * n * n }, () => 2 * rng.uniform() - 1);
}

/** Every input file for `setup` and the matmul sizes. */
export function makeInputs(setup: TrainSetup, sizes: readonly number[]): PeerInputs {
  const files = new Map<string, Uint8Array | string>();
  files.set("setup.json", JSON.stringify(setup));
  files.set(
    "init.safetensors",
    encodeSafetensors(initialTensors(setup), { config: JSON.stringify(setup.config) }),
  );
  files.set("batch.json", JSON.stringify(makeBatch(setup)));
  for (const n of sizes) {
    const m = makeMatmul(n);
    files.set(matmulFile(n), new Uint8Array(m.buffer, m.byteOffset, m.byteLength));
  }
  return { files };
}

/** Writes the inputs into `dir` (created). */
export async function writeInputs(dir: string, inputs: PeerInputs): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, data] of inputs.files) {
    if (typeof data === "string") await Deno.writeTextFile(`${dir}/${name}`, data);
    else await Deno.writeFile(`${dir}/${name}`, data);
  }
}

/** The training inputs as a Deno peer reads them. */
export interface LoadedSetup extends TrainSetup {
  /** nanoGPT name -> data (lm_head.weight dropped: it is wte). */
  weights: Map<string, Float32Array>;
  /** Shapes by name. */
  shapes: Map<string, readonly number[]>;
  /** Input ids [B·T], row-major. */
  tokens: Int32Array;
  /** Target ids [B·T]. */
  targets: Int32Array;
}

/** Reads setup.json, init.safetensors and batch.json from `dir`. */
export async function readSetup(dir: string): Promise<LoadedSetup> {
  const setup = JSON.parse(await Deno.readTextFile(`${dir}/setup.json`)) as TrainSetup;
  const file = decodeSafetensors(await Deno.readFile(`${dir}/init.safetensors`), "init.safetensors");
  const weights = new Map<string, Float32Array>(), shapes = new Map<string, readonly number[]>();
  for (const [name, t] of file.tensors) {
    if (name === "lm_head.weight") continue;
    weights.set(name, t.data);
    shapes.set(name, t.shape);
  }
  const batch = JSON.parse(await Deno.readTextFile(`${dir}/batch.json`)) as ReturnType<typeof makeBatch>;
  return {
    ...setup,
    weights,
    shapes,
    tokens: Int32Array.from(batch.tokens.flat()),
    targets: Int32Array.from(batch.targets.flat()),
  };
}

/** A and B of the N³ product from `dir`. */
export async function readMatmul(dir: string, n: number): Promise<{ a: Float32Array; b: Float32Array }> {
  const bytes = await Deno.readFile(`${dir}/${matmulFile(n)}`);
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return { a: all.slice(0, n * n), b: all.slice(n * n) };
}
