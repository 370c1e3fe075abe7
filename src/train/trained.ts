/**
 * The model a training run leaves on the GPU, with what a caller does next: save it, take its
 * safetensors bytes, or sample from it.
 *
 * @module
 */
import type { Arena } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { encodeModel } from "../model/checkpoint.ts";
import type { GPTConfig } from "../model/config.ts";
import { DEFAULT_SAMPLING, Generator, type GeneratorOptions } from "../model/generate.ts";
import type { GPT } from "../model/gpt.ts";

/** A trained model: its network on the GPU, its tokenizer, and the checkpoint metadata of its run. */
export class TrainedModel {
  /** The network (weights, buffers and passes) on the GPU. */
  readonly network: GPT;
  /** The tokenizer it was trained with. */
  readonly tokenizer: Tokenizer;
  /** The device holding the weights. */
  readonly gpu: Gpu;
  /** Metadata written into its checkpoint (step, val_loss, the run's train_config). */
  readonly metadata: Readonly<Record<string, string>>;

  /** Wraps `network`, trained with `tokenizer` on `gpu`. */
  constructor(gpu: Gpu, network: GPT, tokenizer: Tokenizer, metadata: Record<string, string> = {}) {
    this.gpu = gpu;
    this.network = network;
    this.tokenizer = tokenizer;
    this.metadata = { ...metadata };
  }

  /** The model's shape. */
  get config(): GPTConfig {
    return this.network.config;
  }

  /** The parameter arena on the GPU (nanoGPT's names and layouts). */
  get params(): Arena {
    return this.network.params;
  }

  /**
   * The model as a safetensors checkpoint (what `model.safetensors` of a run folder holds: nanoGPT's
   * state_dict names, the config and the tokenizer in its metadata), read back from the GPU now.
   */
  async bytes(): Promise<Uint8Array> {
    const host = await this.params.snapshot(this.gpu);
    return encodeModel(this.config, this.tokenizer, this.params.layout, host, { ...this.metadata });
  }

  /** Writes {@linkcode TrainedModel.bytes} to `path` atomically (temporary file, fsync, rename). */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, await this.bytes());
  }

  /**
   * A generator over these weights (no copy: it reads them where they are), sampling with
   * {@linkcode DEFAULT_SAMPLING} under `opts`' settings; its `generateText` takes and returns text.
   */
  async generator(opts: Omit<GeneratorOptions, "gpu" | "load"> = {}): Promise<Generator> {
    const { batch = 1, ...sampling } = opts;
    const set = Object.fromEntries(Object.entries(sampling).filter(([, v]) => v !== undefined));
    return await Generator.create(this.gpu, this.config, this.params, batch, {
      tokenizer: this.tokenizer,
      sampling: { ...DEFAULT_SAMPLING, ...set },
    });
  }
}
