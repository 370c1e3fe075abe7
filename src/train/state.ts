/**
 * Checkpoint files of a run folder, each written atomically (temp file, fsync, rename):
 * - train_state.safetensors: everything a resume needs in ONE file (weights, AdamW moments per
 *   parameter as exp_avg.* / exp_avg_sq.*, config, tokenizer, step, RNG streams, best validation loss),
 *   so an interrupted write can never pair weights with another step's optimizer state;
 * - model.safetensors: the latest weights as a nanoGPT state_dict, for eval, sample and PyTorch;
 * - best.safetensors: the weights with the best validation loss so far.
 *
 * @module
 */
import type { ArenaLayout } from "../gpu/buffers.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { decodeSafetensors, encodeSafetensors } from "../io/safetensors.ts";
import { encodeModel, type ModelCheckpoint, modelFromFile, modelTensors } from "../model/checkpoint.ts";
import type { GPTConfig } from "../model/config.ts";
import { paramLayout, paramSpecs } from "../model/params.ts";
import { InputError } from "../util/errors.ts";
import type { TrainConfig } from "./config.ts";

/** Everything besides the weights that a resumed run needs to continue exactly. */
export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  /** Training window sampler's RNG state. */
  trainRng: number;
  /** Evaluation sampler's RNG state. */
  evalRng: number;
  /** Best validation loss so far. */
  bestVal: number;
  /** Training seconds so far. */
  elapsed: number;
  /** The part of `elapsed` spent evaluating and saving checkpoints (0 in state files written before it). */
  evalElapsed: number;
  /** AdamW first moments, parameter-arena image. */
  m: Float32Array;
  /** AdamW second moments, parameter-arena image. */
  v: Float32Array;
  /** float16 runs: the dynamic loss scale and its count of finite steps since it last changed. */
  lossScaler?: { scale: number; good: number };
  /** The run's whole configuration (absent in state files written before it was stored). */
  run?: TrainConfig;
}

/**
 * Writes train_state.safetensors, then model.safetensors and, when `isBest`, best.safetensors; `extra`
 * is added to the model files' metadata.
 */
export async function saveCheckpoint(
  dir: string,
  config: GPTConfig,
  tokenizer: Tokenizer,
  layout: ArenaLayout,
  params: Float32Array,
  state: TrainState,
  valLoss: number,
  isBest: boolean,
  extra: Record<string, string> = {},
): Promise<void> {
  const meta = {
    ...extra,
    step: String(state.step),
    val_loss: String(valLoss),
    ...(state.run ? { train_config: JSON.stringify(state.run) } : {}),
  };
  const [tensors, metadata] = modelTensors(config, tokenizer, layout, params, meta);
  const all = tensors.filter((t) => t.name !== "lm_head.weight");
  for (const e of layout.entries) {
    all.push({
      name: `exp_avg.${e.name}`,
      shape: e.shape,
      data: state.m.subarray(e.offset, e.offset + e.size),
    });
    all.push({
      name: `exp_avg_sq.${e.name}`,
      shape: e.shape,
      data: state.v.subarray(e.offset, e.offset + e.size),
    });
  }
  await writeFileAtomic(
    `${dir}/train_state.safetensors`,
    encodeSafetensors(all, {
      ...metadata,
      train_rng: String(state.trainRng),
      eval_rng: String(state.evalRng),
      best_val: String(state.bestVal),
      elapsed: String(state.elapsed),
      eval_elapsed: String(state.evalElapsed),
      ...(state.lossScaler
        ? { loss_scale: String(state.lossScaler.scale), loss_scale_good: String(state.lossScaler.good) }
        : {}),
    }),
  );
  const model = encodeModel(config, tokenizer, layout, params, meta);
  await writeFileAtomic(`${dir}/model.safetensors`, model);
  if (isBest) await writeFileAtomic(`${dir}/best.safetensors`, model);
}

/** Reads train_state.safetensors: the model and the optimizer state; one-line errors name the problem. */
export async function loadTrainState(path: string): Promise<ModelCheckpoint & { state: TrainState }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message.split("\n")[0];
    throw new InputError(`${path}: cannot resume (${why})`);
  }
  const file = decodeSafetensors(bytes, path);
  const ck = modelFromFile(file, path, (name) => name.startsWith("exp_avg"));
  const { layout } = paramLayout(ck.config);
  const m = new Float32Array(layout.totalFloats), v = new Float32Array(layout.totalFloats);
  for (const p of paramSpecs(ck.config)) {
    const e = layout.get(p.name);
    for (const [prefix, dst] of [["exp_avg", m], ["exp_avg_sq", v]] as const) {
      const t = file.tensors.get(`${prefix}.${p.name}`);
      if (!t || t.data.length !== e.size) {
        throw new InputError(`${path}: missing or mis-sized '${prefix}.${p.name}'`);
      }
      dst.set(t.data, e.offset);
    }
  }
  const num = (k: string): number => {
    const s = file.metadata[k];
    const x = Number(s);
    if (s === undefined || (Number.isNaN(x) && s !== "NaN")) {
      throw new InputError(`${path}: metadata '${k}' missing or not a number`);
    }
    return x;
  };
  const state = {
    step: num("step"),
    trainRng: num("train_rng"),
    evalRng: num("eval_rng"),
    bestVal: num("best_val"),
    elapsed: num("elapsed"),
    evalElapsed: file.metadata.eval_elapsed === undefined ? 0 : num("eval_elapsed"),
    m,
    v,
    ...(file.metadata.loss_scale !== undefined
      ? { lossScaler: { scale: num("loss_scale"), good: num("loss_scale_good") } }
      : {}),
    ...(ck.metadata.train_config !== undefined ? { run: runConfigOf(ck.metadata, path) } : {}),
  };
  return { ...ck, state };
}

/** The TrainConfig stored in a checkpoint's metadata (`train_config`), or undefined if it has none. */
export function runConfigOf(metadata: Record<string, string>, path: string): TrainConfig | undefined {
  const json = metadata.train_config;
  if (json === undefined) return undefined;
  try {
    const v = JSON.parse(json);
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as TrainConfig;
  } catch {
    // reported below
  }
  throw new InputError(`${path}: metadata 'train_config' is not a JSON object`);
}

/**
 * The step and configuration of the run saved in `dir`, from train_state.safetensors' header alone (a
 * few KB, not the weights), or null when the folder holds no state file.
 */
export async function savedRun(dir: string): Promise<{ step: number; run?: TrainConfig } | null> {
  const path = `${dir}/train_state.safetensors`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new InputError(`${path}: cannot resume (${(e as Error).message.split("\n")[0]})`);
  }
  try {
    const len = new Uint8Array(8);
    if (!(await readFull(file, len))) throw new InputError(`${path}: not a safetensors file`);
    const n = Number(new DataView(len.buffer).getBigUint64(0, true));
    if (n > 100_000_000) throw new InputError(`${path}: not a safetensors file (header of ${n} bytes)`);
    const header = new Uint8Array(n);
    if (!(await readFull(file, header))) throw new InputError(`${path}: truncated header`);
    let meta: Record<string, string>;
    try {
      meta = JSON.parse(new TextDecoder().decode(header)).__metadata__ ?? {};
    } catch {
      throw new InputError(`${path}: header is not valid JSON`);
    }
    const step = Number(meta.step);
    if (!Number.isInteger(step) || step < 0) throw new InputError(`${path}: metadata 'step' missing or bad`);
    return { step, run: runConfigOf(meta, path) };
  } finally {
    file.close();
  }
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}
