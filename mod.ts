/**
 * tforce: train GPT-style language models with teacher forcing on WebGPU, from Deno or a browser.
 *
 * Hand-written WGSL compute kernels (matmul, causal flash attention, fused cross-entropy, layernorm,
 * GELU, embeddings, AdamW), each with a float64 CPU reference, driven by a trainer that records a whole
 * optimizer step into one queue submission.
 *
 * This entry point holds what a user of the library needs: {@linkcode train}, {@linkcode Generator},
 * checkpoints, evaluation, tokenizers, the generated language with its oracle and the exposure-bias
 * measurement. The kernels and the GPU layer are in `@tforce/core/kernels`, the float64 reference in
 * `@tforce/core/reference`, the command line in `@tforce/core/cli`.
 *
 * Names: option objects are camelCase; {@linkcode TrainConfig} alone keeps nanoGPT's snake_case names
 * (`n_layer`, `block_size`, `lr`, `min_lr`), because they are nanoGPT's config and tforce writes them into
 * every checkpoint (`train_config`) and run log, where `--resume` and `eval` read them back.
 *
 * @example Train on your own text, save, and sample
 * ```ts
 * import { Generator, train } from "@tforce/core";
 *
 * const result = await train({ data: "input.txt", steps: 200 }); // or { text: "..." }; writes nothing
 * await result.model.save("model.safetensors");
 * const gen = await Generator.fromCheckpoint("model.safetensors", { temperature: 0.8 });
 * console.log(await gen.generateText("\n", 100));
 * ```
 *
 * @module
 */
export {
  createGpu,
  Gpu,
  GpuError,
  type GpuFeatures,
  type GpuLimitCaps,
  type GpuOptions,
} from "./src/gpu/device.ts";
export {
  ConfigError,
  type DecodeRule,
  DEFAULT_TRAIN,
  type MessagePart,
  type OptionName,
  PRESETS,
  type SettingKey,
  SettingName,
  type SsSchedule,
  type TrainConfig,
  type TrainMode,
  validateTrainConfig,
} from "./src/train/config.ts";
export {
  train,
  type TrainHooks,
  TrainingDiverged,
  type TrainOptions,
  type TrainResult,
  type TrainStart,
} from "./src/train/trainer.ts";
export { TrainedModel } from "./src/train/trained.ts";
export type { StepRecord } from "./src/train/log.ts";
export type { ClaimReport } from "./src/train/runfolder.ts";
export type { Corpus, ExamplesMode, Split } from "./src/train/data.ts";
export type { GPTConfig, Precision } from "./src/model/config.ts";
export {
  DEFAULT_SAMPLING,
  Generator,
  type GeneratorExtra,
  type GeneratorOptions,
  type SamplingOptions,
  type TextOptions,
} from "./src/model/generate.ts";
export {
  decodeCheckpoint,
  loadModel,
  type LoadOptions,
  type ModelCheckpoint,
  saveModel,
} from "./src/model/checkpoint.ts";
export { type EvalResult, evaluateCheckpoint } from "./src/train/evaluate.ts";
export { sampleCheckpoint, type SampleOptions } from "./src/train/sample.ts";
export {
  type Tokenizer,
  tokenizerFromJSON,
  type TokenizerType,
  trainTokenizer,
  type TrainTokenizerOptions,
} from "./src/data/tokenizer.ts";
export { type Gpt2Tokenizer, loadGpt2Tokenizer } from "./src/data/gpt2.ts";
export {
  type CharAutomaton,
  type GeneratedLanguage,
  generateLanguage,
  type GenerateLanguageOptions,
  type LanguageChain,
  type LanguageState,
} from "./src/data/language.ts";
export {
  type ChainOracle,
  type CharOracle,
  type LanguageOracle,
  languageOracle,
  loadOracleFile,
  parseOracle,
} from "./src/data/oracle.ts";
export {
  exposureCheckpoint,
  type ExposureCheckpointOptions,
  type ExposureFigures,
  type ExposureOptions,
  type ExposureResult,
  measureExposure,
} from "./src/train/exposure.ts";
export { WriteError } from "./src/io/atomic.ts";
export { InputError } from "./src/util/errors.ts";
