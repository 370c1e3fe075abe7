/**
 * The pure parts of the peer comparison (bench/peers.ts): its command line, the round-robin order and
 * statistics, the ratio table, the shared inputs and the protocol's line splitting. Nothing here installs
 * a peer or times anything.
 */
import assert from "node:assert/strict";
import {
  FULL,
  LOSS_TOLERANCE,
  maxAbsDiff,
  maxRelDiff,
  median,
  parsePeersArgs,
  type PeerResult,
  type PeersOptions,
  QUICK,
  ratioTable,
  repsFor,
  rotate,
  SYSTEMS,
} from "../bench/peers/plan.ts";
import { initialTensors, makeBatch, makeInputs, makeMatmul, PEER_SETUP } from "../bench/peers/inputs.ts";
import { probeIndices, readLines } from "../bench/peers/protocol.ts";
import { paramSpecs } from "../src/model/params.ts";
import { decodeSafetensors } from "../src/io/safetensors.ts";

function options(args: string[]): PeersOptions {
  const o = parsePeersArgs(args);
  assert.notEqual(o, "help");
  return o as PeersOptions;
}

Deno.test("peers args: defaults, --quick, and explicit sizes, rounds, steps and systems", () => {
  const d = options([]);
  assert.deepEqual(d.sizes, [...FULL.sizes]);
  assert.equal(d.rounds, FULL.rounds);
  assert.equal(d.steps, FULL.steps);
  assert.equal(d.checkSteps, FULL.checkSteps);
  assert.deepEqual(d.systems, [...SYSTEMS]);
  assert.equal(d.outDir, "bench/results");
  const q = options(["--quick"]);
  assert.deepEqual(q.sizes, [...QUICK.sizes]);
  assert.equal(q.rounds, QUICK.rounds);
  const e = options([
    "--quick",
    "--sizes",
    "128, 384",
    "--rounds=7",
    "--steps",
    "4",
    "--check-steps",
    "3",
    "--systems",
    "torch-netlib,tforce",
    "--no-write",
  ]);
  assert.deepEqual(e.sizes, [128, 384]);
  assert.equal(e.rounds, 7);
  assert.equal(e.steps, 4);
  assert.equal(e.checkSteps, 3);
  assert.deepEqual(e.systems, ["tforce", "torch-netlib"], "in SYSTEMS order");
  assert.equal(e.outDir, null);
  assert.equal(parsePeersArgs(["--help"]), "help");
});

Deno.test("peers args: each bad value is a one-line error naming it", () => {
  const bad: [string[], RegExp][] = [
    [["--rounds", "0"], /--rounds must be a positive integer \(got '0'\)/],
    [["--steps", "1.5"], /--steps must be a positive integer/],
    [["--sizes", "512,x"], /--sizes must be a positive integer \(got 'x'\)/],
    [["--systems", "tforce,jax"], /unknown system 'jax'/],
    [["--systems", "jax-js"], /must include tforce/],
    [["--bogus"], /bogus/],
    [["extra"], /extra/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parsePeersArgs(args), (e: Error) => re.test(e.message) && !e.message.includes("\n"));
  }
});

Deno.test("peers: reps give about a GFLOP per request, within [2, 16]", () => {
  assert.equal(repsFor(64), 16);
  assert.equal(repsFor(256), 16);
  assert.equal(repsFor(512), 4);
  assert.equal(repsFor(1024), 2);
  assert.equal(repsFor(4096), 2);
});

Deno.test("peers: round-robin order, median and differences", () => {
  const s = ["a", "b", "c"];
  assert.deepEqual(rotate(s, 0), s);
  assert.deepEqual(rotate(s, 1), ["b", "c", "a"]);
  assert.deepEqual(rotate(s, 5), ["c", "a", "b"]);
  assert.deepEqual(rotate([], 3), []);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(maxRelDiff([1.1, 2], [1, 2]), 0.10000000000000009);
  assert.equal(maxRelDiff([1], [1, 2]), Infinity);
  assert.equal(maxAbsDiff([1, -3], [1.5, -3]), 0.5);
  assert.equal(maxAbsDiff([], []), Infinity);
});

Deno.test("peers: the ratio table puts tforce first and each other time over tforce's", () => {
  const r = (
    system: PeerResult["system"],
    workload: string,
    ms: number,
    extra: Partial<PeerResult> = {},
  ) => ({
    system,
    version: system === "jax-js" ? "0.1.25" : "1",
    workload,
    shape: workload === "matmul" ? "M=N=K=512" : "L=2",
    ms,
    rounds: [ms],
    device: "d",
    ...extra,
  });
  const results: PeerResult[] = [
    r("jax-js", "matmul", 50, { gflops: 5.37 }),
    r("tforce", "matmul", 25, { gflops: 10.7 }),
    r("tforce", "train_step", 200, { tokens_per_s: 2560 }),
    r("jax-js", "train_step", 300, {
      tokens_per_s: 1707,
      agreement: { max_diff: 2 * LOSS_TOLERANCE, kind: "rel", ok: false },
    }),
    r("torch-openblas", "train_step", 50),
  ];
  const lines = ratioTable(results).split("\n");
  assert.equal(lines[0], "| workload | tforce 1 | jax-js 0.1.25 | torch-openblas 1 |");
  assert.equal(lines[1], "| --- | --- | --- | --- |");
  assert.equal(
    lines[2],
    "| matmul M=N=K=512 | 25.0 ms, 10.7 GFLOP/s (x1.00) | 50.0 ms, 5.37 GFLOP/s (x2.00) | - |",
  );
  assert.equal(
    lines[3],
    "| train_step L=2 | 200 ms, 2560 tok/s (x1.00) | 300 ms, 1707 tok/s (x1.50) DISAGREES | 50.0 ms (x0.25) |",
  );
  assert.equal(lines.length, 4);
});

Deno.test("peers inputs: the same files every time; targets are the tokens shifted by one", () => {
  const a = makeInputs(PEER_SETUP, [64]), b = makeInputs(PEER_SETUP, [64]);
  assert.deepEqual([...a.files.keys()].sort(), [
    "batch.json",
    "init.safetensors",
    "matmul_64.f32",
    "setup.json",
  ]);
  for (const [name, data] of a.files) assert.deepEqual(b.files.get(name), data, name);

  const { tokens, targets } = makeBatch(PEER_SETUP);
  assert.equal(tokens.length, PEER_SETUP.B);
  for (let i = 0; i < PEER_SETUP.B; i++) {
    assert.equal(tokens[i].length, PEER_SETUP.T);
    assert.deepEqual(tokens[i].slice(1), targets[i].slice(0, -1));
    for (const t of [...tokens[i], ...targets[i]]) assert.ok(t >= 0 && t < PEER_SETUP.config.vocab_size);
  }
  const m = makeMatmul(64);
  assert.equal(m.length, 2 * 64 * 64);
  assert.ok(m.every((x) => x >= -1 && x < 1));
  assert.notDeepEqual(makeMatmul(64).subarray(0, 8), makeMatmul(65).subarray(0, 8));
});

Deno.test("peers inputs: nanoGPT-named initial weights with the head tied to wte", () => {
  const file = decodeSafetensors(makeInputs(PEER_SETUP, []).files.get("init.safetensors") as Uint8Array);
  const names = paramSpecs(PEER_SETUP.config).map((p) => p.name);
  assert.deepEqual([...file.tensors.keys()], [...names, "lm_head.weight"]);
  assert.deepEqual(
    file.tensors.get("lm_head.weight")!.data,
    file.tensors.get("transformer.wte.weight")!.data,
  );
  assert.deepEqual(JSON.parse(file.metadata.config), PEER_SETUP.config);
  const t = initialTensors(PEER_SETUP);
  assert.ok(t[0].data.some((x) => x !== 0), "wte drawn");
  assert.ok(t.find((x) => x.name.endsWith("ln_1.weight"))!.data.every((x) => x === 1), "layernorm weights 1");
});

Deno.test("peers protocol: probe indices are distinct and inside C; lines survive any chunking", async () => {
  for (const n of [2, 3, 64, 512]) {
    const p = probeIndices(n);
    assert.ok(p.every((i) => i >= 0 && i < n * n), `n=${n}`);
    if (n >= 64) assert.equal(new Set(p).size, p.length);
  }
  const text = '@peer {"ms": 1}\nlog line é\n\n{"op":"quit"}';
  const bytes = new TextEncoder().encode(text);
  for (const size of [1, 2, 5, bytes.length]) {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
        c.close();
      },
    });
    const lines: string[] = [];
    for await (const l of readLines(stream)) lines.push(l);
    assert.deepEqual(lines, ['@peer {"ms": 1}', "log line é", "", '{"op":"quit"}'], `chunks of ${size}`);
  }
});
