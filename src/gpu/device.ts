/**
 * The WebGPU adapter and device, opened once with the adapter's real limits and optional features.
 *
 * WebGPU hands out conservative default limits (128 MiB storage bindings, 256 MiB buffers) unless the
 * device asks for more; a GPT's parameter arena or logits easily exceed them, so we request what the
 * adapter reports. Errors that WebGPU would otherwise log and swallow (uncaptured validation errors,
 * device loss) are kept and re-thrown by {@linkcode Gpu.check} so a bad dispatch never passes silently.
 *
 * @module
 */

/** An error raised by the GPU layer; `kernel` names the kernel or operation it came from. */
export class GpuError extends Error {
  /** The kernel or operation that failed (e.g. "matmul_forward"). */
  readonly kernel: string;
  /** Creates an error for `kernel` with a message. */
  constructor(kernel: string, message: string) {
    super(`${kernel}: ${message}`);
    this.name = "GpuError";
    this.kernel = kernel;
  }
}

/** Optional features this engine can use when the adapter has them. */
export interface GpuFeatures {
  /** `timestamp-query`: per-pass GPU timing for profiling. */
  readonly timestamps: boolean;
  /** `shader-f16`: f16 arithmetic in WGSL. */
  readonly f16: boolean;
}

/** Limits a {@linkcode Gpu} may report below the device's, so that tests can exercise what large models need. */
export interface GpuLimitCaps {
  /** Bytes one storage binding may span. */
  readonly maxStorageBufferBindingSize?: number;
  /** Bytes one buffer may hold. */
  readonly maxBufferSize?: number;
}

/** Options for {@linkcode createGpu}. */
export interface GpuOptions {
  /** Adapter power preference; default "high-performance". */
  readonly powerPreference?: GPUPowerPreference;
  /**
   * Report these limits instead of the adapter's where lower: a model then plans and spreads its buffers as
   * on an adapter with these limits (tests of models larger than one binding).
   */
  readonly limits?: GpuLimitCaps;
}

/** Help text for a machine without any WebGPU adapter. */
export const NO_ADAPTER_HELP: string =
  "no WebGPU adapter found: install a GPU driver with Vulkan/Metal/D3D12 support, or Mesa's software " +
  "Vulkan driver (Debian/Ubuntu: apt-get install -y mesa-vulkan-drivers)";

/**
 * An open device plus what we learned about it. One per process is typical; everything created from it
 * (buffers, pipelines) is tied to this device.
 */
export class Gpu {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** The device's limits (equal to the adapter's, as requested), or lower where capped. */
  readonly limits: GPUSupportedLimits;
  /** Which optional features are enabled. */
  readonly features: GpuFeatures;
  /** Human-readable adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /**
   * A software (CPU) adapter such as Mesa's lavapipe or SwiftShader: a few threads, so work is better not
   * split finer than the data already is (the model skips split-K weight gradients there).
   */
  readonly software: boolean;
  /**
   * Mesa's llvmpipe (lavapipe) among software adapters: it runs a workgroup's invocations as the SIMD lanes
   * of one CPU thread and loads storage one lane at a time, so the kernels' CPU variants are its defaults
   * (matmul, attention, LayerNorm, AdamW and the gradient norm's partial sums; measured in bench/results/).
   * Other software adapters keep the GPU kernels.
   */
  readonly llvmpipe: boolean;
  #pending: GpuError | null = null;
  #lost: GpuError | null = null;

  /**
   * Wraps an already-created device (use {@linkcode createGpu} normally). `software` defaults to a guess
   * from the description (llvmpipe, lavapipe, SwiftShader); `caps` lowers the limits it reports.
   */
  constructor(device: GPUDevice, description: string, software?: boolean, caps: GpuLimitCaps = {}) {
    this.device = device;
    this.limits = cappedLimits(device.limits, caps);
    this.features = {
      timestamps: device.features.has("timestamp-query"),
      f16: device.features.has("shader-f16"),
    };
    this.description = description;
    this.software = software ?? /llvmpipe|lavapipe|swiftshader/i.test(description);
    this.llvmpipe = this.software && /llvmpipe|lavapipe/i.test(description);
    device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      // Keep the first one: later errors are usually consequences of it.
      this.#pending ??= new GpuError(labelOf(err.message), err.message);
    });
    device.lost.then((info) => {
      if (info.reason !== "destroyed") this.#lost = new GpuError("device", `device lost: ${info.message}`);
    });
  }

  /** True once the device was lost (not by our own `destroy`). */
  get lost(): boolean {
    return this.#lost !== null;
  }

  /**
   * Throws the first uncaptured WebGPU error (validation, out-of-memory, internal) or the device loss
   * seen since the last check, naming the kernel whose label appears in the message.
   */
  check(): void {
    if (this.#lost) throw this.#lost;
    const e = this.#pending;
    if (e) {
      this.#pending = null;
      throw e;
    }
  }

  /**
   * Runs `fn` inside validation, out-of-memory and internal error scopes and throws a {@linkcode GpuError}
   * naming `what` if any of them caught an error.
   */
  async scoped<T>(what: string, fn: () => T): Promise<T> {
    const d = this.device;
    d.pushErrorScope("internal");
    d.pushErrorScope("out-of-memory");
    d.pushErrorScope("validation");
    let value: T;
    try {
      value = fn();
    } finally {
      const errs = [await d.popErrorScope(), await d.popErrorScope(), await d.popErrorScope()];
      const err = errs.find((e) => e !== null);
      if (err) {
        const kind = err instanceof GPUOutOfMemoryError ? "out of memory" : "error";
        // deno-lint-ignore no-unsafe-finally
        throw new GpuError(what, `${kind}: ${err.message}`);
      }
    }
    this.check();
    return value;
  }

  /** Releases the device. */
  destroy(): void {
    this.device.destroy();
  }
}

/** Bytes one buffer binding may hold on `gpu`: min(maxStorageBufferBindingSize, maxBufferSize). */
export function bindingLimit(gpu: Gpu): number {
  return Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
}

/** `limits` with the members named in `caps` lowered to them (never raised). */
function cappedLimits(limits: GPUSupportedLimits, caps: GpuLimitCaps): GPUSupportedLimits {
  const entries = Object.entries(caps).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return limits;
  const out: Record<string, number> = {};
  // The members are getters on the prototype: copy them by name.
  for (const k in limits) out[k] = (limits as unknown as Record<string, number>)[k];
  for (const [k, v] of entries) out[k] = Math.min(out[k], v as number);
  return out as unknown as GPUSupportedLimits;
}

/** Pulls the first quoted label ('name') out of a wgpu message, which names the pipeline or bind group. */
function labelOf(message: string): string {
  const m = /label = '([^']+)'|'([^']+)'/.exec(message);
  return m ? (m[1] ?? m[2]) : "gpu";
}

/**
 * Opens the default adapter and a device with the adapter's full limits and the optional features
 * `timestamp-query` and `shader-f16` when present. Throws a one-line error when no adapter exists.
 */
export async function createGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) throw new GpuError("gpu", NO_ADAPTER_HELP);
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new GpuError("gpu", NO_ADAPTER_HELP);
  const wanted: GPUFeatureName[] = ["timestamp-query", "shader-f16"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  const names = [
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxComputeWorkgroupStorageSize",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX",
    "maxComputeWorkgroupSizeY",
    "maxComputeWorkgroupsPerDimension",
    "maxStorageBuffersPerShaderStage",
  ] as const;
  for (const n of names) requiredLimits[n] = adapter.limits[n];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const description = info?.description || info?.vendor || "unknown adapter";
  return new Gpu(device, description, info?.isFallbackAdapter || undefined, options.limits);
}
