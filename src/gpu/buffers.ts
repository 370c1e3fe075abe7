/**
 * Storage buffers, uploads, readbacks and arenas.
 *
 * An {@linkcode Arena} is llm.c's single allocation: many named tensors in one buffer at offsets padded
 * to the device's storage-offset alignment, so each can be bound on its own while one dispatch (AdamW,
 * the gradient norm) can still cover the whole buffer.
 *
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";

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
  /** Offset in floats from the start of the arena (a multiple of the alignment). */
  readonly offset: number;
  /** Number of floats. */
  readonly size: number;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Lays out named f32 tensors in one buffer. Offsets are padded to `alignFloats` (64 floats = 256 bytes,
 * WebGPU's default `minStorageBufferOffsetAlignment`) so every tensor can be bound alone. Padding is
 * zero and stays zero under AdamW, so whole-arena reductions are unaffected.
 */
export class ArenaLayout {
  /** The entries in order. */
  readonly entries: readonly ArenaEntry[];
  /** Total floats including padding. */
  readonly totalFloats: number;
  readonly #byName: Map<string, ArenaEntry>;

  /** Lays out `tensors` in the given order. */
  constructor(tensors: readonly { name: string; shape: readonly number[] }[], alignFloats = 64) {
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
  }

  /** The entry for `name`; throws if absent. */
  get(name: string): ArenaEntry {
    const e = this.#byName.get(name);
    if (!e) throw new Error(`arena: no tensor '${name}'`);
    return e;
  }
}

/** A GPU buffer laid out by an {@linkcode ArenaLayout}. */
export class Arena {
  /** The layout. */
  readonly layout: ArenaLayout;
  /** The buffer (zero-initialised). */
  readonly buffer: GPUBuffer;

  /** Allocates a zeroed buffer for `layout`. */
  constructor(gpu: Gpu, label: string, layout: ArenaLayout) {
    this.layout = layout;
    this.buffer = createStorage(gpu, label, layout.totalFloats * 4);
  }

  /** A binding of one tensor's range. */
  bind(name: string): GPUBufferBinding {
    const e = this.layout.get(name);
    return { buffer: this.buffer, offset: e.offset * 4, size: e.size * 4 };
  }

  /** A binding of the whole arena. */
  all(): GPUBufferBinding {
    return { buffer: this.buffer, offset: 0, size: this.layout.totalFloats * 4 };
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
