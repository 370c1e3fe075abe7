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
import { type Arena, createStorage, readU32 } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/kernel.ts";
import { commit } from "../kernels/decode.ts";
import { argmax, sample } from "../kernels/sample.ts";
import type { GPTConfig } from "./config.ts";
import { createDecodeNetwork } from "./decode.ts";

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

/** Generates from a parameter arena; one instance serves many calls with the same batch size. */
export class Generator {
  /** The model shape. */
  readonly config: GPTConfig;
  /** Sequences generated side by side. */
  readonly B: number;
  readonly #gpu: Gpu;
  readonly #seq: GPUBuffer;
  readonly #state: GPUBuffer;
  readonly #rng: GPUBuffer;
  readonly #head: Dispatch[];
  readonly #argmax: Dispatch;
  readonly #sample: Dispatch;
  readonly #commit: Dispatch;

  private constructor(gpu: Gpu, config: GPTConfig, B: number, parts: {
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
    this.#seq = parts.seq;
    this.#state = parts.state;
    this.#rng = parts.rng;
    this.#head = parts.head;
    this.#argmax = parts.argmax;
    this.#sample = parts.sample;
    this.#commit = parts.commit;
  }

  /** Builds the decode step for `B` sequences over the parameters in `params` (nanoGPT layout). */
  static async create(gpu: Gpu, config: GPTConfig, params: Arena, B = 1): Promise<Generator> {
    const V = config.vocab_size, maxT = config.block_size;
    const f32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
    const seq = f32("gen.seq", B * maxT), state = f32("gen.state", 4), rng = f32("gen.rng", 4);
    const sampled = f32("gen.sampled", B);
    const { dispatches: head, logits } = await createDecodeNetwork(gpu, config, params, { seq, state }, {
      B,
      label: "gen",
    });
    return new Generator(gpu, config, B, {
      seq,
      state,
      rng,
      head,
      argmax: await argmax(gpu, { out: sampled, logits }, { N: B, V }),
      sample: await sample(gpu, { out: sampled, logits, rng }, {
        N: B,
        V,
        temperature: 1,
        topK: 0,
        stream: 0,
      }),
      commit: await commit(gpu, { seq, state, rng, sampled }, { B, maxT, forcedLen: 1 }),
    });
  }

  /**
   * Continues each of the B prompts (token ids; the same prompt for all rows when one is given) by
   * `maxTokens` tokens. `onTokens` receives each chunk of new tokens of row 0 as soon as it is read back
   * (for streaming). Returns the generated tokens of every row, [B][maxTokens].
   */
  async generate(
    prompt: ArrayLike<number> | ArrayLike<number>[],
    maxTokens: number,
    opts: SamplingOptions = {},
    onTokens?: (tokens: number[]) => void | Promise<void>,
  ): Promise<number[][]> {
    const B = this.B, maxT = this.config.block_size;
    const prompts = isRows(prompt) ? prompt : Array.from({ length: B }, () => prompt as ArrayLike<number>);
    if (prompts.length !== B) throw new Error(`generate: ${prompts.length} prompts for a batch of ${B}`);
    const len = prompts[0].length;
    if (len < 1) throw new Error("generate: the prompt must hold at least one token");
    if (prompts.some((p) => p.length !== len)) throw new Error("generate: prompts must have equal lengths");
    for (const p of prompts) {
      for (const t of Array.from(p)) {
        if (!(Number.isInteger(t) && t >= 0 && t < this.config.vocab_size)) {
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

function isRows(p: ArrayLike<number> | ArrayLike<number>[]): p is ArrayLike<number>[] {
  return Array.isArray(p) && p.length > 0 && typeof p[0] === "object";
}
