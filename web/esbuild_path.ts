/**
 * Prints the path of esbuild's native binary for this machine, as Deno lays out node_modules
 * (`"nodeModulesDir": "auto"`), for the `--allow-run` of the tasks that bundle the page: the esbuild
 * package runs it as a child process, and which binary it is depends on the OS and CPU. It needs no
 * permission and the binary need not be installed yet (the bundling run installs it).
 *
 *   deno run web/esbuild_path.ts   ->   node_modules/.deno/@esbuild+linux-x64@0.28.2/node_modules/@esbuild/linux-x64/bin/esbuild
 *
 * @module
 */

/** The esbuild version web/build.ts imports (`npm:esbuild@…`). */
export const ESBUILD_VERSION = "0.28.2";

/** The binary's path, relative to the project root, for `os` and `arch` as Deno.build names them. */
export function esbuildBinary(
  os: typeof Deno.build.os,
  arch: typeof Deno.build.arch,
  version: string = ESBUILD_VERSION,
): string {
  const platform = os === "windows" ? "win32" : os;
  const cpu = arch === "x86_64" ? "x64" : "arm64";
  const pkg = `${platform}-${cpu}`;
  const file = os === "windows" ? "esbuild.exe" : "bin/esbuild";
  return `node_modules/.deno/@esbuild+${pkg}@${version}/node_modules/@esbuild/${pkg}/${file}`;
}

if (import.meta.main) console.log(esbuildBinary(Deno.build.os, Deno.build.arch));
