/**
 * `deno task eval`: the mean next-token cross-entropy of a checkpoint on a text; and the trainer's
 * validation loss ({@linkcode ValidationLoss}).
 *
 * Window rule: the token stream is cut into consecutive windows of block_size inputs with stride
 * block_size (window k feeds w[kT .. kT+T) and scores w[kT+1 .. kT+T+1)); every token after the first
 * is a target exactly once, and context restarts at each window. The last window is shorter; its
 * missing targets are ignored.
 *
 * @module
 */
import { createStorage, readF32, writeArray } from "../gpu/buffers.ts";
import { createGpu, type Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/kernel.ts";
import { gather, NO_TOKEN } from "../kernels/gather.ts";
import { loadModel, type LoadOptions, type ModelCheckpoint, weightsToArena } from "../model/checkpoint.ts";
import { GPT } from "../model/gpt.ts";
import { loadCorpus, readText, type Split } from "./data.ts";
import { runConfigOf } from "./state.ts";
import { drawWindowRows } from "./step.ts";
import { InputError } from "../util/errors.ts";
import { configError, setting } from "./config.ts";
import type { Rng } from "../util/rng.ts";

/** The last stdout line of `deno task eval`. */
export interface EvalResult {
  /** Mean next-token cross-entropy in nats. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Number of scored targets (tokens - 1). */
  tokens: number;
  /** Windows evaluated. */
  windows: number;
}

/**
 * Evaluates the checkpoint at `path` on the text file `data` (refused unless valid UTF-8, or with
 * `allowInvalidUtf8` decoded with U+FFFD replacement characters), or, without one, on the held-out text
 * of the run that wrote it (`heldOutTokens`).
 */
export async function evaluateCheckpoint(
  path: string,
  data: string | undefined,
  opts: { batchSize?: number; gpu?: Gpu; allowInvalidUtf8?: boolean; load?: LoadOptions } = {},
): Promise<EvalResult> {
  const ck = await loadModel(path, opts.load);
  if (data === undefined) return await evaluateTokens(ck, await heldOutTokens(ck, path), opts);
  const text = await readText(data, "data", opts.allowInvalidUtf8);
  let ids: Uint32Array;
  try {
    ids = ck.tokenizer.encode(text);
  } catch (e) {
    const msg = `data: ${(e as Error).message}`;
    throw e instanceof InputError ? new InputError(msg) : new Error(msg);
  }
  return await evaluateTokens(ck, ids, opts);
}

/**
 * The validation split of the data the checkpoint's run trained on, tokenized as in training, from its
 * `train_config` metadata: the generated language of the run's seed, the run's `--val` file, or the
 * last 10% of its `--data`.
 */
export async function heldOutTokens(ck: ModelCheckpoint, path: string): Promise<Uint32Array> {
  const run = runConfigOf(ck.metadata, path);
  if (!run || ck.metadata.data_source === "text") {
    throw configError`${path} does not record the data it was trained on: give ${setting("data")} FILE`;
  }
  const corpus = await loadCorpus({
    data: run.data,
    val: run.val,
    tokenizerType: ck.tokenizer.type,
    tokenizer: ck.tokenizer,
    examples: run.examples,
    blockSize: ck.config.block_size,
    seed: run.seed,
    allowInvalidUtf8: run.allow_invalid_utf8,
  });
  return corpus.val.tokens;
}

/** Evaluates a loaded checkpoint on token ids by the window rule above. */
export async function evaluateTokens(
  ck: ModelCheckpoint,
  ids: Uint32Array,
  opts: { batchSize?: number; gpu?: Gpu } = {},
): Promise<EvalResult> {
  if (opts.batchSize !== undefined && !(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) {
    throw configError`${setting("batchSize")} must be a positive integer (got ${opts.batchSize})`;
  }
  if (ids.length < 2) throw new InputError(`data: ${ids.length} token(s); evaluation needs at least 2`);
  const T = ck.config.block_size;
  const windows = Math.ceil((ids.length - 1) / T);
  const B = Math.min(opts.batchSize ?? 8, windows);
  const gpu = opts.gpu ?? await createGpu();
  const model = await GPT.create(gpu, ck.config, { B, T, storedDs: false }); // forward only: no dS buffer
  model.params.write(gpu, weightsToArena(ck.weights, model.params.layout));
  const batches = Math.ceil(windows / B);
  const perSubmit = Math.min(batches, 16);
  const corpus = createStorage(gpu, "eval.corpus", ids.byteLength, ids);
  const offsets = createStorage(gpu, "eval.offsets", perSubmit * B * 4);
  const lengths = createStorage(gpu, "eval.lengths", perSubmit * B * 4);
  const seeds = createStorage(gpu, "eval.seeds", perSubmit * 4);
  const list: Dispatch[] = [];
  for (let i = 0; i < perSubmit; i++) {
    const io = { ...model.gatherOutputs, corpus, offsets, lengths, seeds };
    const g = await gather(gpu, io, { B, T, micro: i, padId: 0, ignoreId: NO_TOKEN });
    list.push(g, ...model.forwardEval, ...model.lossOnly);
  }
  const dev = gpu.device;
  const clear = dev.createCommandEncoder();
  clear.clearBuffer(model.lossAcc);
  dev.queue.submit([clear.finish()]);
  for (let first = 0; first < batches; first += perSubmit) {
    const n = Math.min(perSubmit, batches - first);
    const offs = new Uint32Array(perSubmit * B), lens = new Uint32Array(perSubmit * B);
    for (let j = 0; j < n * B; j++) {
      const w = (first * B) + j;
      if (w < windows) {
        offs[j] = w * T;
        lens[j] = Math.min(T + 1, ids.length - w * T);
      } else lens[j] = 1; // an empty row: one input, no target
    }
    writeArray(gpu, offsets, offs);
    writeArray(gpu, lengths, lens);
    const enc = dev.createCommandEncoder({ label: "eval" });
    const pass = enc.beginComputePass({ label: "eval" });
    encodeDispatches(pass, list.slice(0, n * (list.length / perSubmit)));
    pass.end();
    dev.queue.submit([enc.finish()]);
  }
  const [sum, count] = await readF32(gpu, model.lossAcc, 0, 2);
  gpu.check();
  if (count !== ids.length - 1) throw new Error(`eval: scored ${count} targets, expected ${ids.length - 1}`);
  const loss = sum / count;
  return { loss, perplexity: Math.exp(loss), tokens: count, windows };
}

/**
 * A training run's validation loss: `batches` batches of B random windows of a split (B, T: the model's),
 * each gathered and run through the model's forwardEval + lossOnly (no dropout) in ONE submission; the
 * mean loss over every scored position is read back (the one wait on the GPU).
 */
export class ValidationLoss {
  readonly #gpu: Gpu;
  readonly #model: GPT;
  readonly #split: Split;
  readonly #batches: number;
  readonly #windows: { offsets: GPUBuffer; lengths: GPUBuffer };
  readonly #dispatches: Dispatch[];

  private constructor(
    gpu: Gpu,
    model: GPT,
    split: Split,
    batches: number,
    windows: { offsets: GPUBuffer; lengths: GPUBuffer },
    dispatches: Dispatch[],
  ) {
    this.#gpu = gpu;
    this.#model = model;
    this.#split = split;
    this.#batches = batches;
    this.#windows = windows;
    this.#dispatches = dispatches;
  }

  /**
   * Uploads `split` and records the evaluation over `model`'s buffers (the training model's: its weights
   * as trained). `padId`: the padding token, filler input and ignored target (default: none).
   */
  static async create(
    gpu: Gpu,
    model: GPT,
    split: Split,
    o: { batches: number; padId?: number },
  ): Promise<ValidationLoss> {
    const { B, T } = model, EI = o.batches, padId = o.padId ?? NO_TOKEN;
    const u32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
    const corpus = createStorage(gpu, "corpus.val", split.tokens.byteLength, split.tokens);
    const windows = { offsets: u32("eval_offsets", EI * B), lengths: u32("eval_lengths", EI * B) };
    const seeds = u32("eval_seeds", EI); // zero: forwardEval has no dropout
    const dispatches: Dispatch[] = [];
    for (let micro = 0; micro < EI; micro++) {
      const io = { ...model.gatherOutputs, corpus, ...windows, seeds };
      dispatches.push(
        await gather(gpu, io, { B, T, micro, padId, ignoreId: padId }),
        ...model.forwardEval,
        ...model.lossOnly,
      );
    }
    return new ValidationLoss(gpu, model, split, EI, windows, dispatches);
  }

  /** The mean loss (nats/token) over fresh windows drawn from `rng`. */
  async measure(rng: Rng): Promise<number> {
    const gpu = this.#gpu, dev = gpu.device, { B, T } = this.#model;
    const w = drawWindowRows(this.#split, rng, { rows: this.#batches, B, T });
    writeArray(gpu, this.#windows.offsets, w.offsets);
    writeArray(gpu, this.#windows.lengths, w.lengths);
    const enc = dev.createCommandEncoder({ label: "eval" });
    enc.clearBuffer(this.#model.lossAcc);
    const pass = enc.beginComputePass({ label: "eval" });
    encodeDispatches(pass, this.#dispatches);
    pass.end();
    dev.queue.submit([enc.finish()]);
    const acc = await readF32(gpu, this.#model.lossAcc, 0, 2);
    return acc[0] / acc[1];
  }
}
