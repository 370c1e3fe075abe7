/**
 * Autoregressive generation on the GPU with a KV cache: one decode step (the decode network of
 * ./decode.ts, then argmax or sampling, then commit) is recorded once and replayed many times inside one
 * compute pass; the position lives on the GPU, so a chunk of tokens costs one submission, not one round
 * trip per token.
 *
 * Prompt tokens are "forced": the step still runs for them (filling the cache) but commit keeps the
 * given next token. Positions are learned and absolute, so when a sequence reaches block_size the
 * generator restarts from the last half of the text (re-filling the cache), as a sliding window.
 *
 * Shapes: B sequences, maxT = block_size, seq u32 [B, maxT]; activations [B, C], [B, 3C], [B, 4C];
 * caches [B, NH, maxT, HS] per layer; logits [B, V].
 *
 * @module
 */
import { Arena, createStorage, readU32 } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/kernel.ts";
import { commit } from "../kernels/decode.ts";
import { argmax, sample } from "../kernels/sample.ts";
import { startToken, type Tokenizer } from "../data/tokenizer.ts";
import { InputError } from "../util/errors.ts";
import {
  decodeCheckpoint,
  loadModel,
  type LoadOptions,
  type ModelCheckpoint,
  weightsToArena,
} from "./checkpoint.ts";
import type { GPTConfig } from "./config.ts";
import { createDecodeNetwork } from "./decode.ts";
import { paramLayout } from "./params.ts";

/** How to pick each next token. */
export interface SamplingOptions {
  /** Softmax temperature; 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = all. Default 0. */
  topK?: number;
  /**
   * Then keep only the smallest set of most likely tokens whose probability reaches topP (nucleus
   * sampling, on the top-k distribution renormalised); 0 < topP <= 1, 1 = all. Default 1.
   */
  topP?: number;
  /** Seed of the sampling stream. Default 1337. */
  seed?: number;
  /**
   * The index of this batch's row 0 among all the sequences drawn with this seed: row b draws from row
   * firstRow + b's stream, so samples generated in several calls are those of one larger batch and
   * distinct from each other. Default 0.
   */
  firstRow?: number;
}

/**
 * The sampling settings {@linkcode Generator.fromCheckpoint} and `deno task sample` use unless told
 * otherwise: temperature 0.8 (nanoGPT's sample.py), no top-k or top-p restriction, seed 1337.
 */
export const DEFAULT_SAMPLING: Readonly<{ temperature: number; topK: number; topP: number; seed: number }> = {
  temperature: 0.8,
  topK: 0,
  topP: 1,
  seed: 1337,
};

/** Options for {@linkcode Generator.fromCheckpoint}: the sampling defaults of its calls, and resources. */
export interface GeneratorOptions extends SamplingOptions {
  /** A device to use (default: a new one). */
  gpu?: Gpu;
  /** Sequences generated side by side by {@linkcode Generator.generate} (default 1). */
  batch?: number;
  /** How to read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
  load?: LoadOptions;
}

/** Options for {@linkcode Generator.generateText}. */
export interface TextOptions extends SamplingOptions {
  /**
   * Receives the text as it is generated, a chunk at a time (an incomplete UTF-8 character of a byte-level
   * tokenizer is held back until it is whole).
   */
  onText?: (text: string) => void | Promise<void>;
}

/** Generates from a parameter arena; one instance serves many calls with the same batch size. */
export class Generator {
  /** The model shape. */
  readonly config: GPTConfig;
  /** Sequences generated side by side. */
  readonly B: number;
  /** The tokenizer that {@linkcode Generator.generateText} encodes and decodes with, when known. */
  readonly tokenizer: Tokenizer | null;
  /** Ids that can be generated or given, [0, tokens): vocab_size unless the vocabulary is padded. */
  readonly tokens: number;
  /** Sampling settings of every call, under the call's own options. */
  readonly sampling: Readonly<SamplingOptions>;
  readonly #gpu: Gpu;
  readonly #seq: GPUBuffer;
  readonly #state: GPUBuffer;
  readonly #rng: GPUBuffer;
  readonly #head: Dispatch[];
  readonly #argmax: Dispatch;
  readonly #sample: Dispatch;
  readonly #commit: Dispatch;

  private constructor(gpu: Gpu, config: GPTConfig, B: number, tokens: number, extra: GeneratorExtra, parts: {
    seq: GPUBuffer;
    state: GPUBuffer;
    rng: GPUBuffer;
    head: Dispatch[];
    argmax: Dispatch;
    sample: Dispatch;
    commit: Dispatch;
  }) {
    this.#gpu = gpu;
    this.config = config;
    this.B = B;
    this.tokenizer = extra.tokenizer ?? null;
    this.tokens = tokens;
    this.sampling = { ...extra.sampling };
    this.#seq = parts.seq;
    this.#state = parts.state;
    this.#rng = parts.rng;
    this.#head = parts.head;
    this.#argmax = parts.argmax;
    this.#sample = parts.sample;
    this.#commit = parts.commit;
  }

  /**
   * A generator over a checkpoint: a path (tforce's .safetensors, nanoGPT's ckpt.pt, a Hugging Face GPT-2
   * folder, ...), its bytes, or a loaded {@linkcode ModelCheckpoint}. Its calls sample with
   * {@linkcode DEFAULT_SAMPLING} under `opts`' settings, and {@linkcode Generator.generateText} takes text.
   *
   * ```ts
   * const gen = await Generator.fromCheckpoint("out/model.safetensors", { temperature: 0.7 });
   * console.log(await gen.generateText("The ", 200));
   * ```
   */
  static async fromCheckpoint(
    source: string | Uint8Array | ModelCheckpoint,
    opts: GeneratorOptions = {},
  ): Promise<Generator> {
    const { gpu: given, batch = 1, load, ...sampling } = opts;
    if (!(Number.isInteger(batch) && batch >= 1)) {
      throw new InputError(`batch must be a positive integer (got ${batch})`);
    }
    const ck = typeof source === "string"
      ? await loadModel(source, load)
      : source instanceof Uint8Array
      ? await decodeCheckpoint(source, "checkpoint bytes", load)
      : source;
    const gpu = given ?? await createGpu();
    const { layout } = paramLayout(ck.config);
    const params = new Arena(gpu, "params", layout);
    params.write(gpu, weightsToArena(ck.weights, layout));
    return await Generator.create(gpu, ck.config, params, batch, {
      tokenizer: ck.tokenizer,
      sampling: { ...DEFAULT_SAMPLING, ...defined(sampling) },
    });
  }

  /**
   * Builds the decode step for `B` sequences over the parameters in `params` (nanoGPT layout); `extra`
   * gives {@linkcode Generator.generateText} its tokenizer and every call its sampling settings (default:
   * temperature 1, seed 1337, no top-k or top-p).
   */
  static async create(
    gpu: Gpu,
    config: GPTConfig,
    params: Arena,
    B = 1,
    extra: GeneratorExtra = {},
  ): Promise<Generator> {
    const stride = config.vocab_size, maxT = config.block_size;
    const V = extra.tokens ?? extra.tokenizer?.vocabSize ?? stride;
    if (!(Number.isInteger(V) && V >= 1 && V <= stride)) {
      throw new Error(`Generator: ${V} tokens for a model of vocab_size ${stride}`);
    }
    const f32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
    const seq = f32("gen.seq", B * maxT), state = f32("gen.state", 4), rng = f32("gen.rng", 4);
    const sampled = f32("gen.sampled", B);
    const { dispatches: head, logits } = await createDecodeNetwork(gpu, config, params, { seq, state }, {
      B,
      label: "gen",
    });
    return new Generator(gpu, config, B, V, extra, {
      seq,
      state,
      rng,
      head,
      argmax: await argmax(gpu, { out: sampled, logits }, { N: B, V, stride }),
      sample: await sample(gpu, { out: sampled, logits, rng }, {
        N: B,
        V,
        stride,
        temperature: 1,
        topK: 0,
        stream: 0,
      }),
      commit: await commit(gpu, { seq, state, rng, sampled }, { B, maxT, forcedLen: 1 }),
    });
  }

  /**
   * Continues `prompt` (text; empty: one start token, a newline where the vocabulary has one) by
   * `maxTokens` tokens and returns the new text (row 0's, prompt excluded). Needs the tokenizer: a
   * generator {@linkcode Generator.fromCheckpoint} made, or one given to {@linkcode Generator.create}.
   */
  async generateText(prompt = "", maxTokens = 200, opts: TextOptions = {}): Promise<string> {
    const tok = this.tokenizer;
    if (tok === null) throw new Error("generateText: this generator has no tokenizer (give create one)");
    let ids: Uint32Array;
    try {
      ids = prompt.length > 0 ? tok.encode(prompt) : new Uint32Array(0);
    } catch (e) {
      throw new InputError(`prompt: ${(e as Error).message.split("\n")[0]}`);
    }
    if (ids.length === 0) ids = new Uint32Array([startToken(tok)]);
    const { onText, ...sampling } = opts;
    const got: number[] = [];
    let shown = 0;
    await this.generate(ids, maxTokens, sampling, async (t) => {
      got.push(...t);
      if (!onText) return;
      // Decode everything so far and pass on the new suffix; hold back an incomplete UTF-8 tail (BPE).
      const text = tok.decode(got);
      const safe = text.endsWith("\uFFFD") ? text.slice(0, -1) : text;
      if (safe.length > shown) {
        await onText(safe.slice(shown));
        shown = safe.length;
      }
    });
    const text = tok.decode(got);
    if (onText && text.length > shown) await onText(text.slice(shown));
    return text;
  }

  /**
   * Continues each of the B prompts (token ids; the same prompt for all rows when one is given) by
   * `maxTokens` tokens, sampling as `opts` says over the generator's {@linkcode Generator.sampling}.
   * `onTokens` receives each chunk of new tokens of row 0 as soon as it is read back (for streaming).
   * Returns the generated tokens of every row, [B][maxTokens].
   */
  async generate(
    prompt: ArrayLike<number> | ArrayLike<number>[],
    maxTokens: number,
    options: SamplingOptions = {},
    onTokens?: (tokens: number[]) => void | Promise<void>,
  ): Promise<number[][]> {
    const opts: SamplingOptions = { ...this.sampling, ...defined(options) };
    const B = this.B, maxT = this.config.block_size;
    const prompts = isRows(prompt) ? prompt : Array.from({ length: B }, () => prompt as ArrayLike<number>);
    if (prompts.length !== B) throw new Error(`generate: ${prompts.length} prompts for a batch of ${B}`);
    const len = prompts[0].length;
    if (len < 1) throw new Error("generate: the prompt must hold at least one token");
    if (prompts.some((p) => p.length !== len)) throw new Error("generate: prompts must have equal lengths");
    for (const p of prompts) {
      for (const t of Array.from(p)) {
        if (!(Number.isInteger(t) && t >= 0 && t < this.tokens)) {
          throw new Error(`generate: token id ${t} is outside the vocabulary`);
        }
      }
    }
    const temperature = opts.temperature ?? 1, topK = opts.topK ?? 0, topP = opts.topP ?? 1;
    const firstRow = opts.firstRow ?? 0;
    if (!(temperature >= 0) || !Number.isFinite(temperature)) {
      throw new Error(`generate: temperature must be >= 0 (got ${temperature})`);
    }
    if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1] (got ${topP})`);
    if (!(Number.isInteger(firstRow) && firstRow >= 0 && firstRow + B <= 2 ** 32)) {
      throw new Error(`generate: firstRow must be an integer >= 0 (got ${firstRow})`);
    }
    const pick = temperature === 0 ? this.#argmax : this.#sample;
    if (temperature > 0) this.#sample.update({ temperature, top_k: topK, top_p: topP, row0: firstRow });
    const dev = this.#gpu.device;
    dev.queue.writeBuffer(this.#rng, 0, new Uint32Array([(opts.seed ?? 1337) >>> 0, 0, 0, 0]));
    const rows: number[][] = prompts.map((p) => Array.from(p));
    const out: number[][] = prompts.map(() => []);
    // Window: the tokens currently in the cache. Start with the last maxT-1 prompt tokens.
    let start = rows.map((r) => Math.max(0, r.length - (maxT - 1)));
    while (out[0].length < maxTokens) {
      // (Re)fill: context = rows[b][start..], forced, then generate until the row is full.
      const ctx = rows.map((r, b) => r.slice(start[b]));
      const clen = ctx[0].length;
      const seqHost = new Uint32Array(B * maxT);
      ctx.forEach((r, b) => seqHost.set(r, b * maxT));
      dev.queue.writeBuffer(this.#seq, 0, seqHost);
      dev.queue.writeBuffer(this.#state, 0, new Uint32Array(4));
      this.#commit.update({ forced_len: clen });
      let pos = 0; // next position to process
      // Steps: positions 0..clen-1 fill the cache (the last one yields the first new token).
      const room = maxT - clen; // new tokens that fit in this window
      const want = Math.min(room, maxTokens - out[0].length);
      const total = clen - 1 + want; // decode steps for this window
      while (pos < total) {
        const n = Math.min(total - pos, pos < clen - 1 ? clen - 1 - pos + 1 : 16);
        const enc = dev.createCommandEncoder({ label: "generate" });
        const pass = enc.beginComputePass({ label: "generate" });
        for (let i = 0; i < n; i++) encodeDispatches(pass, [...this.#head, pick, this.#commit]);
        pass.end();
        dev.queue.submit([enc.finish()]);
        const before = Math.max(pos + 1, clen);
        pos += n;
        const after = pos + 1; // seq[0..after) valid
        if (after > before) {
          const seq = await readU32(this.#gpu, this.#seq);
          const fresh: number[][] = [];
          for (let b = 0; b < B; b++) {
            const got = Array.from(seq.subarray(b * maxT + before, b * maxT + after));
            rows[b].push(...got);
            out[b].push(...got);
            fresh.push(got);
          }
          if (onTokens) await onTokens(fresh[0]);
        }
      }
      // Slide: keep the last half of the window and continue.
      start = rows.map((r) => Math.max(0, r.length - Math.floor(maxT / 2)));
    }
    this.#gpu.check();
    return out;
  }
}

/** What {@linkcode Generator.create} may be given beyond the model: a tokenizer and sampling settings. */
export interface GeneratorExtra {
  /** The tokenizer of {@linkcode Generator.generateText}. */
  tokenizer?: Tokenizer;
  /**
   * Ids that may be generated (default: the tokenizer's, else vocab_size): fewer than vocab_size for a
   * padded vocabulary (nanoGPT's 50304 rows for GPT-2's 50257 tokens), whose extra rows are never chosen.
   */
  tokens?: number;
  /** Sampling settings of every call, under the call's own. */
  sampling?: SamplingOptions;
}

/** `o` without its undefined entries, so that spreading it keeps the defaults under it. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function isRows(p: ArrayLike<number> | ArrayLike<number>[]): p is ArrayLike<number>[] {
  return Array.isArray(p) && p.length > 0 && typeof p[0] === "object";
}
