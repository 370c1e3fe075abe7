/**
 * Reading zip archives, as much of the format as `torch.save` archives use: the central directory
 * (zip64 included), stored entries (what PyTorch writes) and deflated ones (what a zip tool re-packing
 * the archive writes, and what `torch.load` reads too), each checked against its CRC-32.
 *
 * The platform does the inflating: `DecompressionStream("deflate-raw")` (Deno and browsers alike), so
 * there is no library and no inflater of our own to trust. The rest of the format is a few fixed
 * little-endian records, read here with every offset and length checked against the file before use, so
 * a truncated or damaged archive fails with a one-line {@linkcode InputError} instead of reading out of
 * bounds, allocating what its header claims or hanging.
 *
 * @module
 */
import { InputError } from "../util/errors.ts";

/** One entry of a zip archive's central directory. */
export interface ZipEntry {
  /** The entry's name (a path with `/` separators). */
  readonly name: string;
  /** 0: stored; 8: deflated. */
  readonly method: number;
  /** CRC-32 of the uncompressed bytes, as the archive records it. */
  readonly crc32: number;
  /** Bytes of the entry's data in the archive. */
  readonly compressedSize: number;
  /** Bytes of the entry once uncompressed. */
  readonly size: number;
  /** Offset of the entry's data (past its local header) in the archive. */
  readonly dataOffset: number;
}

/** The zip local-file-header signature, "PK\x03\x04": what a file starting with it is. */
export const ZIP_MAGIC: Uint8Array = Uint8Array.of(0x50, 0x4b, 0x03, 0x04);

/** Whether `bytes` starts like a zip archive (a local file header). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ZIP_MAGIC.every((b, i) => bytes[i] === b);
}

const EOCD = 0x06054b50, EOCD64 = 0x06064b50, EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

/**
 * The entries of the zip archive `bytes`, by name, from its central directory. Every record is checked
 * against the file's bounds; a malformed archive is a one-line {@linkcode InputError} naming `what`.
 */
export function zipEntries(bytes: Uint8Array, what: string): Map<string, ZipEntry> {
  const fail = (msg: string): never => {
    throw new InputError(`${what}: ${msg}`);
  };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  // The end-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes, at the end.
  let eocd = -1;
  for (let p = n - 22; p >= 0 && p >= n - 22 - 0xffff; p--) {
    if (v.getUint32(p, true) === EOCD && p + 22 + v.getUint16(p + 20, true) === n) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) fail(`not a complete zip archive (no end-of-central-directory record; truncated?)`);
  let count = v.getUint16(eocd + 10, true);
  let cdSize = v.getUint32(eocd + 12, true);
  let cdOffset = v.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || v.getUint32(loc, true) !== EOCD64_LOCATOR) fail(`zip64 archive without its locator`);
    const at = big(v, loc + 8, fail);
    if (at + 56 > eocd || v.getUint32(at, true) !== EOCD64) fail(`bad zip64 end-of-central-directory record`);
    count = big(v, at + 32, fail);
    cdSize = big(v, at + 40, fail);
    cdOffset = big(v, at + 48, fail);
  }
  if (cdOffset + cdSize > eocd) {
    fail(`central directory [${cdOffset}, +${cdSize}) runs past its end record at ${eocd}`);
  }
  const entries = new Map<string, ZipEntry>();
  const names = new TextDecoder("utf-8", { fatal: true });
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || v.getUint32(p, true) !== CENTRAL) {
      fail(`central directory entry ${i} of ${count} is damaged (at byte ${p})`);
    }
    const flags = v.getUint16(p + 8, true), method = v.getUint16(p + 10, true);
    const crc32 = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true), size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let local = v.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdOffset + cdSize) fail(`central directory entry ${i} runs past the directory`);
    let name: string;
    try {
      name = names.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    } catch {
      return fail(`central directory entry ${i} has a name that is not UTF-8`);
    }
    // zip64: the sizes and offset that do not fit 32 bits are in extra field 0x0001, in this order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
      if (e + 4 + len > p + 46 + nameLen + extraLen) fail(`entry ${quoted(name)} has a damaged extra field`);
      if (id === 1) {
        let q = e + 4;
        const next = (): number => {
          if (q + 8 > e + 4 + len) fail(`entry ${quoted(name)} has a short zip64 extra field`);
          const x = big(v, q, fail);
          q += 8;
          return x;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (local === 0xffffffff) local = next();
      }
      e += 4 + len;
    }
    if (flags & 1) fail(`entry ${quoted(name)} is encrypted`);
    if (method !== 0 && method !== 8) {
      fail(`entry ${quoted(name)} uses compression method ${method} (reads stored and deflated entries)`);
    }
    // Deflate cannot shrink data more than 1032:1; a larger recorded size is damage (and must not be allocated).
    if (method === 8 && size > compressedSize * 1032 + 64) {
      fail(
        `deflated entry ${
          quoted(name)
        } says it inflates from ${compressedSize} to ${size} bytes, past deflate's limit`,
      );
    }
    if (method === 0 && compressedSize !== size) {
      fail(`stored entry ${quoted(name)} has ${compressedSize} bytes but says it has ${size}`);
    }
    if (local + 30 > n || v.getUint32(local, true) !== LOCAL) {
      fail(`entry ${quoted(name)}: no local header at byte ${local}`);
    }
    const dataOffset = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataOffset + compressedSize > n) {
      fail(
        `entry ${
          quoted(name)
        }: its ${compressedSize} bytes at ${dataOffset} run past the end of the file (${n})`,
      );
    }
    if (entries.has(name)) fail(`entry ${quoted(name)} appears twice`);
    entries.set(name, { name, method, crc32, compressedSize, size, dataOffset });
    p = end;
  }
  return entries;
}

/** An entry name from the file, single-quoted and escaped for a one-line message. */
function quoted(s: string): string {
  return `'${JSON.stringify(s.length > 80 ? s.slice(0, 77) + "..." : s).slice(1, -1)}'`;
}

/** A little-endian u64 that must fit a JS number below 2^53 (no zip here is larger). */
function big(v: DataView, at: number, fail: (msg: string) => never): number {
  if (at + 8 > v.byteLength) fail(`zip64 field at ${at} is past the end of the file`);
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) fail(`zip64 field at ${at} is ${x}, too large`);
  return Number(x);
}

/**
 * The uncompressed bytes of `entry` (a view into `bytes` when stored), checked against its CRC-32 and its
 * size; a deflated entry is inflated with the platform's `DecompressionStream` and never past its
 * recorded size. A mismatch or a broken stream is a one-line {@linkcode InputError} naming `what`.
 */
export async function zipRead(bytes: Uint8Array, entry: ZipEntry, what: string): Promise<Uint8Array> {
  const raw = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  const data = entry.method === 0 ? raw : await inflate(raw, entry, what);
  // PyTorch can be told not to compute CRCs (it then records 0): only a nonzero CRC is checked.
  if (entry.crc32 !== 0 && crc32(data) !== entry.crc32) {
    throw new InputError(`${what}: entry ${quoted(entry.name)} fails its CRC-32 check (the file is damaged)`);
  }
  return data;
}

async function inflate(raw: Uint8Array, entry: ZipEntry, what: string): Promise<Uint8Array> {
  const out = new Uint8Array(entry.size);
  let n = 0;
  const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate-raw"),
  );
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > out.length) {
        throw new InputError(
          `${what}: entry ${quoted(entry.name)} inflates past its recorded ${entry.size} bytes`,
        );
      }
      out.set(value, n);
      n += value.length;
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (e instanceof InputError) throw e;
    throw new InputError(
      `${what}: entry ${quoted(entry.name)} does not inflate (${(e as Error).message.split("\n")[0]})`,
    );
  }
  if (n !== entry.size) {
    throw new InputError(
      `${what}: entry ${quoted(entry.name)} inflates to ${n} bytes, not its recorded ${entry.size}`,
    );
  }
  return out;
}

let crcTable: Int32Array | null = null;

/** CRC-32 (the zip and PNG polynomial 0xEDB88320) of `data`, as an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
