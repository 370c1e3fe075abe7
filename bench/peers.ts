/**
 * `deno task bench:peers [--quick] [...]`: tforce against its peers on the same machine: jax-js 0.1.25 and
 * TF.js 4.22 (WebGPU backend) on the same WebGPU adapter, and PyTorch on the CPU with Debian's reference
 * BLAS and with OpenBLAS. Workloads: f32 A·B at each size (GFLOP/s) and one AdamW training step of a small
 * GPT from identical weights and batch (bench/peers/inputs.ts), whose first losses must agree.
 *
 * Each system runs in a process of its own (bench/peers/protocol.ts); after an untimed check phase
 * (warm-up, compilation, the agreement data) the workloads are timed in rounds, each round visiting the
 * systems in a rotated order, and the median over rounds is reported. Prints one JSON line per system
 * and workload and a Markdown ratio table (other time / tforce time), and writes them to
 * bench/results/peers.jsonl and bench/results/peers.md. Exits 1 when a system's losses or products
 * disagree with tforce's or a system fails.
 *
 * Not part of `deno task test`; `--quick` is the CI size. See bench/peers/plan.ts for the options.
 *
 * @module
 */
import { describeSetup, makeInputs, PEER_SETUP, writeInputs } from "./peers/inputs.ts";
import { type Installed, installPeers } from "./peers/install.ts";
import {
  LOSS_TOLERANCE,
  maxAbsDiff,
  maxRelDiff,
  median,
  parsePeersArgs,
  type PeerResult,
  type PeersOptions,
  probeTolerance,
  ratioTable,
  repsFor,
  rotate,
  type SystemName,
  USAGE,
} from "./peers/plan.ts";
import { type MatmulReply, type PeerInfo, PeerProcess, type TrainReply } from "./peers/protocol.ts";

const PYTHON = "/usr/bin/python3";
const log = (s: string) => console.error(`# ${s}`);

/** The command that starts `system`'s peer, reading its inputs from `data`. */
function launch(
  system: SystemName,
  data: string,
  inst: Installed,
): { cmd: string; args: string[]; env?: Record<string, string> } {
  const root = new URL("../", import.meta.url).pathname, here = `${root}bench/peers/`;
  const deno = [
    "run",
    `--config=${root}deno.json`,
    `--lock=${root}deno.dev.lock`,
    "--allow-read",
    "--allow-env",
  ];
  switch (system) {
    case "tforce":
      return { cmd: "deno", args: [...deno, `${here}tforce_peer.ts`, data] };
    case "jax-js":
      return { cmd: "deno", args: [...deno, `${here}jax_peer.ts`, data, inst.modules] };
    case "tfjs-webgpu":
      return {
        cmd: "deno",
        args: [
          "run",
          `--config=${inst.scratch}/deno.json`,
          "--unstable-detect-cjs",
          "--unstable-sloppy-imports",
          "--allow-read",
          "--allow-env",
          `${here}tfjs_peer.ts`,
          data,
          inst.scratch,
        ],
      };
    case "torch-netlib":
      return { cmd: PYTHON, args: [`${here}torch_peer.py`, data, system] };
    case "torch-openblas":
      return { cmd: PYTHON, args: [`${here}torch_peer.py`, data, system, inst.openblas!] };
  }
}

/** A started peer and what it said about itself. */
interface Peer {
  system: SystemName;
  proc: PeerProcess;
  info: PeerInfo;
}

/** What the untimed check phase collected. */
interface Checked {
  probes: Map<string, number[]>;
  losses: number[];
}

/** All measurements of a run, by system. */
interface Run {
  peers: Peer[];
  checked: Map<SystemName, Checked>;
  times: Map<SystemName, Map<string, number[]>>;
  failures: string[];
}

async function startPeers(
  o: PeersOptions,
  data: string,
  inst: Installed,
  failures: string[],
): Promise<Peer[]> {
  const peers: Peer[] = [];
  for (const system of o.systems) {
    if (system === "torch-openblas" && !inst.openblas) continue;
    const l = launch(system, data, inst);
    const proc = PeerProcess.start(l.cmd, l.args, (s) => log(`${system}: ${s}`));
    try {
      const info = await proc.request<PeerInfo>({ op: "info" });
      log(`${system} ${info.version} on ${info.device}`);
      peers.push({ system, proc, info });
    } catch (e) {
      failures.push(`${system}: did not start: ${(e as Error).message}`);
      await proc.stop();
    }
  }
  return peers;
}

/** Untimed: each product once (warm-up and probes), then train_init and the first check steps. */
async function checkPhase(
  peers: Peer[],
  o: PeersOptions,
  failures: string[],
): Promise<Map<SystemName, Checked>> {
  const checked = new Map<SystemName, Checked>();
  for (const p of [...peers]) {
    try {
      const probes = new Map<string, number[]>();
      for (const n of o.sizes) {
        probes.set(`${n}`, (await p.proc.request<MatmulReply>({ op: "matmul", n, reps: 1 })).probe);
      }
      await p.proc.request({ op: "train_init" });
      const t = await p.proc.request<TrainReply>({ op: "train", steps: o.checkSteps });
      log(`${p.system}: check losses ${t.losses.map((x) => x.toFixed(6)).join(" ")}`);
      checked.set(p.system, { probes, losses: t.losses });
    } catch (e) {
      failures.push(`${p.system}: failed in the check phase: ${(e as Error).message.split("\n")[0]}`);
      peers.splice(peers.indexOf(p), 1);
      await p.proc.stop();
    }
  }
  return checked;
}

/** Timed rounds: for each round and workload, every system once, starting with a different one each round. */
async function timedRounds(
  peers: Peer[],
  o: PeersOptions,
  failures: string[],
): Promise<Map<SystemName, Map<string, number[]>>> {
  const times = new Map<SystemName, Map<string, number[]>>(peers.map((p) => [p.system, new Map()]));
  const workloads = [...o.sizes.map((n) => `matmul:${n}`), "train"];
  for (let r = 0; r < o.rounds; r++) {
    for (const w of workloads) {
      for (const p of rotate([...peers], r)) {
        try {
          const ms = w === "train"
            ? (await p.proc.request<TrainReply>({ op: "train", steps: o.steps })).ms
            : (await p.proc.request<MatmulReply>({
              op: "matmul",
              n: Number(w.slice(7)),
              reps: repsFor(Number(w.slice(7))),
            })).ms;
          const m = times.get(p.system)!;
          m.set(w, [...(m.get(w) ?? []), ms]);
        } catch (e) {
          failures.push(
            `${p.system}: failed in round ${r + 1} (${w}): ${(e as Error).message.split("\n")[0]}`,
          );
          peers.splice(peers.indexOf(p), 1);
          await p.proc.stop();
        }
      }
    }
    log(`round ${r + 1}/${o.rounds} done`);
  }
  return times;
}

/** The JSON-line results, agreement against tforce included. */
function summarize(run: Run, o: PeersOptions): PeerResult[] {
  const out: PeerResult[] = [];
  const base = run.checked.get("tforce");
  const tokens = PEER_SETUP.B * PEER_SETUP.T;
  for (const p of run.peers) {
    const times = run.times.get(p.system)!, mine = run.checked.get(p.system)!;
    const common = { system: p.system, version: p.info.version, device: p.info.device };
    for (const n of o.sizes) {
      const rounds = times.get(`matmul:${n}`) ?? [];
      const ms = median(rounds),
        d = base ? maxAbsDiff(mine.probes.get(`${n}`)!, base.probes.get(`${n}`)!) : NaN;
      out.push({
        ...common,
        workload: "matmul",
        shape: `M=N=K=${n}`,
        ms,
        rounds,
        gflops: (2 * n ** 3) / (ms * 1e6),
        agreement: { max_diff: d, kind: "abs", ok: d <= probeTolerance(n) },
      });
    }
    const rounds = times.get("train") ?? [];
    const ms = median(rounds), d = base ? maxRelDiff(mine.losses, base.losses) : NaN;
    out.push({
      ...common,
      workload: "train_step",
      shape: describeSetup(PEER_SETUP),
      ms,
      rounds,
      tokens_per_s: tokens / (ms / 1000),
      agreement: { max_diff: d, kind: "rel", ok: d <= LOSS_TOLERANCE },
      check_losses: mine.losses,
    });
  }
  return out;
}

/** CPU model, cores, OS and Deno (Deno reads /proc only with every permission: python3 reads the CPU model). */
async function machine(): Promise<string> {
  const model = "print(next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') " +
    "if l.startswith('model name')), 'unknown CPU'))";
  const cpu = await new Deno.Command(PYTHON, { args: ["-c", model], stdout: "piped", stderr: "null" })
    .output()
    .then((r) => new TextDecoder().decode(r.stdout).trim() || "unknown CPU", () => "unknown CPU");
  const osRelease = await Deno.readTextFile("/etc/os-release").catch(() => "");
  const os = /PRETTY_NAME="([^"]*)"/.exec(osRelease)?.[1] ?? Deno.build.os;
  return `${cpu}, ${navigator.hardwareConcurrency} cores, ${os}, Deno ${Deno.version.deno}`;
}

/** bench/results/peers.md: date, machine, adapter, command, the table and the agreement. */
function report(
  results: PeerResult[],
  run: Run,
  o: PeersOptions,
  meta: { date: string; machine: string; notes: string[] },
): string {
  const adapter = run.peers.find((p) => p.system === "tforce")?.info.device ?? "unknown";
  const agree = results.filter((r) => r.system !== "tforce" && r.agreement).map((r) =>
    `- ${r.system} ${r.workload} ${r.shape}: max ${r.agreement!.kind} diff ${
      r.agreement!.max_diff.toExponential(2)
    } ` +
    (r.agreement!.ok ? "(agrees)" : "(DISAGREES)")
  );
  const lines = [
    "# tforce and its peers",
    "",
    `Date: ${meta.date}  `,
    `Machine: ${meta.machine}  `,
    `WebGPU adapter: ${adapter}  `,
    `Command: \`deno task bench:peers ${Deno.args.join(" ")}\`  `,
    `Rounds: ${o.rounds} (round-robin order), median shown; ${o.steps} steps per training request, ` +
    `products about 1 GFLOP per request; wall clock with one wait per request.`,
    "",
    "Cells: median ms, throughput, and (xR) the ratio to tforce's time (above 1: slower than tforce).",
    "",
    ratioTable(results),
    "",
    `Agreement with tforce (losses of the first ${o.checkSteps} AdamW steps from the same weights and ` +
    `batch, relative; probed product entries, absolute):`,
    "",
    ...agree,
    "",
    "Devices:",
    "",
    ...run.peers.map((p) => `- ${p.system} ${p.info.version}: ${p.info.device}`),
    ...(meta.notes.length ? ["", "Notes:", "", ...meta.notes.map((n) => `- ${n}`)] : []),
    "",
  ];
  return lines.join("\n");
}

async function main(): Promise<number> {
  let o: PeersOptions | "help";
  try {
    o = parsePeersArgs(Deno.args);
  } catch (e) {
    console.error(`bench:peers: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (o === "help") {
    console.log(USAGE);
    return 0;
  }
  const js = o.systems.some((s) => s === "jax-js" || s === "tfjs-webgpu");
  const inst = await installPeers(
    o.scratch,
    { npm: js, openblas: o.systems.includes("torch-openblas") },
    log,
  );
  const data = `${inst.scratch}/data`;
  await writeInputs(data, makeInputs(PEER_SETUP, o.sizes));
  const failures: string[] = [];
  const peers = await startPeers(o, data, inst, failures);
  const run: Run = { peers, checked: new Map(), times: new Map(), failures };
  try {
    run.checked = await checkPhase(peers, o, failures);
    run.times = await timedRounds(peers, o, failures);
  } finally {
    for (const p of peers) await p.proc.stop();
  }
  const results = summarize(run, o);
  for (const r of results) console.log(JSON.stringify(r));
  const notes = [...inst.notes, ...failures];
  const md = report(results, run, o, { date: new Date().toISOString(), machine: await machine(), notes });
  console.log("\n" + md);
  if (o.outDir) {
    await Deno.mkdir(o.outDir, { recursive: true });
    await Deno.writeTextFile(`${o.outDir}/peers.md`, md);
    await Deno.writeTextFile(
      `${o.outDir}/peers.jsonl`,
      results.map((r) => JSON.stringify(r)).join("\n") + "\n",
    );
    log(`wrote ${o.outDir}/peers.md and ${o.outDir}/peers.jsonl`);
  }
  const disagree = results.filter((r) => r.agreement && !r.agreement.ok);
  return failures.length || disagree.length ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`bench:peers: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
