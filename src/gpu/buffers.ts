/**
 * Storage buffers, uploads, readbacks and arenas.
 *
 * An {@linkcode Arena} is llm.c's single allocation: many named tensors in one buffer at offsets padded
 * to the device's storage-offset alignment, so each can be bound on its own while one dispatch (AdamW,
 * the gradient norm) can still cover the whole buffer. An arena larger than the device's binding limit
 * spreads over several such buffers (one dispatch each).
 *
 * @module
 */
import { bindingLimit, type Gpu, GpuError } from "./device.ts";

/** Usage flags for a general storage buffer: bindable, copyable both ways. */
export const STORAGE: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Creates a storage buffer of `size` bytes (at least 4), optionally filled with `data`. */
export function createStorage(
  gpu: Gpu,
  label: string,
  size: number,
  data?: Float32Array | Uint32Array | Int32Array,
): GPUBuffer {
  const buffer = gpu.device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(size / 4) * 4),
    usage: STORAGE,
  });
  if (data) gpu.device.queue.writeBuffer(buffer, 0, data as BufferSource);
  return buffer;
}

/** Creates a storage buffer holding `data`. */
export function upload(gpu: Gpu, label: string, data: Float32Array | Uint32Array | Int32Array): GPUBuffer {
  return createStorage(gpu, label, data.byteLength, data);
}

/**
 * Copies `size` bytes from `buffer` at `offset` into a fresh MAP_READ buffer and returns them. This waits
 * for the GPU: for tests, evaluation and checkpoints, never inside a training step.
 */
export async function readBytes(
  gpu: Gpu,
  buffer: GPUBuffer,
  offset = 0,
  size?: number,
): Promise<ArrayBuffer> {
  const n = size ?? buffer.size - offset;
  const staging = gpu.device.createBuffer({
    label: `${buffer.label}.readback`,
    size: Math.ceil(n / 4) * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, offset, staging, 0, Math.ceil(n / 4) * 4);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const bytes = staging.getMappedRange().slice(0, n);
  staging.unmap();
  staging.destroy();
  gpu.check();
  return bytes;
}

/**
 * Queues a copy of the whole f32 `buffer` now, so that later submissions cannot change what it captures,
 * and resolves with the copy once the GPU has made it. An error of the copy itself is thrown; unlike
 * {@linkcode readF32} it does not raise errors of other GPU work submitted meanwhile (a checkpoint's copy
 * goes ahead of training steps whose errors are theirs to report).
 */
export async function snapshotF32(gpu: Gpu, buffer: GPUBuffer): Promise<Float32Array> {
  const dev = gpu.device;
  const staging = dev.createBuffer({
    label: `${buffer.label}.snapshot`,
    size: buffer.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  dev.pushErrorScope("validation");
  const enc = dev.createCommandEncoder({ label: `${buffer.label}.snapshot` });
  enc.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  dev.queue.submit([enc.finish()]);
  const copied = dev.popErrorScope();
  try {
    const err = await copied;
    if (err) throw new GpuError(`${buffer.label}.snapshot`, err.message);
    await staging.mapAsync(GPUMapMode.READ);
    return new Float32Array(staging.getMappedRange().slice(0));
  } finally {
    staging.destroy();
  }
}

/** Reads a whole f32 buffer (or `count` floats from `offsetFloats`). */
export async function readF32(
  gpu: Gpu,
  buffer: GPUBuffer,
  offsetFloats = 0,
  count?: number,
): Promise<Float32Array> {
  const bytes = await readBytes(gpu, buffer, offsetFloats * 4, count === undefined ? undefined : count * 4);
  return new Float32Array(bytes);
}

/**
 * Creates a storage buffer holding `data` rounded to f16 (round to nearest even), 2 bytes per value, for
 * kernels with f16 storage ({@linkcode import("./source.ts").StorageType}).
 */
export function uploadF16(gpu: Gpu, label: string, data: ArrayLike<number>): GPUBuffer {
  const half = Float16Array.from(data);
  const buffer = createStorage(gpu, label, half.byteLength);
  // writeBuffer wants a multiple of 4 bytes: pad an odd count with one zero half.
  const padded = half.length % 2 ? Float16Array.from([...half, 0]) : half;
  gpu.device.queue.writeBuffer(buffer, 0, padded as BufferSource);
  return buffer;
}

/** Reads `count` f16 values (default: the whole buffer) from element `offset`, widened to f32. */
export async function readF16(
  gpu: Gpu,
  buffer: GPUBuffer,
  offset = 0,
  count?: number,
): Promise<Float32Array> {
  const n = count ?? Math.floor((buffer.size - offset * 2) / 2);
  const skip = offset % 2; // copies start at a multiple of 4 bytes
  const bytes = await readBytes(gpu, buffer, (offset - skip) * 2, (n + skip) * 2);
  return Float32Array.from(new Float16Array(bytes, skip * 2, n));
}

/** `data` rounded to the nearest f16 and back (what an f16 buffer holds), for references. */
export function roundF16(data: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float16Array.from(data));
}

/** Reads a whole u32 buffer (or `count` values from `offset`). */
export async function readU32(gpu: Gpu, buffer: GPUBuffer, offset = 0, count?: number): Promise<Uint32Array> {
  const bytes = await readBytes(gpu, buffer, offset * 4, count === undefined ? undefined : count * 4);
  return new Uint32Array(bytes);
}

/** One tensor's place in an arena. */
export interface ArenaEntry {
  /** Tensor name, e.g. "transformer.h.0.attn.c_attn.weight". */
  readonly name: string;
  /** Shape, outermost first. */
  readonly shape: readonly number[];
  /** Offset in floats from the start of the arena image (a multiple of the alignment). */
  readonly offset: number;
  /** Number of floats. */
  readonly size: number;
}

/** The range of the arena image one GPU buffer holds. */
export interface ArenaBuffer {
  /** First float of the image in the buffer (a multiple of the alignment). */
  readonly start: number;
  /** Floats in the buffer. */
  readonly floats: number;
}

/** The rows of a tensor that one buffer holds (a tensor split across buffers has several). */
export interface ArenaSlice {
  /** Index of the buffer. */
  readonly buffer: number;
  /** Offset in floats from the start of that buffer. */
  readonly offset: number;
  /** First row (outermost index) of the tensor in this slice. */
  readonly row0: number;
  /** Rows in this slice. */
  readonly rows: number;
  /** Floats in this slice. */
  readonly size: number;
}

/** How an {@linkcode ArenaLayout} spreads over buffers. */
export interface ArenaSplit {
  /** Bytes one buffer may hold (the adapter's binding limit); default: unlimited, one buffer. */
  readonly maxBytes?: number;
  /** The tensor that may be cut into row slices across buffers; every other one stays whole. */
  readonly splittable?: string;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Floats in `bytes`, down to a multiple of `align` floats. */
function floatsWithin(bytes: number, align: number): number {
  return bytes === Infinity ? Infinity : Math.floor(bytes / 4 / align) * align;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Lays out named f32 tensors as one image. Offsets are padded to `alignFloats` (64 floats = 256 bytes,
 * WebGPU's default `minStorageBufferOffsetAlignment`) so every tensor can be bound alone. Padding is
 * zero and stays zero under AdamW, so whole-arena reductions are unaffected.
 *
 * The image is held by one GPU buffer, or by several when it exceeds `split.maxBytes`: consecutive
 * ranges of it, each starting at an aligned offset, filled greedily in order; no tensor is cut except
 * `split.splittable`, into slices of whole rows. The image (host copies, checkpoints) does not depend on
 * the split. A tensor that cannot fit (too large and not splittable) gets a buffer of its own, larger
 * than `maxFloats`, for the caller's memory check to refuse.
 */
export class ArenaLayout {
  /** The entries in order. */
  readonly entries: readonly ArenaEntry[];
  /** Total floats including padding. */
  readonly totalFloats: number;
  /** The buffers holding the image, in order (one unless the image exceeds `split.maxBytes`). */
  readonly buffers: readonly ArenaBuffer[];
  /** Floats one buffer may hold: `split.maxBytes` over 4, down to a multiple of the alignment. */
  readonly maxFloats: number;
  readonly #byName: Map<string, ArenaEntry>;
  readonly #tensors: readonly { name: string; shape: readonly number[] }[];
  readonly #alignFloats: number;
  readonly #split: ArenaSplit;

  /** Lays out `tensors` in the given order, over as many buffers as `split` needs. */
  constructor(
    tensors: readonly { name: string; shape: readonly number[] }[],
    alignFloats = 64,
    split: ArenaSplit = {},
  ) {
    let offset = 0;
    const entries: ArenaEntry[] = [];
    for (const t of tensors) {
      const size = numel(t.shape);
      entries.push({ name: t.name, shape: [...t.shape], offset, size });
      offset += Math.ceil(size / alignFloats) * alignFloats;
    }
    this.entries = entries;
    this.totalFloats = Math.max(offset, alignFloats);
    this.#byName = new Map(entries.map((e) => [e.name, e]));
    if (this.#byName.size !== entries.length) throw new Error("arena: duplicate tensor names");
    this.#tensors = tensors;
    this.#alignFloats = alignFloats;
    this.#split = split;
    this.maxFloats = floatsWithin(split.maxBytes ?? Infinity, alignFloats);
    this.buffers = this.#spread();
  }

  /**
   * This layout spread over buffers of at most `maxBytes` too: itself when it already fits them, else the
   * same tensors laid out with that limit (the same image, cut into more buffers).
   */
  within(maxBytes: number): ArenaLayout {
    const max = floatsWithin(maxBytes, this.#alignFloats);
    if (max >= this.maxFloats || this.buffers.every((b) => b.floats <= max)) return this;
    return new ArenaLayout(this.#tensors, this.#alignFloats, { ...this.#split, maxBytes });
  }

  /** The entry for `name`; throws if absent. */
  get(name: string): ArenaEntry {
    const e = this.#byName.get(name);
    if (!e) throw new Error(`arena: no tensor '${name}'`);
    return e;
  }

  /** The buffer slices holding tensor `name`, in row order: one unless it is split. */
  slices(name: string): ArenaSlice[] {
    const e = this.get(name), rowFloats = e.size / Math.max(1, e.shape[0] ?? 1);
    const out: ArenaSlice[] = [];
    this.buffers.forEach((b, k) => {
      const lo = Math.max(e.offset, b.start), hi = Math.min(e.offset + e.size, b.start + b.floats);
      const holds = hi > lo || (e.size === 0 && e.offset >= b.start && e.offset < b.start + b.floats);
      if (!holds) return;
      const rows = Math.round((hi - lo) / rowFloats);
      out.push({
        buffer: k,
        offset: lo - b.start,
        row0: Math.round((lo - e.offset) / rowFloats),
        rows,
        size: hi - lo,
      });
    });
    return out;
  }

  /** Cuts the image into buffers of at most `maxFloats` (see the class doc). */
  #spread(): ArenaBuffer[] {
    const max = this.maxFloats, align = this.#alignFloats, split = this.#split;
    const out: ArenaBuffer[] = [];
    let start = 0;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      const end = i + 1 < this.entries.length ? this.entries[i + 1].offset : this.totalFloats;
      while (end - start > max) {
        let cut = e.offset;
        if (e.name === split.splittable && e.shape.length > 0) {
          // The most whole rows that fit, ending at an aligned offset so the next buffer's stay aligned.
          const rowFloats = e.size / e.shape[0], q = align / gcd(rowFloats, align);
          const rows = Math.floor(Math.floor((start + max - e.offset) / rowFloats) / q) * q;
          cut = e.offset + Math.min(rows, e.shape[0]) * rowFloats;
        }
        // A tensor larger than a buffer gets one of its own, over the limit: the memory check refuses it.
        if (cut <= start) cut = end;
        out.push({ start, floats: cut - start });
        start = cut;
      }
    }
    if (start < this.totalFloats || out.length === 0) out.push({ start, floats: this.totalFloats - start });
    return out;
  }
}

/**
 * GPU buffers laid out by an {@linkcode ArenaLayout}: one per range of the layout's image (most arenas
 * have one), each within the device's binding limit and bindable whole.
 */
export class Arena {
  /** The layout, spread within the device's binding limit ({@linkcode ArenaLayout.within}). */
  readonly layout: ArenaLayout;
  /** The buffers (zero-initialised), one per `layout.buffers` entry. */
  readonly buffers: readonly GPUBuffer[];

  /**
   * Allocates zeroed buffers for `layout` spread within the device's binding limit, labelled `label` (one
   * buffer) or `label.k`.
   */
  constructor(gpu: Gpu, label: string, layout: ArenaLayout) {
    layout = layout.within(bindingLimit(gpu));
    this.layout = layout;
    const many = layout.buffers.length > 1;
    this.buffers = layout.buffers.map((b, k) =>
      createStorage(gpu, many ? `${label}.${k}` : label, b.floats * 4)
    );
  }

  /** The arena's buffer when it has one; throws when it spans several (use `write`, `read`, `slices`). */
  get buffer(): GPUBuffer {
    if (this.buffers.length !== 1) {
      throw new Error(`arena '${this.buffers[0].label}' spans ${this.buffers.length} buffers`);
    }
    return this.buffers[0];
  }

  /** A binding of one tensor's range; throws for a tensor split across buffers (use `slices`). */
  bind(name: string): GPUBufferBinding {
    const s = this.layout.slices(name);
    if (s.length !== 1) throw new Error(`arena: tensor '${name}' is split across ${s.length} buffers`);
    return this.#binding(s[0]);
  }

  /** Bindings of a tensor's row slices, in row order (one unless it is split across buffers). */
  slices(name: string): (ArenaSlice & { binding: GPUBufferBinding })[] {
    return this.layout.slices(name).map((s) => ({ ...s, binding: this.#binding(s) }));
  }

  /** A binding of the whole arena; throws when it spans several buffers (bind each of `buffers`). */
  all(): GPUBufferBinding {
    return { buffer: this.buffer, offset: 0, size: this.layout.totalFloats * 4 };
  }

  /** Queues writes of a whole arena image (`layout.totalFloats` floats) into the buffers. */
  write(gpu: Gpu, image: Float32Array): void {
    if (image.length !== this.layout.totalFloats) {
      throw new Error(`arena: image of ${image.length} floats, layout holds ${this.layout.totalFloats}`);
    }
    this.layout.buffers.forEach((b, k) =>
      writeArray(gpu, this.buffers[k], image.subarray(b.start, b.start + b.floats))
    );
  }

  /** Reads the whole arena image back (waits for the GPU: tests, evaluation, checkpoints). */
  async read(gpu: Gpu): Promise<Float32Array> {
    return this.#gather(await Promise.all(this.buffers.map((b) => readF32(gpu, b))));
  }

  /**
   * The arena image as of the GPU work submitted so far ({@linkcode snapshotF32} of each buffer: the copies
   * are queued now, so later submissions cannot change what they capture).
   */
  async snapshot(gpu: Gpu): Promise<Float32Array> {
    if (this.buffers.length === 1) return await snapshotF32(gpu, this.buffers[0]);
    return this.#gather(await Promise.all(this.buffers.map((b) => snapshotF32(gpu, b))));
  }

  /** Records copies of every buffer into `dst`, an arena of the same layout. */
  copyTo(enc: GPUCommandEncoder, dst: Arena): void {
    this.buffers.forEach((b, k) => enc.copyBufferToBuffer(b, 0, dst.buffers[k], 0, b.size));
  }

  #gather(parts: Float32Array[]): Float32Array {
    if (parts.length === 1) return parts[0];
    const image = new Float32Array(this.layout.totalFloats);
    this.layout.buffers.forEach((b, k) => image.set(parts[k].subarray(0, b.floats), b.start));
    return image;
  }

  #binding(s: ArenaSlice): GPUBufferBinding {
    return { buffer: this.buffers[s.buffer], offset: s.offset * 4, size: s.size * 4 };
  }
}

/** Queues a write of `data` into `buffer` at `offsetBytes` (takes effect before the next submission). */
export function writeArray(
  gpu: Gpu,
  buffer: GPUBuffer,
  data: Float32Array | Uint32Array | Int32Array,
  offsetBytes = 0,
): void {
  gpu.device.queue.writeBuffer(buffer, offsetBytes, data as BufferSource);
}
