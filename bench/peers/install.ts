/**
 * Installs the peers of the comparison into a scratch folder, never into the project:
 *
 *   SCRATCH/package.json, package-lock.json   copies of bench/peers/'s pinned ones; `npm ci` fills
 *   SCRATCH/node_modules                      jax-js, TF.js and their dependencies
 *   SCRATCH/esm/@tfjs packages                TF.js's unbundled ESM build moved out of node_modules
 *   SCRATCH/deno.json                         the import map bench/peers/tfjs_peer.ts runs under
 *   SCRATCH/openblas/                         Debian's libopenblas0-pthread unpacked (apt-get download +
 *                                             dpkg -x), for PyTorch's second CPU baseline
 *
 * Each part is redone only when missing or when the pinned files changed.
 *
 * @module
 */

const HERE = new URL(".", import.meta.url).pathname;
const TFJS = ["tfjs-core", "tfjs-backend-cpu", "tfjs-backend-webgpu"] as const;
/** Where libopenblas0-pthread puts its libblas.so.3 (relative to the unpacked root). */
const OPENBLAS_LIB = "usr/lib/x86_64-linux-gnu/openblas-pthread";

/** What was installed. */
export interface Installed {
  /** SCRATCH/node_modules. */
  modules: string;
  /** SCRATCH (holds deno.json and esm/ for the TF.js peer). */
  scratch: string;
  /** The directory holding OpenBLAS's libblas.so.3, or null when it could not be installed. */
  openblas: string | null;
  /** Problems that disable a system, one line each. */
  notes: string[];
}

async function run(cmd: string, args: string[], cwd: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
    return { ok: r.success, out: text.trim() };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function sameText(a: string, b: string): Promise<boolean> {
  try {
    return (await Deno.readTextFile(a)) === (await Deno.readTextFile(b));
  } catch {
    return false;
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** npm ci of the pinned packages, then TF.js's packages copied to esm/ and the import map written. */
async function installNpm(scratch: string, log: (s: string) => void): Promise<void> {
  const pinned = ["package.json", "package-lock.json"];
  let fresh = await exists(`${scratch}/node_modules/.package-lock.json`);
  for (const f of pinned) fresh &&= await sameText(`${HERE}${f}`, `${scratch}/${f}`);
  if (!fresh) {
    for (const f of pinned) await Deno.copyFile(`${HERE}${f}`, `${scratch}/${f}`);
    log("npm ci (jax-js, TF.js) ...");
    const r = await run("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], scratch);
    if (!r.ok) throw new Error(`npm ci failed in ${scratch}:\n${r.out}`);
    await Deno.remove(`${scratch}/esm`, { recursive: true }).catch(() => {});
  }
  for (const p of TFJS) {
    if (!(await exists(`${scratch}/esm/${p}/package.json`))) {
      await copyTree(`${scratch}/node_modules/@tensorflow/${p}`, `${scratch}/esm/${p}`);
    }
  }
  const config = {
    nodeModulesDir: "manual",
    imports: {
      "@tensorflow/tfjs-core": "./esm/tfjs-core/dist/index.js",
      "@tensorflow/tfjs-core/": "./esm/tfjs-core/",
      "@tensorflow/tfjs-backend-cpu/": "./esm/tfjs-backend-cpu/",
    },
  };
  await Deno.writeTextFile(`${scratch}/deno.json`, JSON.stringify(config, null, 2) + "\n");
}

/** libopenblas0-pthread unpacked under SCRATCH/openblas; returns its lib dir. */
async function installOpenBlas(scratch: string, log: (s: string) => void): Promise<string> {
  const lib = `${scratch}/openblas/${OPENBLAS_LIB}`;
  if (await exists(`${lib}/libblas.so.3`)) return lib;
  log("apt-get download libopenblas0-pthread ...");
  let r = await run("apt-get", ["download", "libopenblas0-pthread"], scratch);
  if (!r.ok) {
    await run("apt-get", ["update", "-qq"], scratch);
    r = await run("apt-get", ["download", "libopenblas0-pthread"], scratch);
  }
  if (!r.ok) throw new Error(`apt-get download libopenblas0-pthread failed: ${r.out.split("\n").pop()}`);
  const deb = [...Deno.readDirSync(scratch)].map((e) => e.name).find((n) =>
    /^libopenblas0-pthread_.*\.deb$/.test(n)
  );
  if (!deb) throw new Error("apt-get download left no libopenblas0-pthread .deb");
  const x = await run("dpkg", ["-x", deb, "openblas"], scratch);
  if (!x.ok || !(await exists(`${lib}/libblas.so.3`))) throw new Error(`dpkg -x ${deb} failed: ${x.out}`);
  return lib;
}

/**
 * Installs what the chosen systems need into `scratch`. npm failing is fatal when a JS peer is wanted;
 * OpenBLAS failing only drops the torch-openblas system (noted).
 */
export async function installPeers(
  scratch: string,
  want: { npm: boolean; openblas: boolean },
  log: (s: string) => void,
): Promise<Installed> {
  await Deno.mkdir(scratch, { recursive: true });
  const root = await Deno.realPath(scratch);
  const notes: string[] = [];
  if (want.npm) await installNpm(root, log);
  let openblas: string | null = null;
  if (want.openblas) {
    try {
      openblas = await installOpenBlas(root, log);
    } catch (e) {
      notes.push(`torch-openblas skipped: ${(e as Error).message}`);
    }
  }
  return { modules: `${root}/node_modules`, scratch: root, openblas, notes };
}
