/**
 * Compute kernels: a WGSL entry point compiled once per (shader, constants), with its bind-group layout
 * derived from the WGSL by wgsl_reflect instead of `layout: "auto"`, so bind groups are made once and
 * reused every step.
 *
 * A {@linkcode Kernel} checks every binding it is given against what its entry point declares (names,
 * and storage vs uniform) and fills the `dims` uniform struct by member name, so a dispatcher that binds
 * the wrong thing fails loudly at build time, never silently at run time.
 *
 * @module
 */
// The full specifier, not deno.json's import map: a program importing tforce by path or URL has no map.
// deno-lint-ignore no-import-prefix
import { WgslReflect } from "npm:wgsl_reflect@1.6.0/wgsl_reflect.module.js";
import { type Gpu, GpuError } from "./device.ts";

/** What a kernel is: a WGSL source, an entry point and its `override` constants. */
export interface KernelSpec {
  /** Label used in pipelines and error messages, e.g. "matmul_forward". */
  readonly name: string;
  /** The WGSL module text. */
  readonly source: string;
  /** The `@compute` function to run. */
  readonly entryPoint: string;
  /** Values for the shader's `override` constants (tile sizes, flags). */
  readonly constants?: Readonly<Record<string, number | boolean>>;
}

/** One binding of an entry point as declared in its WGSL. */
export interface BindingInfo {
  /** Variable name in the WGSL. */
  readonly name: string;
  /** `@binding(n)` in group 0. */
  readonly binding: number;
  /** Storage written, storage read-only, or uniform. */
  readonly kind: "storage" | "read-only-storage" | "uniform";
  /** For a uniform struct: its members' byte offsets and scalar types. */
  readonly members?: readonly { name: string; offset: number; type: string }[];
  /** For a uniform struct: its byte size (rounded up to 16). */
  readonly size?: number;
}

/** A recorded unit of GPU work: one pipeline, one bind group, one workgroup count. */
export interface Dispatch {
  /** The kernel's name, for errors and profiling. */
  readonly kernel: string;
  /** The compiled pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** The bind group, made once. */
  readonly bindGroup: GPUBindGroup;
  /** Workgroup counts (x, y, z). */
  readonly workgroups: readonly [number, number, number];
  /** The uniform buffer holding `dims`, if the kernel has one. */
  readonly uniformBuffer?: GPUBuffer;
  /**
   * Rewrites some of the uniforms (e.g. the learning rate or step), keeping the others; takes effect at
   * the next queue submission. Throws on an unknown member or if the kernel has no uniforms.
   */
  readonly update: (values: Readonly<Record<string, number>>) => void;
}

/** A buffer or a range of one, as bound to a kernel. */
export type Resource = GPUBuffer | GPUBufferBinding;

/** Bytes a resource binds: the whole buffer, the range's size, or the buffer past the range's offset. */
export function resourceBytes(r: Resource): number {
  if (r instanceof GPUBuffer) return r.size;
  return r.size ?? r.buffer.size - (r.offset ?? 0);
}

/** Reads the bindings an entry point uses (group 0 only: every tforce shader uses one group). */
export function reflectBindings(source: string, entryPoint: string): BindingInfo[] {
  const reflect = new WgslReflect(source);
  const entry = reflect.entry.compute.find((e: any) => e.name === entryPoint);
  if (!entry) throw new Error(`no @compute entry point '${entryPoint}'`);
  const out: BindingInfo[] = [];
  for (const v of entry.resources as any[]) {
    if (v.group !== 0) {
      throw new Error(`${entryPoint}: binding '${v.name}' is in group ${v.group}; use group 0`);
    }
    if (v.resourceType === 0) {
      const members = (v.type.members ?? []).map((m: any) => ({
        name: m.name as string,
        offset: m.offset as number,
        type: m.type.name as string,
      }));
      out.push({ name: v.name, binding: v.binding, kind: "uniform", members, size: align(v.type.size, 16) });
    } else if (v.resourceType === 1) {
      out.push({
        name: v.name,
        binding: v.binding,
        kind: v.access === "read" ? "read-only-storage" : "storage",
      });
    } else throw new Error(`${entryPoint}: binding '${v.name}' is not a buffer`);
  }
  return out.sort((a, b) => a.binding - b.binding);
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/** A compiled entry point with its explicit bind-group layout. Create with {@linkcode getKernel}. */
export class Kernel {
  /** The spec it was compiled from. */
  readonly spec: KernelSpec;
  /** The bindings its entry point declares, by binding number. */
  readonly bindings: readonly BindingInfo[];
  /** The pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** The explicit layout derived from {@linkcode Kernel.bindings}. */
  readonly layout: GPUBindGroupLayout;
  readonly #gpu: Gpu;

  /** Use {@linkcode getKernel}; this constructor expects an already-built pipeline. */
  constructor(
    gpu: Gpu,
    spec: KernelSpec,
    bindings: BindingInfo[],
    layout: GPUBindGroupLayout,
    pipeline: GPUComputePipeline,
  ) {
    this.#gpu = gpu;
    this.spec = spec;
    this.bindings = bindings;
    this.layout = layout;
    this.pipeline = pipeline;
  }

  /** The kernel's name. */
  get name(): string {
    return this.spec.name;
  }

  /**
   * Binds buffers by their WGSL names and fills the uniform struct (if any) from `uniforms` by member
   * name, then returns a dispatch over `workgroups`. Throws if a declared binding is missing, an extra
   * one is given, or a uniform member is missing or unknown.
   */
  dispatch(
    resources: Readonly<Record<string, Resource>>,
    uniforms: Readonly<Record<string, number>>,
    workgroups: readonly [number, number?, number?],
  ): Dispatch {
    const name = this.spec.name;
    const declared = new Set(this.bindings.filter((b) => b.kind !== "uniform").map((b) => b.name));
    for (const k of Object.keys(resources)) {
      if (!declared.has(k)) throw new GpuError(name, `binding '${k}' is not declared by the shader`);
    }
    const device = this.#gpu.device;
    const entries: GPUBindGroupEntry[] = [];
    let uniformBuffer: GPUBuffer | undefined;
    for (const b of this.bindings) {
      if (b.kind === "uniform") {
        uniformBuffer = device.createBuffer({
          label: `${name}.${b.name}`,
          size: b.size!,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
        device.queue.writeBuffer(uniformBuffer, 0, packUniforms(name, b, uniforms));
        entries.push({ binding: b.binding, resource: { buffer: uniformBuffer } });
      } else {
        const r = resources[b.name];
        if (!r) throw new GpuError(name, `missing binding '${b.name}'`);
        entries.push({ binding: b.binding, resource: r instanceof GPUBuffer ? { buffer: r } : r });
      }
    }
    if (!uniformBuffer && Object.keys(uniforms).length > 0) {
      throw new GpuError(name, `uniforms given but the shader declares no uniform buffer`);
    }
    const bindGroup = device.createBindGroup({ label: name, layout: this.layout, entries });
    const [x, y = 1, z = 1] = workgroups;
    const maxWg = this.#gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0 || n > maxWg) {
        throw new GpuError(name, `workgroup count ${n} outside [0, ${maxWg}]`);
      }
    }
    const uniformInfo = this.bindings.find((b) => b.kind === "uniform");
    let current = { ...uniforms };
    const update = (values: Readonly<Record<string, number>>): void => {
      if (!uniformInfo || !uniformBuffer) throw new GpuError(name, "kernel has no uniform buffer");
      current = { ...current, ...values };
      device.queue.writeBuffer(uniformBuffer, 0, packUniforms(name, uniformInfo, current));
    };
    return { kernel: name, pipeline: this.pipeline, bindGroup, workgroups: [x, y, z], uniformBuffer, update };
  }
}

/** Packs a uniform struct's members (u32, i32, f32 scalars) into bytes by name. */
function packUniforms(kernel: string, b: BindingInfo, values: Readonly<Record<string, number>>): ArrayBuffer {
  const buf = new ArrayBuffer(b.size!);
  const view = new DataView(buf);
  const members = b.members ?? [];
  for (const k of Object.keys(values)) {
    if (!members.some((m) => m.name === k)) throw new GpuError(kernel, `unknown uniform '${k}'`);
  }
  for (const m of members) {
    const v = values[m.name];
    if (v === undefined) throw new GpuError(kernel, `missing uniform '${m.name}'`);
    if (m.type === "f32") view.setFloat32(m.offset, v, true);
    else if (m.type === "u32") {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new GpuError(kernel, `uniform '${m.name}' = ${v} is not a u32`);
      }
      view.setUint32(m.offset, v, true);
    } else if (m.type === "i32") view.setInt32(m.offset, v, true);
    else throw new GpuError(kernel, `uniform '${m.name}' has unsupported type ${m.type}`);
  }
  return buf;
}

const caches = new WeakMap<GPUDevice, Map<string, Promise<Kernel>>>();

/** The kernels compiled so far on `gpu` (for tests that check every shader entry point is in use). */
export async function builtKernels(gpu: Gpu): Promise<Kernel[]> {
  const cache = caches.get(gpu.device);
  if (!cache) return [];
  const all = await Promise.allSettled(cache.values());
  return all.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
}

/**
 * Compiles (or returns from cache) the kernel for `spec`. Pipelines are cached per device by shader
 * text, entry point and constants. Compile errors throw a {@linkcode GpuError} naming the kernel.
 */
export function getKernel(gpu: Gpu, spec: KernelSpec): Promise<Kernel> {
  let cache = caches.get(gpu.device);
  if (!cache) caches.set(gpu.device, cache = new Map());
  const key = `${spec.name}\0${spec.entryPoint}\0${JSON.stringify(spec.constants ?? {})}\0${spec.source}`;
  let k = cache.get(key);
  if (!k) {
    k = buildKernel(gpu, spec);
    cache.set(key, k);
    k.catch(() => cache!.delete(key));
  }
  return k;
}

async function buildKernel(gpu: Gpu, spec: KernelSpec): Promise<Kernel> {
  const device = gpu.device;
  let bindings: BindingInfo[];
  try {
    bindings = reflectBindings(spec.source, spec.entryPoint);
  } catch (e) {
    throw new GpuError(spec.name, (e as Error).message);
  }
  const module = device.createShaderModule({ label: spec.name, code: spec.source });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0) {
    const m = errors[0];
    const first = m.message.trim().split("\n")[0];
    throw new GpuError(spec.name, `WGSL error at line ${m.lineNum}:${m.linePos}: ${first}`);
  }
  const layout = device.createBindGroupLayout({
    label: spec.name,
    entries: bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.kind },
    })),
  });
  const constants: Record<string, number> = {};
  for (const [k, v] of Object.entries(spec.constants ?? {})) constants[k] = Number(v);
  try {
    const pipeline = await device.createComputePipelineAsync({
      label: spec.name,
      layout: device.createPipelineLayout({ label: spec.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entryPoint, constants },
    });
    return new Kernel(gpu, spec, bindings, layout, pipeline);
  } catch (e) {
    throw new GpuError(spec.name, `pipeline creation failed: ${(e as Error).message}`);
  }
}

/**
 * Workgroup counts for `n` items at `perGroup` items per workgroup, folded into (x, y) so that neither
 * exceeds the 65535 limit. Shaders recover the linear group index as `wg.x + wg.y * nwg.x`.
 */
export function grid(n: number, perGroup: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / perGroup);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** Records dispatches in order into one compute pass (the cheap way: ~2 us a dispatch). */
export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
  }
}

/** Encodes `dispatches` in one compute pass and submits them as one command buffer. */
export function submitDispatches(gpu: Gpu, dispatches: readonly Dispatch[], label = "dispatches"): void {
  const enc = gpu.device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  encodeDispatches(pass, dispatches);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
}

/**
 * After a GPU error of unknown origin, finds the first dispatch of `dispatches` that fails validation
 * by submitting each alone inside an error scope; returns its kernel name and index, or null. This runs
 * the kernels again, so use it only for diagnosis once the results can no longer be trusted.
 */
export async function firstFailingDispatch(
  gpu: Gpu,
  dispatches: readonly Dispatch[],
): Promise<{ kernel: string; index: number; message: string } | null> {
  const d = gpu.device;
  for (let i = 0; i < dispatches.length; i++) {
    d.pushErrorScope("validation");
    const enc = d.createCommandEncoder({ label: "diagnose" });
    const pass = enc.beginComputePass();
    encodeDispatches(pass, [dispatches[i]]);
    pass.end();
    d.queue.submit([enc.finish()]);
    const err = await d.popErrorScope();
    if (err) return { kernel: dispatches[i].kernel, index: i, message: err.message.split("\n")[0] };
  }
  return null;
}
