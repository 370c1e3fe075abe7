// Causal multi-head self-attention (nanoGPT CausalSelfAttention after c_attn), FlashAttention-2 style:
// tiled, online softmax; the T x T score matrix never reaches global memory.
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4 (vec4 units).
//   qkv   [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   out   [B, T, C]   heads merged the same way: out[b, t, h*HS + d]
//   lse   [B, NH, T]  natural logsumexp over keys j <= t of the scaled scores of query row t (for backward)
//   dout  [B, T, C]   gradient of out
//   dqkv  [B, T, 3C]  gradient of qkv, same layout
//   delta [B, NH, T]  scratch: delta_t = sum_d dout[b, t, h*HS + d] * out[b, t, h*HS + d]
// Scores s_tj = scale * q_t . k_j with scale = 1 / sqrt(HS), for keys j <= t only (causal).
// Gradients: dqkv is an activation gradient, WRITTEN (=) entirely, masked positions included. Backward by
// recomputation from q, k, v and lse:
//   p_tj = exp(s_tj - lse_t), dp_tj = dout_t . v_j, ds_tj = p_tj * (dp_tj - delta_t),
//   dq_t = scale * sum_j ds_tj k_j,  dk_j = scale * sum_t ds_tj q_t,  dv_j = sum_t p_tj dout_t.
// No float atomics and a fixed summation order: results are bitwise reproducible.
//
// Kernels:
//   attention_forward         workgroup (query block, head, batch), heaviest (last) blocks first; K/V
//                             tiles of BC keys stream through workgroup memory; online softmax per row.
//   attention_backward_delta  one thread per (b, h, t): delta.
//   attention_backward_dkdv   workgroup (key block, head, batch); Q/dO tiles (with lse, delta) of BC queries
//                             stream through workgroup memory; dk, dv accumulate in registers.
//   attention_backward_dq     workgroup (query block, head, batch); K/V tiles stream; dq in registers.
// Threads: every row of a block (a query, or a key in dkdv) is owned by DP adjacent threads; thread `part`
// holds the row's vec4s k * DP + part (k < DS4) in registers (strided, so the DP threads read adjacent vec4s
// of a tile row). Register arrays are only ever indexed by constants: the per-vec4 work is written out
// (unrolled) with `if (DS4 > k)` guards that the compiler folds, because dynamically indexed private arrays
// can land in slow local memory. The streamed rows are taken 4 at a time, their 4 scores kept in one vec4.
// With DP > 1 the partial dot products are summed through workgroup memory (`red`, double-buffered by group
// parity: one barrier per group of 4). Scores are kept in log2 units (q or k pre-multiplied by
// scale * log2(e)) so exp2 does the softmax. Tiles past the diagonal are never loaded; groups of 4 entirely
// above it are skipped per row; the rest are masked.

// Specialised per head size by the dispatcher (src/kernels/attention.ts), which rewrites these two lines:
// private arrays need const sizes.
const HS: u32 = 64u; // head size C / NH, a multiple of 4
const DP: u32 = 1u; // threads per row; (HS / 4) % DP == 0

const HS4: u32 = HS / 4u;
const DS4: u32 = HS4 / DP; // vec4s of a row held by one thread: <= 16 in the forward, <= 8 in the backward
const SCALE: f32 = 1.0 / sqrt(f32(HS));
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;
const SCALE_LOG2E: f32 = SCALE * LOG2E;
const MASKED: f32 = -1.0e30; // stands in for -inf: exp2(MASKED - m) == 0 for any finite m
// Forward: the running max m moves only when a score exceeds it by more than this (log2 units), so the
// accumulators are rescaled rarely; exp2(s - m) <= 2^8 stays far from overflow.
const RESCALE: f32 = 8.0;

override WG: u32 = 64u; // threads per workgroup; rows per block = WG / DP
override BC: u32 = 32u; // rows per streamed tile, a multiple of 4
override RED: u32 = 1u; // vec4s of `red`: 2 buffers * vec4s per thread * WG when DP > 1, else 1

// Storage element types, each f32 or f16, chosen by the dispatcher (withTypes in src/gpu/source.ts rewrites
// these lines): QT qkv (read by every kernel), OT out (written by the forward; read back as fwd_out by the
// delta kernel), DT dout, GT dqkv. Loads convert to f32 and stores round to the alias type; all arithmetic,
// the workgroup tiles, lse, delta and the partial sums stay f32. Indices count vec4 elements (16 bytes in
// f32, 8 in f16), so they are the same for either type.
alias QT = f32;
alias OT = f32;
alias DT = f32;
alias GT = f32;

struct Dims { T: u32, C4: u32, NH: u32, n: u32 } // n = B * NH * T

// Bindings, one number per variable across the file: forward 0, 1, 4, 9; delta 3, 5, 6, 9;
// dkdv and dq 2, 4, 5, 7, 8, 9. The backward reads the forward's out and lse (and its own delta) through
// read-only variables so they may share a buffer with other read-only inputs.
@group(0) @binding(0) var<storage, read_write> out: array<vec4<OT>>; // [B, T, C/4]
@group(0) @binding(1) var<storage, read_write> lse: array<f32>; // [B, NH, T]
@group(0) @binding(2) var<storage, read_write> dqkv: array<vec4<GT>>; // [B, T, 3C/4]
@group(0) @binding(3) var<storage, read_write> delta: array<f32>; // [B, NH, T] (scratch)
@group(0) @binding(4) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(5) var<storage, read> dout: array<vec4<DT>>; // [B, T, C/4]
@group(0) @binding(6) var<storage, read> fwd_out: array<vec4<OT>>; // [B, T, C/4], the forward's out
@group(0) @binding(7) var<storage, read> fwd_lse: array<f32>; // [B, NH, T], the forward's lse
@group(0) @binding(8) var<storage, read> delta_in: array<f32>; // [B, NH, T], delta as read back
@group(0) @binding(9) var<uniform> dims: Dims;

var<workgroup> tile_a: array<vec4<f32>, BC * HS4>; // K (forward, dq) or Q (dkdv), [BC, HS/4]
var<workgroup> tile_b: array<vec4<f32>, BC * HS4>; // V (forward, dq) or dO (dkdv), [BC, HS/4]
var<workgroup> tile_s: array<vec2<f32>, BC>; // dkdv: (lse * log2(e), delta) of the tile's queries
var<workgroup> red: array<vec4<f32>, RED>; // partial dot products when DP > 1

// acc + the 4 dot products of x with tile rows r .. r+3 at vec4 column c, `at` = r * HS4 + c; written as
// 4 vector FMAs (x's components times the rows' transposed columns) rather than dot() plus adds.
fn dot4a(acc: vec4<f32>, x: vec4<f32>, at: u32) -> vec4<f32> {
  let a0 = tile_a[at];
  let a1 = tile_a[at + HS4];
  let a2 = tile_a[at + 2u * HS4];
  let a3 = tile_a[at + 3u * HS4];
  return acc + x.x * vec4<f32>(a0.x, a1.x, a2.x, a3.x) + x.y * vec4<f32>(a0.y, a1.y, a2.y, a3.y) +
    x.z * vec4<f32>(a0.z, a1.z, a2.z, a3.z) + x.w * vec4<f32>(a0.w, a1.w, a2.w, a3.w);
}

fn dot4b(acc: vec4<f32>, x: vec4<f32>, at: u32) -> vec4<f32> {
  let b0 = tile_b[at];
  let b1 = tile_b[at + HS4];
  let b2 = tile_b[at + 2u * HS4];
  let b3 = tile_b[at + 3u * HS4];
  return acc + x.x * vec4<f32>(b0.x, b1.x, b2.x, b3.x) + x.y * vec4<f32>(b0.y, b1.y, b2.y, b3.y) +
    x.z * vec4<f32>(b0.z, b1.z, b2.z, b3.z) + x.w * vec4<f32>(b0.w, b1.w, b2.w, b3.w);
}

// acc + sum_m w[m] * (tile row r + m at vec4 column c), `at` = r * HS4 + c; a chain of FMAs.
fn axpy4a(acc: vec4<f32>, w: vec4<f32>, at: u32) -> vec4<f32> {
  return acc + w.x * tile_a[at] + w.y * tile_a[at + HS4] + w.z * tile_a[at + 2u * HS4] +
    w.w * tile_a[at + 3u * HS4];
}

fn axpy4b(acc: vec4<f32>, w: vec4<f32>, at: u32) -> vec4<f32> {
  return acc + w.x * tile_b[at] + w.y * tile_b[at + HS4] + w.z * tile_b[at + 2u * HS4] +
    w.w * tile_b[at + 3u * HS4];
}

// Loads rows r0 .. r0+BC-1 (zeros past T) of head h's K into tile_a and V into tile_b.
fn loadKV(b: u32, h: u32, r0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  for (var x = lid; x < BC * HS4; x += WG) {
    let i = r0 + x / HS4;
    var kv = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (i < T) {
      let at = (b * T + i) * 3u * C4 + C4 + h * HS4 + x % HS4;
      kv = vec4<f32>(qkv[at]);
      vv = vec4<f32>(qkv[at + C4]);
    }
    tile_a[x] = kv;
    tile_b[x] = vv;
  }
}

// Loads rows r0 .. r0+BC-1 (zeros past T) of head h's Q into tile_a and dO into tile_b.
fn loadQdO(b: u32, h: u32, r0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  for (var x = lid; x < BC * HS4; x += WG) {
    let i = r0 + x / HS4;
    let c = h * HS4 + x % HS4;
    var qv = vec4<f32>(0.0);
    var gv = vec4<f32>(0.0);
    if (i < T) {
      qv = vec4<f32>(qkv[(b * T + i) * 3u * C4 + c]);
      gv = vec4<f32>(dout[(b * T + i) * C4 + c]);
    }
    tile_a[x] = qv;
    tile_b[x] = gv;
  }
}

@compute @workgroup_size(WG)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let rows = WG / DP;
  let h = wg.y;
  let b = wg.z;
  let q0 = (nwg.x - 1u - wg.x) * rows; // heaviest blocks first
  let r = lid / DP;
  let part = lid % DP;
  let t = q0 + r;
  let valid = t < T;
  let qlast = min(q0 + rows, T) - 1u;

  // q[k]: vec4 k of this thread's share of query row t, times scale * log2(e); o[k]: its output accumulator.
  var q: array<vec4<f32>, 16>;
  var o: array<vec4<f32>, 16>;
  let qa = (b * T + min(t, T - 1u)) * 3u * C4 + h * HS4 + part;
  q[0] = vec4<f32>(qkv[qa]) * SCALE_LOG2E;
  if (DS4 > 1u) { q[1] = vec4<f32>(qkv[qa + DP]) * SCALE_LOG2E; }
  if (DS4 > 2u) { q[2] = vec4<f32>(qkv[qa + 2u * DP]) * SCALE_LOG2E; }
  if (DS4 > 3u) { q[3] = vec4<f32>(qkv[qa + 3u * DP]) * SCALE_LOG2E; }
  if (DS4 > 4u) { q[4] = vec4<f32>(qkv[qa + 4u * DP]) * SCALE_LOG2E; }
  if (DS4 > 5u) { q[5] = vec4<f32>(qkv[qa + 5u * DP]) * SCALE_LOG2E; }
  if (DS4 > 6u) { q[6] = vec4<f32>(qkv[qa + 6u * DP]) * SCALE_LOG2E; }
  if (DS4 > 7u) { q[7] = vec4<f32>(qkv[qa + 7u * DP]) * SCALE_LOG2E; }
  if (DS4 > 8u) { q[8] = vec4<f32>(qkv[qa + 8u * DP]) * SCALE_LOG2E; }
  if (DS4 > 9u) { q[9] = vec4<f32>(qkv[qa + 9u * DP]) * SCALE_LOG2E; }
  if (DS4 > 10u) { q[10] = vec4<f32>(qkv[qa + 10u * DP]) * SCALE_LOG2E; }
  if (DS4 > 11u) { q[11] = vec4<f32>(qkv[qa + 11u * DP]) * SCALE_LOG2E; }
  if (DS4 > 12u) { q[12] = vec4<f32>(qkv[qa + 12u * DP]) * SCALE_LOG2E; }
  if (DS4 > 13u) { q[13] = vec4<f32>(qkv[qa + 13u * DP]) * SCALE_LOG2E; }
  if (DS4 > 14u) { q[14] = vec4<f32>(qkv[qa + 14u * DP]) * SCALE_LOG2E; }
  if (DS4 > 15u) { q[15] = vec4<f32>(qkv[qa + 15u * DP]) * SCALE_LOG2E; }
  var m = MASKED; // running max of the row's scores (log2 units)
  var l = 0.0; // running sum of exp2(s - m)

  let ntiles = qlast / BC + 1u;
  for (var kt = 0u; kt < ntiles; kt++) {
    let k0 = kt * BC;
    workgroupBarrier(); // the previous tile is no longer read
    loadKV(b, h, k0, lid);
    workgroupBarrier();
    let ngroups = (min(BC, qlast + 1u - k0) + 3u) / 4u;
    for (var g = 0u; g < ngroups; g++) {
      let j0 = k0 + 4u * g;
      let live = valid && j0 <= t;
      let at = 4u * g * HS4 + part;
      var s = vec4<f32>(0.0);
      if (live) {
        s = dot4a(s, q[0], at);
        if (DS4 > 1u) { s = dot4a(s, q[1], at + DP); }
        if (DS4 > 2u) { s = dot4a(s, q[2], at + 2u * DP); }
        if (DS4 > 3u) { s = dot4a(s, q[3], at + 3u * DP); }
        if (DS4 > 4u) { s = dot4a(s, q[4], at + 4u * DP); }
        if (DS4 > 5u) { s = dot4a(s, q[5], at + 5u * DP); }
        if (DS4 > 6u) { s = dot4a(s, q[6], at + 6u * DP); }
        if (DS4 > 7u) { s = dot4a(s, q[7], at + 7u * DP); }
        if (DS4 > 8u) { s = dot4a(s, q[8], at + 8u * DP); }
        if (DS4 > 9u) { s = dot4a(s, q[9], at + 9u * DP); }
        if (DS4 > 10u) { s = dot4a(s, q[10], at + 10u * DP); }
        if (DS4 > 11u) { s = dot4a(s, q[11], at + 11u * DP); }
        if (DS4 > 12u) { s = dot4a(s, q[12], at + 12u * DP); }
        if (DS4 > 13u) { s = dot4a(s, q[13], at + 13u * DP); }
        if (DS4 > 14u) { s = dot4a(s, q[14], at + 14u * DP); }
        if (DS4 > 15u) { s = dot4a(s, q[15], at + 15u * DP); }
      }
      if (DP > 1u) {
        let slot = (g & 1u) * WG;
        red[slot + lid] = s;
        workgroupBarrier();
        if (live) {
          s = vec4<f32>(0.0);
          for (var x = 0u; x < DP; x++) {
            s += red[slot + r * DP + x];
          }
        }
      }
      if (live) {
        let jj = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        s = select(s, vec4<f32>(MASKED), jj > vec4<u32>(t));
        let mx = max(max(s.x, s.y), max(s.z, s.w));
        if (mx > m + RESCALE) {
          let alpha = exp2(m - mx); // 0 on the first group: m was MASKED
          l *= alpha;
          o[0] *= alpha;
          if (DS4 > 1u) { o[1] *= alpha; }
          if (DS4 > 2u) { o[2] *= alpha; }
          if (DS4 > 3u) { o[3] *= alpha; }
          if (DS4 > 4u) { o[4] *= alpha; }
          if (DS4 > 5u) { o[5] *= alpha; }
          if (DS4 > 6u) { o[6] *= alpha; }
          if (DS4 > 7u) { o[7] *= alpha; }
          if (DS4 > 8u) { o[8] *= alpha; }
          if (DS4 > 9u) { o[9] *= alpha; }
          if (DS4 > 10u) { o[10] *= alpha; }
          if (DS4 > 11u) { o[11] *= alpha; }
          if (DS4 > 12u) { o[12] *= alpha; }
          if (DS4 > 13u) { o[13] *= alpha; }
          if (DS4 > 14u) { o[14] *= alpha; }
          if (DS4 > 15u) { o[15] *= alpha; }
          m = mx;
        }
        let p = exp2(s - vec4<f32>(m));
        l += (p.x + p.y) + (p.z + p.w);
        o[0] = axpy4b(o[0], p, at);
        if (DS4 > 1u) { o[1] = axpy4b(o[1], p, at + DP); }
        if (DS4 > 2u) { o[2] = axpy4b(o[2], p, at + 2u * DP); }
        if (DS4 > 3u) { o[3] = axpy4b(o[3], p, at + 3u * DP); }
        if (DS4 > 4u) { o[4] = axpy4b(o[4], p, at + 4u * DP); }
        if (DS4 > 5u) { o[5] = axpy4b(o[5], p, at + 5u * DP); }
        if (DS4 > 6u) { o[6] = axpy4b(o[6], p, at + 6u * DP); }
        if (DS4 > 7u) { o[7] = axpy4b(o[7], p, at + 7u * DP); }
        if (DS4 > 8u) { o[8] = axpy4b(o[8], p, at + 8u * DP); }
        if (DS4 > 9u) { o[9] = axpy4b(o[9], p, at + 9u * DP); }
        if (DS4 > 10u) { o[10] = axpy4b(o[10], p, at + 10u * DP); }
        if (DS4 > 11u) { o[11] = axpy4b(o[11], p, at + 11u * DP); }
        if (DS4 > 12u) { o[12] = axpy4b(o[12], p, at + 12u * DP); }
        if (DS4 > 13u) { o[13] = axpy4b(o[13], p, at + 13u * DP); }
        if (DS4 > 14u) { o[14] = axpy4b(o[14], p, at + 14u * DP); }
        if (DS4 > 15u) { o[15] = axpy4b(o[15], p, at + 15u * DP); }
      }
    }
  }
  if (valid) {
    let inv = 1.0 / l;
    let oa = (b * T + t) * C4 + h * HS4 + part;
    out[oa] = vec4<OT>(o[0] * inv);
    if (DS4 > 1u) { out[oa + DP] = vec4<OT>(o[1] * inv); }
    if (DS4 > 2u) { out[oa + 2u * DP] = vec4<OT>(o[2] * inv); }
    if (DS4 > 3u) { out[oa + 3u * DP] = vec4<OT>(o[3] * inv); }
    if (DS4 > 4u) { out[oa + 4u * DP] = vec4<OT>(o[4] * inv); }
    if (DS4 > 5u) { out[oa + 5u * DP] = vec4<OT>(o[5] * inv); }
    if (DS4 > 6u) { out[oa + 6u * DP] = vec4<OT>(o[6] * inv); }
    if (DS4 > 7u) { out[oa + 7u * DP] = vec4<OT>(o[7] * inv); }
    if (DS4 > 8u) { out[oa + 8u * DP] = vec4<OT>(o[8] * inv); }
    if (DS4 > 9u) { out[oa + 9u * DP] = vec4<OT>(o[9] * inv); }
    if (DS4 > 10u) { out[oa + 10u * DP] = vec4<OT>(o[10] * inv); }
    if (DS4 > 11u) { out[oa + 11u * DP] = vec4<OT>(o[11] * inv); }
    if (DS4 > 12u) { out[oa + 12u * DP] = vec4<OT>(o[12] * inv); }
    if (DS4 > 13u) { out[oa + 13u * DP] = vec4<OT>(o[13] * inv); }
    if (DS4 > 14u) { out[oa + 14u * DP] = vec4<OT>(o[14] * inv); }
    if (DS4 > 15u) { out[oa + 15u * DP] = vec4<OT>(o[15] * inv); }
    if (part == 0u) {
      lse[(b * dims.NH + h) * T + t] = (m + log2(l)) * LN2;
    }
  }
}

// delta[b, h, t] = dout[b, t, head h] . out[b, t, head h]; one thread per output, 1-D grid folded into
// (x, y).
@compute @workgroup_size(WG)
fn attention_backward_delta(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let n = (wg.x + wg.y * nwg.x) * WG + lid;
  if (n >= dims.n) { return; }
  let T = dims.T;
  let t = n % T;
  let bh = n / T;
  let h = bh % dims.NH;
  let b = bh / dims.NH;
  let row = (b * T + t) * dims.C4 + h * HS4;
  var acc = vec4<f32>(0.0);
  for (var d = 0u; d < HS4; d++) {
    acc += vec4<f32>(dout[row + d]) * vec4<f32>(fwd_out[row + d]);
  }
  delta[n] = (acc.x + acc.y) + (acc.z + acc.w);
}

// dk, dv of one key block: thread rows are keys j; query tiles from the block's first key on stream through.
@compute @workgroup_size(WG)
fn attention_backward_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let rows = WG / DP;
  let h = wg.y;
  let b = wg.z;
  let j0 = wg.x * rows; // low key blocks see the most queries: they come first
  let r = lid / DP;
  let part = lid % DP;
  let j = j0 + r;
  let valid = j < T;
  let bh = (b * dims.NH + h) * T;

  // k[k]: share of key row j times scale * log2(e); v[k]: of value row j; dk, dv: their gradients.
  var k: array<vec4<f32>, 8>;
  var v: array<vec4<f32>, 8>;
  var dk: array<vec4<f32>, 8>;
  var dv: array<vec4<f32>, 8>;
  let ka = (b * T + min(j, T - 1u)) * 3u * C4 + C4 + h * HS4 + part;
  k[0] = vec4<f32>(qkv[ka]) * SCALE_LOG2E; v[0] = vec4<f32>(qkv[ka + C4]);
  if (DS4 > 1u) { k[1] = vec4<f32>(qkv[ka + DP]) * SCALE_LOG2E; v[1] = vec4<f32>(qkv[ka + C4 + DP]); }
  if (DS4 > 2u) { k[2] = vec4<f32>(qkv[ka + 2u * DP]) * SCALE_LOG2E; v[2] = vec4<f32>(qkv[ka + C4 + 2u * DP]); }
  if (DS4 > 3u) { k[3] = vec4<f32>(qkv[ka + 3u * DP]) * SCALE_LOG2E; v[3] = vec4<f32>(qkv[ka + C4 + 3u * DP]); }
  if (DS4 > 4u) { k[4] = vec4<f32>(qkv[ka + 4u * DP]) * SCALE_LOG2E; v[4] = vec4<f32>(qkv[ka + C4 + 4u * DP]); }
  if (DS4 > 5u) { k[5] = vec4<f32>(qkv[ka + 5u * DP]) * SCALE_LOG2E; v[5] = vec4<f32>(qkv[ka + C4 + 5u * DP]); }
  if (DS4 > 6u) { k[6] = vec4<f32>(qkv[ka + 6u * DP]) * SCALE_LOG2E; v[6] = vec4<f32>(qkv[ka + C4 + 6u * DP]); }
  if (DS4 > 7u) { k[7] = vec4<f32>(qkv[ka + 7u * DP]) * SCALE_LOG2E; v[7] = vec4<f32>(qkv[ka + C4 + 7u * DP]); }

  for (var i0 = j0; i0 < T; i0 += BC) {
    workgroupBarrier();
    loadQdO(b, h, i0, lid);
    for (var x = lid; x < BC; x += WG) {
      let i = i0 + x;
      var sv = vec2<f32>(0.0);
      if (i < T) {
        sv = vec2<f32>(fwd_lse[bh + i] * LOG2E, delta_in[bh + i]);
      }
      tile_s[x] = sv;
    }
    workgroupBarrier();
    let ngroups = (min(BC, T - i0) + 3u) / 4u;
    for (var g = 0u; g < ngroups; g++) {
      let ig = i0 + 4u * g;
      let live = valid && ig + 3u >= j;
      let at = 4u * g * HS4 + part;
      var s = vec4<f32>(0.0);
      var dp = vec4<f32>(0.0);
      if (live) {
        s = dot4a(s, k[0], at); dp = dot4b(dp, v[0], at);
        if (DS4 > 1u) { s = dot4a(s, k[1], at + DP); dp = dot4b(dp, v[1], at + DP); }
        if (DS4 > 2u) { s = dot4a(s, k[2], at + 2u * DP); dp = dot4b(dp, v[2], at + 2u * DP); }
        if (DS4 > 3u) { s = dot4a(s, k[3], at + 3u * DP); dp = dot4b(dp, v[3], at + 3u * DP); }
        if (DS4 > 4u) { s = dot4a(s, k[4], at + 4u * DP); dp = dot4b(dp, v[4], at + 4u * DP); }
        if (DS4 > 5u) { s = dot4a(s, k[5], at + 5u * DP); dp = dot4b(dp, v[5], at + 5u * DP); }
        if (DS4 > 6u) { s = dot4a(s, k[6], at + 6u * DP); dp = dot4b(dp, v[6], at + 6u * DP); }
        if (DS4 > 7u) { s = dot4a(s, k[7], at + 7u * DP); dp = dot4b(dp, v[7], at + 7u * DP); }
      }
      if (DP > 1u) {
        let slot = (g & 1u) * 2u * WG;
        red[slot + 2u * lid] = s;
        red[slot + 2u * lid + 1u] = dp;
        workgroupBarrier();
        if (live) {
          s = vec4<f32>(0.0);
          dp = vec4<f32>(0.0);
          for (var x = 0u; x < DP; x++) {
            s += red[slot + 2u * (r * DP + x)];
            dp += red[slot + 2u * (r * DP + x) + 1u];
          }
        }
      }
      if (live) {
        let e0 = tile_s[4u * g];
        let e1 = tile_s[4u * g + 1u];
        let e2 = tile_s[4u * g + 2u];
        let e3 = tile_s[4u * g + 3u];
        let ii = vec4<u32>(ig) + vec4<u32>(0u, 1u, 2u, 3u);
        let masked = (ii < vec4<u32>(j)) | (ii >= vec4<u32>(T));
        let p = select(exp2(s - vec4<f32>(e0.x, e1.x, e2.x, e3.x)), vec4<f32>(0.0), masked);
        let ds = p * (dp - vec4<f32>(e0.y, e1.y, e2.y, e3.y));
        dv[0] = axpy4b(dv[0], p, at); dk[0] = axpy4a(dk[0], ds, at);
        if (DS4 > 1u) { dv[1] = axpy4b(dv[1], p, at + DP); dk[1] = axpy4a(dk[1], ds, at + DP); }
        if (DS4 > 2u) { dv[2] = axpy4b(dv[2], p, at + 2u * DP); dk[2] = axpy4a(dk[2], ds, at + 2u * DP); }
        if (DS4 > 3u) { dv[3] = axpy4b(dv[3], p, at + 3u * DP); dk[3] = axpy4a(dk[3], ds, at + 3u * DP); }
        if (DS4 > 4u) { dv[4] = axpy4b(dv[4], p, at + 4u * DP); dk[4] = axpy4a(dk[4], ds, at + 4u * DP); }
        if (DS4 > 5u) { dv[5] = axpy4b(dv[5], p, at + 5u * DP); dk[5] = axpy4a(dk[5], ds, at + 5u * DP); }
        if (DS4 > 6u) { dv[6] = axpy4b(dv[6], p, at + 6u * DP); dk[6] = axpy4a(dk[6], ds, at + 6u * DP); }
        if (DS4 > 7u) { dv[7] = axpy4b(dv[7], p, at + 7u * DP); dk[7] = axpy4a(dk[7], ds, at + 7u * DP); }
      }
    }
  }
  if (valid) {
    let da = (b * T + j) * 3u * C4 + C4 + h * HS4 + part;
    dqkv[da] = vec4<GT>(dk[0] * SCALE); dqkv[da + C4] = vec4<GT>(dv[0]);
    if (DS4 > 1u) { dqkv[da + DP] = vec4<GT>(dk[1] * SCALE); dqkv[da + C4 + DP] = vec4<GT>(dv[1]); }
    if (DS4 > 2u) { dqkv[da + 2u * DP] = vec4<GT>(dk[2] * SCALE); dqkv[da + C4 + 2u * DP] = vec4<GT>(dv[2]); }
    if (DS4 > 3u) { dqkv[da + 3u * DP] = vec4<GT>(dk[3] * SCALE); dqkv[da + C4 + 3u * DP] = vec4<GT>(dv[3]); }
    if (DS4 > 4u) { dqkv[da + 4u * DP] = vec4<GT>(dk[4] * SCALE); dqkv[da + C4 + 4u * DP] = vec4<GT>(dv[4]); }
    if (DS4 > 5u) { dqkv[da + 5u * DP] = vec4<GT>(dk[5] * SCALE); dqkv[da + C4 + 5u * DP] = vec4<GT>(dv[5]); }
    if (DS4 > 6u) { dqkv[da + 6u * DP] = vec4<GT>(dk[6] * SCALE); dqkv[da + C4 + 6u * DP] = vec4<GT>(dv[6]); }
    if (DS4 > 7u) { dqkv[da + 7u * DP] = vec4<GT>(dk[7] * SCALE); dqkv[da + C4 + 7u * DP] = vec4<GT>(dv[7]); }
  }
}

// dq of one query block: thread rows are queries t; key tiles up to the block's last query stream through.
@compute @workgroup_size(WG)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let rows = WG / DP;
  let h = wg.y;
  let b = wg.z;
  let q0 = (nwg.x - 1u - wg.x) * rows; // heaviest blocks first
  let r = lid / DP;
  let part = lid % DP;
  let t = q0 + r;
  let valid = t < T;
  let tc = min(t, T - 1u);
  let qlast = min(q0 + rows, T) - 1u;
  let bh = (b * dims.NH + h) * T;
  let lse2 = fwd_lse[bh + tc] * LOG2E;
  let dl = delta_in[bh + tc];

  // q[k]: share of query row t times scale * log2(e); go[k]: of dout row t; dq: gradient of q.
  var q: array<vec4<f32>, 8>;
  var go: array<vec4<f32>, 8>;
  var dq: array<vec4<f32>, 8>;
  let qa = (b * T + tc) * 3u * C4 + h * HS4 + part;
  let ga = (b * T + tc) * C4 + h * HS4 + part;
  q[0] = vec4<f32>(qkv[qa]) * SCALE_LOG2E; go[0] = vec4<f32>(dout[ga]);
  if (DS4 > 1u) { q[1] = vec4<f32>(qkv[qa + DP]) * SCALE_LOG2E; go[1] = vec4<f32>(dout[ga + DP]); }
  if (DS4 > 2u) { q[2] = vec4<f32>(qkv[qa + 2u * DP]) * SCALE_LOG2E; go[2] = vec4<f32>(dout[ga + 2u * DP]); }
  if (DS4 > 3u) { q[3] = vec4<f32>(qkv[qa + 3u * DP]) * SCALE_LOG2E; go[3] = vec4<f32>(dout[ga + 3u * DP]); }
  if (DS4 > 4u) { q[4] = vec4<f32>(qkv[qa + 4u * DP]) * SCALE_LOG2E; go[4] = vec4<f32>(dout[ga + 4u * DP]); }
  if (DS4 > 5u) { q[5] = vec4<f32>(qkv[qa + 5u * DP]) * SCALE_LOG2E; go[5] = vec4<f32>(dout[ga + 5u * DP]); }
  if (DS4 > 6u) { q[6] = vec4<f32>(qkv[qa + 6u * DP]) * SCALE_LOG2E; go[6] = vec4<f32>(dout[ga + 6u * DP]); }
  if (DS4 > 7u) { q[7] = vec4<f32>(qkv[qa + 7u * DP]) * SCALE_LOG2E; go[7] = vec4<f32>(dout[ga + 7u * DP]); }

  let ntiles = qlast / BC + 1u;
  for (var kt = 0u; kt < ntiles; kt++) {
    let k0 = kt * BC;
    workgroupBarrier();
    loadKV(b, h, k0, lid);
    workgroupBarrier();
    let ngroups = (min(BC, qlast + 1u - k0) + 3u) / 4u;
    for (var g = 0u; g < ngroups; g++) {
      let j0 = k0 + 4u * g;
      let live = valid && j0 <= t;
      let at = 4u * g * HS4 + part;
      var s = vec4<f32>(0.0);
      var dp = vec4<f32>(0.0);
      if (live) {
        s = dot4a(s, q[0], at); dp = dot4b(dp, go[0], at);
        if (DS4 > 1u) { s = dot4a(s, q[1], at + DP); dp = dot4b(dp, go[1], at + DP); }
        if (DS4 > 2u) { s = dot4a(s, q[2], at + 2u * DP); dp = dot4b(dp, go[2], at + 2u * DP); }
        if (DS4 > 3u) { s = dot4a(s, q[3], at + 3u * DP); dp = dot4b(dp, go[3], at + 3u * DP); }
        if (DS4 > 4u) { s = dot4a(s, q[4], at + 4u * DP); dp = dot4b(dp, go[4], at + 4u * DP); }
        if (DS4 > 5u) { s = dot4a(s, q[5], at + 5u * DP); dp = dot4b(dp, go[5], at + 5u * DP); }
        if (DS4 > 6u) { s = dot4a(s, q[6], at + 6u * DP); dp = dot4b(dp, go[6], at + 6u * DP); }
        if (DS4 > 7u) { s = dot4a(s, q[7], at + 7u * DP); dp = dot4b(dp, go[7], at + 7u * DP); }
      }
      if (DP > 1u) {
        let slot = (g & 1u) * 2u * WG;
        red[slot + 2u * lid] = s;
        red[slot + 2u * lid + 1u] = dp;
        workgroupBarrier();
        if (live) {
          s = vec4<f32>(0.0);
          dp = vec4<f32>(0.0);
          for (var x = 0u; x < DP; x++) {
            s += red[slot + 2u * (r * DP + x)];
            dp += red[slot + 2u * (r * DP + x) + 1u];
          }
        }
      }
      if (live) {
        let jj = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
        let p = select(exp2(s - vec4<f32>(lse2)), vec4<f32>(0.0), jj > vec4<u32>(t));
        let ds = p * (dp - vec4<f32>(dl));
        dq[0] = axpy4a(dq[0], ds, at);
        if (DS4 > 1u) { dq[1] = axpy4a(dq[1], ds, at + DP); }
        if (DS4 > 2u) { dq[2] = axpy4a(dq[2], ds, at + 2u * DP); }
        if (DS4 > 3u) { dq[3] = axpy4a(dq[3], ds, at + 3u * DP); }
        if (DS4 > 4u) { dq[4] = axpy4a(dq[4], ds, at + 4u * DP); }
        if (DS4 > 5u) { dq[5] = axpy4a(dq[5], ds, at + 5u * DP); }
        if (DS4 > 6u) { dq[6] = axpy4a(dq[6], ds, at + 6u * DP); }
        if (DS4 > 7u) { dq[7] = axpy4a(dq[7], ds, at + 7u * DP); }
      }
    }
  }
  if (valid) {
    dqkv[qa] = vec4<GT>(dq[0] * SCALE);
    if (DS4 > 1u) { dqkv[qa + DP] = vec4<GT>(dq[1] * SCALE); }
    if (DS4 > 2u) { dqkv[qa + 2u * DP] = vec4<GT>(dq[2] * SCALE); }
    if (DS4 > 3u) { dqkv[qa + 3u * DP] = vec4<GT>(dq[3] * SCALE); }
    if (DS4 > 4u) { dqkv[qa + 4u * DP] = vec4<GT>(dq[4] * SCALE); }
    if (DS4 > 5u) { dqkv[qa + 5u * DP] = vec4<GT>(dq[5] * SCALE); }
    if (DS4 > 6u) { dqkv[qa + 6u * DP] = vec4<GT>(dq[6] * SCALE); }
    if (DS4 > 7u) { dqkv[qa + 7u * DP] = vec4<GT>(dq[7] * SCALE); }
  }
}
