/**
 * JSON Lines run logs: one JSON object per line, each line handed to the OS in one write before
 * {@linkcode JsonlLog.write} resolves (no user-space buffer), so a crash of the process loses at most the
 * line being written. {@linkcode readJsonl} reads such a log back, skipping a truncated last line.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Options for {@linkcode JsonlLog.open}. */
export interface JsonlLogOptions {
  /**
   * Keep the existing lines and add after them (default false: start the file afresh). A truncated
   * last line left by a crash is cut off first, so new records start on a line of their own.
   */
  append?: boolean;
}

/** An open JSON Lines log. Writes are serialised: records never interleave, even unawaited. */
export class JsonlLog {
  #file: Deno.FsFile;
  #chain: Promise<void> = Promise.resolve();
  #pending = 0;
  #closing = false;
  #closed = false;
  /** The file path. */
  readonly path: string;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Opens (creating if needed) the log at `path`, truncating it unless `append` is set. */
  static async open(path: string, opts: JsonlLogOptions = {}): Promise<JsonlLog> {
    if (opts.append) await dropPartialLastLine(path);
    const file = await Deno.open(path, {
      write: true,
      create: true,
      append: opts.append === true,
      truncate: opts.append !== true,
    });
    return new JsonlLog(path, file);
  }

  /**
   * Appends `record` as one line. Resolves once the line has been written to the file. Throws (before
   * writing anything) if the record cannot be serialised (e.g. a BigInt or a cycle) or is not a plain
   * object, and if the log is closed. Non-finite numbers are written as null, as JSON.stringify does.
   */
  write(record: Record<string, unknown>): Promise<void> {
    if (this.#closing) return Promise.reject(new Error(`JsonlLog ${this.path}: write after close`));
    if (typeof record !== "object" || record === null || Array.isArray(record)) {
      return Promise.reject(new TypeError(`JsonlLog ${this.path}: a record must be a JSON object`));
    }
    let line: Uint8Array;
    try {
      line = encoder.encode(JSON.stringify(record) + "\n");
    } catch (e) {
      return Promise.reject(e);
    }
    this.#pending++;
    const p = this.#chain.then(async () => {
      let done = 0;
      while (done < line.length) done += await this.#file.write(line.subarray(done));
    }).finally(() => {
      this.#pending--;
      if (this.#closing && this.#pending === 0) this.#closeNow();
    });
    // Keep the chain alive after a failed write; the failure is reported to that write's caller.
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Closes the file; writes already started still complete (the file closes after the last one). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#pending === 0) this.#closeNow();
  }

  #closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

/** Truncates `path` after its last newline if it ends in a partial line; no-op if missing or clean. */
async function dropPartialLastLine(path: string): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  try {
    const size = (await file.stat()).size;
    const chunk = new Uint8Array(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      await file.seek(start, Deno.SeekMode.Start);
      const buf = chunk.subarray(0, end - start);
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      const nl = buf.subarray(0, got).lastIndexOf(0x0a);
      if (nl >= 0) {
        if (start + nl + 1 !== size) await file.truncate(start + nl + 1);
        return;
      }
      end = start;
    }
    if (size > 0) await file.truncate(0); // no newline at all: the only line is partial
  } finally {
    file.close();
  }
}

/**
 * Reads a JSON Lines log. Blank lines are skipped, and so is a truncated last line (one without its
 * final newline that does not parse); any other line that is not a JSON object is an error naming its
 * line number.
 */
export async function readJsonl(path: string): Promise<Record<string, unknown>[]> {
  const bytes = await Deno.readFile(path);
  const lastNl = bytes.lastIndexOf(0x0a);
  let complete: string;
  try {
    complete = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, lastNl + 1));
  } catch {
    throw new SyntaxError(`${path}: not valid UTF-8`);
  }
  const lines = complete.split("\n");
  lines.pop(); // the empty string after the final newline
  const out: Record<string, unknown>[] = [];
  lines.forEach((text, i) => {
    if (text.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new SyntaxError(`${path}:${i + 1}: not JSON (${e instanceof Error ? e.message : e})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new SyntaxError(`${path}:${i + 1}: not a JSON object`);
    }
    out.push(v as Record<string, unknown>);
  });
  // The unterminated tail: keep it only if it is a whole object (a file written by hand, say).
  const tail = new TextDecoder().decode(bytes.subarray(lastNl + 1));
  if (tail.trim() !== "") {
    try {
      const v = JSON.parse(tail);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) out.push(v);
    } catch {
      // truncated by a crash: skipped
    }
  }
  return out;
}
