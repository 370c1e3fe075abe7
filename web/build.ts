/**
 * Bundles the demo page (web/main.ts and the whole engine under it) with esbuild into web/dist:
 * main.js (+ source map), index.html and style.css. Shaders are imported as text
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
const STATIC = ["index.html", "style.css"];

/**
 * esbuild aliases equal to deno.json's npm imports: `"wgsl_reflect": "npm:wgsl_reflect@1.6.0/x.js"`
 * becomes `wgsl_reflect -> wgsl_reflect/x.js` (resolved in node_modules). Imports of other schemes
 * (jsr:, https:) are not used by the browser code and are left out.
 */
export function npmAliases(imports: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(imports)) {
    const m = /^npm:(@[^/@]+\/[^/@]+|[^/@]+)(?:@[^/]+)?(\/.*)?$/.exec(value);
    if (m && !key.endsWith("/")) out[key] = m[1] + (m[2] ?? "");
  }
  return out;
}

/** Bundles the page into `outdir` and copies the static files; throws with esbuild's messages on error. */
export async function buildWeb(opts: WebBuildOptions = {}): Promise<WebBuild> {
  const outdir = (opts.outdir ?? new URL("dist", WEB).pathname).replace(/\/+$/, "");
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  await Deno.mkdir(outdir, { recursive: true });
  try {
    await esbuild.build({
      absWorkingDir: ROOT.pathname,
      entryPoints: [new URL("main.ts", WEB).pathname],
      outfile: `${outdir}/main.js`,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: opts.minify ?? true,
      sourcemap: "linked",
      loader: { ".wgsl": "text" },
      alias: npmAliases(denoJson.imports ?? {}),
      logLevel: "silent",
    });
  } finally {
    await esbuild.stop();
  }
  for (const f of STATIC) await Deno.copyFile(new URL(f, WEB), `${outdir}/${f}`);
  const files: WebBuild["files"] = [];
  for await (const e of Deno.readDir(outdir)) {
    if (e.isFile) files.push({ name: e.name, bytes: (await Deno.stat(`${outdir}/${e.name}`)).size });
  }
  files.sort((a, b) => a.name.localeCompare(b.name));
  return { outdir, files };
}

if (import.meta.main) {
  const t0 = performance.now();
  const r = await buildWeb();
  for (const f of r.files) console.log(`${f.name.padEnd(14)} ${(f.bytes / 1024).toFixed(1).padStart(8)} KiB`);
  console.log(`web build: ${r.outdir} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}
