/**
 * Shader source assembly: WGSL has no includes or generics, so shared snippets are prepended and storage
 * element types are chosen by rewriting lines, both visibly here.
 *
 * @module
 */
import geluMath from "../../shaders/gelu_math.wgsl" with { type: "text" };
import grid from "../../shaders/grid.wgsl" with { type: "text" };
import hash from "../../shaders/hash.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";

/**
 * The shader text with one branch of each `// #if FLAG` / `// #else` / `// #endif` block kept (the first
 * when `flags[FLAG]` is true); the dropped lines and the directives become empty lines, so WGSL error line
 * numbers still match the file. Blocks do not nest; an unknown flag or a stray directive throws, naming
 * `file` and the line.
 */
export function withFlags(source: string, flags: Readonly<Record<string, boolean>>, file: string): string {
  let flag: string | null = null;
  let keep = true;
  return source.split("\n").map((line, i) => {
    const d = /^\s*\/\/\s*#(if|else|endif)\b\s*(\w*)/.exec(line);
    if (!d) return keep ? line : "";
    const where = `${file}:${i + 1}`;
    if (d[1] === "if") {
      if (flag !== null) throw new Error(`${where}: nested #if`);
      if (!(d[2] in flags)) throw new Error(`${where}: unknown flag '${d[2]}'`);
      flag = d[2];
      keep = flags[flag];
    } else if (flag === null) throw new Error(`${where}: #${d[1]} without #if`);
    else if (d[1] === "else") keep = !flags[flag];
    else flag = null, keep = true;
    return "";
  }).join("\n");
}

/**
 * `source` with the counter-based hash functions of shaders/hash.wgsl appended (WGSL declarations may come
 * in any order; appending keeps the file's line numbers).
 */
export function withHash(source: string): string {
  return `${source}\n${hash}`;
}

/**
 * `source` with the grid helpers of shaders/grid.wgsl appended (struct Groups of an entry point's workgroup
 * ids; group_index, the workgroup's linear id; flat_id, an invocation's item); the shader declares
 * `override WG`, its threads per workgroup.
 */
export function withGrid(source: string): string {
  return `${source}\n${grid}`;
}

/**
 * The MLP's activation: "gelu" is the exact GELU (nanoGPT's `nn.GELU()`), "gelu_new" GPT-2's tanh
 * approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Hugging Face's name for it).
 */
export type Activation = "gelu" | "gelu_new";

/** The activations a model can have. */
export const ACTIVATIONS: readonly Activation[] = ["gelu", "gelu_new"];

/**
 * `source` with GELU and its derivative (shaders/gelu_math.wgsl: gelu, gelu_grad, gelu4, gelu_grad4)
 * appended: the exact GELU, or with `activation` "gelu_new" GPT-2's tanh approximation. WGSL declarations
 * may come in any order, and appending keeps the file's line numbers.
 */
export function withGeluMath(source: string, activation: Activation = "gelu"): string {
  if (!ACTIVATIONS.includes(activation)) {
    throw new Error(`activation must be gelu or gelu_new (got ${JSON.stringify(activation)})`);
  }
  return `${source}\n${withFlags(geluMath, { TANH: activation === "gelu_new" }, "gelu_math.wgsl")}`;
}

/**
 * `source` with each line `const NAME: u32 = <n>u;` named in `values` rewritten to the given number: how a
 * dispatcher sizes a shader's register and workgroup arrays (WGSL wants const sizes; `override` constants
 * cannot size private arrays). A missing line throws, naming `file`.
 */
export function withConsts(source: string, values: Readonly<Record<string, number>>, file: string): string {
  let out = source;
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${file}: const ${name} = ${v} is not a u32`);
    const line = new RegExp(`^const ${name}: u32 = \\d+u;`, "m");
    if (!line.test(out)) throw new Error(`${file}: line 'const ${name}: u32 = ...;' not found`);
    out = out.replace(line, `const ${name}: u32 = ${v}u;`);
  }
  return out;
}

/**
 * Element type of a storage buffer: `f32`, or `f16` (half the bytes; needs the `shader-f16` feature).
 * Shaders compute in f32 either way: an f16 buffer is converted on load and rounded on store.
 */
export type StorageType = "f32" | "f16";

/**
 * `source` with storage element types chosen: for each NAME in `types`, the shader's line
 * `alias NAME = f32;` (which must exist, alone on its line, written with f32) becomes
 * `alias NAME = <type>;`, and when any type is f16 the first line gets `enable f16; ` in front (WGSL wants
 * the directive before every declaration), so line numbers in compiler messages still match the file.
 * Shaders written this way load with `f32(x[i])` / `vec4<f32>(x[i])` and store with `NAME(v)` /
 * `vec4<NAME>(v)`: conversions that are no-ops when NAME is f32.
 */
export function withTypes(source: string, types: Readonly<Record<string, StorageType>>): string {
  let out = source;
  for (const [name, type] of Object.entries(types)) {
    if (type !== "f32" && type !== "f16") throw new Error(`storage type of ${name} must be f32 or f16`);
    const line = new RegExp(`^alias ${name} = f32;`, "m");
    if (!line.test(out)) throw new Error(`shader has no line 'alias ${name} = f32;' to set its storage type`);
    out = out.replace(line, `alias ${name} = ${type};`);
  }
  return Object.values(types).includes("f16") ? `enable f16; ${out}` : out;
}

/** Throws a one-line error when `types` asks for f16 and the device lacks `shader-f16`. */
export function checkTypes(gpu: Gpu, kernel: string, types: Readonly<Record<string, StorageType>>): void {
  if (Object.values(types).includes("f16") && !gpu.features.f16) {
    throw new Error(`${kernel}: f16 storage needs the adapter feature 'shader-f16', which this GPU lacks`);
  }
}
