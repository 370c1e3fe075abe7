/**
 * The float64 CPU reference of every kernel and of the whole GPT: the oracle the GPU is tested against.
 *
 * @module
 */
export * from "./attention.ts";
export * from "./crossentropy.ts";
export { attentionDecode, decodeEmbed } from "./decode.ts";
export * from "./encoder.ts";
export * from "./gather.ts";
export * from "./gelu.ts";
export * from "./gpt.ts";
export * from "./gradstats.ts";
export * from "../util/hash.ts";
export * from "./layernorm.ts";
export * from "./matmul.ts";
export * from "./modes.ts";
export * from "./optimizer.ts";
export * from "./residual.ts";
export * from "./sample.ts";
