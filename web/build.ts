/**
 * Bundles with esbuild into web/dist:
 * - the playground page: main.js (web/main.ts and the engine under it, + source map), index.html and
 *   style.css;
 * - the engine alone: tforce.js (+ source map), one ES module of the library's public API (mod.ts) with
 *   its shaders, and example.html, a short page that imports it and trains a model.
 *
 * Shaders are imported as text
 * (`with { type: "text" }`), which esbuild's `text` loader turns into string constants. Bare imports
 * are resolved the way Deno resolves them: through deno.json's import map (for example `wgsl_reflect`
 * is `npm:wgsl_reflect@1.6.0/wgsl_reflect.module.js`), read from the node_modules folder that Deno
 * creates (`"nodeModulesDir": "auto"`).
 *
 * Run: `deno task build` (type-checks the page for the browser first, then calls this file).
 *
 * @module
 */
// Not in deno.json's imports, which every `deno task` installs: only the build and the browser test use
// esbuild (their tasks lock it in deno.dev.lock).
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@0.28.2";

/** What {@linkcode buildWeb} produced. */
export interface WebBuild {
  /** Absolute path of the output folder. */
  outdir: string;
  /** Files written, relative to `outdir`, with their sizes in bytes. */
  files: { name: string; bytes: number }[];
  /** The engine bundle tforce.js: its size, gzipped size and its inputs' bytes in it, largest first. */
  engine: { bytes: number; gzipBytes: number; parts: { name: string; bytes: number }[] };
}

/** Options for {@linkcode buildWeb}. */
export interface WebBuildOptions {
  /** Output folder (default: web/dist beside this file). */
  outdir?: string;
  /** Minify main.js (default true). */
  minify?: boolean;
}

const WEB = new URL("./", import.meta.url);
const ROOT = new URL("../", import.meta.url);
const STATIC = ["index.html", "style.css", "example.html"];

/**
 * esbuild aliases equal to deno.json's npm imports: `"wgsl_reflect": "npm:wgsl_reflect@1.6.0/x.js"`
 * becomes `wgsl_reflect -> wgsl_reflect/x.js` (resolved in node_modules), and so does the full
 * specifier, which the engine imports so that no import map is needed. Imports of other schemes (jsr:,
 * https:) are not used by the browser code and are left out.
 */
export function npmAliases(imports: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(imports)) {
    const m = /^npm:(@[^/@]+\/[^/@]+|[^/@]+)(?:@[^/]+)?(\/.*)?$/.exec(value);
    if (m && !key.endsWith("/")) out[key] = out[value] = m[1] + (m[2] ?? "");
  }
  return out;
}

/**
 * Bundles the page and the engine into `outdir` and copies the static files; throws with esbuild's
 * messages on error.
 */
export async function buildWeb(opts: WebBuildOptions = {}): Promise<WebBuild> {
  const outdir = (opts.outdir ?? new URL("dist", WEB).pathname).replace(/\/+$/, "");
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  await Deno.mkdir(outdir, { recursive: true });
  const common: esbuild.BuildOptions = {
    absWorkingDir: ROOT.pathname,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: opts.minify ?? true,
    sourcemap: "linked",
    loader: { ".wgsl": "text" },
    alias: npmAliases(denoJson.imports ?? {}),
    logLevel: "silent",
  };
  let engine: esbuild.Metafile;
  try {
    const [, lib] = await Promise.all([
      esbuild.build({
        ...common,
        entryPoints: [new URL("main.ts", WEB).pathname],
        outfile: `${outdir}/main.js`,
      }),
      esbuild.build({
        ...common,
        entryPoints: [new URL("mod.ts", ROOT).pathname],
        outfile: `${outdir}/tforce.js`,
        metafile: true,
      }),
    ]);
    engine = lib.metafile!;
  } finally {
    await esbuild.stop();
  }
  for (const f of STATIC) await Deno.copyFile(new URL(f, WEB), `${outdir}/${f}`);
  const files: WebBuild["files"] = [];
  for await (const e of Deno.readDir(outdir)) {
    if (e.isFile) files.push({ name: e.name, bytes: (await Deno.stat(`${outdir}/${e.name}`)).size });
  }
  files.sort((a, b) => a.name.localeCompare(b.name));
  const out = Object.entries(engine.outputs).find(([name]) => name.endsWith("tforce.js"))![1];
  const parts = Object.entries(out.inputs).map(([name, i]) => ({ name, bytes: i.bytesInOutput }))
    .sort((a, b) => b.bytes - a.bytes);
  const gzip = await new Response(
    (await Deno.open(`${outdir}/tforce.js`)).readable.pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  return { outdir, files, engine: { bytes: out.bytes, gzipBytes: gzip.byteLength, parts } };
}

/**
 * The engine bundle's make-up by group: the shaders, each source folder (src/model, src/train, ...) and
 * each npm package, largest first.
 */
export function engineGroups(parts: { name: string; bytes: number }[]): { name: string; bytes: number }[] {
  const groups = new Map<string, number>();
  for (const p of parts) {
    const name = shortName(p.name);
    const key = name.startsWith("npm:")
      ? name.split("/")[0]
      : name.startsWith("shaders/")
      ? "shaders/*.wgsl"
      : name.split("/").slice(0, 2).join("/");
    groups.set(key, (groups.get(key) ?? 0) + p.bytes);
  }
  return [...groups].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/** An esbuild input path without Deno's node_modules prefix: "npm:wgsl_reflect/wgsl_reflect.module.js". */
function shortName(path: string): string {
  const m = /node_modules\/(?:\.deno\/[^/]+\/node_modules\/)?(.*)$/.exec(path);
  return m ? `npm:${m[1]}` : path;
}

if (import.meta.main) {
  const t0 = performance.now();
  const r = await buildWeb();
  const kib = (n: number) => `${(n / 1024).toFixed(1).padStart(8)} KiB`;
  for (const f of r.files) console.log(`${f.name.padEnd(16)} ${kib(f.bytes)}`);
  console.log(
    `\nengine bundle tforce.js: ${kib(r.engine.bytes).trim()} minified, ${
      kib(r.engine.gzipBytes).trim()
    } gzipped; by part:`,
  );
  for (const g of engineGroups(r.engine.parts)) {
    console.log(
      `  ${g.name.padEnd(28)} ${kib(g.bytes)}  ${(100 * g.bytes / r.engine.bytes).toFixed(1).padStart(5)}%`,
    );
  }
  console.log("largest files:");
  for (const p of r.engine.parts.slice(0, 8)) {
    console.log(`  ${shortName(p.name).padEnd(40)} ${kib(p.bytes)}`);
  }
  console.log(`\nweb build: ${r.outdir} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}
