/**
 * The line protocol between bench/peers.ts and its peer processes (one per system): the orchestrator
 * writes one JSON request a line on the peer's stdin, the peer answers each with one line on stdout that
 * starts with {@linkcode REPLY_PREFIX} (anything else a library prints there is passed on as a log).
 *
 *   {"op": "info"}                                -> {"system", "version", "device"}
 *   {"op": "matmul", "n": N, "reps": R}           -> {"ms": per product, "probe": C at PROBE_INDICES}
 *   {"op": "train_init"}                          -> {"params": trainable floats}
 *   {"op": "train", "steps": S}                   -> {"ms": per step, "losses": [S]}
 *   {"op": "quit"}                                -> (the peer exits)
 *   any failure                                   -> {"error": "message"}
 *
 * `matmul` times R products C = A·B (A, B f32 [N, N] from the data folder) issued back to back with one
 * wait at the end; `train` times S optimizer steps on the one batch with the losses read back after the
 * last. Each peer reads its inputs from the data folder named in its argv (see bench/peers/inputs.ts).
 *
 * @module
 */

/** Marks a reply line on a peer's stdout. */
export const REPLY_PREFIX = "@peer ";

/** One request to a peer. */
export type PeerRequest =
  | { op: "info" }
  | { op: "matmul"; n: number; reps: number }
  | { op: "train_init" }
  | { op: "train"; steps: number }
  | { op: "quit" };

/** What a peer says about itself. */
export interface PeerInfo {
  /** The system's name, e.g. "jax-js". */
  system: string;
  /** Its version, e.g. "0.1.25". */
  version: string;
  /** The device it runs on, e.g. the WebGPU adapter's description or "cpu (OpenBLAS)". */
  device: string;
}

/** A `matmul` reply. */
export interface MatmulReply {
  /** Wall-clock ms per product. */
  ms: number;
  /** C at the probe indices (flat row-major), for the cross-system check. */
  probe: number[];
}

/** A `train` reply. */
export interface TrainReply {
  /** Wall-clock ms per optimizer step. */
  ms: number;
  /** Mean loss of each step, before its update. */
  losses: number[];
}

/** Flat indices of C[N, N] every peer reports after a product: corners, diagonal and a few inside. */
export function probeIndices(n: number): number[] {
  const rows = [0, 1, n >> 2, n >> 1, n - 2, n - 1];
  return rows.map((r, i) => r * n + ((r * 7 + i * 13) % n));
}

/** The handlers a Deno peer implements (the Python peer implements the same in bench/peers/torch_peer.py). */
export interface PeerHandlers {
  info(): Promise<PeerInfo> | PeerInfo;
  matmul(n: number, reps: number): Promise<MatmulReply>;
  trainInit(): Promise<{ params: number }>;
  train(steps: number): Promise<TrainReply>;
}

/** Splits a byte stream into lines (without the newline). */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, i);
      rest = rest.slice(i + 1);
    }
  }
  rest += decoder.decode();
  if (rest) yield rest;
}

/** Serves requests from stdin until `quit` or end of input (the peer side of the protocol). */
export async function servePeer(h: PeerHandlers): Promise<void> {
  const out = (o: unknown) => console.log(REPLY_PREFIX + JSON.stringify(o));
  for await (const line of readLines(Deno.stdin.readable)) {
    if (!line.trim()) continue;
    const req = JSON.parse(line) as PeerRequest;
    if (req.op === "quit") break;
    try {
      if (req.op === "info") out(await h.info());
      else if (req.op === "matmul") out(await h.matmul(req.n, req.reps));
      else if (req.op === "train_init") out(await h.trainInit());
      else if (req.op === "train") out(await h.train(req.steps));
      else out({ error: `unknown op ${JSON.stringify((req as { op: unknown }).op)}` });
    } catch (e) {
      out({ error: (e as Error).stack ?? String(e) });
    }
  }
}

/** A running peer process seen from the orchestrator: one request at a time. */
export class PeerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncGenerator<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #log: (line: string) => void;

  private constructor(child: Deno.ChildProcess, log: (line: string) => void) {
    this.#child = child;
    this.#lines = readLines(child.stdout);
    this.#stdin = child.stdin.getWriter();
    this.#log = log;
  }

  /** Starts `cmd args` with piped stdin and stdout (stderr passed through); `log` gets its non-reply lines. */
  static start(cmd: string, args: string[], log: (line: string) => void): PeerProcess {
    const child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
    return new PeerProcess(child, log);
  }

  /** Sends `req` and returns its reply; throws the peer's error, or when it exits first. */
  async request<T>(req: PeerRequest): Promise<T> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    for (;;) {
      const next = await this.#lines.next();
      if (next.done) throw new Error(`peer exited during ${req.op}`);
      if (!next.value.startsWith(REPLY_PREFIX)) {
        this.#log(next.value);
        continue;
      }
      const reply = JSON.parse(next.value.slice(REPLY_PREFIX.length));
      if (reply && typeof reply === "object" && "error" in reply) throw new Error(String(reply.error));
      return reply as T;
    }
  }

  /** Asks the peer to quit and waits for it (killing it after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    try {
      await this.#stdin.write(new TextEncoder().encode(JSON.stringify({ op: "quit" }) + "\n"));
      await this.#stdin.close();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, graceMs);
    // Drain stdout so the child never blocks on a full pipe while exiting.
    for await (const line of this.#lines) this.#log(line);
    await this.#child.status;
    clearTimeout(timer);
  }
}
