/**
 * `deno task sample`: stream text from a checkpoint, generated on the GPU with a KV cache.
 *
 * @module
 */
import { Arena, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { loadModel, type LoadOptions, weightsToArena } from "../model/checkpoint.ts";
import { Generator } from "../model/generate.ts";
import { paramLayout } from "../model/params.ts";
import { startToken } from "../data/tokenizer.ts";
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
  /** Sampling seed. */
  seed: number;
  /** Receives text as it is generated. */
  write?: (text: string) => Promise<void> | void;
  /** A device to use. */
  gpu?: Gpu;
  /** How to read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
  load?: LoadOptions;
}

/** Generates from the checkpoint at `path`; returns the generated text (prompt excluded). */
export async function sampleCheckpoint(path: string, o: SampleOptions): Promise<string> {
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
  const gen = await Generator.create(gpu, ck.config, params, 1);
  if (o.prompt.length > 0) await o.write?.(o.prompt);
  const ids: number[] = [];
  let shown = 0;
  await gen.generate(
    prompt,
    o.maxTokens,
    { temperature: o.temperature, topK: o.topK, seed: o.seed },
    async (t) => {
      ids.push(...t);
      // Decode everything so far and show the new suffix; hold back an incomplete UTF-8 tail (BPE).
      const text = tok.decode(ids);
      const safe = text.endsWith("\uFFFD") ? text.slice(0, -1) : text;
      if (safe.length > shown) {
        await o.write?.(safe.slice(shown));
        shown = safe.length;
      }
    },
  );
  const text = tok.decode(ids);
  if (text.length > shown) await o.write?.(text.slice(shown));
  return text;
}
