/**
 * Encoder (token + position embedding) dispatchers: the forward gather-add, and a deterministic backward
 * (dwpe by a per-(t,c) loop over b; dwte by a stable GPU radix sort of positions by token, then ordered
 * sums of dout rows). See shaders/encoder.wgsl for the algorithm and its cost.
 *
 * Shapes: tokens u32 [B,T]; wte [V,C]; wpe [>=T,C]; out, dout [B,T,C]; N = B*T. A token embedding split
 * across buffers goes by slices of rows ({@linkcode VocabRows}): one forward dispatch per slice, and one
 * pair of dwte dispatches per slice after a single sort.
 *
 * @module
 */
import source from "../../shaders/encoder.wgsl" with { type: "text" };
import { type Gpu, GpuError } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource, resourceBytes } from "../gpu/kernel.ts";

const WG = 256; // forward and dwpe: elements per workgroup
const SWG = 256; // sort: positions per chunk
const RWG = 128; // dwte sums: positions per segment and columns per block
const RADIX_BITS = 8;
const RADIX = 1 << RADIX_BITS;

/** Rows row0 .. row0+rows-1 of wte (or dwte): what a binding of a slice of a split token embedding holds. */
export interface VocabRows {
  /** First token id of the slice. */
  readonly row0: number;
  /** Token ids in the slice. */
  readonly rows: number;
}

/** One slice of dwte, bound alone. */
export interface DwteSlice extends VocabRows {
  /** The binding of rows row0 .. row0+rows-1 of dwte. */
  readonly dwte: Resource;
}

/** Where each scratch array of the backward lives, in u32 elements from the start of `scratch`. */
export interface EncoderScratchLayout {
  /** Radix-sort passes: ceil(bits(V) / 8), at least 1 (keys are min(token, V), so V itself must fit). */
  readonly passes: number;
  /** Sort chunks: ceil(N / 256). */
  readonly nchunks: number;
  /** Segments of the sorted order summed by one workgroup: ceil(N / 128). */
  readonly nseg: number;
  /** Ping-pong order buffers [N] each; pass p writes A when p is even, B when odd. */
  readonly sortA: number;
  /** Second ping-pong order buffer [N]. */
  readonly sortB: number;
  /** The final order: positions sorted by (token, position), [N]. */
  readonly sorted: number;
  /** Per-digit, per-chunk counts [256 * nchunks]. */
  readonly hist: number;
  /** Per-digit totals [256]. */
  readonly tot: number;
  /** Partial sums of buckets continuing from an earlier segment [nseg * C] (f32 bits). */
  readonly head: number;
  /** Partial sums of buckets continuing into a later segment [nseg * C] (f32 bits). */
  readonly tail: number;
  /** Total u32 elements. */
  readonly total: number;
}

function checkShape(kernel: string, s: { B: number; T: number; C: number; V: number }): void {
  for (const [k, v] of Object.entries({ B: s.B, T: s.T, C: s.C, V: s.V })) {
    if (!Number.isInteger(v) || v < 1) throw new GpuError(kernel, `${k} = ${v} is not a positive integer`);
  }
  const big = Math.max(s.B * s.T * s.C, s.V * s.C, s.V + 1);
  if (big >= 2 ** 32) throw new GpuError(kernel, `shape too large for u32 indexing (${big})`);
}

/** The scratch layout of {@linkcode encoderBackward} for shape `s` (offsets in u32 elements). */
export function encoderScratchLayout(
  s: { B: number; T: number; C: number; V: number },
): EncoderScratchLayout {
  checkShape("encoder_backward", s);
  const N = s.B * s.T;
  const bits = Math.max(1, Math.ceil(Math.log2(s.V + 1)));
  const passes = Math.ceil(bits / RADIX_BITS);
  const nchunks = Math.ceil(N / SWG);
  const nseg = Math.ceil(N / RWG);
  const sortA = 0, sortB = N, hist = 2 * N;
  const tot = hist + RADIX * nchunks;
  const head = tot + RADIX;
  const tail = head + nseg * s.C;
  return {
    passes,
    nchunks,
    nseg,
    sortA,
    sortB,
    sorted: (passes - 1) % 2 === 0 ? sortA : sortB,
    hist,
    tot,
    head,
    tail,
    total: tail + nseg * s.C,
  };
}

/**
 * Bytes of the `scratch` buffer {@linkcode encoderBackward} needs: 4 * (2N + 256 * ceil(N/256) + 256 +
 * 2 * ceil(N/128) * C), N = B*T (about 4 MB for N = 65536, C = 768).
 */
export function encoderScratchBytes(s: { B: number; T: number; C: number; V: number }): number {
  return 4 * encoderScratchLayout(s).total;
}

type Dims = Record<string, number>;

/** Lanes that scan one digit's row of per-chunk counts: min(SWG, next power of two >= nchunks). */
function scanWidth(nchunks: number): number {
  let w = 1;
  while (w < nchunks && w < SWG) w *= 2;
  return w;
}

function baseDims(
  s: { B: number; T: number; C: number; V: number },
  L?: EncoderScratchLayout,
  slice: VocabRows = { row0: 0, rows: s.V },
): Dims {
  const N = s.B * s.T;
  return {
    B: s.B,
    T: s.T,
    C: s.C,
    V: s.V,
    v0: slice.row0,
    vs: slice.rows,
    N,
    C4: Math.floor(s.C / 4),
    nchunks: L?.nchunks ?? 0,
    shift: 0,
    first: 0,
    in_off: 0,
    out_off: 0,
    hist_off: L?.hist ?? 0,
    tot_off: L?.tot ?? 0,
    sorted_off: L?.sorted ?? 0,
    nseg: L?.nseg ?? 0,
    col_blocks: Math.ceil(s.C / RWG),
    head_off: L?.head ?? 0,
    tail_off: L?.tail ?? 0,
    scan_w: L ? scanWidth(L.nchunks) : 1,
  };
}

function kernel(gpu: Gpu, entryPoint: string) {
  return getKernel(gpu, { name: entryPoint, source, entryPoint, constants: { WG, SWG, RWG } });
}

/**
 * out[b,t,c] = wte[tokens[b,t],c] + wpe[t,c] (written). A token >= V gives a zero token embedding and
 * reads nothing from wte. Uses four channels a thread when C % 4 == 0.
 * Bindings: out [B,T,C] f32; tokens [B,T] u32; wte [V,C]; wpe [>=T,C] (only the first T rows read).
 *
 * With `s.slice`, wte binds rows row0 .. row0+rows-1 only: the slice with row0 0 writes out as above with
 * a zero token embedding for tokens beyond it, every other slice adds the embedding of its tokens to out
 * (dispatch the slices in order; together they give exactly the whole forward).
 */
export async function encoderForward(
  gpu: Gpu,
  b: { out: Resource; tokens: Resource; wte: Resource; wpe: Resource },
  s: { B: number; T: number; C: number; V: number; slice?: VocabRows },
): Promise<Dispatch> {
  checkShape("encoder_forward", s);
  if (s.slice) checkSlice("encoder_forward", s.slice, s.V);
  const dims = baseDims(s, undefined, s.slice);
  const n = s.B * s.T * s.C;
  if (s.C % 4 === 0) {
    const k = await kernel(gpu, "encoder_forward4");
    return k.dispatch({ out4: b.out, tokens: b.tokens, wte4: b.wte, wpe4: b.wpe }, dims, grid(n / 4, WG));
  }
  const k = await kernel(gpu, "encoder_forward");
  return k.dispatch(b, dims, grid(n, WG));
}

/**
 * Backward, accumulating: dwpe[t,c] += sum_b dout[b,t,c]; dwte[v,c] += sum of dout[n,c] over positions n
 * with tokens[n] == v (tokens >= V add nothing; rows of absent tokens are untouched). Deterministic:
 * bitwise identical run to run (no float atomics). Returns the dispatches to record in order, in one
 * compute pass: dwpe, then 3 per radix pass (1 for V <= 255, 2 for V <= 65535), then 2 for dwte (2 per
 * slice when `dwte` is a list of slices of a split token embedding, covering its rows).
 * Bindings: dwte [V,C]; dwpe [>=T,C]; dout [B,T,C]; tokens [B,T] u32; scratch of at least
 * {@linkcode encoderScratchBytes} bytes (contents need no initialisation and are clobbered).
 */
export async function encoderBackward(
  gpu: Gpu,
  b: {
    dwte: Resource | readonly DwteSlice[];
    dwpe: Resource;
    dout: Resource;
    tokens: Resource;
    scratch: Resource;
  },
  s: { B: number; T: number; C: number; V: number },
): Promise<Dispatch[]> {
  const L = encoderScratchLayout(s);
  const need = 4 * L.total;
  if (resourceBytes(b.scratch) < need) {
    throw new GpuError("encoder_backward", `scratch has ${resourceBytes(b.scratch)} bytes, needs ${need}`);
  }
  const N = s.B * s.T;
  const base = baseDims(s, L);
  const [kWpe, kHist, kScan, kScatter, kWte, kCombine] = await Promise.all([
    kernel(gpu, "encoder_backward_wpe"),
    kernel(gpu, "encoder_sort_hist"),
    kernel(gpu, "encoder_sort_binscan"),
    kernel(gpu, "encoder_sort_scatter"),
    kernel(gpu, "encoder_backward_wte"),
    kernel(gpu, "encoder_backward_wte_combine"),
  ]);
  const out: Dispatch[] = [
    kWpe.dispatch({ dwpe: b.dwpe, dout: b.dout }, base, grid(s.T * s.C, WG)),
  ];
  const sortBind = { scratch: b.scratch, tokens: b.tokens };
  for (let p = 0; p < L.passes; p++) {
    const dims = {
      ...base,
      shift: p * RADIX_BITS,
      first: p === 0 ? 1 : 0,
      in_off: p % 2 === 0 ? L.sortB : L.sortA,
      out_off: p % 2 === 0 ? L.sortA : L.sortB,
    };
    out.push(kHist.dispatch(sortBind, dims, grid(N, SWG)));
    out.push(kScan.dispatch({ scratch: b.scratch }, dims, [Math.ceil(RADIX / (SWG / scanWidth(L.nchunks)))]));
    out.push(kScatter.dispatch(sortBind, dims, grid(N, SWG)));
  }
  const slices: readonly DwteSlice[] = Array.isArray(b.dwte)
    ? b.dwte
    : [{ dwte: b.dwte as Resource, row0: 0, rows: s.V }];
  const groups = grid(L.nseg * base.col_blocks, 1);
  for (const slice of slices) {
    checkSlice("encoder_backward", slice, s.V);
    const dims = baseDims(s, L, slice), sorted = { dwte: slice.dwte, scratch: b.scratch, tokens: b.tokens };
    out.push(kWte.dispatch({ ...sorted, dout: b.dout }, dims, groups));
    out.push(kCombine.dispatch(sorted, dims, groups));
  }
  return out;
}

function checkSlice(kernel: string, slice: VocabRows, V: number): void {
  const { row0, rows } = slice;
  if (!(Number.isInteger(row0) && Number.isInteger(rows) && row0 >= 0 && rows >= 1 && row0 + rows <= V)) {
    throw new GpuError(kernel, `slice of rows [${row0}, ${row0 + rows}) outside [0, ${V})`);
  }
}
