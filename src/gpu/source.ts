/**
 * Shader source assembly: WGSL has no includes, so shared snippets are prepended visibly here.
 *
 * @module
 */
import hash from "../../shaders/hash.wgsl" with { type: "text" };

/** `source` with the counter-based hash functions of shaders/hash.wgsl prepended. */
export function withHash(source: string): string {
  return `${hash}\n${source}`;
}
