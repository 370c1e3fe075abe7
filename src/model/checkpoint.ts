/**
 * Checkpoints: the model as safetensors under nanoGPT's state_dict names and layouts (F32, with
 * `lm_head.weight` equal to `transformer.wte.weight`), so nanoGPT's `GPT.load_state_dict` accepts it;
 * `__metadata__` holds `config` (the GPTConfig fields as JSON) and `tokenizer` (its JSON).
 *
 * The optimizer state (AdamW moments per parameter, step, RNG streams) goes in a second file beside
 * the model. Every write is atomic (temp file, fsync, rename).
 *
 * Reading ({@linkcode loadModel}, {@linkcode decodeCheckpoint}) also takes what nanoGPT and PyTorch write:
 * nanoGPT's `ckpt.pt` (a `torch.save` zip, told apart by its magic bytes, not its name; src/model/nanogpt.ts)
 * and a state_dict saved as safetensors without tforce's metadata (the shape then comes from the tensors
 * and the number of heads, the tokenizer from nanoGPT's meta.pkl or GPT-2's vocabulary files).
 *
 * @module
 */
import type { ArenaLayout } from "../gpu/buffers.ts";
import { type Tokenizer, tokenizerFromJSON } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { decodeSafetensors, encodeSafetensors, type SafetensorsFile } from "../io/safetensors.ts";
import { type GPTConfig, validateConfig } from "./config.ts";
import { paramSpecs } from "./params.ts";
import { InputError } from "../util/errors.ts";
import { isZip } from "../io/zip.ts";
import { isLegacyTorch } from "../io/torch.ts";
import { findTokenizer, isFile, readNanoGptCheckpoint } from "./nanogpt.ts";
import { fromHfGpt2Tensors, HF_GPT2_FILES, HF_GPT2_SOURCE, hfGpt2Config } from "./hf_gpt2.ts";

/** A loaded model checkpoint. */
export interface ModelCheckpoint {
  /** The model's shape. */
  config: GPTConfig;
  /** The tokenizer the model was trained with. */
  tokenizer: Tokenizer;
  /** Weights by nanoGPT name (no lm_head: it is wte). */
  weights: Map<string, Float32Array>;
  /** Other metadata entries (e.g. step, val_loss). */
  metadata: Record<string, string>;
}

const CONFIG_KEYS = ["n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "dropout"] as const;

/** Serialises the parameter arena image `host` (laid out by `layout`) as a nanoGPT state_dict. */
export function encodeModel(
  config: GPTConfig,
  tokenizer: Tokenizer,
  layout: ArenaLayout,
  host: Float32Array,
  extra: Record<string, string> = {},
): Uint8Array {
  return encodeSafetensors(...modelTensors(config, tokenizer, layout, host, extra));
}

/** The tensors and metadata of a model checkpoint, for writers that add more tensors. */
export function modelTensors(
  config: GPTConfig,
  tokenizer: Tokenizer,
  layout: ArenaLayout,
  host: Float32Array,
  extra: Record<string, string> = {},
): [{ name: string; shape: readonly number[]; data: Float32Array }[], Record<string, string>] {
  const tensors = paramSpecs(config).map((p) => {
    const e = layout.get(p.name);
    return { name: p.name, shape: p.shape, data: host.subarray(e.offset, e.offset + e.size) };
  });
  const wte = tensors[0];
  tensors.push({ name: "lm_head.weight", shape: wte.shape, data: wte.data });
  const cfg: Record<string, unknown> = {};
  for (const k of CONFIG_KEYS) cfg[k] = config[k];
  if (config.activation !== undefined && config.activation !== "gelu") cfg.activation = config.activation;
  return [tensors, {
    ...extra,
    format: "pt",
    config: JSON.stringify(cfg),
    tokenizer: JSON.stringify(tokenizer.toJSON()),
  }];
}

/** Writes a model checkpoint atomically. */
export async function saveModel(
  path: string,
  config: GPTConfig,
  tokenizer: Tokenizer,
  layout: ArenaLayout,
  host: Float32Array,
  extra: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeModel(config, tokenizer, layout, host, extra));
}

/** Parses and checks a model checkpoint; every problem is a one-line {@linkcode InputError} naming the file. */
export function decodeModel(bytes: Uint8Array, what = "checkpoint"): ModelCheckpoint {
  return modelFromFile(decodeSafetensors(bytes, what), what);
}

/** What {@linkcode modelFromFile} takes from elsewhere for a file (a PyTorch state_dict) without tforce's metadata. */
export interface ModelFileOptions {
  /**
   * Attention heads, for a file without `config` metadata: the rest of the shape then comes from the
   * tensors (n_layer from the highest block index, n_embd and vocab_size from wte, block_size from wpe,
   * bias from the presence of `transformer.ln_f.bias`; dropout 0). With `config`, it must agree.
   */
  nHead?: number;
  /** The tokenizer, for a file without `tokenizer` metadata (a file that has its own refuses another). */
  tokenizer?: Tokenizer;
}

/**
 * The model inside a decoded safetensors file: config and tokenizer from the metadata (or `opts`), a
 * tokenizer with exactly `vocab_size` ids, every weight present with its config's shape and finite (no
 * NaN or infinity). Tensors for which `extra(name)` is true are left for the caller. Every problem is a
 * one-line {@linkcode InputError} naming `what`.
 */
export function modelFromFile(
  file: SafetensorsFile,
  what: string,
  extra: (name: string) => boolean = () => false,
  opts: ModelFileOptions = {},
): ModelCheckpoint {
  const meta = file.metadata;
  const config = meta.config === undefined && opts.nHead !== undefined
    ? configFromShapes(file, opts.nHead, what)
    : parseConfig(meta.config, what);
  if (opts.nHead !== undefined && config.n_head !== opts.nHead) {
    throw new InputError(`${what}: its config has n_head ${config.n_head}, not the ${opts.nHead} given`);
  }
  let tokenizer: Tokenizer;
  if (meta.tokenizer === undefined) {
    if (!opts.tokenizer) throw new InputError(`${what}: metadata has no 'tokenizer'`);
    tokenizer = opts.tokenizer;
  } else if (opts.tokenizer) {
    throw new InputError(
      `${what}: the file has its own tokenizer (metadata 'tokenizer'); another is for files without one`,
    );
  } else {
    try {
      tokenizer = tokenizerFromJSON(JSON.parse(meta.tokenizer));
    } catch (e) {
      throw new InputError(`${what}: bad tokenizer metadata: ${(e as Error).message}`);
    }
  }
  // More ids than rows would index past the embedding. Fewer is a padded vocabulary (nanoGPT rounds GPT-2's
  // 50257 up to 50304 for speed): the extra rows are never reached by text, and never sampled (tokens).
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new InputError(
      `${what}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is only ${config.vocab_size}`,
    );
  }
  const weights = new Map<string, Float32Array>();
  for (const p of paramSpecs(config)) {
    const w = tensorOf(file, p.name, p.shape, what);
    checkFinite(w, p.name, what);
    weights.set(p.name, w);
  }
  const lm = file.tensors.get("lm_head.weight");
  if (lm) {
    const wte = weights.get("transformer.wte.weight")!;
    checkShape(lm.shape, [config.vocab_size, config.n_embd], "lm_head.weight", what);
    if (!lm.data.every((v, i) => Object.is(v, wte[i]))) {
      throw new InputError(
        `${what}: lm_head.weight differs from transformer.wte.weight (only a tied head is supported)`,
      );
    }
  }
  for (const name of file.tensors.keys()) {
    // nanoGPT's non-flash attention registers a causal-mask buffer "attn.bias" [1,1,T,T]: not a weight.
    if (
      !weights.has(name) && name !== "lm_head.weight" && !/^transformer\.h\.\d+\.attn\.bias$/.test(name) &&
      !extra(name)
    ) {
      throw new InputError(`${what}: unexpected tensor '${name}' for this config`);
    }
  }
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) if (k !== "config" && k !== "tokenizer") metadata[k] = v;
  return { config, tokenizer, weights, metadata };
}

/** Options for reading a checkpoint that does not hold everything tforce's own do ({@linkcode loadModel}). */
export interface LoadOptions {
  /** Attention heads of a safetensors state_dict without `config` metadata ({@linkcode ModelFileOptions}). */
  nHead?: number;
  /** The tokenizer of a file without one. */
  tokenizer?: Tokenizer;
  /** nanoGPT's meta.pkl (its char tokenizer), for a file without a tokenizer. */
  meta?: string;
  /** A folder holding GPT-2's vocab.json and merges.txt, for a file without a tokenizer. */
  vocab?: string;
  /**
   * The file's path, where {@linkcode loadModel} looks for a tokenizer the file lacks and none is given:
   * nanoGPT's data/DATASET/meta.pkl (its sample.py's rule), a meta.pkl or a vocab.json + merges.txt beside
   * the file. {@linkcode loadModel} sets it.
   */
  path?: string;
}

/**
 * Reads a model checkpoint from disk; a missing, unreadable or bad file is a one-line InputError. A
 * nanoGPT `ckpt.pt` (told by its zip magic, whatever its name) and a PyTorch state_dict in safetensors
 * are read too ({@linkcode decodeCheckpoint}).
 */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<ModelCheckpoint> {
  if (await isFolder(path)) return await loadModelFolder(path, opts);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read checkpoint (${(e as Error).message.split("\n")[0]})`);
  }
  return await decodeCheckpoint(bytes, path, { path, ...opts });
}

/**
 * The one place a checkpoint's format is told apart: a zip archive (`PK\x03\x04`) is nanoGPT's
 * `ckpt.pt` (model_args, state_dict; src/model/nanogpt.ts), anything else safetensors (tforce's own, or a
 * state_dict PyTorch saved). A file without a tokenizer takes one from `opts` or from beside `opts.path`;
 * the model may have more rows than its tokenizer has ids (a padded vocabulary, nanoGPT's 50304 for GPT-2),
 * never fewer. Every problem is a one-line {@linkcode InputError} naming `what`.
 */
export async function decodeCheckpoint(
  bytes: Uint8Array,
  what: string,
  opts: LoadOptions = {},
): Promise<ModelCheckpoint> {
  const given = opts.tokenizer !== undefined || opts.meta !== undefined || opts.vocab !== undefined;
  const tokenizerFor = async (dataset?: string) =>
    opts.tokenizer ??
      await findTokenizer(what, { meta: opts.meta, vocab: opts.vocab, path: opts.path, dataset });
  if (isZip(bytes) || isLegacyTorch(bytes)) {
    const nano = await readNanoGptCheckpoint(bytes, what);
    const tokenizer = await tokenizerFor(nano.dataset);
    return modelFromFile(nano.file, what, undefined, { nHead: opts.nHead, tokenizer });
  }
  const file = decodeSafetensors(bytes, what);
  const own = file.metadata.tokenizer !== undefined;
  const tokenizer = own && !given ? undefined : await tokenizerFor();
  return modelFromFile(file, what, undefined, { nHead: opts.nHead, tokenizer });
}

/**
 * A model folder: Hugging Face's GPT-2 layout (config.json, model.safetensors, vocab.json, merges.txt;
 * src/model/hf_gpt2.ts) or a tforce run folder (its model.safetensors).
 */
async function loadModelFolder(dir: string, opts: LoadOptions): Promise<ModelCheckpoint> {
  if (!await isFile(`${dir}/config.json`)) {
    if (await isFile(`${dir}/model.safetensors`)) return await loadModel(`${dir}/model.safetensors`, opts);
    throw new InputError(
      `${dir}: a folder without ${HF_GPT2_FILES.slice(0, 2).join(" + ")} (Hugging Face's GPT-2) or ` +
        `model.safetensors (a tforce run)`,
    );
  }
  const read = async (name: string) => {
    try {
      return await Deno.readFile(`${dir}/${name}`);
    } catch (e) {
      throw new InputError(`${dir}: cannot read ${name} (${(e as Error).message.split("\n")[0]})`);
    }
  };
  const config = hfGpt2Config(new TextDecoder().decode(await read("config.json")), `${dir}/config.json`);
  const what = `${dir}/model.safetensors`;
  const stored = decodeSafetensors(await read("model.safetensors"), what);
  const metadata = { config: JSON.stringify(config), source: HF_GPT2_SOURCE };
  const file = { tensors: fromHfGpt2Tensors(stored, what), metadata };
  // A tokenizer given wins; else the folder's own vocab.json + merges.txt.
  const tokenizer = opts.tokenizer ?? await findTokenizer(dir, { meta: opts.meta, vocab: opts.vocab ?? dir });
  return modelFromFile(file, what, undefined, { nHead: opts.nHead, tokenizer });
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false; // reading the path names the problem
  }
}

/** The weights of a parameter-arena image laid out by `layout`, by name (views into `host`, no copy). */
export function arenaToWeights(layout: ArenaLayout, host: Float32Array): Map<string, Float32Array> {
  return new Map(layout.entries.map((e) => [e.name, host.subarray(e.offset, e.offset + e.size)]));
}

/** Copies checkpoint weights into a parameter-arena image laid out by `layout`. */
export function weightsToArena(weights: Map<string, Float32Array>, layout: ArenaLayout): Float32Array {
  const host = new Float32Array(layout.totalFloats);
  for (const e of layout.entries) {
    const w = weights.get(e.name);
    if (!w || w.length !== e.size) {
      throw new Error(`checkpoint: tensor '${e.name}' missing or of the wrong size`);
    }
    host.set(w, e.offset);
  }
  return host;
}

function parseConfig(json: string | undefined, what: string): GPTConfig {
  if (json === undefined) {
    throw new InputError(
      `${what}: metadata has no 'config' (the GPTConfig as JSON; for a PyTorch state_dict, give its number ` +
        `of heads to read the rest from the tensor shapes)`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new InputError(`${what}: metadata 'config' is not valid JSON`);
  }
  if (typeof raw !== "object" || raw === null) {
    throw new InputError(`${what}: metadata 'config' is not an object`);
  }
  const r = raw as Record<string, unknown>;
  for (const k of CONFIG_KEYS) {
    if (r[k] === undefined) throw new InputError(`${what}: config has no '${k}'`);
  }
  const config = {
    n_layer: r.n_layer,
    n_head: r.n_head,
    n_embd: r.n_embd,
    block_size: r.block_size,
    vocab_size: r.vocab_size,
    bias: r.bias,
    dropout: r.dropout,
    ...(r.activation !== undefined ? { activation: r.activation } : {}),
  } as GPTConfig;
  try {
    validateConfig(config);
  } catch (e) {
    throw new InputError(`${what}: ${(e as Error).message}`);
  }
  return config;
}

/** A GPTConfig from the tensor shapes of a state_dict without `config` metadata, and `nHead`. */
function configFromShapes(file: SafetensorsFile, nHead: number, what: string): GPTConfig {
  const matrix = (name: string) => {
    const t = file.tensors.get(name);
    if (!t || t.shape.length !== 2) {
      throw new InputError(`${what}: no 'config' metadata, and no 2-D '${name}' to read the shape from`);
    }
    return t.shape;
  };
  const [vocab_size, n_embd] = matrix("transformer.wte.weight");
  const [block_size] = matrix("transformer.wpe.weight");
  let n_layer = 0;
  for (const name of file.tensors.keys()) {
    const m = /^transformer\.h\.(\d{1,9})\./.exec(name);
    if (m) n_layer = Math.max(n_layer, Number(m[1]) + 1);
  }
  // Each block has at least 6 tensors (two LayerNorm weights and four Linear weights).
  if (n_layer === 0 || 6 * n_layer > file.tensors.size) {
    throw new InputError(
      `${what}: no 'config' metadata, and its blocks (transformer.h.N) do not give a layer count ` +
        `(highest block ${n_layer - 1}, ${file.tensors.size} tensors)`,
    );
  }
  const config: GPTConfig = {
    n_layer,
    n_head: nHead,
    n_embd,
    block_size,
    vocab_size,
    bias: file.tensors.has("transformer.ln_f.bias"),
    dropout: 0,
  };
  try {
    validateConfig(config);
  } catch (e) {
    throw new InputError(`${what}: ${(e as Error).message}`);
  }
  return config;
}

function checkShape(got: readonly number[], want: readonly number[], name: string, what: string): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw new InputError(`${what}: tensor '${name}' has shape [${got}] but the config needs [${want}]`);
  }
}

function tensorOf(file: SafetensorsFile, name: string, shape: readonly number[], what: string): Float32Array {
  const t = file.tensors.get(name);
  if (!t) throw new InputError(`${what}: missing tensor '${name}'`);
  checkShape(t.shape, shape, name, what);
  return t.data;
}

/** Refuses a tensor holding NaN or an infinity, naming it and the index of the first such value. */
function checkFinite(data: Float32Array, name: string, what: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // v - v is 0 for every finite v, NaN for NaN and both infinities.
    if (v - v !== 0) {
      throw new InputError(
        `${what}: tensor '${name}' holds ${v} at index ${i} of ${data.length} (weights must be finite)`,
      );
    }
  }
}
