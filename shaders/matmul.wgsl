// Matrix multiplies of a Linear layer (nanoGPT's nn.Linear: weight stored [out_features, in_features]).
//
// Shapes: M rows (= B*T), K input features, N output features, all row-major f32:
//   inp, dinp [M, K]; weight, dweight [N, K]; bias, dbias [N]; out, dout [M, N].
//   matmul_forward(_bias):   out[M, N]      =  inp · weightᵀ (+ bias)      (NT form, reduce over K)
//   matmul_backward_input:   dinp[M, K]     =  dout · weight                (NN form, reduce over N)
//   matmul_backward_weight:  dweight[N, K] +=  doutᵀ · inp                  (TN form, reduce over M)
//   matmul_backward_bias:    dbias[N]      +=  sum over m of dout[m, :]     (column reduction)
// Fused epilogues (GELU, residual add, dropout) are in shaders/matmul_fused.wgsl, appended to this file.
// Split-K weight gradient (when dweight has too few output tiles to fill a GPU), two dispatches:
//   matmul_backward_weight_split:  scratch[z, N, K] = dout[Mz, N]ᵀ · inp[Mz, K] for slices z < Z,
//                                  Mz = rows [z*MS, min((z+1)*MS, M)) of M, Z = ceil(M / MS)
//   matmul_backward_weight_reduce: dweight[N, K]   += partials[0] + ... + partials[Z-1] (in order)
// Gradients: parameter gradients ACCUMULATE (dweight +=, dbias +=); the activation gradient dinp is
// WRITTEN (=); the split-K scratch is written. Every summation order is fixed (no atomics), so results
// are deterministic.
//
// The three products share one tiled structure. Each names its output C[R, S] = sum_t A[r, t] · B[t, s]
// (R, S the output rows and columns, t the reduction index). A workgroup of WGX x WGY threads owns a
// TM x TN block of C (TM = 8*WGY, TN = 8*WGX); each thread owns an 8x8 block held as 16 vec4
// accumulators in a struct (constant member names only: never a dynamically indexed private array),
// rows {4ty..4ty+3, TM/2+4ty..} and columns {4tx..4tx+3, TN/2+4tx..}. Per step of BK along t, the
// threads copy A's TM x BK tile and B's BK x TN tile into workgroup memory, both stored t-major
// (As[t][r], Bs[t][s]) so the inner loop reads each operand as two vec4s per t. Every operand is read
// from global memory as 4 consecutive floats along its contiguous dimension: operands contiguous along t
// (inp and weight in the forward, dout in backward-input) are transposed while being stored to
// workgroup memory. Bounds checks happen only in the tile loads (zero fill) and the final stores.
//
// Storage access comes in two forms per contiguous dimension, chosen by the dispatcher with a tiny
// line preprocessor (`// #if K4` / `// #else` / `// #endif`, same for N4; it blanks the unused lines):
// K4 when K % 4 == 0 (buffers contiguous along K: inp, weight, dinp, dweight hold vec4s) and N4 when
// N % 4 == 0 (out, dout, bias). Otherwise those buffers are plain f32 arrays read element by element
// with a bound per element. Tile starts are multiples of 4, so in the vec4 form a vec4 is either wholly
// inside or wholly outside its row.
//
// Grids: matmuls, (ceil(S / TN), ceil(R / TM), Z) workgroups, wg.x over output columns, wg.y over
// output rows, wg.z over split-K slices (1 except for the split weight gradient, whose MS is a multiple
// of BK so no tile straddles two slices). Split reduce: 1-D over the N*K / KW elements of KV, folded
// into (x, y), linear group id = wg.x + wg.y * nwg.x. Bias backward: ceil(N / BX) workgroups of BX
// columns x BY row lanes; each lane sums rows m = lane (mod BY) in 4 fixed interleaved partial sums,
// then the lanes are added by a fixed tree.

// MS: rows of M per split-K slice (matmul_backward_weight*; the other entry points ignore it). drop_*:
// the fused dropout's keep threshold on (hash >> 8), scale 1 / (1 - p) and hash stream (shaders/hash.wgsl,
// appended by the dispatcher); 0, 1, 0 elsewhere.
struct Dims { M: u32, K: u32, N: u32, MS: u32, drop_threshold: u32, drop_scale: f32, drop_stream: u32 }

// Storage element types of the operands, f32 or f16 (src/gpu/source.ts withTypes rewrites these lines):
// loads convert to f32, stores round to the type; tiles, accumulators, dweight, bias and scratch stay f32.
alias TI = f32; // inp
alias TW = f32; // weight
alias TD = f32; // dout
alias TO = f32; // out and dinp (and matmul_fused.wgsl's act)
alias TT = f32; // workgroup tiles and the products: f16 only with HALF_MATH (see mac_tile)

// #if K4
alias KV = vec4<f32>;  // element of the f32 buffers contiguous along K (dweight, scratch)
alias KI = vec4<TI>;   // element of inp
alias KWT = vec4<TW>;  // element of weight
alias KO = vec4<TO>;   // element of dinp
const KW: u32 = 4u;    // floats per KV
// #else
alias KV = f32;
alias KI = TI;
alias KWT = TW;
alias KO = TO;
const KW: u32 = 1u;
// #endif
// #if N4
alias NV = vec4<f32>;  // element of bias
alias ND = vec4<TD>;   // element of dout
alias NO = vec4<TO>;   // element of out
// #else
alias NV = f32;
alias ND = TD;
alias NO = TO;
// #endif

// Bindings, one number per variable across the file. Outputs first, then inputs, then dims.
// forward: out, inp, weight, (bias), dims. backward_input: dinp, dout, weight, dims.
// backward_weight: dweight, dout, inp, dims. backward_bias: dbias, dout, dims.
// backward_weight_split: scratch, dout, inp, dims. backward_weight_reduce: dweight, partials, dims.
@group(0) @binding(0) var<storage, read_write> out: array<NO>;      // [M, N]
@group(0) @binding(1) var<storage, read_write> dinp: array<KO>;     // [M, K]
@group(0) @binding(2) var<storage, read_write> dweight: array<KV>;  // [N, K]
@group(0) @binding(3) var<storage, read_write> dbias: array<f32>;   // [N]
@group(0) @binding(4) var<storage, read_write> scratch: array<KV>;  // [Z, N, K] split-K partials
@group(0) @binding(5) var<storage, read> inp: array<KI>;            // [M, K]
@group(0) @binding(6) var<storage, read> weight: array<KWT>;         // [N, K]
@group(0) @binding(7) var<storage, read> bias: array<NV>;           // [N]
@group(0) @binding(8) var<storage, read> dout: array<ND>;           // [M, N]
@group(0) @binding(9) var<storage, read> partials: array<KV>;       // [Z, N, K], the scratch
@group(0) @binding(10) var<uniform> dims: Dims;

// The tile edge is a const, rewritten per tile by the dispatcher (withConsts), so that the workgroup tiles
// rows have a constant length: As[t][r] indexes a 2-D array whose inner index (a thread's row) is clamped
// once per kernel, not once per load (naga clamps every dynamic index into a fixed-size array).
const WGX: u32 = 16u;     // threads along output columns; TN = 8 * WGX
const WGY: u32 = 16u;     // threads along output rows; TM = 8 * WGY
const BK: u32 = 16u;      // reduction step; a multiple of 4 with 2 * BK divisible by WGX and WGY
override BX: u32 = 8;     // bias backward: columns per workgroup
override BY: u32 = 32;    // bias backward: row lanes per workgroup, a power of two
override WG: u32 = 256;   // split reduce: threads per workgroup

const TM: u32 = 8u * WGY;
const TN: u32 = 8u * WGX;
const NT: u32 = WGX * WGY;  // threads per workgroup
const LA: u32 = TM * BK / 4u / NT;  // vec4 loads per thread per A tile
const LB: u32 = TN * BK / 4u / NT;  // vec4 loads per thread per B tile

var<workgroup> As: array<array<vec4<TT>, TM / 4u>, BK>;  // As[t][r / 4]: TM / 4 vec4s per t
var<workgroup> Bs: array<array<vec4<TT>, TN / 4u>, BK>;  // Bs[t][s / 4]: TN / 4 vec4s per t
var<workgroup> lanes: array<f32, BX * BY>;          // bias backward partial sums [BY][BX]

// ---- Storage access: 4 consecutive elements along the contiguous dimension, zero outside. ----
// ld_X(r, c) reads X[r, c..c+3]; st_X / add_X write or accumulate v into X[r, c..c+3]; c % 4 == 0. The
// element-by-element forms take the 4 elements without per-element checks when all 4 are inside the row
// and check each only at a row's end (no cliff for shapes that are not multiples of 4).

// #if K4
fn ld_inp(r: u32, c: u32) -> vec4<f32> {
  if (r < dims.M && c < dims.K) { return vec4<f32>(inp[(r * dims.K + c) / 4u]); }
  return vec4<f32>();
}
fn ld_weight(r: u32, c: u32) -> vec4<f32> {
  if (r < dims.N && c < dims.K) { return vec4<f32>(weight[(r * dims.K + c) / 4u]); }
  return vec4<f32>();
}
fn st_dinp(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M && c < dims.K) { dinp[(r * dims.K + c) / 4u] = KO(v); }
}
fn add_dweight(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.N && c < dims.K) {
    let i = (r * dims.K + c) / 4u;
    dweight[i] = dweight[i] + v;
  }
}
fn st_scratch(z: u32, r: u32, c: u32, v: vec4<f32>) {  // slice z of the split-K scratch
  if (r < dims.N && c < dims.K) { scratch[(z * dims.N * dims.K + r * dims.K + c) / 4u] = v; }
}
// #else
fn ld_inp(r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (r < dims.M) {
    let i = r * dims.K + c;
    if (c + 3u < dims.K) { return vec4<f32>(f32(inp[i]), f32(inp[i + 1u]), f32(inp[i + 2u]), f32(inp[i + 3u])); }
    if (c < dims.K) { v.x = f32(inp[i]); }
    if (c + 1u < dims.K) { v.y = f32(inp[i + 1u]); }
    if (c + 2u < dims.K) { v.z = f32(inp[i + 2u]); }
  }
  return v;
}
fn ld_weight(r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (r < dims.N) {
    let i = r * dims.K + c;
    if (c + 3u < dims.K) { return vec4<f32>(f32(weight[i]), f32(weight[i + 1u]), f32(weight[i + 2u]), f32(weight[i + 3u])); }
    if (c < dims.K) { v.x = f32(weight[i]); }
    if (c + 1u < dims.K) { v.y = f32(weight[i + 1u]); }
    if (c + 2u < dims.K) { v.z = f32(weight[i + 2u]); }
  }
  return v;
}
fn st_dinp(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M) {
    let i = r * dims.K + c;
    if (c + 3u < dims.K) {
      dinp[i] = TO(v.x);
      dinp[i + 1u] = TO(v.y);
      dinp[i + 2u] = TO(v.z);
      dinp[i + 3u] = TO(v.w);
      return;
    }
    if (c < dims.K) { dinp[i] = TO(v.x); }
    if (c + 1u < dims.K) { dinp[i + 1u] = TO(v.y); }
    if (c + 2u < dims.K) { dinp[i + 2u] = TO(v.z); }
  }
}
fn add_dweight(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.N) {
    let i = r * dims.K + c;
    if (c + 3u < dims.K) {
      dweight[i] = dweight[i] + v.x;
      dweight[i + 1u] = dweight[i + 1u] + v.y;
      dweight[i + 2u] = dweight[i + 2u] + v.z;
      dweight[i + 3u] = dweight[i + 3u] + v.w;
      return;
    }
    if (c < dims.K) { dweight[i] = dweight[i] + v.x; }
    if (c + 1u < dims.K) { dweight[i + 1u] = dweight[i + 1u] + v.y; }
    if (c + 2u < dims.K) { dweight[i + 2u] = dweight[i + 2u] + v.z; }
  }
}
fn st_scratch(z: u32, r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.N) {
    let i = z * dims.N * dims.K + r * dims.K + c;
    if (c + 3u < dims.K) {
      scratch[i] = v.x;
      scratch[i + 1u] = v.y;
      scratch[i + 2u] = v.z;
      scratch[i + 3u] = v.w;
      return;
    }
    if (c < dims.K) { scratch[i] = v.x; }
    if (c + 1u < dims.K) { scratch[i + 1u] = v.y; }
    if (c + 2u < dims.K) { scratch[i + 2u] = v.z; }
  }
}
// #endif

// #if N4
fn ld_dout(r: u32, c: u32) -> vec4<f32> {
  if (r < dims.M && c < dims.N) { return vec4<f32>(dout[(r * dims.N + c) / 4u]); }
  return vec4<f32>();
}
fn ld_bias(c: u32) -> vec4<f32> {
  if (c < dims.N) { return bias[c / 4u]; }
  return vec4<f32>();
}
fn st_out(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M && c < dims.N) { out[(r * dims.N + c) / 4u] = NO(v); }
}
fn ld_dout1(i: u32) -> f32 {  // dout's flat element i (bias backward)
  return f32(dout[i / 4u][i % 4u]);
}
// #else
fn ld_dout(r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (r < dims.M) {
    let i = r * dims.N + c;
    if (c + 3u < dims.N) { return vec4<f32>(f32(dout[i]), f32(dout[i + 1u]), f32(dout[i + 2u]), f32(dout[i + 3u])); }
    if (c < dims.N) { v.x = f32(dout[i]); }
    if (c + 1u < dims.N) { v.y = f32(dout[i + 1u]); }
    if (c + 2u < dims.N) { v.z = f32(dout[i + 2u]); }
  }
  return v;
}
fn ld_bias(c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (c < dims.N) { v.x = bias[c]; }
  if (c + 1u < dims.N) { v.y = bias[c + 1u]; }
  if (c + 2u < dims.N) { v.z = bias[c + 2u]; }
  if (c + 3u < dims.N) { v.w = bias[c + 3u]; }
  return v;
}
fn st_out(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M) {
    let i = r * dims.N + c;
    if (c + 3u < dims.N) {
      out[i] = TO(v.x);
      out[i + 1u] = TO(v.y);
      out[i + 2u] = TO(v.z);
      out[i + 3u] = TO(v.w);
      return;
    }
    if (c < dims.N) { out[i] = TO(v.x); }
    if (c + 1u < dims.N) { out[i + 1u] = TO(v.y); }
    if (c + 2u < dims.N) { out[i + 2u] = TO(v.z); }
  }
}
fn ld_dout1(i: u32) -> f32 {
  return f32(dout[i]);
}
// #endif

// ---- Workgroup tiles. ----

// A[r, t..t+3] = v (an operand contiguous along t): transposed into As[t..t+3][r].
fn put_a_t(r: u32, t: u32, v: vec4<f32>) {
  let q = r / 4u;
  let e = r % 4u;
  As[t][q][e] = TT(v.x);
  As[t + 1u][q][e] = TT(v.y);
  As[t + 2u][q][e] = TT(v.z);
  As[t + 3u][q][e] = TT(v.w);
}
// B[s..s+3, t] = v (an operand contiguous along t): transposed into Bs[t..t+3][s].
fn put_b_t(s: u32, t: u32, v: vec4<f32>) {
  let q = s / 4u;
  let e = s % 4u;
  Bs[t][q][e] = TT(v.x);
  Bs[t + 1u][q][e] = TT(v.y);
  Bs[t + 2u][q][e] = TT(v.z);
  Bs[t + 3u][q][e] = TT(v.w);
}
// A[r..r+3, t] = v (an operand contiguous along r): As[t][r..r+3].
fn put_a(t: u32, r: u32, v: vec4<f32>) {
  As[t][r / 4u] = vec4<TT>(v);
}
// B[t, s..s+3] = v (an operand contiguous along s): Bs[t][s..s+3].
fn put_b(t: u32, s: u32, v: vec4<f32>) {
  Bs[t][s / 4u] = vec4<TT>(v);
}

// ---- The 8x8 register tile. ----

// Thread-local rows 0-3 are r = 4ty + 0..3, rows 4-7 are TM/2 + 4ty + 0..3; column half a is
// s = 4tx + 0..3, half b is TN/2 + 4tx + 0..3. Member rIh holds row I, column half h.
struct Acc {
  r0a: vec4<f32>, r0b: vec4<f32>, r1a: vec4<f32>, r1b: vec4<f32>,
  r2a: vec4<f32>, r2b: vec4<f32>, r3a: vec4<f32>, r3b: vec4<f32>,
  r4a: vec4<f32>, r4b: vec4<f32>, r5a: vec4<f32>, r5b: vec4<f32>,
  r6a: vec4<f32>, r6b: vec4<f32>, r7a: vec4<f32>, r7b: vec4<f32>,
}

// One rank-1 update: a0, a1 are A's rows (0-3, 4-7) at one t, b0, b1 B's column halves at that t.
fn fma8x8(c: Acc, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) -> Acc {
  return Acc(
    c.r0a + a0.x * b0, c.r0b + a0.x * b1, c.r1a + a0.y * b0, c.r1b + a0.y * b1,
    c.r2a + a0.z * b0, c.r2b + a0.z * b1, c.r3a + a0.w * b0, c.r3b + a0.w * b1,
    c.r4a + a1.x * b0, c.r4b + a1.x * b1, c.r5a + a1.y * b0, c.r5b + a1.y * b1,
    c.r6a + a1.z * b0, c.r6b + a1.z * b1, c.r7a + a1.w * b0, c.r7b + a1.w * b1,
  );
}

// #if HALF_MATH
// f16 arithmetic (twice the FMA rate of f32 on GPUs with packed half math): the tiles hold f16, the BK
// products of one tile are summed in f16 accumulators (AccH), and each tile's partial sums are widened and
// added to the f32 accumulators, so rounding error grows with BK (16 terms), not with the full reduction.
struct AccH {
  r0a: vec4<f16>, r0b: vec4<f16>, r1a: vec4<f16>, r1b: vec4<f16>,
  r2a: vec4<f16>, r2b: vec4<f16>, r3a: vec4<f16>, r3b: vec4<f16>,
  r4a: vec4<f16>, r4b: vec4<f16>, r5a: vec4<f16>, r5b: vec4<f16>,
  r6a: vec4<f16>, r6b: vec4<f16>, r7a: vec4<f16>, r7b: vec4<f16>,
}

fn fma8x8h(c: AccH, a0: vec4<f16>, a1: vec4<f16>, b0: vec4<f16>, b1: vec4<f16>) -> AccH {
  return AccH(
    c.r0a + a0.x * b0, c.r0b + a0.x * b1, c.r1a + a0.y * b0, c.r1b + a0.y * b1,
    c.r2a + a0.z * b0, c.r2b + a0.z * b1, c.r3a + a0.w * b0, c.r3b + a0.w * b1,
    c.r4a + a1.x * b0, c.r4b + a1.x * b1, c.r5a + a1.y * b0, c.r5b + a1.y * b1,
    c.r6a + a1.z * b0, c.r6b + a1.z * b1, c.r7a + a1.w * b0, c.r7b + a1.w * b1,
  );
}

fn widen_add(c: Acc, h: AccH) -> Acc {
  return Acc(
    c.r0a + vec4<f32>(h.r0a), c.r0b + vec4<f32>(h.r0b), c.r1a + vec4<f32>(h.r1a), c.r1b + vec4<f32>(h.r1b),
    c.r2a + vec4<f32>(h.r2a), c.r2b + vec4<f32>(h.r2b), c.r3a + vec4<f32>(h.r3a), c.r3b + vec4<f32>(h.r3b),
    c.r4a + vec4<f32>(h.r4a), c.r4b + vec4<f32>(h.r4b), c.r5a + vec4<f32>(h.r5a), c.r5b + vec4<f32>(h.r5b),
    c.r6a + vec4<f32>(h.r6a), c.r6b + vec4<f32>(h.r6b), c.r7a + vec4<f32>(h.r7a), c.r7b + vec4<f32>(h.r7b),
  );
}

// Step t of the tile product, in f16.
fn mac_step(c: AccH, t: u32, tx: u32, ty: u32) -> AccH {
  return fma8x8h(c, As[t][ty], As[t][WGY + ty], Bs[t][tx], Bs[t][WGX + tx]);
}
// Adds the product of the current As, Bs tiles (BK steps of t) to c: f16 within the tile, f32 across.
fn mac_tile(c: Acc, tx: u32, ty: u32) -> Acc {
  var acc = AccH();
  for (var t = 0u; t < BK; t++) { acc = mac_step(acc, t, tx, ty); }
  return widen_add(c, acc);
}
// #else
// Step t of the tile product.
fn mac_step(c: Acc, t: u32, tx: u32, ty: u32) -> Acc {
  return fma8x8(c, As[t][ty], As[t][WGY + ty], Bs[t][tx], Bs[t][WGX + tx]);
}
// Adds the product of the current As, Bs tiles (BK steps of t) to c.
fn mac_tile(c: Acc, tx: u32, ty: u32) -> Acc {
  var acc = c;
  for (var t = 0u; t < BK; t++) { acc = mac_step(acc, t, tx, ty); }
  return acc;
}
// #endif

// ---- The reduction loop, one for the three products. ----
// Per step of BK along t, each thread moves its share of A's TM x BK tile and B's BK x TN tile from
// storage to workgroup memory (vec4 f = lid + i * NT of each), then multiplies the tiles into its
// accumulators. What A, B and the range of t are is the product's: the dispatcher keeps one of the
// blocks `// #if FWD`, `// #if BIN`, `// #if BW` below, the one of the entry point it compiles
// (src/kernels/matmul.ts matmulSource), so an entry point's shader names only the buffers it binds. The
// entry points of the other two products are still in the text but compute the kept product: they are
// never compiled from it.
fn tile_product(wg: vec3<u32>, li: vec3<u32>, lid: u32) -> Acc {
  let r0 = wg.y * TM;
  let s0 = wg.x * TN;
  let t = t_range(wg.z);
  var acc = Acc();
  for (var t0 = t.x; t0 < t.y; t0 += BK) {
    for (var i = 0u; i < LA; i++) { load_a(lid + i * NT, t0, r0); }
    for (var i = 0u; i < LB; i++) { load_b(lid + i * NT, t0, s0); }
    workgroupBarrier();
    acc = mac_tile(acc, li.x, li.y);
    workgroupBarrier();
  }
  return acc;
}

// #if FWD
// Forward: A[r, t] = inp[r, t] and B[t, s] = weight[s, t], both contiguous along t; t over K.
fn t_range(z: u32) -> vec2<u32> { return vec2<u32>(0u, dims.K); }
fn load_a(f: u32, t0: u32, r0: u32) {
  let r = f / (BK / 4u);
  let t = (f % (BK / 4u)) * 4u;
  put_a_t(r, t, ld_inp(r0 + r, t0 + t));
}
fn load_b(f: u32, t0: u32, s0: u32) {
  let s = f / (BK / 4u);
  let t = (f % (BK / 4u)) * 4u;
  put_b_t(s, t, ld_weight(s0 + s, t0 + t));
}
// #endif
// #if BIN
// Backward input: A[r, t] = dout[r, t], contiguous along t; B[t, s] = weight[t, s], contiguous along s;
// t over N.
fn t_range(z: u32) -> vec2<u32> { return vec2<u32>(0u, dims.N); }
fn load_a(f: u32, t0: u32, r0: u32) {
  let r = f / (BK / 4u);
  let t = (f % (BK / 4u)) * 4u;
  put_a_t(r, t, ld_dout(r0 + r, t0 + t));
}
fn load_b(f: u32, t0: u32, s0: u32) {
  let t = f / (TN / 4u);
  let s = (f % (TN / 4u)) * 4u;
  put_b(t, s, ld_weight(t0 + t, s0 + s));
}
// #endif
// #if BW
// Backward weight: A[r, t] = dout[t, r], contiguous along r; B[t, s] = inp[t, s], contiguous along s; t
// over slice z of M, rows [z * MS, min((z + 1) * MS, M)).
fn t_range(z: u32) -> vec2<u32> { return vec2<u32>(z * dims.MS, min(dims.M, (z + 1u) * dims.MS)); }
fn load_a(f: u32, t0: u32, r0: u32) {
  let t = f / (TM / 4u);
  let r = (f % (TM / 4u)) * 4u;
  put_a(t, r, ld_dout(t0 + t, r0 + r));
}
fn load_b(f: u32, t0: u32, s0: u32) {
  let t = f / (TN / 4u);
  let s = (f % (TN / 4u)) * 4u;
  put_b(t, s, ld_inp(t0 + t, s0 + s));
}
// #endif

// ---- The tile's stores: one per product and fusion, kept like the operand loads. ----
// The dispatcher keeps one of the blocks `// #if OUT`, `// #if DINP`, `// #if DWEIGHT`, `// #if SCRATCH`
// below (or of matmul_fused.wgsl's fused forms): the epilogue of the entry point it compiles, which
// writes the 4 results v of slice z at [r, c..c+3] (z is 0 but in the split weight gradient). With BIAS
// (the `_bias` forward entry points), v includes bias[c..c+3]. An epilogue is a direct call, not a
// run-time choice, so an entry point binds only its epilogue's buffers.
// #if OUT
// Forward: out[M, N] = inp[M, K] · weight[N, K]ᵀ (+ bias). R = M, S = N, t over K.
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { st_out(r, c, v); }
// #endif
// #if DINP
// Backward input: dinp[M, K] = dout[M, N] · weight[N, K]. R = M, S = K, t over N.
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { st_dinp(r, c, v); }
// #endif
// #if DWEIGHT
// Backward weight: dweight[N, K] += dout[M, N]ᵀ · inp[M, K]. R = N, S = K, t over M.
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { add_dweight(r, c, v); }
// #endif
// #if SCRATCH
// Split backward weight: scratch[z, N, K] = the product over slice z of M.
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { st_scratch(z, r, c, v); }
// #endif
// #if BIAS
fn bias_at(c: u32) -> vec4<f32> { return ld_bias(c); }
// #else
// No bias: -0.0, since x + -0.0 == x for every x (also -0.0), the compiler drops the add.
fn bias_at(c: u32) -> vec4<f32> { return vec4<f32>(-0.0); }
// #endif

// The thread's 8x8 results through the epilogue: rows ra..ra+3, rb..rb+3 by column halves sa, sb.
fn store_tile(c: Acc, wg: vec3<u32>, li: vec3<u32>) {
  let ra = wg.y * TM + 4u * li.y;
  let rb = ra + TM / 2u;
  let sa = wg.x * TN + 4u * li.x;
  let sb = sa + TN / 2u;
  let ba = bias_at(sa);
  let bb = bias_at(sb);
  let z = wg.z;
  epilogue(z, ra, sa, c.r0a + ba); epilogue(z, ra, sb, c.r0b + bb);
  epilogue(z, ra + 1u, sa, c.r1a + ba); epilogue(z, ra + 1u, sb, c.r1b + bb);
  epilogue(z, ra + 2u, sa, c.r2a + ba); epilogue(z, ra + 2u, sb, c.r2b + bb);
  epilogue(z, ra + 3u, sa, c.r3a + ba); epilogue(z, ra + 3u, sb, c.r3b + bb);
  epilogue(z, rb, sa, c.r4a + ba); epilogue(z, rb, sb, c.r4b + bb);
  epilogue(z, rb + 1u, sa, c.r5a + ba); epilogue(z, rb + 1u, sb, c.r5b + bb);
  epilogue(z, rb + 2u, sa, c.r6a + ba); epilogue(z, rb + 2u, sb, c.r6b + bb);
  epilogue(z, rb + 3u, sa, c.r7a + ba); epilogue(z, rb + 3u, sb, c.r7b + bb);
}

// ---- Entry points of the tiled products: the kept loads, product and epilogue. ----
// Each name is its own pipeline with its own bindings; the bodies are one because the dispatcher keeps
// the blocks of the name it compiles (the entry points of other names in the text are never compiled
// from it). Here: the plain products; matmul_fused.wgsl adds the fused ones.

// The thread's place in its workgroup (Groups, the workgroup's: shaders/grid.wgsl, appended by the
// dispatcher; kept apart because barriers need the uniform values to stay uniform).
struct Threads {
  @builtin(local_invocation_id) li: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
}

fn tiled(g: Groups, t: Threads) { store_tile(tile_product(g.wg, t.li, t.lid), g.wg, t.li); }

@compute @workgroup_size(WGX, WGY) fn matmul_forward(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_bias(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_backward_input(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_backward_weight(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_backward_weight_split(g: Groups, t: Threads) { tiled(g, t); }

// ---- Split-K reduce: dweight[N, K] += the Z slices of scratch. ----

// dweight += partials[0] + partials[1] + ... + partials[Z-1], added left to right, per KV element.
@compute @workgroup_size(WG)
fn matmul_backward_weight_reduce(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  let n = dims.N * dims.K / KW;
  if (i >= n) { return; }
  let splits = (dims.M + dims.MS - 1u) / dims.MS;
  var sum = partials[i];
  for (var z = 1u; z < splits; z++) { sum += partials[z * n + i]; }
  dweight[i] = dweight[i] + sum;
}

// ---- Backward bias: dbias[N] += sum over m of dout[m, N]. ----

@compute @workgroup_size(BX, BY)
fn matmul_backward_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
  let n = wg.x * BX + li.x;
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
  if (n < dims.N) {
    var m = li.y;
    for (; m + 3u * BY < dims.M; m += 4u * BY) {
      s0 += ld_dout1(m * dims.N + n);
      s1 += ld_dout1((m + BY) * dims.N + n);
      s2 += ld_dout1((m + 2u * BY) * dims.N + n);
      s3 += ld_dout1((m + 3u * BY) * dims.N + n);
    }
    for (; m < dims.M; m += BY) { s0 += ld_dout1(m * dims.N + n); }
  }
  lanes[li.y * BX + li.x] = (s0 + s1) + (s2 + s3);
  workgroupBarrier();
  for (var h = BY / 2u; h > 0u; h /= 2u) {
    if (li.y < h) { lanes[li.y * BX + li.x] += lanes[(li.y + h) * BX + li.x]; }
    workgroupBarrier();
  }
  if (li.y == 0u && n < dims.N) { dbias[n] = dbias[n] + lanes[li.x]; }
}
