// Causal multi-head self-attention backward, dk and dv, register-blocked (FlashAttention-2 key-block form).
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4, HS4 = HS / 4.
//   qkv   [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   dout  [B, T, C]   gradient of the forward's out (heads merged the same way)
//   lse   [B, NH, T]  the forward's natural logsumexp of the scaled scores of query row t (fwd_lse)
//   delta [B, NH, T]  delta_t = dout_t . out_t (attention_backward_delta in shaders/attention.wgsl; delta_in)
//   dqkv  [B, T, 3C]  gradient of qkv, same layout: this kernel writes its k and v columns [C, 3C) only
// Scores s_tj = scale * q_t . k_j, scale = 1 / sqrt(HS), keys j <= t only (causal). With p_tj = exp(s_tj -
// lse_t), dp_tj = dout_t . v_j, ds_tj = p_tj (dp_tj - delta_t):
//   dk_j = scale * sum_t ds_tj q_t,  dv_j = sum_t p_tj dout_t  (sums over queries t >= j, t < T).
// Gradients: dqkv is an activation gradient, WRITTEN (=): every k and v element of rows t < T, masked
// positions included (a key past every query gets exact zeros); the q columns are left untouched.
//
// A workgroup of 64 threads (an 8 x 8 grid, tx = lid % 8, ty = lid / 8) owns BK = 32 keys j0 .. j0+31 of one
// (batch, head), low key blocks first (they see the most queries), and streams query tiles of BQ = 32 * RV
// queries from its first key j0 to T. Per tile, four phases, each a small matmul or a pass over registers:
//   1. S^T = K Q^T and dP^T = V dO^T (BK x BQ each, reduced over HS in chunks of BD dims): thread (tx, ty)
//      holds keys 4ty + i (i < 4) by query vec4s 4tx + 32h (h < RV): s[2i + h], dp[2i + h], 8 x 4 RV values
//      each. K (times scale * log2(e)), V, Q and dO chunks are staged transposed (d-major), so each step
//      reads one vec4 of each key operand and RV of each query operand.
//   2. In registers: p = exp2(s - lse * log2(e)) (0 where query < key or query >= T), ds = p (dp - delta);
//      the tile's lse * log2(e) and delta are staged in workgroup memory as vec4s along queries.
//   3. P and dS go to workgroup memory transposed, as [query][key] with vec4s along the block's keys (a 4 x 4
//      register transpose: the thread's 4 keys become one vec4 per query).
//   4. dV += P^T dO and dK += dS^T Q (BK x HS, reduced over the tile's queries in chunks of QC staged Q and
//      dO rows): thread (tx, ty) holds keys 4ty + i by dim vec4s dl + 8c (c < NC; dl = tx but for small
//      heads, see KS): dk[NC i + c], dv[NC i + c], up to 16 vec4s each.
// With the DS flag (the stored-dS path, chosen by the dispatcher when the buffer fits) phase 3 also writes
// the tile's dS to global memory, transposed as ds[b, h, key j, query t] (vec4s along queries, rows of
// TQ4 = ceil(T / 4) vec4s; stored as GT, dqkv's type: f16 in mixed precision, as FlashAttention-2 feeds dS
// to its dQ product in half precision), every entry with a query vec4 at or past the key block's first key: the dq
// kernel then reads dS instead of recomputing S and dP (5 products of T^2 HS in the backward instead of 7).
// With DROP, the forward's dropout on the probabilities (drop4, attention_dropout.wgsl): F = mask / (1 -
// p_drop) multiplies dP before ds = p (dP F - delta), and P F (what the forward multiplied V by) feeds dV.
// Register arrays are indexed by constants only (each statement written out, guarded by `if (RV > 1u)` and
// the like, which the compiler folds): dynamically indexed private arrays can land in slow local memory.
// Scores are in log2 units (k pre-multiplied by scale * log2(e)) so exp2 gives the probabilities.
// No atomics and every summation order is fixed: results are bitwise reproducible.

// Specialised by the dispatcher (src/kernels/attention.ts, plan from attention_plan.ts), which rewrites
// these lines: private and workgroup arrays need const sizes.
const HS: u32 = 64u; // head size, a multiple of 4, at most 128
const RV: u32 = 2u; // query vec4s per thread in phases 1-3: BQ = 32 * RV queries per tile
const BD: u32 = 16u; // head dims per staged chunk in phase 1 (16, 8 or 4, divides HS)
const QC: u32 = 16u; // queries per staged Q/dO row chunk in phase 4 (divides BQ)
const STAGE: u32 = 768u; // vec4s of `stage`: max(BD * (2 BK + 2 BQ) / 4, 2 QC HS4)
const KS: u32 = 1u; // phase 4 query split: 8 / DL, more than 1 only for HS <= 16 (see DL)

const HS4: u32 = HS / 4u;
const BK: u32 = 32u; // keys per workgroup
const BQ: u32 = 32u * RV;
const NC: u32 = (HS4 + 7u) / 8u; // dim vec4s per thread in phase 4: dl + 8c, valid while < HS4
// Phase 4 lanes: tx = kp * DL + dl. With HS4 >= 8, DL = 8 and each thread takes every query of the chunk
// for dims dl + 8c. A small head (HS4 <= 4) would leave lanes dl >= HS4 idle, so the lanes split the
// queries instead: lane kp takes queries q = kp (mod KS), and the KS partial sums are added at the end.
const DL: u32 = 8u / KS;
const SCALE: f32 = 1.0 / sqrt(f32(HS));
const LOG2E: f32 = 1.4426950408889634;
const SCALE_LOG2E: f32 = SCALE * LOG2E;
// Phase 1 layout of `stage`: kT[d][key], vT[d][key], qT[d][query], oT[d][query], vec4s along keys / queries.
const VT0: u32 = BD * (BK / 4u);
const QT0: u32 = 2u * BD * (BK / 4u);
const OT0: u32 = QT0 + BD * (BQ / 4u);
const DS0: u32 = BQ * (BK / 4u); // offset of dS in `pds`

// Storage element types, f32 or f16 (withTypes in src/gpu/source.ts rewrites these lines): QT qkv, DT dout,
// GT dqkv. Loads convert to f32 and stores round to the type; workgroup tiles and arithmetic stay f32.
alias QT = f32;
alias DT = f32;
alias GT = f32;

// drop_*: the dropout's keep threshold on (hash >> 8), its scale 1 / (1 - p) and hash stream (DROP only).
struct Dims { T: u32, C4: u32, NH: u32, drop_threshold: u32, drop_scale: f32, drop_stream: u32 }

@group(0) @binding(0) var<storage, read_write> dqkv: array<vec4<GT>>; // [B, T, 3C/4]
@group(0) @binding(1) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(2) var<storage, read> dout: array<vec4<DT>>; // [B, T, C/4]
@group(0) @binding(3) var<storage, read> fwd_lse: array<f32>; // [B, NH, T], the forward's lse
@group(0) @binding(4) var<storage, read> delta_in: array<f32>; // [B, NH, T], delta
@group(0) @binding(5) var<uniform> dims: Dims;
@group(0) @binding(6) var<storage, read_write> ds_out: array<vec4<GT>>; // [B, NH, T, TQ4] with DS only
@group(0) @binding(7) var<storage, read> rng: array<u32>; // DROP only: the step's dropout seed in rng[0]

// Phase 1: kT, vT, qT, oT (see VT0 ...). Phase 4: Q rows at stage[0, QC * HS4), dO rows after them, [query][dim].
var<workgroup> stage: array<vec4<f32>, STAGE>; // stage_t4 (attention_shared.wgsl, appended) writes it
var<workgroup> pds: array<vec4<f32>, 2u * BQ * (BK / 4u)>; // P then dS, each [BQ queries][BK keys]
var<workgroup> stats: array<vec4<f32>, BQ / 2u>; // lse * log2(e) of the tile's queries, then their delta

// Stages dims d0 .. d0+BD-1 of the block's keys (K times scale * log2(e), and V) and of the tile's queries
// (Q and dO), transposed; rows past T read as zeros. Each item is 4 consecutive rows at one dim vec4: 4 loads
// per operand, transposed in registers into 4 vec4 stores (one per dim, along the 4 rows). With d0 = 0 also
// stages the tile's lse and delta.
fn stage_chunk(b: u32, h: u32, j0: u32, i0: u32, d0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let bd4 = BD / 4u;
  let col = h * HS4 + d0 / 4u;
  for (var x = lid; x < (BK + BQ) / 4u * bd4; x += 64u) {
    let r4 = x / bd4; // row quad
    let dv = x % bd4;
    var u0 = vec4<f32>(0.0);
    var u1 = vec4<f32>(0.0);
    var u2 = vec4<f32>(0.0);
    var u3 = vec4<f32>(0.0);
    var w0 = vec4<f32>(0.0);
    var w1 = vec4<f32>(0.0);
    var w2 = vec4<f32>(0.0);
    var w3 = vec4<f32>(0.0);
    var at: u32;
    var wo: u32; // offset of the second operand's chunk from the first's
    var stride: u32; // vec4s per dim row of the chunk
    if (r4 < BK / 4u) { // 4 keys: K and V
      let t = j0 + 4u * r4;
      let a = (b * T + t) * 3u * C4 + C4 + col + dv;
      if (t < T) { u0 = vec4<f32>(qkv[a]) * SCALE_LOG2E; w0 = vec4<f32>(qkv[a + C4]); }
      if (t + 1u < T) { u1 = vec4<f32>(qkv[a + 3u * C4]) * SCALE_LOG2E; w1 = vec4<f32>(qkv[a + 4u * C4]); }
      if (t + 2u < T) { u2 = vec4<f32>(qkv[a + 6u * C4]) * SCALE_LOG2E; w2 = vec4<f32>(qkv[a + 7u * C4]); }
      if (t + 3u < T) { u3 = vec4<f32>(qkv[a + 9u * C4]) * SCALE_LOG2E; w3 = vec4<f32>(qkv[a + 10u * C4]); }
      at = 4u * dv * (BK / 4u) + r4;
      wo = VT0;
      stride = BK / 4u;
    } else { // 4 queries: Q and dO
      let r = r4 - BK / 4u;
      let t = i0 + 4u * r;
      let a = (b * T + t) * 3u * C4 + col + dv;
      let g = (b * T + t) * C4 + col + dv;
      if (t < T) { u0 = vec4<f32>(qkv[a]); w0 = vec4<f32>(dout[g]); }
      if (t + 1u < T) { u1 = vec4<f32>(qkv[a + 3u * C4]); w1 = vec4<f32>(dout[g + C4]); }
      if (t + 2u < T) { u2 = vec4<f32>(qkv[a + 6u * C4]); w2 = vec4<f32>(dout[g + 2u * C4]); }
      if (t + 3u < T) { u3 = vec4<f32>(qkv[a + 9u * C4]); w3 = vec4<f32>(dout[g + 3u * C4]); }
      at = QT0 + 4u * dv * (BQ / 4u) + r;
      wo = BD * (BQ / 4u);
      stride = BQ / 4u;
    }
    stage_t4(at, stride, u0, u1, u2, u3);
    stage_t4(wo + at, stride, w0, w1, w2, w3);
  }
  if (d0 == 0u && lid < BQ) {
    let t = i0 + lid;
    var ls = 0.0;
    var dl = 0.0;
    if (t < T) {
      let a = (b * dims.NH + h) * T + t;
      ls = fwd_lse[a] * LOG2E;
      dl = delta_in[a];
    }
    stats[lid / 4u][lid % 4u] = ls;
    stats[BQ / 4u + lid / 4u][lid % 4u] = dl;
  }
}

// Stages queries q0 .. q0+QC-1 of the head's Q and dO as rows (zeros past T).
fn stage_rows(b: u32, h: u32, q0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  for (var x = lid; x < QC * HS4; x += 64u) {
    let t = q0 + x / HS4;
    let c = h * HS4 + x % HS4;
    var u = vec4<f32>(0.0);
    var w = vec4<f32>(0.0);
    if (t < T) {
      u = vec4<f32>(qkv[(b * T + t) * 3u * C4 + c]);
      w = vec4<f32>(dout[(b * T + t) * C4 + c]);
    }
    stage[x] = u;
    stage[QC * HS4 + x] = w;
  }
}

// Stores, transposed, the values of 4 keys (a, b2, c, d: vec4s along 4 queries) as 4 vec4s along keys at
// pds[at], pds[at + 8], pds[at + 16], pds[at + 24] (consecutive queries).
fn put_t(at: u32, a: vec4<f32>, b2: vec4<f32>, c: vec4<f32>, d: vec4<f32>) {
  pds[at] = vec4<f32>(a.x, b2.x, c.x, d.x);
  pds[at + BK / 4u] = vec4<f32>(a.y, b2.y, c.y, d.y);
  pds[at + 2u * (BK / 4u)] = vec4<f32>(a.z, b2.z, c.z, d.z);
  pds[at + 3u * (BK / 4u)] = vec4<f32>(a.w, b2.w, c.w, d.w);
}

// DS only: stores dS of keys j .. j+3 (a, b2, c, d: vec4s along queries 4u .. 4u+3) at query vec4 u of head
// row bh = b * NH + h, for keys j < T and u < TQ4.
fn store_ds(bh: u32, j: u32, u: u32, a: vec4<f32>, b2: vec4<f32>, c: vec4<f32>, d: vec4<f32>) {
  let T = dims.T;
  let tq4 = (T + 3u) / 4u;
  if (u >= tq4) { return; }
  let at = (bh * T + j) * tq4 + u;
  if (j < T) { ds_out[at] = vec4<GT>(a); }
  if (j + 1u < T) { ds_out[at + tq4] = vec4<GT>(b2); }
  if (j + 2u < T) { ds_out[at + 2u * tq4] = vec4<GT>(c); }
  if (j + 3u < T) { ds_out[at + 3u * tq4] = vec4<GT>(d); }
}

@compute @workgroup_size(64)
fn attention_backward_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = dims.T;
  let h = wg.y;
  let b = wg.z;
  let j0 = wg.x * BK; // low key blocks see the most queries: they come first
  let tx = lid % 8u;
  let ty = lid / 8u;
  let dl = tx % DL; // phase 4 dim lane
  let kp = tx / DL; // phase 4 query part

  // Phase 4 accumulators: dk[NC i + c], dv[NC i + c] = key 4ty + i, dims 4(tx + 8c) .. +3.
  var dk: array<vec4<f32>, 16>;
  var dv: array<vec4<f32>, 16>;
  var s: array<vec4<f32>, 8>; // phase 1 scores, then p (below)
  var dp: array<vec4<f32>, 8>; // phase 1 dout . v, then ds

  let kk = vec4<u32>(j0 + 4u * ty) + vec4<u32>(0u, 1u, 2u, 3u); // this thread's keys
  let dkey = drop_key(b * dims.NH + h);
  let vd0 = min(dl, HS4 - 1u); // dim vec4 0 of this thread (clamped: past HS4 only garbage, never stored)
  let vd1 = min(dl + 8u, HS4 - 1u);
  let vd2 = min(dl + 16u, HS4 - 1u);
  let vd3 = min(dl + 24u, HS4 - 1u);

  for (var i0 = j0; i0 < T; i0 += BQ) {
    // ---- Phase 1: s[2i + h] = scores of key 4ty + i with queries 4tx + 32h .. +3; dp likewise. ----
    // Zeroed by an explicit assignment: a `var` declared in a loop body is not re-zeroed per iteration by
    // every compiler (naga hoists it), so the previous tile's values would remain.
    s = array<vec4<f32>, 8>();
    dp = array<vec4<f32>, 8>();
    for (var d0 = 0u; d0 < HS; d0 += BD) {
      workgroupBarrier(); // the previous readers of `stage` (and of `stats`) are done
      stage_chunk(b, h, j0, i0, d0, lid);
      workgroupBarrier();
      for (var d = 0u; d < BD; d++) {
        let k = stage[d * (BK / 4u) + ty];
        let v = stage[VT0 + d * (BK / 4u) + ty];
        let qa = QT0 + d * (BQ / 4u) + tx;
        let oa = OT0 + d * (BQ / 4u) + tx;
        let q_0 = stage[qa];
        let o_0 = stage[oa];
        s[0] += k.x * q_0; s[2] += k.y * q_0; s[4] += k.z * q_0; s[6] += k.w * q_0;
        dp[0] += v.x * o_0; dp[2] += v.y * o_0; dp[4] += v.z * o_0; dp[6] += v.w * o_0;
        if (RV > 1u) {
          let q_1 = stage[qa + 8u];
          let o_1 = stage[oa + 8u];
          s[1] += k.x * q_1; s[3] += k.y * q_1; s[5] += k.z * q_1; s[7] += k.w * q_1;
          dp[1] += v.x * o_1; dp[3] += v.y * o_1; dp[5] += v.z * o_1; dp[7] += v.w * o_1;
        }
      }
    }

    // ---- Phase 2: p = exp2(s - lse log2(e)) where key <= query < T (else 0), ds = p (dp F - delta), and
    // s becomes p F for dV (F = 1 without dropout). ----
    let qv0 = vec4<u32>(i0 + 4u * tx) + vec4<u32>(0u, 1u, 2u, 3u);
    let in0 = qv0 < vec4<u32>(T);
    let ls0 = stats[tx];
    let dl0 = stats[BQ / 4u + tx];
    s[0] = select(vec4<f32>(0.0), exp2(s[0] - ls0), in0 & (qv0 >= vec4<u32>(kk.x)));
    s[2] = select(vec4<f32>(0.0), exp2(s[2] - ls0), in0 & (qv0 >= vec4<u32>(kk.y)));
    s[4] = select(vec4<f32>(0.0), exp2(s[4] - ls0), in0 & (qv0 >= vec4<u32>(kk.z)));
    s[6] = select(vec4<f32>(0.0), exp2(s[6] - ls0), in0 & (qv0 >= vec4<u32>(kk.w)));
    let f0 = drop4(dkey, qv0, kk.x);
    let f2 = drop4(dkey, qv0, kk.y);
    let f4 = drop4(dkey, qv0, kk.z);
    let f6 = drop4(dkey, qv0, kk.w);
    dp[0] = s[0] * (dp[0] * f0 - dl0);
    dp[2] = s[2] * (dp[2] * f2 - dl0);
    dp[4] = s[4] * (dp[4] * f4 - dl0);
    dp[6] = s[6] * (dp[6] * f6 - dl0);
    s[0] *= f0;
    s[2] *= f2;
    s[4] *= f4;
    s[6] *= f6;
    if (RV > 1u) {
      let qv1 = qv0 + vec4<u32>(32u);
      let in1 = qv1 < vec4<u32>(T);
      let ls1 = stats[tx + 8u];
      let dl1 = stats[BQ / 4u + tx + 8u];
      s[1] = select(vec4<f32>(0.0), exp2(s[1] - ls1), in1 & (qv1 >= vec4<u32>(kk.x)));
      s[3] = select(vec4<f32>(0.0), exp2(s[3] - ls1), in1 & (qv1 >= vec4<u32>(kk.y)));
      s[5] = select(vec4<f32>(0.0), exp2(s[5] - ls1), in1 & (qv1 >= vec4<u32>(kk.z)));
      s[7] = select(vec4<f32>(0.0), exp2(s[7] - ls1), in1 & (qv1 >= vec4<u32>(kk.w)));
      let f1 = drop4(dkey, qv1, kk.x);
      let f3 = drop4(dkey, qv1, kk.y);
      let f5 = drop4(dkey, qv1, kk.z);
      let f7 = drop4(dkey, qv1, kk.w);
      dp[1] = s[1] * (dp[1] * f1 - dl1);
      dp[3] = s[3] * (dp[3] * f3 - dl1);
      dp[5] = s[5] * (dp[5] * f5 - dl1);
      dp[7] = s[7] * (dp[7] * f7 - dl1);
      s[1] *= f1;
      s[3] *= f3;
      s[5] *= f5;
      s[7] *= f7;
    }

    // ---- Phase 3: P and dS to pds[query][key], vec4s along keys (and dS to ds_out with DS). ----
    // Their previous readers (last tile's phase 4) finished before phase 1's barriers.
    let pa = 4u * tx * (BK / 4u) + ty; // pds index of query 4tx, key vec4 ty
    put_t(pa, s[0], s[2], s[4], s[6]);
    put_t(DS0 + pa, dp[0], dp[2], dp[4], dp[6]);
    if (RV > 1u) {
      put_t(pa + 32u * (BK / 4u), s[1], s[3], s[5], s[7]);
      put_t(DS0 + pa + 32u * (BK / 4u), dp[1], dp[3], dp[5], dp[7]);
    }
    // #if DS
    let bh = b * dims.NH + h;
    store_ds(bh, kk.x, i0 / 4u + tx, dp[0], dp[2], dp[4], dp[6]);
    if (RV > 1u) { store_ds(bh, kk.x, i0 / 4u + tx + 8u, dp[1], dp[3], dp[5], dp[7]); }
    // #endif

    // ---- Phase 4: dv += P^T dO, dk += dS^T Q over the tile's queries, QC at a time. ----
    let nchunks = (min(BQ, T - i0) + QC - 1u) / QC; // chunks wholly past T hold p = ds = 0
    for (var c0 = 0u; c0 < nchunks; c0++) {
      workgroupBarrier(); // phase 1's (or the previous chunk's) readers of `stage` are done; pds is written
      stage_rows(b, h, i0 + c0 * QC, lid);
      workgroupBarrier();
      for (var q = kp; q < QC; q += KS) {
        let ra = (c0 * QC + q) * (BK / 4u) + ty;
        let p = pds[ra];
        let g = pds[DS0 + ra];
        let xa = q * HS4;
        let oa = QC * HS4 + xa;
        let x0 = stage[xa + vd0];
        let o0 = stage[oa + vd0];
        dv[0] += p.x * o0; dv[NC] += p.y * o0; dv[2u * NC] += p.z * o0; dv[3u * NC] += p.w * o0;
        dk[0] += g.x * x0; dk[NC] += g.y * x0; dk[2u * NC] += g.z * x0; dk[3u * NC] += g.w * x0;
        if (NC > 1u) {
          let x1 = stage[xa + vd1];
          let o1 = stage[oa + vd1];
          dv[1] += p.x * o1; dv[NC + 1u] += p.y * o1; dv[2u * NC + 1u] += p.z * o1; dv[3u * NC + 1u] += p.w * o1;
          dk[1] += g.x * x1; dk[NC + 1u] += g.y * x1; dk[2u * NC + 1u] += g.z * x1; dk[3u * NC + 1u] += g.w * x1;
        }
        if (NC > 2u) {
          let x2 = stage[xa + vd2];
          let o2 = stage[oa + vd2];
          dv[2] += p.x * o2; dv[NC + 2u] += p.y * o2; dv[2u * NC + 2u] += p.z * o2; dv[3u * NC + 2u] += p.w * o2;
          dk[2] += g.x * x2; dk[NC + 2u] += g.y * x2; dk[2u * NC + 2u] += g.z * x2; dk[3u * NC + 2u] += g.w * x2;
        }
        if (NC > 3u) {
          let x3 = stage[xa + vd3];
          let o3 = stage[oa + vd3];
          dv[3] += p.x * o3; dv[NC + 3u] += p.y * o3; dv[2u * NC + 3u] += p.z * o3; dv[3u * NC + 3u] += p.w * o3;
          dk[3] += g.x * x3; dk[NC + 3u] += g.y * x3; dk[2u * NC + 3u] += g.z * x3; dk[3u * NC + 3u] += g.w * x3;
        }
      }
    }
  }

  // ---- Small heads: add the query parts into part 0, in part order (pds is free: the last tile is done). ----
  if (KS > 1u) { // then NC = 1: dk[0 .. 4), dv[0 .. 4) are the thread's outputs
    let slot = (ty * DL + dl) * 8u;
    for (var p = 1u; p < KS; p++) {
      workgroupBarrier();
      if (kp == p) {
        pds[slot] = dk[0]; pds[slot + 1u] = dk[1]; pds[slot + 2u] = dk[2]; pds[slot + 3u] = dk[3];
        pds[slot + 4u] = dv[0]; pds[slot + 5u] = dv[1]; pds[slot + 6u] = dv[2]; pds[slot + 7u] = dv[3];
      }
      workgroupBarrier();
      if (kp == 0u) {
        dk[0] += pds[slot]; dk[1] += pds[slot + 1u]; dk[2] += pds[slot + 2u]; dk[3] += pds[slot + 3u];
        dv[0] += pds[slot + 4u]; dv[1] += pds[slot + 5u]; dv[2] += pds[slot + 6u]; dv[3] += pds[slot + 7u];
      }
    }
  }

  // ---- Store: dk * scale and dv of keys 4ty + i. ----
  let ka = j0 + 4u * ty;
  if (kp != 0u) { return; } // small heads: part 0 holds the sums
  store_kv(b, h, ka, dl, dk[0], dk[1], dk[2], dk[3], dv[0], dv[1], dv[2], dv[3]);
  store_kv(b, h, ka + 1u, dl, dk[NC], dk[NC + 1u], dk[NC + 2u], dk[NC + 3u],
           dv[NC], dv[NC + 1u], dv[NC + 2u], dv[NC + 3u]);
  store_kv(b, h, ka + 2u, dl, dk[2u * NC], dk[2u * NC + 1u], dk[2u * NC + 2u], dk[2u * NC + 3u],
           dv[2u * NC], dv[2u * NC + 1u], dv[2u * NC + 2u], dv[2u * NC + 3u]);
  store_kv(b, h, ka + 3u, dl, dk[3u * NC], dk[3u * NC + 1u], dk[3u * NC + 2u], dk[3u * NC + 3u],
           dv[3u * NC], dv[3u * NC + 1u], dv[3u * NC + 2u], dv[3u * NC + 3u]);
}

// Stores this thread's dim vec4s dl + 8c (c < NC, those < HS4) of key row t's dk (times scale) and dv, if
// t < T. Callers pass dk[... + c] for c < 4 whatever NC is; the entries past NC are never stored.
fn store_kv(b: u32, h: u32, t: u32, dl: u32, k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>, k3: vec4<f32>,
            v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
  if (t >= dims.T) { return; }
  let C4 = dims.C4;
  let a = (b * dims.T + t) * 3u * C4 + C4 + h * HS4 + dl;
  if (dl < HS4) { dqkv[a] = vec4<GT>(k0 * SCALE); dqkv[a + C4] = vec4<GT>(v0); }
  if (NC > 1u && dl + 8u < HS4) { dqkv[a + 8u] = vec4<GT>(k1 * SCALE); dqkv[a + C4 + 8u] = vec4<GT>(v1); }
  if (NC > 2u && dl + 16u < HS4) { dqkv[a + 16u] = vec4<GT>(k2 * SCALE); dqkv[a + C4 + 16u] = vec4<GT>(v2); }
  if (NC > 3u && dl + 24u < HS4) { dqkv[a + 24u] = vec4<GT>(k3 * SCALE); dqkv[a + C4 + 24u] = vec4<GT>(v3); }
}
