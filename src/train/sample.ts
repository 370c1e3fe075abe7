/**
 * `deno task sample`: stream text from a checkpoint, generated on the GPU with a KV cache.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { createGpu } from "../gpu/device.ts";
import { loadModel, type LoadOptions } from "../model/checkpoint.ts";
import { DEFAULT_SAMPLING, Generator } from "../model/generate.ts";
import type { GPTConfig } from "../model/config.ts";
import { startToken } from "../data/tokenizer.ts";
import { configError, setting } from "./config.ts";

/** Options for {@linkcode sampleCheckpoint}; each has a default. */
export interface SampleOptions {
  /** Text to continue; empty (the default): start from one token (`startToken`: a newline, else a space, else the first). */
  prompt?: string;
  /** Tokens to generate (default 200). */
  maxTokens?: number;
  /** 0 = greedy (default {@linkcode DEFAULT_SAMPLING}'s 0.8). */
  temperature?: number;
  /** 0 (the default) = no top-k restriction. */
  topK?: number;
  /** Nucleus sampling after top-k: 0 < topP <= 1; 1 (the default) = no restriction. */
  topP?: number;
  /**
   * Independent samples of the prompt (nanoGPT's num_samples); default 1. One sample is streamed as it
   * is generated; of more, each is written whole when its batch is done, prompt included and followed by
   * a line of dashes, as nanoGPT's sample.py prints them. They are rows of one batch (several batches when
   * the model's caches would not fit), so sample k is the same whatever the number asked for.
   */
  numSamples?: number;
  /** Sampling seed (default 1337). */
  seed?: number;
  /** Receives text as it is generated. */
  write?: (text: string) => Promise<void> | void;
  /** A device to use. */
  gpu?: Gpu;
  /** How to read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
  load?: LoadOptions;
}

/** Tokens a sample has unless {@linkcode SampleOptions.maxTokens} says otherwise. */
export const DEFAULT_MAX_TOKENS = 200;

/** Samples generated side by side at most; more go in further batches. */
const MAX_BATCH_ROWS = 8;

/** Line written after each sample when there are several (nanoGPT's sample.py). */
export const SAMPLE_SEPARATOR = "---------------";

/**
 * Generates from the checkpoint at `path`; returns the generated text of each sample (prompt excluded).
 */
export async function sampleCheckpoint(path: string, opts: SampleOptions = {}): Promise<string[]> {
  const o = {
    ...DEFAULT_SAMPLING,
    prompt: "",
    maxTokens: DEFAULT_MAX_TOKENS,
    numSamples: 1,
    ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
  } as Required<Omit<SampleOptions, "write" | "gpu" | "load">> & SampleOptions;
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) {
    throw configError`${setting("maxTokens")} must be a positive integer (got ${o.maxTokens})`;
  }
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) {
    throw configError`${setting("temperature")} must be >= 0 (got ${o.temperature})`;
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) {
    throw configError`${setting("topK")} must be an integer >= 0 (got ${o.topK})`;
  }
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) {
    throw configError`${setting("seed")} must be an integer in [0, 2^32) (got ${o.seed})`;
  }
  if (!(o.topP > 0 && o.topP <= 1)) throw configError`${setting("topP")} must be in (0, 1] (got ${o.topP})`;
  if (!Number.isInteger(o.numSamples) || o.numSamples < 1) {
    throw configError`${setting("numSamples")} must be a positive integer (got ${o.numSamples})`;
  }
  const ck = await loadModel(path, o.load);
  const tok = ck.tokenizer;
  let prompt: Uint32Array = new Uint32Array(0);
  try {
    if (o.prompt.length > 0) prompt = tok.encode(o.prompt);
  } catch (e) {
    throw configError`${setting("prompt")}: ${(e as Error).message}`;
  }
  if (prompt.length === 0) prompt = new Uint32Array([startToken(tok)]);
  const gpu = o.gpu ?? await createGpu();
  const sampling = { temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed };
  if (o.numSamples === 1) {
    const gen = await Generator.fromCheckpoint(ck, { gpu, ...sampling });
    if (o.prompt.length > 0) await o.write?.(o.prompt);
    return [await gen.generateText(o.prompt, o.maxTokens, { onText: o.write })];
  }
  const rows = Math.min(o.numSamples, batchRows(gpu, ck.config));
  const gen = await Generator.fromCheckpoint(ck, { gpu, batch: rows, ...sampling });
  const texts: string[] = [];
  for (let first = 0; first < o.numSamples; first += rows) {
    // The last batch's rows past numSamples are generated and dropped (one Generator, one batch size).
    const got = await gen.generate(prompt, o.maxTokens, { firstRow: first });
    for (const ids of got.slice(0, o.numSamples - first)) {
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
