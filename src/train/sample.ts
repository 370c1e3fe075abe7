/**
 * `deno task sample`: stream text from a checkpoint, generated on the GPU with a KV cache.
 *
 * @module
 */
import { Arena, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { loadModel, type LoadOptions, weightsToArena } from "../model/checkpoint.ts";
import { Generator, type SamplingOptions } from "../model/generate.ts";
import type { GPTConfig } from "../model/config.ts";
import { paramLayout } from "../model/params.ts";
import { startToken } from "../data/tokenizer.ts";
import type { Tokenizer } from "../data/tokenizer_types.ts";
import { InputError } from "../util/errors.ts";

/** Options for {@linkcode sampleCheckpoint}. */
export interface SampleOptions {
  /** Text to continue; empty: start from one token (`startToken`: a newline, else a space, else the first). */
  prompt: string;
  /** Tokens to generate. */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 0 = no top-k restriction. */
  topK: number;
  /** Nucleus sampling after top-k: 0 < topP <= 1; 1 (the default) = no restriction. */
  topP?: number;
  /**
   * Independent samples of the prompt (nanoGPT's num_samples); default 1. One sample is streamed as it
   * is generated; of more, each is written whole when its batch is done, prompt included and followed by
   * a line of dashes, as nanoGPT's sample.py prints them. They are rows of one batch (several batches when
   * the model's caches would not fit), so sample k is the same whatever the number asked for.
   */
  numSamples?: number;
  /** Sampling seed. */
  seed: number;
  /** Receives text as it is generated. */
  write?: (text: string) => Promise<void> | void;
  /** A device to use. */
  gpu?: Gpu;
  /** How to read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
  load?: LoadOptions;
}

/** Samples generated side by side at most; more go in further batches. */
const MAX_BATCH_ROWS = 8;

/** Line written after each sample when there are several (nanoGPT's sample.py). */
export const SAMPLE_SEPARATOR = "---------------";

/**
 * Generates from the checkpoint at `path`; returns the generated text of each sample (prompt excluded).
 */
export async function sampleCheckpoint(path: string, o: SampleOptions): Promise<string[]> {
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) {
    throw new InputError(`--max-tokens must be a positive integer (got ${o.maxTokens})`);
  }
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) {
    throw new InputError(`--temperature must be >= 0 (got ${o.temperature})`);
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) {
    throw new InputError(`--top-k must be an integer >= 0 (got ${o.topK})`);
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) {
    throw new InputError(`--seed must be an integer in [0, 2^32) (got ${o.seed})`);
  }
  const topP = o.topP ?? 1, numSamples = o.numSamples ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new InputError(`--top-p must be in (0, 1] (got ${topP})`);
  if (!Number.isInteger(numSamples) || numSamples < 1) {
    throw new InputError(`--num-samples must be a positive integer (got ${numSamples})`);
  }
  const ck = await loadModel(path, o.load);
  const tok = ck.tokenizer;
  let prompt: Uint32Array = new Uint32Array(0);
  try {
    if (o.prompt.length > 0) prompt = tok.encode(o.prompt);
  } catch (e) {
    throw new InputError(`--prompt: ${(e as Error).message}`);
  }
  if (prompt.length === 0) prompt = new Uint32Array([startToken(tok)]);
  const gpu = o.gpu ?? await createGpu();
  const { layout } = paramLayout(ck.config);
  const params = new Arena(gpu, "params", layout);
  writeArray(gpu, params.buffer, weightsToArena(ck.weights, layout));
  const sampling = { temperature: o.temperature, topK: o.topK, topP, seed: o.seed };
  if (numSamples === 1) {
    const gen = await Generator.create(gpu, ck.config, params, 1);
    return [await streamOne(gen, tok, prompt, o, sampling)];
  }
  const rows = Math.min(numSamples, batchRows(gpu, ck.config));
  const gen = await Generator.create(gpu, ck.config, params, rows);
  const texts: string[] = [];
  for (let first = 0; first < numSamples; first += rows) {
    // The last batch's rows past numSamples are generated and dropped (one Generator, one batch size).
    const got = await gen.generate(prompt, o.maxTokens, { ...sampling, firstRow: first });
    for (const ids of got.slice(0, numSamples - first)) {
      const text = tok.decode(ids);
      texts.push(text);
      await o.write?.(`${o.prompt}${text}\n${SAMPLE_SEPARATOR}\n`);
    }
  }
  return texts;
}

/** The rows a batch of samples holds: each row's K and V caches and logits within a buffer binding. */
function batchRows(gpu: Gpu, config: GPTConfig): number {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const rowBytes = 4 * Math.max(config.block_size * config.n_embd, config.vocab_size);
  return Math.max(1, Math.min(MAX_BATCH_ROWS, Math.floor(limit / rowBytes)));
}

/** One sample, written as it is generated (the prompt first); returns its text, prompt excluded. */
async function streamOne(
  gen: Generator,
  tok: Tokenizer,
  prompt: Uint32Array,
  o: SampleOptions,
  sampling: SamplingOptions,
): Promise<string> {
  if (o.prompt.length > 0) await o.write?.(o.prompt);
  const ids: number[] = [];
  let shown = 0;
  await gen.generate(prompt, o.maxTokens, sampling, async (t) => {
    ids.push(...t);
    // Decode everything so far and show the new suffix; hold back an incomplete UTF-8 tail (BPE).
    const text = tok.decode(ids);
    const safe = text.endsWith("\uFFFD") ? text.slice(0, -1) : text;
    if (safe.length > shown) {
      await o.write?.(safe.slice(shown));
      shown = safe.length;
    }
  });
  const text = tok.decode(ids);
  if (text.length > shown) await o.write?.(text.slice(shown));
  return text;
}
