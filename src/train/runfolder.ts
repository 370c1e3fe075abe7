/**
 * A run folder belongs to one run. Before training writes anything into `--out`:
 * - an OS lock on `.lock` (which holds the pid) makes a second training into the same folder refuse while
 *   the first runs; the OS drops it when its process dies, so a killed run's lock file is taken over;
 * - temporary files left by a killed writer (`.NAME.tmp-PID-RANDOM`, see src/io/atomic.ts) are removed;
 * - a folder that holds another run is refused unless the run is resumed, or `overwrite` moves the old
 *   run's files (never deletes them) into `DIR/replaced-<time>/`, from where moving them back restores it.
 *
 * @module
 */
import { configError, setting } from "./config.ts";

/** The files a training run writes into its folder. */
export const RUN_FILES: readonly string[] = [
  "model.safetensors",
  "best.safetensors",
  "train_state.safetensors",
  "log.jsonl",
  "loss.svg",
  "hf", // a fine-tune of a Hugging Face GPT-2 folder: the model again in that layout
];

/** What claiming a folder did, for the console. */
export interface ClaimReport {
  /** Temporary files of killed writers that were removed. */
  removedTemp: string[];
  /** A stale lock's pid that was taken over. */
  staleLockPid?: number;
  /** With overwrite: the folder the previous run's files were moved to. */
  movedTo?: string;
}

/** A claimed run folder; release() drops the lock. */
export class RunFolder {
  /** The folder. */
  readonly dir: string;
  /** What claiming (and preparing) it did. */
  readonly report: ClaimReport;
  #lock: Deno.FsFile;
  #lockPath: string;
  #moveAside: string[] = [];

  private constructor(dir: string, lockPath: string, lock: Deno.FsFile, report: ClaimReport) {
    this.dir = dir;
    this.#lockPath = lockPath;
    this.#lock = lock;
    this.report = report;
  }

  /**
   * Creates `dir` if needed, takes its lock, removes stale temporary files, and checks that it holds no
   * other run (unless `resume`, or `overwrite`: then prepare() moves it aside). Refusals are InputErrors.
   */
  static async claim(dir: string, o: { resume: boolean; overwrite: boolean }): Promise<RunFolder> {
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (e) {
      throw configError`${setting("out")} '${dir}': cannot create folder (${firstLine(e)})`;
    }
    const lockPath = `${dir}/.lock`;
    const { file, previousPid } = await takeLock(lockPath, dir);
    const folder = new RunFolder(dir, lockPath, file, { removedTemp: [], staleLockPid: previousPid });
    try {
      folder.report.removedTemp = await removeStaleTemp(dir, previousPid);
      const present = await runFilesIn(dir);
      if (!o.resume && present.length > 0) {
        if (!o.overwrite) {
          throw configError`${setting("out")} '${dir}' holds another run (${present.join(", ")}):
            ${setting("resume")} continues it, ${setting("overwrite")} moves it to '${dir}/replaced-<time>/'
            and starts afresh, or choose another ${setting("out")}`;
        }
        folder.#moveAside = present;
      }
    } catch (e) {
      await folder.release();
      throw e;
    }
    return folder;
  }

  /** With overwrite, moves the previous run's files aside; call once the new run's inputs are checked. */
  async prepare(): Promise<void> {
    if (this.#moveAside.length === 0) return;
    this.report.movedTo = await moveAside(this.dir, this.#moveAside);
    this.#moveAside = [];
  }

  /** Removes the lock file and lets go of the lock. */
  async release(): Promise<void> {
    await Deno.remove(this.#lockPath).catch(() => {});
    try {
      this.#lock.close(); // closing drops the OS lock
    } catch {
      // already closed
    }
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/**
 * Takes an exclusive OS lock (flock) on `lockPath` and writes this process's pid into it. The OS drops
 * the lock when its process ends however it ends, so a lock file left by a killed run is simply taken
 * over (its pid is returned). Retries when the file was replaced between open and lock.
 */
async function takeLock(lockPath: string, dir: string): Promise<{ file: Deno.FsFile; previousPid?: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(lockPath, { read: true, write: true, create: true });
    } catch (e) {
      throw configError`${setting("out")} '${dir}': cannot create the lock file '${lockPath}' (${
        firstLine(e)
      })`;
    }
    if (!(await file.tryLock(true))) {
      const pid = pidIn(await readAll(file));
      file.close();
      throw configError`${setting("out")} '${dir}' is in use by another training${
        pid !== undefined ? ` (pid ${pid})` : ""
      }; wait for it to finish, or choose another ${setting("out")}`;
    }
    // A releasing run may have removed the file after we opened it: then lock the new one instead.
    const same = await Deno.stat(lockPath).then((st) => st.ino === file.statSync().ino, () => false);
    if (!same) {
      file.close();
      continue;
    }
    const previousPid = pidIn(await readAll(file));
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    return { file, previousPid };
  }
  throw configError`${setting("out")} '${dir}': could not take the lock '${lockPath}'`;
}

async function readAll(file: Deno.FsFile): Promise<string> {
  await file.seek(0, Deno.SeekMode.Start);
  const buf = new Uint8Array(64);
  const n = await file.read(buf);
  return new TextDecoder().decode(buf.subarray(0, n ?? 0));
}

function pidIn(text: string): number | undefined {
  const pid = Number(text.trim());
  return text.trim() !== "" && Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Temporary files of other writers younger than this may still be in use (an `eval` writing a plot). */
const TEMP_GRACE_MS = 60_000;

/**
 * Removes `.NAME.tmp-PID-RANDOM` files left by a killed writer: the previous lock holder's at once, any
 * other process's once they are older than a minute.
 */
async function removeStaleTemp(dir: string, previousPid?: number): Promise<string[]> {
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(e.name);
    if (!e.isFile || !m || Number(m[1]) === Deno.pid) continue;
    const path = `${dir}/${e.name}`;
    const age = Date.now() - ((await Deno.stat(path).catch(() => null))?.mtime?.getTime() ?? Date.now());
    if (Number(m[1]) === previousPid || age > TEMP_GRACE_MS) {
      await Deno.remove(path).catch(() => {});
      removed.push(e.name);
    }
  }
  return removed.sort();
}

async function runFilesIn(dir: string): Promise<string[]> {
  const present: string[] = [];
  for (const f of RUN_FILES) {
    try {
      await Deno.lstat(`${dir}/${f}`);
      present.push(f);
    } catch {
      // absent
    }
  }
  return present;
}

/** Moves `files` into a new `dir/replaced-<UTC time>/` (a rename within the folder: nothing is copied). */
async function moveAside(dir: string, files: string[]): Promise<string> {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  let target = `${dir}/replaced-${stamp}`;
  for (let i = 2; await exists(target); i++) target = `${dir}/replaced-${stamp}-${i}`;
  await Deno.mkdir(target);
  for (const f of files) await Deno.rename(`${dir}/${f}`, `${target}/${f}`);
  return target;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
