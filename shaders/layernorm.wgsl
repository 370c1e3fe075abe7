// LayerNorm over the last dim, as torch.nn.LayerNorm(C, bias=...) with biased variance:
//   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
//   out = (x - mean) * rstd * weight + bias            (bias omitted without the flag BIAS)
//
// Shapes: N rows (= B*T), C channels; inp, out, dout, dinp [N, C] row-major; weight, bias, dweight,
// dbias [C]; mean, rstd [N] (saved by the forward for the backward); scratch [2, R, C] with
// R = ceil(N / ROWS) row chunks (plane 0: dweight partials, plane 1: dbias partials).
// Gradients: parameter gradients ACCUMULATE (dweight += ..., dbias += ...); the activation gradient dinp
// is WRITTEN (=), or accumulated (+=) when the override ACCUMULATE is true (the model adds the LN input
// gradient into the residual-stream gradient).
// Backward, with xhat = (x - mean) * rstd, g = weight * dout, and row means <.> over C:
//   dinp = rstd * (g - <g> - xhat * <g * xhat>),  dweight += sum_n dout * xhat,  dbias += sum_n dout
// The column sums over N are deterministic (no float atomics): layernorm_backward gives each workgroup a
// chunk of ROWS rows and writes that chunk's column partial sums to scratch; layernorm_backward_finish
// adds the R partials of each column in a fixed order into dweight / dbias.
// Row reductions are done by teams of TEAM threads (shared-memory trees, no subgroups needed).
// Grids: forward, one workgroup of WG threads per WG / TEAM rows (one team per row); backward, one
// workgroup per chunk of ROWS rows; finish, one workgroup of FC columns x FL lanes per FC columns.
// The cpu forms (layernorm_*_cpu, for llvmpipe, C a multiple of 4) take one row per invocation, or for the
// chunk partials 4 columns per invocation, in workgroups of RW = 8 and no workgroup memory, through vec4
// views of the buffers; the same finish follows.
// All grids are folded into (x, y): linear group id = wg.x + wg.y * nwg.x.
// Storage types: the forward's out may be f16 (alias OT, set by src/gpu/source.ts withTypes; stored
// rounded from the f32 result); everything else, mean and rstd included, stays f32.

struct Dims { N: u32, C: u32, eps: f32 }

alias OT = f32; // element type of out: f32 or f16

// Bindings, one number per variable across the file. Outputs first, then inputs, then dims. The
// backward reads the saved statistics as smean / srstd (read-only) so they may share a buffer with its
// other inputs; a read_write binding may not share a buffer with a read one in the same dispatch.
// Forward: out, mean, rstd, inp, weight, (bias with BIAS), dims.
// Backward: dinp, scratch, inp, weight, dout, smean, srstd, dims.
// Finish: dweight, (dbias with BIAS), partials (the scratch, read-only), dims.
// The cpu forms bind vec4 views of the same buffers instead (bindings 15-21, below), with mean, rstd, smean,
// srstd and dims as above.
@group(0) @binding(0) var<storage, read_write> out: array<OT>;       // [N, C]
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;     // [N]
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;     // [N]
@group(0) @binding(3) var<storage, read_write> dinp: array<f32>;     // [N, C]
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;  // [2, R, C]
@group(0) @binding(5) var<storage, read_write> dweight: array<f32>;  // [C]
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;    // [C]
@group(0) @binding(7) var<storage, read> inp: array<f32>;            // [N, C]
@group(0) @binding(8) var<storage, read> weight: array<f32>;         // [C]
@group(0) @binding(9) var<storage, read> bias: array<f32>;           // [C]
@group(0) @binding(10) var<storage, read> dout: array<f32>;          // [N, C]
@group(0) @binding(11) var<storage, read> smean: array<f32>;         // [N], the forward's mean
@group(0) @binding(12) var<storage, read> srstd: array<f32>;         // [N], the forward's rstd
@group(0) @binding(13) var<storage, read> partials: array<f32>;      // [2, R, C], the scratch
@group(0) @binding(14) var<uniform> dims: Dims;

override WG: u32 = 256;            // threads per workgroup; a multiple of TEAM
override TEAM: u32 = 32;           // threads that reduce one row together; a power of two
override ROWS: u32 = 16;           // rows per backward workgroup
override ACCUMULATE: bool = false; // backward: dinp += instead of dinp =
const FC: u32 = 32u;               // finish: columns per workgroup
const FL: u32 = 8u;                // finish: lanes splitting the R partials of one column

var<workgroup> red: array<vec2<f32>, WG>;
var<workgroup> row_a: array<f32, ROWS>;     // <g> per row of the chunk
var<workgroup> row_b: array<f32, ROWS>;     // <g * xhat> per row of the chunk
var<workgroup> row_mean: array<f32, ROWS>;
var<workgroup> row_rstd: array<f32, ROWS>;
var<workgroup> fin: array<vec2<f32>, 256>;  // FC * FL

fn group_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + wg.y * nwg.x;
}

// The bias term of the forward and of the finish (the dispatcher keeps the `// #if BIAS` branch when the
// layer has a bias), so an entry point without bias neither binds nor touches bias and dbias.
// #if BIAS
fn plus_bias(v: f32, c: u32) -> f32 { return v + bias[c]; }
fn add_dbias(c: u32, v: f32) { dbias[c] += v; }
// #else
fn plus_bias(v: f32, c: u32) -> f32 { return v; }
fn add_dbias(c: u32, v: f32) {}
// #endif

// The workgroup is WG / TEAM teams of TEAM threads; each team sums its v by a fixed tree (deterministic)
// and all its threads get the team's total. Must be called in uniform control flow (every thread).
fn team_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
  let lane = lid % TEAM;
  red[lid] = v;
  workgroupBarrier();
  for (var s = TEAM / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[lid - lane];
  workgroupBarrier(); // red is reused by the next call
  return r;
}

// Two-pass mean and rstd of `row` by one team (the second pass subtracts the mean first, as torch, so a
// large common offset does not cancel); lane 0 saves them. Rows >= N compute nothing but still take
// part in the barriers. Returns (mean, rstd).
fn row_stats(row: u32, lid: u32) -> vec2<f32> {
  let C = dims.C;
  let lane = lid % TEAM;
  let n = select(0u, C, row < dims.N);
  let base = row * C;
  var s = 0.0;
  for (var c = lane; c < n; c += TEAM) { s += inp[base + c]; }
  let m = team_sum(vec2<f32>(s, 0.0), lid).x / f32(C);
  var q = 0.0;
  for (var c = lane; c < n; c += TEAM) {
    let d = inp[base + c] - m;
    q += d * d;
  }
  let v = team_sum(vec2<f32>(q, 0.0), lid).x / f32(C);
  let r = inverseSqrt(v + dims.eps);
  if (lane == 0u && row < dims.N) {
    mean[row] = m;
    rstd[row] = r;
  }
  return vec2<f32>(m, r);
}

// One team of TEAM threads per row, WG / TEAM rows per workgroup.
@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let row = group_id(wg, nwg) * (WG / TEAM) + lid / TEAM;
  let st = row_stats(row, lid);
  if (row >= dims.N) { return; }
  let base = row * dims.C;
  for (var c = lid % TEAM; c < dims.C; c += TEAM) {
    out[base + c] = OT(plus_bias((inp[base + c] - st.x) * st.y * weight[c], c));
  }
}

// dinp for a chunk of ROWS rows, and the chunk's column partial sums of dout * xhat and dout.
@compute @workgroup_size(WG)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let N = dims.N;
  let C = dims.C;
  let R = (N + ROWS - 1u) / ROWS;
  let chunk = group_id(wg, nwg);
  if (chunk >= R) { return; }
  let r0 = chunk * ROWS;
  let nr = min(ROWS, N - r0);
  let lane = lid % TEAM;
  // Pass 1: the row means <g> and <g * xhat>, each team reducing one row at a time.
  for (var rt = 0u; rt < nr; rt += WG / TEAM) {
    let r = rt + lid / TEAM;
    let row = r0 + min(r, nr - 1u); // teams past the chunk's end recompute its last row, unsaved
    let m = smean[row];
    let s = srstd[row];
    let base = row * C;
    var acc = vec2<f32>(0.0, 0.0);
    for (var c = lane; c < C; c += TEAM) {
      let g = weight[c] * dout[base + c];
      acc += vec2<f32>(g, g * (inp[base + c] - m) * s);
    }
    let t = team_sum(acc, lid);
    if (lane == 0u && r < nr) {
      row_a[r] = t.x / f32(C);
      row_b[r] = t.y / f32(C);
      row_mean[r] = m;
      row_rstd[r] = s;
    }
  }
  workgroupBarrier();
  // Pass 2: each thread owns columns c = lid + k * WG and walks the chunk's rows (coalesced per row).
  for (var c = lid; c < C; c += WG) {
    let w = weight[c];
    var dw = 0.0;
    var db = 0.0;
    for (var r = 0u; r < nr; r++) {
      let i = (r0 + r) * C + c;
      let d = dout[i];
      let s = row_rstd[r];
      let xhat = (inp[i] - row_mean[r]) * s;
      dw += d * xhat;
      db += d;
      let v = s * (w * d - row_a[r] - xhat * row_b[r]);
      if (ACCUMULATE) {
        dinp[i] += v;
      } else {
        dinp[i] = v;
      }
    }
    scratch[chunk * C + c] = dw;
    scratch[(R + chunk) * C + c] = db;
  }
}

// Column totals of the R chunk partials: lane y of column x sums chunks y, y + FL, ... then the FL lane
// sums are added in lane order. Result valid in lane 0. Must be called in uniform control flow.
fn column_totals(c: u32, lid: vec3<u32>) -> vec2<f32> {
  let C = dims.C;
  let R = (dims.N + ROWS - 1u) / ROWS;
  var acc = vec2<f32>(0.0, 0.0);
  if (c < C) {
    for (var k = lid.y; k < R; k += FL) {
      acc += vec2<f32>(partials[k * C + c], partials[(R + k) * C + c]);
    }
  }
  fin[lid.y * FC + lid.x] = acc;
  workgroupBarrier();
  var s = fin[lid.x];
  for (var j = 1u; j < FL; j++) { s += fin[j * FC + lid.x]; }
  return s;
}

@compute @workgroup_size(FC, FL)
fn layernorm_backward_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = group_id(wg, nwg) * FC + lid.x;
  let s = column_totals(c, lid);
  if (lid.y == 0u && c < dims.C) {
    dweight[c] += s.x;
    add_dbias(c, s.y);
  }
}

// ---- CPU-adapter forms (llvmpipe; src/kernels/layernorm.ts picks them, for C a multiple of 4): one row per
// invocation, RW invocations per workgroup, no workgroup memory or barriers (each tree level of team_sum is
// a barrier, which llvmpipe runs as a switch through every SIMD group of the workgroup), and every row read
// as vec4s through the views below (a vec4 load costs llvmpipe about what a scalar one does). C4 = C / 4. ----
const RW: u32 = 8u;

@group(0) @binding(15) var<storage, read_write> out4: array<vec4<OT>>;      // [N, C4]
@group(0) @binding(16) var<storage, read_write> dinp4: array<vec4<f32>>;    // [N, C4]
@group(0) @binding(17) var<storage, read_write> scratch4: array<vec4<f32>>; // [2, R, C4]
@group(0) @binding(18) var<storage, read> inp4: array<vec4<f32>>;           // [N, C4]
@group(0) @binding(19) var<storage, read> weight4: array<vec4<f32>>;        // [C4]
@group(0) @binding(20) var<storage, read> bias4: array<vec4<f32>>;          // [C4]
@group(0) @binding(21) var<storage, read> dout4: array<vec4<f32>>;          // [N, C4]

// #if BIAS
fn plus_bias4(v: vec4<f32>, c4: u32) -> vec4<f32> { return v + bias4[c4]; }
// #else
fn plus_bias4(v: vec4<f32>, c4: u32) -> vec4<f32> { return v; }
// #endif

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(RW)
fn layernorm_forward_cpu(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let row = group_id(wg, nwg) * RW + lid;
  let C4 = dims.C / 4u;
  let base = min(row, dims.N - 1u) * C4; // rows past N compute on the last row and store nothing
  var s = vec4<f32>(0.0);
  for (var c = 0u; c < C4; c++) { s += inp4[base + c]; }
  let m = hsum(s) / f32(dims.C);
  var q = vec4<f32>(0.0);
  for (var c = 0u; c < C4; c++) {
    let d = inp4[base + c] - m;
    q += d * d;
  }
  let r = inverseSqrt(hsum(q) / f32(dims.C) + dims.eps);
  if (row >= dims.N) { return; }
  mean[row] = m;
  rstd[row] = r;
  for (var c = 0u; c < C4; c++) {
    out4[base + c] = vec4<OT>(plus_bias4((inp4[base + c] - m) * r * weight4[c], c));
  }
}

// dinp of one row per invocation: pass 1 the row means <g> and <g * xhat>, pass 2 dinp.
@compute @workgroup_size(RW)
fn layernorm_backward_cpu(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let row = group_id(wg, nwg) * RW + lid;
  let C4 = dims.C / 4u;
  let rl = min(row, dims.N - 1u); // rows past N compute on the last row and store nothing
  let base = rl * C4;
  let m = smean[rl];
  let s = srstd[rl];
  var ga = vec4<f32>(0.0);
  var gb = vec4<f32>(0.0);
  for (var c = 0u; c < C4; c++) {
    let g = weight4[c] * dout4[base + c];
    ga += g;
    gb += g * (inp4[base + c] - m) * s;
  }
  let a = hsum(ga) / f32(dims.C);
  let b = hsum(gb) / f32(dims.C);
  if (row >= dims.N) { return; }
  for (var c = 0u; c < C4; c++) {
    let i = base + c;
    let v = s * (weight4[c] * dout4[i] - a - (inp4[i] - m) * s * b);
    if (ACCUMULATE) {
      dinp4[i] += v;
    } else {
      dinp4[i] = v;
    }
  }
}

// The chunk partials of layernorm_backward (dout * xhat and dout summed over a chunk of ROWS rows) for RW
// column quads per workgroup, one per invocation: workgroup g = chunk * ceil(C4 / RW) + quad group.
@compute @workgroup_size(RW)
fn layernorm_backward_partials_cpu(@builtin(workgroup_id) wg: vec3<u32>,
                                   @builtin(num_workgroups) nwg: vec3<u32>,
                                   @builtin(local_invocation_index) lid: u32) {
  let N = dims.N;
  let C4 = dims.C / 4u;
  let R = (N + ROWS - 1u) / ROWS;
  let groups = (C4 + RW - 1u) / RW;
  let g = group_id(wg, nwg);
  let chunk = g / groups;
  if (chunk >= R) { return; }
  let c = (g % groups) * RW + lid;
  let cl = min(c, C4 - 1u);
  let r0 = chunk * ROWS;
  let r1 = min(r0 + ROWS, N);
  var dw = vec4<f32>(0.0);
  var db = vec4<f32>(0.0);
  for (var row = r0; row < r1; row++) {
    let d = dout4[row * C4 + cl];
    dw += d * (inp4[row * C4 + cl] - smean[row]) * srstd[row];
    db += d;
  }
  if (c < C4) {
    scratch4[chunk * C4 + c] = dw;
    scratch4[(R + chunk) * C4 + c] = db;
  }
}
