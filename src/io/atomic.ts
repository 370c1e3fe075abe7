/**
 * Crash-safe file replacement: write a temporary file beside the target, fsync it, rename it over the
 * target, fsync the directory. A crash at any point leaves either the old file or the new one, never a
 * half-written mix; on failure the temporary file is removed, and the error (a WriteError) names the file.
 *
 * @module
 */

/** A file could not be written; the message names the file and the system's reason. */
export class WriteError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WriteError";
  }
}

/** `e` as a WriteError naming `path` (one line: the system's first line of reason). */
export function writeError(path: string, e: unknown): WriteError {
  if (e instanceof WriteError) return e;
  const why = (e instanceof Error ? e.message : String(e)).split("\n")[0];
  return new WriteError(`cannot write '${path}': ${why}`, { cause: e });
}

function splitPath(path: string): { dir: string; base: string } {
  const i = Math.max(path.lastIndexOf("/"), Deno.build.os === "windows" ? path.lastIndexOf("\\") : -1);
  return i < 0 ? { dir: ".", base: path } : { dir: path.slice(0, i) || "/", base: path.slice(i + 1) };
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes `data` (bytes, or a string as UTF-8) to `path` atomically: to a uniquely named temporary file
 * in the same directory (`.NAME.tmp-PID-RANDOM`), fsynced, then renamed over `path`, then the directory
 * is fsynced where the platform allows. An existing target's permission bits are kept. Throws a
 * WriteError naming `path` and the underlying reason (missing directory, permissions, a full disk, target
 * is a directory...) after removing the temporary file.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const { dir, base } = splitPath(path);
  if (base === "") throw new Error(`writeFileAtomic: ${JSON.stringify(path)} names a directory`);
  let mode: number | undefined;
  try {
    const st = await Deno.stat(path);
    if (st.isFile && st.mode !== null) mode = st.mode & 0o7777;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw writeError(path, e);
  }
  const tmp = `${dir === "/" ? "" : dir}/.${base}.tmp-${Deno.pid}-${randomSuffix()}`;
  let created = false;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode });
    created = true;
    try {
      let done = 0;
      while (done < bytes.length) done += await file.write(bytes.subarray(done));
      await file.sync();
    } finally {
      file.close();
    }
    // The mode passed to open is filtered by the umask; restore an existing target's bits exactly.
    if (mode !== undefined && Deno.build.os !== "windows") await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
    created = false;
  } catch (e) {
    if (created) await Deno.remove(tmp).catch(() => {});
    throw writeError(path, e);
  }
  await syncDir(dir);
}

/** fsyncs a directory so a rename in it is durable; a no-op where directories cannot be opened. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  let d: Deno.FsFile | undefined;
  try {
    d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Durability of the rename is best effort: the data itself is already synced and in place.
  } finally {
    d?.close();
  }
}
