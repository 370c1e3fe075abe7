/**
 * Shader source assembly (src/gpu/source.ts): the line rewrites that specialise one WGSL file per use.
 */
import assert from "node:assert/strict";
import { withConsts, withFlags, withTypes } from "../src/gpu/source.ts";

const SHADER = [
  "const HS: u32 = 64u; // head size",
  "const RV: u32 = 2u;",
  "alias QT = f32;",
  "// #if WIDE",
  "const W: u32 = 8u;",
  "// #else",
  "const W: u32 = 4u;",
  "// #endif",
  "const HS2: u32 = HS * 2u;",
].join("\n");

Deno.test("withConsts rewrites the named const lines only, and rejects a missing line or a non-u32", () => {
  const out = withConsts(SHADER, { HS: 128, RV: 1 }, "t.wgsl").split("\n");
  assert.equal(out[0], "const HS: u32 = 128u; // head size");
  assert.equal(out[1], "const RV: u32 = 1u;");
  assert.equal(out[8], "const HS2: u32 = HS * 2u;"); // a derived const is not a line to rewrite
  assert.equal(out.length, SHADER.split("\n").length);
  assert.throws(
    () => withConsts(SHADER, { KS: 2 }, "t.wgsl"),
    /^Error: t\.wgsl: line 'const KS: u32 = \.\.\.;'/,
  );
  assert.throws(() => withConsts(SHADER, { HS: 2.5 }, "t.wgsl"), /t\.wgsl: const HS = 2\.5 is not a u32/);
  assert.throws(() => withConsts(SHADER, { HS: -1 }, "t.wgsl"), /not a u32/);
});

Deno.test("withFlags keeps one branch per flag and the line count; withTypes sets f16 and enables it", () => {
  const wide = withFlags(SHADER, { WIDE: true }, "t.wgsl").split("\n");
  assert.equal(wide[4], "const W: u32 = 8u;");
  assert.equal(wide[6], "");
  const narrow = withFlags(SHADER, { WIDE: false }, "t.wgsl").split("\n");
  assert.equal(narrow[4], "");
  assert.equal(narrow[6], "const W: u32 = 4u;");
  assert.equal(narrow.length, SHADER.split("\n").length);
  assert.throws(() => withFlags(SHADER, {}, "t.wgsl"), /t\.wgsl:4: unknown flag 'WIDE'/);
  const half = withTypes(SHADER, { QT: "f16" }).split("\n");
  assert.equal(half[0], "enable f16; const HS: u32 = 64u; // head size");
  assert.equal(half[2], "alias QT = f16;");
  assert.equal(withTypes(SHADER, { QT: "f32" }), SHADER);
  assert.throws(() => withTypes(SHADER, { XT: "f16" }), /no line 'alias XT = f32;'/);
});
