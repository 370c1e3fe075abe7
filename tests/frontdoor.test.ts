/**
 * The README's front door. `./tforce train` and `./tforce test` set up a fresh Debian machine themselves
 * (Deno from npm, Mesa's Vulkan drivers, and for the tests Chromium and PyTorch from apt), and the runtime
 * tasks fetch only the npm packages they import, so that once the first run has cached them a training
 * run needs no network.
 *
 * The set-up tests run the real `tforce` script with a PATH of stubs (apt-get, npm, deno, id, sudo) that
 * record their arguments, and with TFORCE_SYSROOT pointing the system paths it checks (/usr/bin/chromium,
 * the Vulkan loader and drivers, /usr/bin/python3) at a temporary folder: empty for a fresh machine,
 * stubbed for a set-up one. Nothing is installed and no real deno runs.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

async function deno(args: string[], cwd = ROOT): Promise<string> {
  const out = await new Deno.Command("deno", { args, cwd, env: { NO_COLOR: "1" } }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `deno ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return text;
}

interface Graph {
  modules: { specifier: string; kind?: string; npmPackage?: string }[];
  npmPackages?: Record<string, unknown>;
}

Deno.test("frontdoor: deno info cli.ts: wgsl_reflect is the one npm package imported and resolved", async () => {
  const graph = JSON.parse(await deno(["info", "--json", "cli.ts"])) as Graph;
  const imported = new Set(graph.modules.filter((m) => m.kind === "npm").map((m) => m.npmPackage));
  assert.deepEqual([...imported], ["wgsl_reflect@1.6.0"]);
  // What Deno resolves, and installs, to run cli.ts: every package of deno.json's imports and deno.lock.
  assert.deepEqual(Object.keys(graph.npmPackages ?? {}), ["wgsl_reflect@1.6.0"]);
});

Deno.test("frontdoor: deno task train, in a copy of what it runs, installs only wgsl_reflect", async () => {
  // `deno task` installs every package of deno.lock before it runs a task, whatever the task imports, so
  // the lockfile matters as much as the imports: the copy has deno.json, deno.lock and cli.ts's files.
  const graph = JSON.parse(await deno(["info", "--json", "cli.ts"])) as Graph;
  const dir = await Deno.makeTempDir({ prefix: "tforce-frontdoor-" });
  try {
    const files = ["deno.json", "deno.lock"];
    for (const { specifier } of graph.modules) {
      if (specifier.startsWith("file://")) files.push(new URL(specifier).pathname.slice(ROOT.length));
    }
    assert.ok(files.includes("src/gpu/device.ts") && files.some((f) => f.endsWith(".wgsl")), `${files}`);
    for (const f of files) {
      await Deno.mkdir(`${dir}/${f}`.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.copyFile(`${ROOT}${f}`, `${dir}/${f}`);
    }
    const help = await deno(["task", "train", "--help"], dir);
    assert.match(help, /^usage: deno task train /m);
    const installed: string[] = [];
    for await (const e of Deno.readDir(`${dir}/node_modules/.deno`)) {
      if (e.isDirectory && e.name !== "node_modules") installed.push(e.name);
    }
    assert.deepEqual(installed, ["wgsl_reflect@1.6.0"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("frontdoor: deno.lock and deno.json's imports name wgsl_reflect only", async () => {
  type Lock = { npm: Record<string, unknown> };
  type Config = { imports: Record<string, string>; tasks: Record<string, string> };
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.lock`)) as Lock;
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as Config;
  assert.deepEqual(
    Object.keys(lock.npm),
    ["wgsl_reflect@1.6.0"],
    "deno.lock names more than the engine's package: was a test or the web build run without " +
      "--lock=deno.dev.lock (not through deno task)? deno.lock as committed has wgsl_reflect only",
  );
  assert.deepEqual(config.imports, { wgsl_reflect: "npm:wgsl_reflect@1.6.0/wgsl_reflect.module.js" });
  // The tasks that import esbuild and playwright-core keep them in deno.dev.lock; the others use deno.lock.
  const dev = Object.keys(config.tasks).filter((t) => / --lock=deno\.dev\.lock /.test(config.tasks[t]));
  assert.deepEqual(dev, ["test", "bench:peers", "check", "build"]);
  const devLock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.dev.lock`)) as Lock;
  for (const p of ["esbuild@0.28.2", "playwright-core@1.64.1", "wgsl_reflect@1.6.0"]) {
    assert.ok(p in devLock.npm, p);
  }
});

/** A machine for `tforce` to set up: a PATH of stubs and a system root. */
class Machine {
  readonly bin: string;
  readonly sys: string;
  readonly log: string;

  private constructor(readonly dir: string) {
    this.bin = `${dir}/bin`;
    this.sys = `${dir}/sys`;
    this.log = `${dir}/calls.log`;
  }

  /**
   * `root`: whether `id -u` says 0. `sudo`, `npm`: whether those are on PATH. `deno`: the version that
   * `deno --version` reports, or null for none. `setUp`: whether the Vulkan loader and driver, Chromium
   * and PyTorch are there. `tests`: what `deno task test` prints and its exit status.
   */
  static async create(opts: {
    root?: boolean;
    sudo?: boolean;
    npm?: boolean;
    deno?: string | null;
    setUp?: boolean;
    tests?: { output: string; code: number };
  }): Promise<Machine> {
    const m = new Machine(await Deno.makeTempDir({ prefix: "tforce-machine-" }));
    await Deno.mkdir(m.bin);
    await Deno.mkdir(m.sys);
    await Deno.writeTextFile(m.log, "");
    // What the script and the stubs run besides the stubs: the system's, by absolute path (a PATH entry
    // would let them find the real apt-get or npm).
    for (const tool of ["bash", "env", "dirname", "mktemp", "tee", "tail", "grep", "rm", "cat", "chmod"]) {
      await m.script(
        `bin/${tool}`,
        `for d in /usr/bin /bin; do [ -x "$d/${tool}" ] && exec "$d/${tool}" "$@"; done\nexit 127`,
      );
    }
    const record = (name: string) => `echo "${name} $*" >> '${m.log}'`;
    // What apt-get and npm "install": pkg/NAME copied to bin/NAME.
    const install = (name: string) =>
      `cat '${m.dir}/pkg/${name}' > '${m.bin}/${name}'; chmod +x '${m.bin}/${name}'`;
    const tests = opts.tests ?? { output: "ok | 3 passed | 0 failed (1s)", code: 0 };
    const deno = (version: string) =>
      `if [ "$1" = --version ]; then echo "deno ${version} (stable, release, x86_64-unknown-linux-gnu)"; ` +
      `exit 0; fi\n${record("deno")}\n` +
      `if [ "$2" = test ]; then echo '${tests.output}'; exit ${tests.code}; fi`;
    await m.script("pkg/deno", deno("2.9.6"));
    await m.script("pkg/npm", `${record("npm")}\n[ "$*" = "install -g deno@2.9.6" ] && ${install("deno")}`);
    await m.script(
      "bin/apt-get",
      `${record("apt-get")}\ncase " $* " in *" npm "*) ${install("npm")} ;; esac`,
    );
    await m.script("bin/id", `[ "$1" = -u ] && echo ${(opts.root ?? true) ? 0 : 1000}`);
    if (opts.sudo) await m.script("bin/sudo", `${record("sudo")}\nexec "$@"`);
    if (opts.npm ?? true) await Deno.copyFile(`${m.dir}/pkg/npm`, `${m.bin}/npm`);
    if (opts.deno) await m.script("bin/deno", deno(opts.deno));
    if (opts.setUp) {
      for (
        const f of ["usr/lib/x86_64-linux-gnu/libvulkan.so.1", "usr/share/vulkan/icd.d/lvp_icd.x86_64.json"]
      ) {
        await m.script(`sys/${f}`, "");
      }
      await m.script("sys/usr/bin/chromium", "exit 0");
      await m.script("sys/usr/bin/python3", `[ "$*" = "-c import torch" ]`);
    }
    return m;
  }

  /** Writes an executable shell script at `path`, relative to the machine's folder. */
  private async script(path: string, body: string): Promise<void> {
    path = `${this.dir}/${path}`;
    await Deno.mkdir(path.replace(/\/[^/]*$/, ""), { recursive: true });
    await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  /** Runs `./tforce ...args` on this machine: its exit status, output and the stubs' calls. */
  async tforce(
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string[]; calls: string[] }> {
    const out = await new Deno.Command(`${ROOT}tforce`, {
      args,
      clearEnv: true,
      env: { PATH: this.bin, TFORCE_SYSROOT: this.sys, TMPDIR: this.dir },
    }).output();
    const lines = (s: string) => s.split("\n").filter((l) => l !== "");
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: lines(new TextDecoder().decode(out.stderr)),
      calls: lines(await Deno.readTextFile(this.log)),
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}

const SAY = {
  npm: "tforce: installing nodejs and npm (Debian's), to install Deno from npm",
  deno: "tforce: installing Deno 2.9.6 from npm",
  mesa: "tforce: installing mesa-vulkan-drivers (Mesa's Vulkan drivers: WebGPU without a GPU)",
  chromium: "tforce: installing chromium (the browser test drives it headless)",
  torch: "tforce: installing python3-torch (the cross-check of checkpoints against PyTorch)",
};

Deno.test("frontdoor: ./tforce test on a fresh machine as root installs everything, then runs the tests", async () => {
  await using m = await Machine.create({ npm: false, deno: null });
  const r = await m.tforce("test");
  assert.equal(r.code, 0, r.stderr.join("\n"));
  assert.deepEqual(r.stderr, [SAY.npm, SAY.deno, SAY.mesa, SAY.chromium, SAY.torch]);
  assert.deepEqual(r.calls, [
    "apt-get update",
    "apt-get install -y nodejs npm",
    "npm install -g deno@2.9.6",
    "apt-get install -y mesa-vulkan-drivers",
    "apt-get install -y chromium",
    "apt-get install -y --no-install-recommends python3-torch",
    "deno task test",
  ]);
  assert.equal(r.stdout, "ok | 3 passed | 0 failed (1s)\n");
});

Deno.test("frontdoor: ./tforce train on a fresh machine installs Deno and Mesa only, passing flags on", async () => {
  await using m = await Machine.create({ deno: null });
  const r = await m.tforce("train", "--steps", "100");
  assert.equal(r.code, 0, r.stderr.join("\n"));
  assert.deepEqual(r.stderr, [SAY.deno, SAY.mesa]);
  assert.deepEqual(r.calls, [
    "npm install -g deno@2.9.6",
    "apt-get update",
    "apt-get install -y mesa-vulkan-drivers",
    "deno task train --steps 100",
  ]);
});

Deno.test("frontdoor: ./tforce build and check set up Deno only", async () => {
  await using m = await Machine.create({ deno: null });
  const r = await m.tforce("build");
  assert.deepEqual([r.code, r.stderr, r.calls], [0, [SAY.deno], [
    "npm install -g deno@2.9.6",
    "deno task build",
  ]]);
});

Deno.test("frontdoor: on a set-up machine ./tforce installs nothing and says nothing", async () => {
  await using m = await Machine.create({ deno: "2.9.6", setUp: true });
  for (const task of ["test", "train", "sample"]) {
    const r = await m.tforce(task, "--flag", "a b");
    assert.equal(r.code, 0);
    assert.deepEqual(r.stderr, []);
  }
  assert.deepEqual((await m.tforce("eval")).calls, [
    "deno task test --flag a b",
    "deno task train --flag a b",
    "deno task sample --flag a b",
    "deno task eval",
  ]);
});

Deno.test("frontdoor: a Deno older than 2.9 is replaced from npm; a later one is kept", async () => {
  await using old = await Machine.create({ deno: "2.5.4", setUp: true });
  const r = await old.tforce("train");
  assert.deepEqual([r.code, r.stderr, r.calls], [0, [SAY.deno], [
    "npm install -g deno@2.9.6",
    "deno task train",
  ]]);
  await using later = await Machine.create({ deno: "2.10.0", setUp: true });
  assert.deepEqual((await later.tforce("train")).calls, ["deno task train"]);
});

Deno.test("frontdoor: not root, ./tforce installs through sudo", async () => {
  await using m = await Machine.create({ root: false, sudo: true, deno: null, setUp: true });
  const r = await m.tforce("eval", "--checkpoint", "out/model.safetensors");
  assert.equal(r.code, 0, r.stderr.join("\n"));
  assert.deepEqual(r.stderr, [SAY.deno]);
  assert.deepEqual(r.calls, [
    "sudo env DEBIAN_FRONTEND=noninteractive npm install -g deno@2.9.6",
    "npm install -g deno@2.9.6",
    "deno task eval --checkpoint out/model.safetensors",
  ]);
});

Deno.test("frontdoor: neither root nor sudo: one line with the commands to run as root, exit 1", async () => {
  await using m = await Machine.create({ root: false, npm: false, deno: null });
  const train = await m.tforce("train");
  assert.deepEqual([train.code, train.stdout, train.calls], [1, "", []]);
  assert.deepEqual(train.stderr, [
    "tforce: not root and no sudo; as root, run: apt-get update && apt-get install -y nodejs npm && " +
    "npm install -g deno@2.9.6 && apt-get install -y mesa-vulkan-drivers",
  ]);
  const test = await m.tforce("test");
  assert.equal(test.code, 1);
  assert.deepEqual(test.stderr, [
    "tforce: not root and no sudo; as root, run: apt-get update && apt-get install -y nodejs npm && " +
    "npm install -g deno@2.9.6 && apt-get install -y mesa-vulkan-drivers && apt-get install -y chromium && " +
    "apt-get install -y --no-install-recommends python3-torch",
  ]);
  // Nothing missing: nothing needs root.
  await using ready = await Machine.create({ root: false, deno: "2.9.6", setUp: true });
  assert.deepEqual((await ready.tforce("test")).calls, ["deno task test"]);
});

Deno.test("frontdoor: ./tforce test accepts exit 134 only after a summary with no failure", async () => {
  const cases: [string, number, number][] = [
    ["ok | 380 passed | 0 failed (5m)\ncorrupted size vs. prev_size", 134, 0],
    ["ok | 380 passed (12 steps) | 0 failed | 2 ignored (5m)", 134, 0],
    ["FAILED | 379 passed | 1 failed (5m)", 134, 134],
    ["ok | 380 passed | 0 failed (5m)", 1, 1],
    ["running 3 tests from ./tests/gelu.test.ts", 134, 134],
  ];
  for (const [output, code, want] of cases) {
    await using m = await Machine.create({ deno: "2.9.6", setUp: true, tests: { output, code } });
    const r = await m.tforce("test");
    assert.equal(r.code, want, output);
    assert.equal(r.stdout, `${output}\n`);
    assert.deepEqual(
      r.stderr,
      want === 0 && code !== 0
        ? [
          "tforce: every test passed; the process aborted while exiting (known Deno/lavapipe teardown crash)",
        ]
        : [],
    );
  }
});

Deno.test("frontdoor: ./tforce without a task prints its usage and exits 2", async () => {
  await using m = await Machine.create({ deno: "2.9.6", setUp: true });
  const r = await m.tforce();
  assert.deepEqual([r.code, r.calls], [2, []]);
  assert.match(r.stderr.join("\n"), /^usage: \.\/tforce TASK \[ARGS\.\.\.\]/);
});
