/**
 * Every kernel dispatcher: each returns the Dispatch(es) of one WGSL entry point family for given
 * buffers and shapes. Record them with `encodeDispatches` / `submitDispatches`.
 *
 * @module
 */
export * from "./attention.ts";
export * from "./convert.ts";
export * from "./crossentropy.ts";
export * from "./decode.ts";
export * from "./encoder.ts";
export * from "./gather.ts";
export * from "./gelu.ts";
export * from "./gradstats.ts";
export * from "./layernorm.ts";
export * from "./matmul.ts";
export * from "./modes.ts";
export * from "./optimizer.ts";
export * from "./residual.ts";
export * from "./sample.ts";
