/**
 * nanoGPT's files in: the `ckpt.pt` its train.py saves (`torch.save({'model': state_dict, 'optimizer':
 * ..., 'model_args': {...}, 'iter_num': N, 'best_val_loss': x, 'config': {...}}, path)`), and the char
 * tokenizer's `meta.pkl` its prepare.py writes (`{'vocab_size': 65, 'itos': {0: '\n', ...}, 'stoi':
 * {...}}`). Both are pickles, read by the restricted unpickler (src/io/pickle.ts): nothing in them runs.
 *
 * The model's shape is `model_args`; its weights are the state_dict (the `_orig_mod.` prefix a
 * torch.compile'd model adds is stripped; nanoGPT's causal-mask buffers `attn.bias` are skipped), as
 * float32, float16 or bfloat16, converted to f32. The optimizer state is never read. The tokenizer is
 * found as nanoGPT's sample.py finds it (`data/DATASET/meta.pkl`, DATASET from the checkpoint's config),
 * or beside the checkpoint, or given.
 *
 * @module
 */
import { type GPTConfig, validateConfig } from "./config.ts";
import { paramSpecs } from "./params.ts";
import { aTypeName, PyDict, type PyValue, quoted, unpickle } from "../io/pickle.ts";
import { TorchFile, TorchTensor } from "../io/torch.ts";
import type { Dtype, SafetensorsFile, StoredTensor } from "../io/safetensors.ts";
import { type Tokenizer, tokenizerFromJSON } from "../data/tokenizer.ts";
import { loadGpt2Tokenizer } from "../data/gpt2.ts";
import { InputError } from "../util/errors.ts";

/** A nanoGPT checkpoint's model, as the tensors and metadata of a file tforce reads. */
export interface NanoGptModel {
  /**
   * The state_dict's tensors in f32 under tforce's (nanoGPT's) names, with metadata `config` (model_args
   * as JSON, when the file has them) and `iter_num`, `best_val_loss` when present.
   */
  file: SafetensorsFile;
  /** The model's shape from `model_args` (absent for a bare state_dict). */
  config?: GPTConfig;
  /** `config['dataset']` of the run, where nanoGPT's sample.py looks for meta.pkl (data/DATASET/). */
  dataset?: string;
}

const DTYPES: Readonly<Record<string, Dtype>> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float64: "F64",
};

/**
 * Reads a nanoGPT `ckpt.pt` (a `torch.save` zip archive). A bare state_dict (`torch.save(model.state_dict())`)
 * is read too, without config (then the caller reads the shape from the tensors). Every problem is a
 * one-line {@linkcode InputError} naming `what`.
 */
export async function readNanoGptCheckpoint(bytes: Uint8Array, what: string): Promise<NanoGptModel> {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  const torch = await TorchFile.read(bytes, what);
  const root = torch.root;
  if (!(root instanceof PyDict)) return fail(`holds ${aTypeName(root)}, not nanoGPT's checkpoint dict`);
  const bare = !root.has("model") && [...root.values()].some((v) => v instanceof TorchTensor);
  const sd = bare ? root : root.get("model");
  if (!(sd instanceof PyDict)) {
    return fail(`has no 'model' state_dict (keys: ${[...root.keys()].map(String).slice(0, 8).join(", ")})`);
  }
  let config: GPTConfig | undefined;
  if (!bare) config = modelArgs(root.get("model_args"), what);
  // The state_dict's tensors by tforce's name.
  const named = new Map<string, TorchTensor>();
  for (const [k, v] of sd) {
    if (typeof k !== "string") return fail(`state_dict has ${aTypeName(k)} key`);
    const name = k.startsWith("_orig_mod.") ? k.slice("_orig_mod.".length) : k;
    if (/^transformer\.h\.\d+\.attn\.bias$/.test(name)) continue; // the causal mask of non-flash attention
    if (!(v instanceof TorchTensor)) return fail(`state_dict[${quoted(k)}] is ${aTypeName(v)}, not a tensor`);
    if (named.has(name)) fail(`state_dict holds ${quoted(name)} twice (with and without '_orig_mod.')`);
    named.set(name, v);
  }
  // Shapes first, against the config, so that nothing is converted for a file that cannot load.
  if (config) {
    const want = new Map(paramSpecs(config).map((p) => [p.name, p.shape]));
    want.set("lm_head.weight", [config.vocab_size, config.n_embd]);
    for (const [name, t] of named) {
      const shape = want.get(name);
      if (!shape) fail(`unexpected tensor ${quoted(name)} for model_args ${JSON.stringify(config)}`);
      if (t.shape.length !== shape!.length || t.shape.some((d, i) => d !== shape![i])) {
        fail(`tensor ${quoted(name)} has shape [${t.shape}] but model_args need [${shape}]`);
      }
    }
  }
  const tensors = new Map<string, StoredTensor>();
  for (const [name, t] of named) {
    const data = await torch.float32(t, name);
    tensors.set(name, { dtype: DTYPES[t.dtype], shape: [...t.shape], data });
  }
  const metadata: Record<string, string> = { format: "pt", source: "nanoGPT ckpt.pt" };
  if (config) metadata.config = JSON.stringify(config);
  const iter = root.get("iter_num");
  if (!bare && typeof iter === "number" && Number.isSafeInteger(iter)) metadata.iter_num = String(iter);
  const best = bare ? undefined : root.get("best_val_loss");
  if (typeof best === "number") metadata.best_val_loss = String(best);
  else if (best instanceof TorchTensor && best.numel === 1) {
    try {
      metadata.best_val_loss = String((await torch.float32(best, "best_val_loss"))[0]);
    } catch {
      // a best_val_loss we cannot read is not needed
    }
  }
  const cfg = bare ? undefined : root.get("config");
  const dataset = cfg instanceof PyDict ? cfg.get("dataset") : undefined;
  return { file: { tensors, metadata }, config, dataset: typeof dataset === "string" ? dataset : undefined };
}

/** nanoGPT's model_args as a GPTConfig; a missing or ill-typed field is a one-line InputError. */
function modelArgs(args: PyValue | undefined, what: string): GPTConfig {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  if (!(args instanceof PyDict)) return fail(`has no 'model_args' dict (nanoGPT's train.py saves one)`);
  const get = (k: string): PyValue => {
    const v = args.get(k);
    if (v === undefined) fail(`model_args has no ${quoted(k)}`);
    return v!;
  };
  const config: GPTConfig = {
    n_layer: get("n_layer") as number,
    n_head: get("n_head") as number,
    n_embd: get("n_embd") as number,
    block_size: get("block_size") as number,
    vocab_size: get("vocab_size") as number,
    bias: get("bias") as boolean,
    dropout: get("dropout") as number,
  };
  for (const [k, v] of Object.entries(config)) {
    if (k === "bias" ? typeof v !== "boolean" : typeof v !== "number") {
      fail(`model_args ${quoted(k)} is ${aTypeName(v)} (${quoted(String(v))})`);
    }
  }
  try {
    validateConfig(config);
  } catch (e) {
    fail(`model_args: ${(e as Error).message}`);
  }
  return config;
}

/**
 * The char tokenizer of nanoGPT's `meta.pkl` (`{'vocab_size', 'itos': {id: char}, 'stoi': {char: id}}`):
 * tforce's char tokenizer with the same ids, which needs itos in code point order (what prepare.py's
 * `sorted(set(data))` gives). Every problem is a one-line {@linkcode InputError} naming `what`.
 */
export function charTokenizerFromMeta(bytes: Uint8Array, what: string): Tokenizer {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  const meta = unpickle(bytes, {
    what,
    holder: "a meta.pkl",
    allowed: "only dicts, lists, tuples, strings and numbers",
  });
  if (!(meta instanceof PyDict)) return fail(`holds ${aTypeName(meta)}, not nanoGPT's meta dict`);
  const itos = meta.get("itos");
  if (!(itos instanceof PyDict)) {
    return fail(
      `has no 'itos' dict (only a char vocabulary's meta.pkl has one; keys: ${
        [...meta.keys()].map(String).slice(0, 8).join(", ")
      })`,
    );
  }
  const n = itos.size;
  const vocab: string[] = [];
  for (let id = 0; id < n; id++) {
    const ch = itos.get(id);
    if (ch === undefined) fail(`itos has ${n} entries but no id ${id}`);
    if (typeof ch !== "string" || [...ch].length !== 1) {
      fail(
        `itos[${id}] is ${
          typeof ch === "string" ? JSON.stringify(ch) : `${aTypeName(ch!)}`
        }, not one character`,
      );
    }
    vocab.push(ch as string);
  }
  const size = meta.get("vocab_size");
  if (size !== undefined && size !== n) fail(`vocab_size is ${String(size)} but itos has ${n} characters`);
  const stoi = meta.get("stoi");
  if (stoi instanceof PyDict) {
    vocab.forEach((ch, id) => {
      if (stoi.get(ch) !== id) {
        fail(`stoi[${JSON.stringify(ch)}] is ${String(stoi.get(ch))}, but itos gives ${id}`);
      }
    });
  }
  try {
    return tokenizerFromJSON({ type: "char", vocab });
  } catch (e) {
    return fail(
      `itos is not a vocabulary tforce's char tokenizer holds (${(e as Error).message}; ` +
        `nanoGPT's prepare.py sorts the characters by code point)`,
    );
  }
}

/** Where to find a nanoGPT run's tokenizer when its file does not hold one. */
export interface TokenizerSources {
  /** nanoGPT's meta.pkl (a char vocabulary). */
  meta?: string;
  /** A folder holding GPT-2's vocab.json and merges.txt. */
  vocab?: string;
  /** The checkpoint's path: its folder is searched (meta.pkl, vocab.json + merges.txt). */
  path?: string;
  /** The run's dataset: data/DATASET/meta.pkl is searched, as nanoGPT's sample.py does. */
  dataset?: string;
}

/**
 * The tokenizer of a checkpoint without one: `meta` or `vocab` when given, else the first of nanoGPT's
 * `data/DATASET/meta.pkl` (from the working directory and from the checkpoint folder's parent, nanoGPT's
 * root), a `meta.pkl` beside the checkpoint, or a vocab.json + merges.txt beside it. Throws a one-line
 * {@linkcode InputError} naming the places searched when none is found.
 */
export async function findTokenizer(what: string, src: TokenizerSources): Promise<Tokenizer> {
  if (src.meta !== undefined) return charTokenizerFromMeta(await readOrFail(src.meta, "meta.pkl"), src.meta);
  if (src.vocab !== undefined) return await loadGpt2Tokenizer(src.vocab);
  const looked: string[] = [];
  const dir = src.path === undefined
    ? undefined
    : src.path.includes("/")
    ? src.path.slice(0, src.path.lastIndexOf("/")) || "/"
    : ".";
  const metas: string[] = [];
  if (src.dataset !== undefined && /^[\w.-]+$/.test(src.dataset) && src.dataset !== "..") {
    metas.push(`data/${src.dataset}/meta.pkl`);
    if (dir !== undefined) metas.push(`${dir}/../data/${src.dataset}/meta.pkl`);
  }
  if (dir !== undefined) metas.push(`${dir}/meta.pkl`);
  for (const m of metas) {
    looked.push(m);
    const bytes = await readIfThere(m);
    if (bytes) return charTokenizerFromMeta(bytes, m);
  }
  if (dir !== undefined) {
    looked.push(`${dir}/vocab.json + merges.txt`);
    if (await isFile(`${dir}/vocab.json`) && await isFile(`${dir}/merges.txt`)) {
      return await loadGpt2Tokenizer(dir);
    }
  }
  throw new InputError(
    `${what}: has no tokenizer, and none was found (${
      looked.length ? `looked for ${looked.join(", ")}` : "nothing to look beside"
    }); ` +
      `give nanoGPT's meta.pkl or a folder of GPT-2's vocab.json + merges.txt`,
  );
}

async function readOrFail(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message.split("\n")[0];
    throw new InputError(`${what} '${path}': ${why}`);
  }
}

async function readIfThere(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw new InputError(`'${path}': cannot read (${(e as Error).message.split("\n")[0]})`);
  }
}

/** Whether `path` is a file (false for a folder or nothing there). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
