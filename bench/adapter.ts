/**
 * `deno run bench/adapter.ts`: one JSON line describing the WebGPU adapter the engine would open (the same
 * request as src/gpu/device.ts createGpu): its info, every feature it offers and every limit.
 *
 * `deno task bench --all` keeps the same report in its results file: what WebGPU offers on that GPU (a
 * matrix feature for tensor cores, `subgroups`, the binding and workgroup-memory limits that size a model).
 *
 * @module
 */

/** The adapter's report: `{"webgpu_adapter": description, info, features, limits}`. */
export interface AdapterReport {
  webgpu_adapter: string;
  info: Record<string, string>;
  features: string[];
  limits: Record<string, number>;
}

/** Describes the high-performance adapter, or null when there is none. */
export async function adapterReport(): Promise<AdapterReport | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const info: Record<string, string> = {};
  for (const key of ["vendor", "architecture", "device", "description"] as const) {
    const value = adapter.info?.[key];
    if (value) info[key] = value;
  }
  const limits: Record<string, number> = {};
  // GPUSupportedLimits' members are getters on its prototype: for-in sees them, Object.keys does not.
  for (const key in adapter.limits) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") limits[key] = value;
  }
  return {
    webgpu_adapter: info.description || info.vendor || "unknown adapter",
    info,
    features: [...adapter.features].sort(),
    limits,
  };
}

if (import.meta.main) {
  const report = await adapterReport();
  if (!report) {
    console.error("adapter: no WebGPU adapter found");
    Deno.exit(1);
  }
  console.log(JSON.stringify(report));
}
