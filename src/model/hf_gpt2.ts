/**
 * GPT-2 as Hugging Face ships it: a folder holding `config.json`, `model.safetensors`, `vocab.json` and
 * `merges.txt` (the layout of huggingface.co/gpt2 and of `GPT2LMHeadModel.save_pretrained`).
 *
 * Hugging Face's GPT-2 names its tensors `h.{i}.attn.c_attn.weight` and so on (or with a `transformer.`
 * prefix, as `GPT2LMHeadModel` saves them), and stores the four projections of a block as Conv1D, [in, out]:
 * the transpose of nanoGPT's Linear [out, in]. Reading maps the names to nanoGPT's, transposes those four,
 * skips the attention-mask buffers (`attn.bias`, `attn.masked_bias`) and takes the head as tied to `wte`;
 * writing does the reverse. The model's shape and activation come from config.json: GPT-2's
 * `activation_function` is "gelu_new" (the tanh approximation of GELU).
 *
 * @module
 */
import { encodeSafetensors, type SafetensorsFile, type StoredTensor } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Tokenizer } from "../data/tokenizer_types.ts";
import { Gpt2Tokenizer } from "../data/gpt2.ts";
import { type Activation, type GPTConfig, validateConfig } from "./config.ts";
import { paramSpecs } from "./params.ts";
import { InputError } from "../util/errors.ts";

/** The files of a Hugging Face GPT-2 folder, in the order they are checked. */
export const HF_GPT2_FILES: readonly string[] = [
  "config.json",
  "model.safetensors",
  "vocab.json",
  "merges.txt",
];

/** The `source` metadata of a model read from such a folder. */
export const HF_GPT2_SOURCE = "Hugging Face GPT-2 folder";

/** Whether `path` is a folder in Hugging Face's GPT-2 layout (it holds a config.json). */
export async function isHfGpt2Folder(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory && (await Deno.stat(`${path}/config.json`)).isFile;
  } catch {
    return false;
  }
}

/** The weights stored as Conv1D [in, out] by Hugging Face, [out, in] (Linear) by nanoGPT. */
const CONV1D = /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** Hugging Face's buffers that are not weights: the causal mask and its fill value. */
const MASK_BUFFER = /^h\.\d+\.attn\.(bias|masked_bias)$/;

const ACTIVATIONS: Readonly<Record<string, Activation>> = { gelu_new: "gelu_new", gelu: "gelu" };

/**
 * The GPTConfig of a Hugging Face GPT-2 `config.json`, parsed. GPT-2's options that tforce's model does
 * not implement (an MLP width other than 4·n_embd, a LayerNorm epsilon other than 1e-5, untied head,
 * attention scaling variants) are refused in one line naming the field and its value. Dropout is 0, as
 * for nanoGPT's fine-tuning from GPT-2.
 */
export function hfGpt2Config(text: string, what: string): GPTConfig {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(`is not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail("is not a JSON object");
  const r = raw as Record<string, unknown>;
  const int = (key: string, fallback?: string): number => {
    const v = r[key] ?? (fallback !== undefined ? r[fallback] : undefined);
    if (v === undefined) fail(`has no ${JSON.stringify(key)}`);
    if (!Number.isInteger(v)) fail(`${JSON.stringify(key)} is ${JSON.stringify(v)}, not an integer`);
    return v as number;
  };
  const expect = (key: string, ok: (v: unknown) => boolean, want: string) => {
    if (r[key] !== undefined && !ok(r[key])) {
      fail(`${JSON.stringify(key)} is ${JSON.stringify(r[key])}; tforce's GPT-2 needs ${want}`);
    }
  };
  if (r.model_type !== undefined && r.model_type !== "gpt2") {
    fail(`model_type is ${JSON.stringify(r.model_type)}, not "gpt2"`);
  }
  const n_embd = int("n_embd");
  expect("n_inner", (v) => v === null || v === 4 * n_embd, `null or 4 * n_embd (${4 * n_embd})`);
  expect("layer_norm_epsilon", (v) => typeof v === "number" && Math.abs(v - 1e-5) <= 1e-12, "1e-5");
  expect("tie_word_embeddings", (v) => v === true, "true (a head tied to wte)");
  expect("scale_attn_weights", (v) => v === true, "true");
  expect("scale_attn_by_inverse_layer_idx", (v) => v === false, "false");
  expect("reorder_and_upcast_attn", (v) => v === false, "false");
  const act = r.activation_function ?? "gelu_new";
  const activation = typeof act === "string" ? ACTIVATIONS[act] : undefined;
  if (activation === undefined) {
    fail(`activation_function is ${JSON.stringify(act)}; tforce has "gelu_new" and "gelu"`);
  }
  const config: GPTConfig = {
    n_layer: int("n_layer"),
    n_head: int("n_head"),
    n_embd,
    block_size: int("n_positions", "n_ctx"),
    vocab_size: int("vocab_size"),
    bias: true,
    dropout: 0,
    ...(activation === "gelu_new" ? { activation } : {}),
  };
  try {
    validateConfig(config);
  } catch (e) {
    fail((e as Error).message);
  }
  return config;
}

/**
 * A Hugging Face GPT-2 config.json for `config` (GPT2LMHeadModel, the fields `from_pretrained` reads);
 * `tokens`: the tokenizer's ids (fewer than vocab_size when padded), whose last is `<|endoftext|>`.
 */
export function hfGpt2ConfigJson(config: GPTConfig, tokens = config.vocab_size): string {
  const json = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    activation_function: config.activation ?? "gelu",
    n_layer: config.n_layer,
    n_head: config.n_head,
    n_embd: config.n_embd,
    n_positions: config.block_size,
    n_ctx: config.block_size,
    vocab_size: config.vocab_size,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    attn_pdrop: config.dropout,
    embd_pdrop: config.dropout,
    resid_pdrop: config.dropout,
    initializer_range: 0.02,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    bos_token_id: tokens - 1,
    eos_token_id: tokens - 1,
  };
  return JSON.stringify(json, null, 2) + "\n";
}

/**
 * The tensors of a Hugging Face GPT-2 safetensors file under nanoGPT's names (`transformer.h.0.attn.c_attn.weight`),
 * the Conv1D weights transposed to [out, in], the mask buffers dropped and `lm_head.weight` kept only to
 * be checked as tied. Names with and without the `transformer.` prefix are read; a name that maps to no
 * GPT-2 tensor is left as it is (the model check then names it). A bias-free model is refused: GPT-2's
 * layers all have biases.
 */
export function fromHfGpt2Tensors(file: SafetensorsFile, what: string): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  for (const [stored, t] of file.tensors) {
    const name = stored.startsWith("transformer.") ? stored.slice("transformer.".length) : stored;
    if (MASK_BUFFER.test(name)) continue;
    const ours = name === "lm_head.weight" ? name : `transformer.${name}`;
    if (out.has(ours)) {
      throw new InputError(`${what}: holds ${JSON.stringify(ours)} twice (with and without 'transformer.')`);
    }
    out.set(ours, CONV1D.test(name) ? transposed(t, stored, what) : t);
  }
  return out;
}

/** A model as {@linkcode saveHfGpt2} writes it: shape, GPT-2's tokenizer, weights under nanoGPT's names. */
export interface HfGpt2Model {
  /** The model's shape. */
  config: GPTConfig;
  /** Its tokenizer: GPT-2's (the layout has no place for another). */
  tokenizer: Tokenizer;
  /** Weights by nanoGPT name, without lm_head (tied to wte). */
  weights: ReadonlyMap<string, Float32Array>;
}

/**
 * Writes `model` as a Hugging Face GPT-2 folder (config.json, model.safetensors under GPT2Model's names
 * with Conv1D weights [in, out], vocab.json, merges.txt), each file atomically; what
 * `GPT2LMHeadModel.from_pretrained(dir)` and tforce's `--checkpoint DIR` read. A model whose tokenizer is
 * not GPT-2's is refused in one line.
 */
export async function saveHfGpt2(dir: string, model: HfGpt2Model): Promise<void> {
  if (!(model.tokenizer instanceof Gpt2Tokenizer)) {
    throw new InputError(
      `${dir}: Hugging Face's GPT-2 layout holds GPT-2's tokenizer, not this model's ${model.tokenizer.type} tokenizer`,
    );
  }
  const tensors = paramSpecs(model.config).map((p) => {
    const data = model.weights.get(p.name)!;
    const name = p.name.slice("transformer.".length);
    if (!CONV1D.test(name)) return { name, shape: p.shape, data };
    const t = transposed({ dtype: "F32", shape: p.shape, data }, p.name, dir);
    return { name, shape: t.shape, data: t.data };
  });
  const { vocabJson, mergesTxt } = model.tokenizer.toFiles();
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(`${dir}/config.json`, hfGpt2ConfigJson(model.config, model.tokenizer.vocabSize));
  await writeFileAtomic(`${dir}/model.safetensors`, encodeSafetensors(tensors, { format: "pt" }));
  await writeFileAtomic(`${dir}/vocab.json`, vocabJson);
  await writeFileAtomic(`${dir}/merges.txt`, mergesTxt);
}

/** A 2-D tensor transposed ([R, C] -> [C, R]). */
function transposed(t: StoredTensor, name: string, what: string): StoredTensor {
  if (t.shape.length !== 2) {
    throw new InputError(
      `${what}: tensor ${JSON.stringify(name)} has shape [${t.shape}], not a 2-D Conv1D weight`,
    );
  }
  const [R, C] = t.shape;
  const data = new Float32Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) data[c * R + r] = t.data[r * C + c];
  }
  return { dtype: t.dtype, shape: [C, R], data };
}
