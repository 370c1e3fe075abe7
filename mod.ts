/**
 * tforce: train GPT-style language models with teacher forcing on WebGPU.
 *
 * Hand-written WGSL compute kernels (matmul, causal flash attention, fused cross-entropy, layernorm,
 * GELU, embeddings, AdamW), each with a float64 CPU reference, driven by a trainer that records a whole
 * optimizer step into one queue submission. Runs in Deno and in browsers with WebGPU.
 *
 * @example Train on your own text, then sample
 * ```ts
 * import { DEFAULT_TRAIN, Generator, train } from "@tforce/core";
 *
 * const result = await train({ ...DEFAULT_TRAIN, data: "input.txt", steps: 200, out: "out" });
 * console.log(result.bestValLoss);
 * const gen = await Generator.create(result.gpu, result.model.config, result.model.params);
 * const tok = result.corpus.tokenizer;
 * const [ids] = await gen.generate(tok.encode("\n"), 100, { temperature: 0.8 });
 * console.log(tok.decode(ids));
 * ```
 *
 * @example Run one kernel
 * ```ts
 * import { createGpu, createStorage, kernels, readF32, submitDispatches, upload } from "@tforce/core";
 *
 * const gpu = await createGpu();
 * const inp = upload(gpu, "inp", new Float32Array([-1, 0, 1, 2]));
 * const out = createStorage(gpu, "out", 16);
 * submitDispatches(gpu, [await kernels.geluForward(gpu, { out, inp }, 4)]);
 * console.log(await readF32(gpu, out)); // ≈ [-0.1587, 0, 0.8413, 1.9545]
 * ```
 *
 * @module
 */
export {
  createGpu,
  Gpu,
  GpuError,
  type GpuFeatures,
  type GpuOptions,
  NO_ADAPTER_HELP,
} from "./src/gpu/device.ts";
export {
  type BindingInfo,
  builtKernels,
  type Dispatch,
  encodeDispatches,
  getKernel,
  grid,
  Kernel,
  type KernelSpec,
  reflectBindings,
  type Resource,
  submitDispatches,
} from "./src/gpu/kernel.ts";
export {
  Arena,
  type ArenaEntry,
  ArenaLayout,
  createStorage,
  numel,
  readBytes,
  readF16,
  readF32,
  readU32,
  roundF16,
  STORAGE,
  upload,
  uploadF16,
  writeArray,
} from "./src/gpu/buffers.ts";
export { checkTypes, type StorageType, withFlags, withHash, withTypes } from "./src/gpu/source.ts";
export * as kernels from "./src/kernels/mod.ts";
export * as reference from "./src/reference/mod.ts";
export {
  DEFAULT_CONFIG,
  type DropoutSite,
  dropoutStream,
  type GPTConfig,
  type Precision,
  PRECISIONS,
  validateConfig,
} from "./src/model/config.ts";
export { countParams, decays, paramLayout, type ParamSpec, paramSpecs } from "./src/model/params.ts";
export { GPT, type GPTShape, type HeadChunk } from "./src/model/gpt.ts";
export { initParams } from "./src/model/init.ts";
export { Generator, type SamplingOptions } from "./src/model/generate.ts";
export {
  decodeCheckpoint,
  decodeModel,
  encodeModel,
  loadModel,
  type LoadOptions,
  type ModelCheckpoint,
  type ModelFileOptions,
  modelFromFile,
  modelTensors,
  saveModel,
  weightsToArena,
} from "./src/model/checkpoint.ts";
export {
  charTokenizerFromMeta,
  findTokenizer,
  type NanoGptModel,
  readNanoGptCheckpoint,
  type TokenizerSources,
} from "./src/model/nanogpt.ts";
export {
  ConfigError,
  DEFAULT_TRAIN,
  kebab,
  type MessagePart,
  PRESETS,
  SettingName,
  type TrainConfig,
  validateTrainConfig,
} from "./src/train/config.ts";
export {
  dropoutSeed,
  train,
  type TrainHooks,
  TrainingDiverged,
  type TrainResult,
  type TrainStart,
} from "./src/train/trainer.ts";
export { type StepRecord } from "./src/train/log.ts";
export { type ClaimReport, RUN_FILES } from "./src/train/runfolder.ts";
export { WriteError } from "./src/io/atomic.ts";
export { type EvalResult, evaluateCheckpoint, evaluateTokens, heldOutTokens } from "./src/train/evaluate.ts";
export { sampleCheckpoint, type SampleOptions } from "./src/train/sample.ts";
export { learningRate, type LrSchedule } from "./src/train/schedule.ts";
export {
  buildModeStep,
  checkPrefix,
  createGradProbe,
  createRollout,
  type DecodeRule,
  epsilon,
  type EpsilonSchedule,
  epsilonSchedule,
  type GradProbe,
  inverseSigmoidK,
  type ModeStep,
  prefixOf,
  type Rollout,
  type RolloutBindings,
  SS_SCHEDULES,
  type SsSchedule,
  STREAMS,
  TRAIN_MODES,
  type TrainMode,
  validateModeConfig,
} from "./src/train/modes.ts";
export {
  bindOracle,
  type BoundOracle,
  exposureCheckpoint,
  type ExposureCheckpointOptions,
  type ExposureFigures,
  type ExposureOptions,
  exposurePlotSvg,
  type ExposureResult,
  ExposureTally,
  type ExposureWindow,
  measureExposure,
} from "./src/train/exposure.ts";
export {
  type ExperimentOptions,
  type ExperimentResult,
  type ExperimentSetup,
  type MatchedNoise,
  type ModeRun,
  runExperiment,
} from "./src/train/experiment.ts";
export { type ExperimentData, softmaxLoss, writeReport } from "./src/train/report.ts";
export {
  comparePaired,
  type Interval,
  type PairedComparison,
  type PairedFinding,
  type PairedOptions,
  studentTCdf,
  studentTQuantile,
  tInterval,
} from "./src/train/stats.ts";
export {
  measureNoiseScale,
  type NoiseEstimate,
  type NoiseOptions,
  type NoiseResult,
  noiseScale,
} from "./src/train/noise.ts";
export {
  type HistoryCheck,
  historyCheck,
  type HistoryCheckOptions,
  type StepTimeOptions,
  type StepTimeRow,
  stepTimes,
} from "./src/train/claims.ts";
export {
  type Corpus,
  type CorpusOptions,
  drawWindows,
  type ExamplesMode,
  loadCorpus,
  readText,
  type Split,
} from "./src/train/data.ts";
export {
  type Tokenizer,
  TOKENIZER_TYPES,
  tokenizerFromJSON,
  type TokenizerType,
  trainTokenizer,
  type TrainTokenizerOptions,
} from "./src/data/tokenizer.ts";
export { byteToUnicode, GPT2_SPLIT, Gpt2Tokenizer, loadGpt2Tokenizer } from "./src/data/gpt2.ts";
export {
  type CharAutomaton,
  DEFAULT_TYPO_RATE,
  type GeneratedLanguage,
  generateLanguage,
  type GenerateLanguageOptions,
  LanguageChain,
  type LanguageState,
} from "./src/data/language.ts";
export {
  ChainOracle,
  type CharOracle,
  LanguageOracle,
  languageOracle,
  loadOracleFile,
  MAX_ORACLE_CONTEXTS,
  MAX_ORACLE_ENTRIES,
  ORACLE_SUM_TOLERANCE,
  type OrderKEntropy,
  orderKEntropyRate,
  parseOracle,
  sampleOracle,
} from "./src/data/oracle.ts";
export {
  decodeSafetensors,
  type Dtype,
  encodeSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  type StoredTensor,
} from "./src/io/safetensors.ts";
export { writeFileAtomic } from "./src/io/atomic.ts";
export {
  PyDict,
  PyGlobal,
  PyTuple,
  type PyValue,
  typeName,
  unpickle,
  type UnpickleOptions,
} from "./src/io/pickle.ts";
export { type TorchDtype, TorchFile, type TorchStorage, TorchTensor } from "./src/io/torch.ts";
export { crc32, isZip, ZIP_MAGIC, zipEntries, type ZipEntry, zipRead } from "./src/io/zip.ts";
export { type LinePlotOptions, linePlotSvg, type PlotSeries } from "./src/io/svg.ts";
export { Rng } from "./src/util/rng.ts";
export { InputError } from "./src/util/errors.ts";
