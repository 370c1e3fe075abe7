// Causal multi-head self-attention shaped for a CPU adapter (Mesa's llvmpipe): forward (FWD), dk/dv
// (DKDV) and dq (DQ), the same math, bindings and results as attention_forward.wgsl, attention_dkdv.wgsl
// and attention_dq.wgsl (read those for the formulas), without workgroup memory or barriers.
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4, HS4 = HS / 4.
//   qkv [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   out, dout [B, T, C]; lse, delta [B, NH, T]; dqkv [B, T, 3C] (written, =, like the blocked kernels)
//   ds [B, NH, T, TQ4]: dS of (key j, query t) at row bh * T + j, vec4 t / 4, component t % 4 (DS only)
//
// Why a second form: llvmpipe runs a workgroup's invocations as the 8 SIMD lanes of one CPU thread, does
// arithmetic on all lanes at once, and loads from storage or workgroup memory one lane at a time. Staging
// tiles in workgroup memory only adds loads and barrier switches. Here each invocation owns RQ rows (queries,
// or keys for dk/dv), keeps their operands and accumulators in private arrays (indexed by constants once
// the compiler unrolls the loops) and streams the other side's rows straight from storage, each loaded row
// serving all RQ: per loaded row of HS values, 2 RQ HS multiply-adds.
//
// Grid: (ceil(T / (8 RQ)), NH, B) workgroups of 8 invocations: workgroup x owns rows r0 .. r0 + 8 RQ - 1 of
// head (b = wg.z, h = wg.y), invocation `lane` the rows r0 + lane + 8 i (i < RQ), so that every invocation
// sees about as many unmasked pairs; the forward and dq take the heaviest (last) blocks first, dk/dv the
// lightest (last) keys last. Rows past T compute on row T - 1 and store nothing.
// Scores are in log2 units (one operand pre-multiplied by scale * log2(e)) so exp2 gives the softmax.
// Every summation order is fixed: results are bitwise reproducible.

const HS: u32 = 64u; // head size, a multiple of 4, at most 128: the dispatcher rewrites this line
const HS4: u32 = HS / 4u;
// Rows per invocation; measured: 4 spills from HS 32 and takes seconds to compile, 1 loads each row twice.
const RQ: u32 = 2u;
const RW: u32 = 8u; // invocations per workgroup
const BLK: u32 = RQ * HS4; // vec4s of an invocation's rows of one operand: row i at [i * HS4, (i + 1) * HS4)
const SCALE: f32 = 1.0 / sqrt(f32(HS));
const LOG2E: f32 = 1.4426950408889634;
const SCALE_LOG2E: f32 = SCALE * LOG2E;
const LN2: f32 = 0.6931471805599453;
const MASKED: f32 = -1.0e30; // stands in for -inf: exp2(MASKED - m) == 0 for any finite m

// Storage element types, f32 or f16 (withTypes in src/gpu/source.ts rewrites these lines): QT qkv, OT out,
// DT dout, GT dqkv and ds. Loads convert to f32 and stores round to the type; arithmetic stays f32.
alias QT = f32;
alias OT = f32;
alias DT = f32;
alias GT = f32;

// drop_*: the dropout's keep threshold on (hash >> 8), its scale 1 / (1 - p) and hash stream (DROP only).
struct Dims { T: u32, C4: u32, NH: u32, drop_threshold: u32, drop_scale: f32, drop_stream: u32 }

// Bindings as in the blocked kernels: FWD the forward's; BWD the backward's common ones, with ds_out for
// DKDV and ds_in for DQ_DS.
// #if FWD
@group(0) @binding(0) var<storage, read_write> out: array<vec4<OT>>; // [B, T, C/4]
@group(0) @binding(1) var<storage, read_write> lse: array<f32>; // [B, NH, T]
@group(0) @binding(2) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(3) var<uniform> dims: Dims;
@group(0) @binding(4) var<storage, read> rng: array<u32>; // DROP only: the step's dropout seed in rng[0]
// #endif
// #if BWD
@group(0) @binding(0) var<storage, read_write> dqkv: array<vec4<GT>>; // [B, T, 3C/4]
@group(0) @binding(1) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(2) var<storage, read> dout: array<vec4<DT>>; // [B, T, C/4]
@group(0) @binding(3) var<storage, read> fwd_lse: array<f32>; // [B, NH, T], the forward's lse
@group(0) @binding(4) var<storage, read> delta_in: array<f32>; // [B, NH, T], delta
@group(0) @binding(5) var<uniform> dims: Dims;
@group(0) @binding(7) var<storage, read> rng: array<u32>; // DROP only: the step's dropout seed in rng[0]
// #endif

// dS of (key j, query t) of head bh into ds_out (DS: dk/dv's stored-dS form), else nowhere.
// #if DS
fn store_ds(bh: u32, j: u32, t: u32, v: f32) {
  ds_out[(bh * dims.T + j) * ((dims.T + 3u) / 4u) + t / 4u][t % 4u] = GT(v);
}
// #else
fn store_ds(bh: u32, j: u32, t: u32, v: f32) {}
// #endif

// vec4 index of head h's q columns in row t of batch b (k: + C4, v: + 2 C4).
fn qkv_at(b: u32, t: u32, h: u32) -> u32 {
  return (b * dims.T + t) * 3u * dims.C4 + h * HS4;
}

// The rows of invocation `lane` of the block at r0: row i = r0 + lane + 8 i, and that row clamped to T - 1.
struct Rows { t: array<u32, RQ>, tl: array<u32, RQ> }

fn rows_of(r0: u32, lane: u32) -> Rows {
  var r: Rows;
  for (var i = 0u; i < RQ; i++) {
    r.t[i] = r0 + lane + RW * i;
    r.tl[i] = min(r.t[i], dims.T - 1u);
  }
  return r;
}

// Per-row partial sums, zeroed (a `var` without initializer inside a loop keeps the last iteration's
// value in the SPIR-V Deno's WebGPU emits).
fn zeros() -> array<vec4<f32>, RQ> {
  var z: array<vec4<f32>, RQ>;
  for (var i = 0u; i < RQ; i++) { z[i] = vec4<f32>(0.0); }
  return z;
}

// First row of a query block (forward, dq): the heaviest (last) blocks first.
fn query_block(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return (nwg.x - 1u - wg.x) * RW * RQ;
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// #if FWD
// Query rows against keys 0 .. min(r0 + 8 RQ - 1, T - 1), online softmax (running max m, sum l per row).
@compute @workgroup_size(RW)
fn attention_forward_cpu(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let T = dims.T;
  let h = wg.y;
  let b = wg.z;
  let r0 = query_block(wg, nwg);
  let rows = rows_of(r0, lane);
  let bh = b * dims.NH + h;
  let dkey = drop_key(bh); // DROP only (0 without)
  var q: array<vec4<f32>, BLK>; // times scale * log2(e)
  var o: array<vec4<f32>, BLK>;
  var m: array<f32, RQ>;
  var l: array<f32, RQ>;
  for (var i = 0u; i < RQ; i++) {
    let qa = qkv_at(b, rows.tl[i], h);
    for (var d = 0u; d < HS4; d++) {
      q[i * HS4 + d] = vec4<f32>(qkv[qa + d]) * SCALE_LOG2E;
      o[i * HS4 + d] = vec4<f32>(0.0);
    }
    m[i] = MASKED;
    l[i] = 0.0;
  }
  let kend = min(r0 + RW * RQ, T);
  for (var j = 0u; j < kend; j++) {
    let ka = qkv_at(b, j, h) + dims.C4;
    var s = zeros();
    for (var d = 0u; d < HS4; d++) {
      let kd = vec4<f32>(qkv[ka + d]);
      for (var i = 0u; i < RQ; i++) { s[i] += q[i * HS4 + d] * kd; }
    }
    var alpha: array<f32, RQ>;
    var pf: array<f32, RQ>;
    for (var i = 0u; i < RQ; i++) {
      let si = select(hsum(s[i]), MASKED, j > rows.tl[i]);
      let mn = max(m[i], si);
      alpha[i] = exp2(m[i] - mn);
      let p = exp2(si - mn);
      l[i] = l[i] * alpha[i] + p;
      m[i] = mn;
      pf[i] = p * drop1(dkey, rows.tl[i] * T + j); // dropout factor: 1 without DROP
    }
    let va = ka + dims.C4;
    for (var d = 0u; d < HS4; d++) {
      let vd = vec4<f32>(qkv[va + d]);
      for (var i = 0u; i < RQ; i++) { o[i * HS4 + d] = o[i * HS4 + d] * alpha[i] + pf[i] * vd; }
    }
  }
  for (var i = 0u; i < RQ; i++) {
    let t = rows.t[i];
    if (t < T) {
      lse[bh * T + t] = (m[i] + log2(l[i])) * LN2;
      let oa = (b * T + t) * dims.C4 + h * HS4;
      let il = 1.0 / l[i];
      for (var d = 0u; d < HS4; d++) { out[oa + d] = vec4<OT>(o[i * HS4 + d] * il); }
    }
  }
}
// #endif

// #if DKDV
@group(0) @binding(6) var<storage, read_write> ds_out: array<vec4<GT>>; // [B, NH, T, TQ4], DS only

// Key rows j against queries r0 .. T - 1: dv_j = sum_t p_tj F_tj dout_t, dk_j = scale sum_t ds_tj q_t with
// ds_tj = p_tj (dout_t . v_j F_tj - delta_t), F the dropout factor (1 without DROP).
@compute @workgroup_size(RW)
fn attention_dkdv_cpu(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let T = dims.T;
  let C4 = dims.C4;
  let h = wg.y;
  let b = wg.z;
  let r0 = wg.x * RW * RQ; // low keys (most queries) first
  let keys = rows_of(r0, lane);
  let bh = b * dims.NH + h;
  let dkey = drop_key(bh);
  var k: array<vec4<f32>, BLK>; // times scale * log2(e)
  var v: array<vec4<f32>, BLK>;
  var dk: array<vec4<f32>, BLK>;
  var dv: array<vec4<f32>, BLK>;
  for (var i = 0u; i < RQ; i++) {
    let ka = qkv_at(b, keys.tl[i], h) + C4;
    for (var d = 0u; d < HS4; d++) {
      k[i * HS4 + d] = vec4<f32>(qkv[ka + d]) * SCALE_LOG2E;
      v[i * HS4 + d] = vec4<f32>(qkv[ka + C4 + d]);
      dk[i * HS4 + d] = vec4<f32>(0.0);
      dv[i * HS4 + d] = vec4<f32>(0.0);
    }
  }
  for (var t = r0; t < T; t++) {
    let qa = qkv_at(b, t, h);
    let oa = (b * T + t) * C4 + h * HS4;
    var qt: array<vec4<f32>, HS4>;
    var gt: array<vec4<f32>, HS4>; // dout_t
    var s = zeros();
    var dp = zeros();
    for (var d = 0u; d < HS4; d++) {
      qt[d] = vec4<f32>(qkv[qa + d]);
      gt[d] = vec4<f32>(dout[oa + d]);
      for (var i = 0u; i < RQ; i++) {
        s[i] += k[i * HS4 + d] * qt[d];
        dp[i] += v[i * HS4 + d] * gt[d];
      }
    }
    let lse2 = fwd_lse[bh * T + t] * LOG2E;
    let delta = delta_in[bh * T + t];
    var pf: array<f32, RQ>;
    var ds: array<f32, RQ>;
    for (var i = 0u; i < RQ; i++) {
      let j = keys.tl[i];
      let p = select(exp2(hsum(s[i]) - lse2), 0.0, t < j);
      let f = drop1(dkey, t * T + j);
      ds[i] = p * (hsum(dp[i]) * f - delta);
      pf[i] = p * f;
      if (keys.t[i] < T) { store_ds(bh, j, t, ds[i]); }
    }
    for (var d = 0u; d < HS4; d++) {
      for (var i = 0u; i < RQ; i++) {
        dv[i * HS4 + d] += pf[i] * gt[d];
        dk[i * HS4 + d] += ds[i] * qt[d];
      }
    }
  }
  for (var i = 0u; i < RQ; i++) {
    if (keys.t[i] < T) {
      let ka = qkv_at(b, keys.t[i], h) + C4;
      for (var d = 0u; d < HS4; d++) {
        dqkv[ka + d] = vec4<GT>(dk[i * HS4 + d] * SCALE);
        dqkv[ka + C4 + d] = vec4<GT>(dv[i * HS4 + d]);
      }
    }
  }
}
// #endif

// #if DQ
// Query rows against keys 0 .. min(r0 + 8 RQ - 1, T - 1): dq_t = scale sum_j ds_tj k_j, ds recomputed as
// in attention_dkdv_cpu.
@compute @workgroup_size(RW)
fn attention_dq_cpu(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let T = dims.T;
  let C4 = dims.C4;
  let h = wg.y;
  let b = wg.z;
  let r0 = query_block(wg, nwg);
  let rows = rows_of(r0, lane);
  let bh = b * dims.NH + h;
  let dkey = drop_key(bh);
  var q: array<vec4<f32>, BLK>; // times scale * log2(e)
  var g: array<vec4<f32>, BLK>; // dout of the rows
  var dq: array<vec4<f32>, BLK>;
  var lse2: array<f32, RQ>;
  var delta: array<f32, RQ>;
  for (var i = 0u; i < RQ; i++) {
    let t = rows.tl[i];
    let qa = qkv_at(b, t, h);
    let oa = (b * T + t) * C4 + h * HS4;
    for (var d = 0u; d < HS4; d++) {
      q[i * HS4 + d] = vec4<f32>(qkv[qa + d]) * SCALE_LOG2E;
      g[i * HS4 + d] = vec4<f32>(dout[oa + d]);
      dq[i * HS4 + d] = vec4<f32>(0.0);
    }
    lse2[i] = fwd_lse[bh * T + t] * LOG2E;
    delta[i] = delta_in[bh * T + t];
  }
  let kend = min(r0 + RW * RQ, T);
  for (var j = 0u; j < kend; j++) {
    let ka = qkv_at(b, j, h) + C4;
    var kj: array<vec4<f32>, HS4>;
    var s = zeros();
    var dp = zeros();
    for (var d = 0u; d < HS4; d++) {
      kj[d] = vec4<f32>(qkv[ka + d]);
      let vd = vec4<f32>(qkv[ka + C4 + d]);
      for (var i = 0u; i < RQ; i++) {
        s[i] += q[i * HS4 + d] * kj[d];
        dp[i] += g[i * HS4 + d] * vd;
      }
    }
    var ds: array<f32, RQ>;
    for (var i = 0u; i < RQ; i++) {
      let t = rows.tl[i];
      let p = select(exp2(hsum(s[i]) - lse2[i]), 0.0, j > t);
      ds[i] = p * (hsum(dp[i]) * drop1(dkey, t * T + j) - delta[i]);
    }
    for (var d = 0u; d < HS4; d++) {
      for (var i = 0u; i < RQ; i++) { dq[i * HS4 + d] += ds[i] * kj[d]; }
    }
  }
  store_dq(&dq, b, h, rows);
}
// #endif

// #if DQ_DS
@group(0) @binding(6) var<storage, read> ds_in: array<vec4<GT>>; // [B, NH, T, TQ4]

// attention_dq_cpu with dS read from ds_in (written by attention_dkdv_cpu's DS form).
@compute @workgroup_size(RW)
fn attention_dq_ds_cpu(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let T = dims.T;
  let h = wg.y;
  let b = wg.z;
  let r0 = query_block(wg, nwg);
  let rows = rows_of(r0, lane);
  let tq4 = (T + 3u) / 4u;
  let ds0 = (b * dims.NH + h) * T * tq4; // dS of (key 0, query t): vec4 ds0 + t / 4, component t % 4
  var dq: array<vec4<f32>, BLK>;
  for (var d = 0u; d < BLK; d++) { dq[d] = vec4<f32>(0.0); }
  let kend = min(r0 + RW * RQ, T);
  for (var j = 0u; j < kend; j++) {
    var ds: array<f32, RQ>;
    for (var i = 0u; i < RQ; i++) {
      let t = rows.tl[i];
      ds[i] = select(f32(ds_in[ds0 + j * tq4 + t / 4u][t % 4u]), 0.0, j > t);
    }
    let ka = qkv_at(b, j, h) + dims.C4;
    for (var d = 0u; d < HS4; d++) {
      let kd = vec4<f32>(qkv[ka + d]);
      for (var i = 0u; i < RQ; i++) { dq[i * HS4 + d] += ds[i] * kd; }
    }
  }
  store_dq(&dq, b, h, rows);
}
// #endif

// #if BWD
// Writes dq (times scale) of the rows below T into dqkv's q columns.
fn store_dq(dq: ptr<function, array<vec4<f32>, BLK>>, b: u32, h: u32, rows: Rows) {
  for (var i = 0u; i < RQ; i++) {
    if (rows.t[i] < dims.T) {
      let qa = qkv_at(b, rows.t[i], h);
      for (var d = 0u; d < HS4; d++) { dqkv[qa + d] = vec4<GT>((*dq)[i * HS4 + d] * SCALE); }
    }
  }
}
// #endif
