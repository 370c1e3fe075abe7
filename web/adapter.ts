/**
 * What the page tells a person about their WebGPU adapter: its name, whether it is a software renderer
 * on the CPU (slow), what to do when the browser has no WebGPU, and how long a run will take here.
 *
 * @module
 */

/** The adapter as the page describes it. */
export interface AdapterReport {
  /** A name for people, e.g. "SwiftShader (google)". */
  name: string;
  /** Why it is a software (CPU) renderer, or null for a GPU. */
  software: string | null;
}

/** Software renderers by vendor / architecture / description, and what they are. */
const SOFTWARE: { test: RegExp; what: string }[] = [
  { test: /swiftshader/i, what: "SwiftShader, Google's renderer on the CPU" },
  { test: /llvmpipe|lavapipe/i, what: "Mesa's llvmpipe/lavapipe, a renderer on the CPU" },
  { test: /warp|basic render driver/i, what: "Microsoft WARP, a renderer on the CPU" },
];

/**
 * Describes an adapter from its GPUAdapterInfo: a software renderer is named as one when the browser
 * flags it (`isFallbackAdapter`) or its vendor, architecture or description is a known software
 * renderer (Chromium's SwiftShader reports vendor "google", architecture "swiftshader").
 */
export function describeAdapter(info: GPUAdapterInfo & { isFallbackAdapter?: boolean }): AdapterReport {
  const words = [info.vendor, info.architecture, info.device, info.description].filter((w) => w);
  const text = words.join(" ");
  const known = SOFTWARE.find((s) => s.test.test(text));
  const name = info.description || [info.architecture, info.vendor && `(${info.vendor})`]
    .filter((w) => w).join(" ") ||
    "unnamed adapter";
  const software = known?.what ?? (info.isFallbackAdapter ? "the browser's fallback adapter" : null);
  return { name, software };
}

/** The adapter the page will get (the same request as the engine's), or null. */
export async function requestAdapterInfo(): Promise<
  (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | null
> {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
  return adapter ? adapter.info : null;
}

/**
 * What to do when the page gets no WebGPU, in browser terms: a page that is not a secure context, a
 * browser without the API, or an API that gives no adapter.
 */
export function noWebGpuHelp(): string {
  if (!globalThis.isSecureContext) {
    return "WebGPU works only on secure pages: open this page over https:// or from http://localhost.";
  }
  if (!("gpu" in navigator)) {
    return "This browser does not offer WebGPU. It is on by default in Chrome and Edge 113+ on Windows, " +
      "macOS and ChromeOS (Android 12+ from Chrome 121), in Safari 26 on macOS, iOS and iPadOS, and in " +
      "Firefox 141+ on Windows. On Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu (and " +
      "#enable-vulkan) set to Enabled; in Firefox elsewhere, set dom.webgpu.enabled to true in about:config.";
  }
  return "WebGPU is there but gave no adapter: the GPU may be blocked by the browser, or hardware " +
    "acceleration is off. In Chrome or Edge, turn on Settings › System › Use graphics acceleration, look " +
    "at chrome://gpu, or enable chrome://flags/#enable-unsafe-webgpu; in Firefox, see about:support.";
}

/** How long a preset took, or is expected to take, on an adapter. */
export interface Timing {
  /** Seconds from Train to the first step (kernel compilation and data). */
  compileS: number;
  /** Seconds per training step, evaluations included. */
  stepS: number;
  /** Kernels compiled before the first step. */
  kernels: number;
}

/**
 * Rough figures where this browser has not run the preset yet: a software renderer measured in headless
 * Chromium's SwiftShader on 2 CPU cores; a GPU guessed.
 */
const TYPICAL: Record<"software" | "gpu", Record<string, Timing>> = {
  software: {
    tiny: { compileS: 40, stepS: 0.4, kernels: 37 },
    small: { compileS: 60, stepS: 1.0, kernels: 38 },
  },
  gpu: {
    tiny: { compileS: 3, stepS: 0.01, kernels: 37 },
    small: { compileS: 4, stepS: 0.03, kernels: 38 },
  },
};

const storeKey = (adapter: string, preset: string) => `tforce.timing:${adapter}:${preset}`;

/** The timing to expect: the last run of this preset on this adapter, else the typical one. */
export function expectedTiming(adapter: AdapterReport, preset: string): Timing & { measured: boolean } {
  try {
    const saved = JSON.parse(localStorage.getItem(storeKey(adapter.name, preset)) ?? "null");
    if (saved && [saved.compileS, saved.stepS, saved.kernels].every(Number.isFinite)) {
      return { ...saved, measured: true };
    }
  } catch {
    // no storage (private mode) or a bad entry: use the typical figures
  }
  return { ...TYPICAL[adapter.software ? "software" : "gpu"][preset], measured: false };
}

/** Remembers how a run of `preset` went here, for the next estimate. */
export function rememberTiming(adapter: AdapterReport, preset: string, t: Timing): void {
  try {
    localStorage.setItem(storeKey(adapter.name, preset), JSON.stringify(t));
  } catch {
    // storage full or off: estimates stay the typical ones
  }
}

/** A duration for people: "8 s", "1 min 40 s", "17 min". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), rest = s % 60;
  return m >= 10 || rest === 0 ? `${Math.round(s / 60)} min` : `${m} min ${rest} s`;
}
