// Causal attention backward, dq, register-blocked (FlashAttention-2 backward, query-block form).
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4, HS4 = HS / 4.
//   qkv   [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   dout  [B, T, C]   gradient of the attention output
//   lse   [B, NH, T]  the forward's natural logsumexp per query row
//   delta [B, NH, T]  delta_t = dout_t . out_t (attention_backward_delta in shaders/attention.wgsl)
//   dqkv  [B, T, 3C]  gradient of qkv: this kernel WRITES (=) its q columns, every row t < T
// With s_tj = scale q_t . k_j (scale = 1 / sqrt(HS), keys j <= t): p_tj = exp(s_tj - lse_t),
// dp_tj = dout_t . v_j, ds_tj = p_tj (dp_tj - delta_t), dq_t = scale sum_j ds_tj k_j.
//
// The forward's structure (shaders/attention_forward.wgsl) with two products in phase 1 and no row pass:
// a workgroup of 64 threads (8 x 8, tx = lid % 8, ty = lid / 8) owns BR = 32 * RV query rows of one
// (batch, head), heaviest blocks first, and streams key tiles of BC = 32 keys up to its last row:
//   1. S^T = K Q^T and dP^T = V dO^T (BC x BR, reduced over HS in chunks of BD dims staged transposed):
//      thread holds keys 4ty + i (i < 4) by query vec4s 4tx + 32h (h < RV).
//   2. In registers: p = exp2(s - lse log2 e) (0 above the diagonal), ds = p (dp - delta), stored as
//      dsT[key][query].
//   3. dq += dS K (BR x HS, reduced over the tile's keys in chunks of KC staged K rows): thread holds queries
//      4ty + 32h + i by dim vec4s dl + 8c (c < NC; dl = tx but for small heads, see KS).
// With the DS flag (the stored-dS path) phases 1 and 2 are replaced by reading the tile's dS^T from ds_in,
// which attention_backward_dkdv wrote (DS there; it runs first): ds[b, h, key j, query t], rows of
// TQ4 = ceil(T / 4) vec4s along queries. Entries with query < key are masked to 0 here (dkdv leaves the
// part below its key block unwritten). Only phase 3's product remains: 1 of 3 T^2 HS products.
// With DROP (recomputing form only; stored dS already includes it), the forward's dropout on the
// probabilities (drop4, attention_dropout.wgsl): F = mask / (1 - p_drop) multiplies dP, ds = p (dP F -
// delta). The `// #if DS` blocks with an empty first branch hold what only the recomputing form needs.
// Register arrays are indexed by constants only (statements written out, guarded by `if (RV > 1u)` etc.).
// Every summation order is fixed: results are bitwise reproducible.

// Specialised by the dispatcher (src/kernels/attention.ts, plan from attention_plan.ts), which rewrites
// these lines: private and workgroup arrays need const sizes.
const HS: u32 = 64u; // head size, a multiple of 4, at most 128
const RV: u32 = 2u; // query vec4s per thread: BR = 32 * RV rows per block (RV * NC <= 4)
const BD: u32 = 16u; // head dims per staged chunk of Q, dO, K, V (16, 8 or 4, divides HS)
const KC: u32 = 32u; // keys per staged K chunk in phase 3 (divides BC)
const STAGE: u32 = 768u; // vec4s of `stage`: max(BD * (2 BR + 2 BC) / 4, KC * HS4)
const KS: u32 = 1u; // phase 3 key split, as the forward's: 8 / DL, more than 1 only for HS <= 16

const HS4: u32 = HS / 4u;
const BR: u32 = 32u * RV;
const BC: u32 = 32u;
const NC: u32 = (HS4 + 7u) / 8u; // dim vec4s per thread in phase 3: dl + 8c, valid while < HS4
// Phase 3 lanes: tx = kp * DL + dl (as in the forward: small heads split the keys among lanes kp).
const DL: u32 = 8u / KS;
const R1: u32 = 4u * NC * (RV - 1u); // dq index of query 4ty + 32 (0 when RV = 1: keeps indices in range)
const SCALE: f32 = 1.0 / sqrt(f32(HS));
const LOG2E: f32 = 1.4426950408889634;
const SCALE_LOG2E: f32 = SCALE * LOG2E;

// Storage element types, f32 or f16 (withTypes rewrites these lines): QT qkv, DT dout, GT dqkv. Loads convert
// to f32 and stores round to the type; workgroup tiles, arithmetic, lse and delta stay f32.
alias QT = f32;
alias DT = f32;
alias GT = f32;

// drop_*: the dropout's keep threshold on (hash >> 8), its scale 1 / (1 - p) and hash stream (DROP only).
struct Dims { T: u32, C4: u32, NH: u32, drop_threshold: u32, drop_scale: f32, drop_stream: u32 }

@group(0) @binding(0) var<storage, read_write> dqkv: array<vec4<GT>>; // [B, T, 3C/4]
@group(0) @binding(1) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(2) var<storage, read> dout: array<vec4<DT>>; // [B, T, C/4]
@group(0) @binding(3) var<storage, read> fwd_lse: array<f32>; // [B, NH, T]
@group(0) @binding(4) var<storage, read> delta_in: array<f32>; // [B, NH, T]
@group(0) @binding(5) var<uniform> dims: Dims;
@group(0) @binding(6) var<storage, read> ds_in: array<vec4<GT>>; // [B, NH, T, TQ4] with DS only, as GT
@group(0) @binding(7) var<storage, read> rng: array<u32>; // DROP only: the step's dropout seed in rng[0]

// Phase 1, d-major chunks, vec4s along rows: qT[d][query] at 0, goT[d][query] at BD * BR / 4,
// kT[d][key] at BD * BR / 2, vT[d][key] at BD * BR / 2 + BD * BC / 4. Phase 3: ks[key][dim] at 0.
var<workgroup> stage: array<vec4<f32>, STAGE>; // stage_t4 (attention_shared.wgsl, appended) writes it
var<workgroup> dsT: array<vec4<f32>, BC * BR / 4u>; // [BC keys][BR queries]

// Stages dims d0 .. d0+BD-1 of the block's Q (times scale * log2(e)) and dO and of the tile's K and V,
// transposed; rows past T read as zeros. Each item is 4 consecutive rows at one dim vec4 of two operands:
// 4 loads each, transposed in registers into 4 vec4 stores each (one per dim, along the 4 rows).
fn stage_chunk(b: u32, h: u32, q0: u32, k0: u32, d0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let bd4 = BD / 4u;
  let col = h * HS4 + d0 / 4u;
  for (var x = lid; x < (BR + BC) / 4u * bd4; x += 64u) {
    let r4 = x / bd4; // row quad
    let dv = x % bd4;
    var u0 = vec4<f32>(0.0); // q or k
    var u1 = vec4<f32>(0.0);
    var u2 = vec4<f32>(0.0);
    var u3 = vec4<f32>(0.0);
    var w0 = vec4<f32>(0.0); // dout or v
    var w1 = vec4<f32>(0.0);
    var w2 = vec4<f32>(0.0);
    var w3 = vec4<f32>(0.0);
    var at: u32; // first vec4 of the quad's u in stage
    var wo: u32; // offset of w's chunk from u's
    var stride: u32; // vec4s per dim row of the chunk
    if (r4 < BR / 4u) { // 4 queries: q and dout
      let t = q0 + 4u * r4;
      let a = (b * T + t) * 3u * C4 + col + dv;
      let g = (b * T + t) * C4 + col + dv;
      if (t < T) { u0 = vec4<f32>(qkv[a]) * SCALE_LOG2E; w0 = vec4<f32>(dout[g]); }
      if (t + 1u < T) { u1 = vec4<f32>(qkv[a + 3u * C4]) * SCALE_LOG2E; w1 = vec4<f32>(dout[g + C4]); }
      if (t + 2u < T) { u2 = vec4<f32>(qkv[a + 6u * C4]) * SCALE_LOG2E; w2 = vec4<f32>(dout[g + 2u * C4]); }
      if (t + 3u < T) { u3 = vec4<f32>(qkv[a + 9u * C4]) * SCALE_LOG2E; w3 = vec4<f32>(dout[g + 3u * C4]); }
      at = 4u * dv * (BR / 4u) + r4;
      wo = BD * BR / 4u;
      stride = BR / 4u;
    } else { // 4 keys: k and v
      let r = r4 - BR / 4u;
      let t = k0 + 4u * r;
      let a = (b * T + t) * 3u * C4 + C4 + col + dv;
      if (t < T) { u0 = vec4<f32>(qkv[a]); w0 = vec4<f32>(qkv[a + C4]); }
      if (t + 1u < T) { u1 = vec4<f32>(qkv[a + 3u * C4]); w1 = vec4<f32>(qkv[a + 4u * C4]); }
      if (t + 2u < T) { u2 = vec4<f32>(qkv[a + 6u * C4]); w2 = vec4<f32>(qkv[a + 7u * C4]); }
      if (t + 3u < T) { u3 = vec4<f32>(qkv[a + 9u * C4]); w3 = vec4<f32>(qkv[a + 10u * C4]); }
      at = BD * BR / 2u + 4u * dv * (BC / 4u) + r;
      wo = BD * BC / 4u;
      stride = BC / 4u;
    }
    stage_t4(at, stride, u0, u1, u2, u3);
    stage_t4(wo + at, stride, w0, w1, w2, w3);
  }
}

// Stages keys k0 .. k0+KC-1 of the head's K (zeros past T).
fn stage_k(b: u32, h: u32, k0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  for (var x = lid; x < KC * HS4; x += 64u) {
    let t = k0 + x / HS4;
    var v = vec4<f32>(0.0);
    if (t < T) { v = vec4<f32>(qkv[(b * T + t) * 3u * C4 + C4 + h * HS4 + x % HS4]); }
    stage[x] = v;
  }
}

// lse * log2(e) and delta of queries t .. t+3 (clamped to T - 1: rows past T are computed, never stored).
fn row_stats(bh: u32, t: u32) -> array<vec4<f32>, 2> {
  let last = dims.T - 1u;
  let i = vec4<u32>(min(t, last), min(t + 1u, last), min(t + 2u, last), min(t + 3u, last)) + vec4<u32>(bh);
  return array<vec4<f32>, 2>(
    vec4<f32>(fwd_lse[i.x], fwd_lse[i.y], fwd_lse[i.z], fwd_lse[i.w]) * LOG2E,
    vec4<f32>(delta_in[i.x], delta_in[i.y], delta_in[i.z], delta_in[i.w]),
  );
}

// DS only: stages dsT[key][query] of keys k0 .. k0+BC-1 against the block's queries from ds_in, 0 where the
// query precedes the key or the key is past T.
fn stage_ds(bh: u32, q0: u32, k0: u32, lid: u32) {
  let T = dims.T;
  let tq4 = (T + 3u) / 4u;
  for (var x = lid; x < BC * BR / 4u; x += 64u) {
    let j = k0 + x / (BR / 4u);
    let u = q0 / 4u + x % (BR / 4u);
    var v = vec4<f32>(0.0);
    if (j < T && u < tq4) {
      let masked = vec4<u32>(4u * u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(j);
      v = select(vec4<f32>(ds_in[(bh + j) * tq4 + u]), vec4<f32>(0.0), masked);
    }
    dsT[x] = v;
  }
}

// ds of key j against 4 queries qv (phase 2): p (dp F - delta), p = 0 above the diagonal.
fn grad_scores(s: vec4<f32>, dp: vec4<f32>, st: array<vec4<f32>, 2>, qv: vec4<u32>, j: u32, dkey: u32) -> vec4<f32> {
  let p = select(exp2(s - st[0]), vec4<f32>(0.0), vec4<u32>(j) > qv);
  return p * (dp * drop4(dkey, qv, j) - st[1]);
}

@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let h = wg.y;
  let b = wg.z;
  let q0 = (nwg.x - 1u - wg.x) * BR; // heaviest blocks first
  let qlast = min(q0 + BR, T) - 1u;
  let tx = lid % 8u;
  let ty = lid / 8u;
  let dl = tx % DL; // phase 3 dim lane
  let kp = tx / DL; // phase 3 key part
  let bh = (b * dims.NH + h) * T;
  // #if DS
  // #else
  // Phase 2's per-query constants for queries 4tx + 32h .. +3: (lse log2 e, delta).
  let st0 = row_stats(bh, q0 + 4u * tx);
  let st1 = row_stats(bh, q0 + 4u * tx + 32u * (RV - 1u));
  let qv0 = vec4<u32>(q0 + 4u * tx) + vec4<u32>(0u, 1u, 2u, 3u);
  let qv1 = qv0 + vec4<u32>(32u);
  let dkey = drop_key(b * dims.NH + h);
  // #endif

  // Phase 3 accumulators: dq[(4h + i) * NC + c] = query 4ty + 32h + i, dims 4(tx + 8c) .. +3 (R1 = 4 NC).
  var dq: array<vec4<f32>, 16>;
  // #if DS
  // #else
  var s: array<vec4<f32>, 8>; // phase 1: s[2i + h] = key 4ty + i with queries 4tx + 32h .. +3
  var dp: array<vec4<f32>, 8>; // phase 1: dp, same layout
  // #endif

  let ntiles = qlast / BC + 1u;
  for (var kt = 0u; kt < ntiles; kt++) {
    let k0 = kt * BC;
    // #if DS
    workgroupBarrier(); // the previous tile's phase 3 readers of dsT are done
    stage_ds(bh, q0, k0, lid); // phase 3's first barrier publishes it
    // #else
    // ---- Phase 1. Zeroed by assignment: a `var` in a loop body is not re-zeroed by every compiler. ----
    s = array<vec4<f32>, 8>();
    dp = array<vec4<f32>, 8>();
    for (var d0 = 0u; d0 < HS; d0 += BD) {
      workgroupBarrier(); // the previous readers of `stage` are done
      stage_chunk(b, h, q0, k0, d0, lid);
      workgroupBarrier();
      for (var d = 0u; d < BD; d++) {
        let qa = d * (BR / 4u) + tx;
        let ka = BD * BR / 2u + d * (BC / 4u) + ty;
        let q_0 = stage[qa];
        let q_1 = stage[qa + 8u * (RV - 1u)]; // only used when RV > 1
        let g_0 = stage[qa + BD * BR / 4u];
        let g_1 = stage[qa + BD * BR / 4u + 8u * (RV - 1u)];
        let k = stage[ka];
        let v = stage[ka + BD * BC / 4u];
        s[0] += k.x * q_0; s[2] += k.y * q_0; s[4] += k.z * q_0; s[6] += k.w * q_0;
        dp[0] += v.x * g_0; dp[2] += v.y * g_0; dp[4] += v.z * g_0; dp[6] += v.w * g_0;
        if (RV > 1u) {
          s[1] += k.x * q_1; s[3] += k.y * q_1; s[5] += k.z * q_1; s[7] += k.w * q_1;
          dp[1] += v.x * g_1; dp[3] += v.y * g_1; dp[5] += v.z * g_1; dp[7] += v.w * g_1;
        }
      }
    }
    // ---- Phase 2: dsT[key][query] = p (dp F - delta), p = 0 where key > query (F = 1 without DROP). ----
    let kk = k0 + 4u * ty;
    let pa = (4u * ty) * (BR / 4u) + tx;
    dsT[pa] = grad_scores(s[0], dp[0], st0, qv0, kk, dkey);
    dsT[pa + BR / 4u] = grad_scores(s[2], dp[2], st0, qv0, kk + 1u, dkey);
    dsT[pa + 2u * (BR / 4u)] = grad_scores(s[4], dp[4], st0, qv0, kk + 2u, dkey);
    dsT[pa + 3u * (BR / 4u)] = grad_scores(s[6], dp[6], st0, qv0, kk + 3u, dkey);
    if (RV > 1u) {
      dsT[pa + 8u] = grad_scores(s[1], dp[1], st1, qv1, kk, dkey);
      dsT[pa + 8u + BR / 4u] = grad_scores(s[3], dp[3], st1, qv1, kk + 1u, dkey);
      dsT[pa + 8u + 2u * (BR / 4u)] = grad_scores(s[5], dp[5], st1, qv1, kk + 2u, dkey);
      dsT[pa + 8u + 3u * (BR / 4u)] = grad_scores(s[7], dp[7], st1, qv1, kk + 3u, dkey);
    }
    // #endif

    // ---- Phase 3: dq += dS K over the tile's keys. ----
    let kd = min(dl, HS4 - 1u); // dim vec4 0 of this thread (clamped: past HS4 only garbage, never stored)
    let kd1 = min(dl + 8u, HS4 - 1u);
    let kd2 = min(dl + 16u, HS4 - 1u);
    let kd3 = min(dl + 24u, HS4 - 1u);
    let nchunks = (min(BC, qlast + 1u - k0) + KC - 1u) / KC; // keys past the last row have ds = 0
    for (var c0 = 0u; c0 < nchunks; c0++) {
      workgroupBarrier(); // phase 1's (or the previous chunk's) readers of `stage` are done; dsT is written
      stage_k(b, h, k0 + c0 * KC, lid);
      workgroupBarrier();
      for (var j = kp; j < KC; j += KS) {
        let pj = (c0 * KC + j) * (BR / 4u) + ty;
        let p0 = dsT[pj];
        let p1 = dsT[pj + 8u * (RV - 1u)];
        let ka = j * HS4;
        let k_0 = stage[ka + kd];
        dq[0] += p0.x * k_0; dq[NC] += p0.y * k_0; dq[2u * NC] += p0.z * k_0; dq[3u * NC] += p0.w * k_0;
        if (RV > 1u) {
          dq[R1] += p1.x * k_0; dq[R1 + NC] += p1.y * k_0; dq[R1 + 2u * NC] += p1.z * k_0;
          dq[R1 + 3u * NC] += p1.w * k_0;
        }
        if (NC > 1u) {
          let k_1 = stage[ka + kd1];
          dq[1] += p0.x * k_1; dq[NC + 1u] += p0.y * k_1; dq[2u * NC + 1u] += p0.z * k_1;
          dq[3u * NC + 1u] += p0.w * k_1;
          if (RV > 1u) {
            dq[R1 + 1u] += p1.x * k_1; dq[R1 + NC + 1u] += p1.y * k_1; dq[R1 + 2u * NC + 1u] += p1.z * k_1;
            dq[R1 + 3u * NC + 1u] += p1.w * k_1;
          }
        }
        if (NC > 2u) {
          let k_2 = stage[ka + kd2];
          dq[2] += p0.x * k_2; dq[NC + 2u] += p0.y * k_2; dq[2u * NC + 2u] += p0.z * k_2;
          dq[3u * NC + 2u] += p0.w * k_2;
        }
        if (NC > 3u) {
          let k_3 = stage[ka + kd3];
          dq[3] += p0.x * k_3; dq[NC + 3u] += p0.y * k_3; dq[2u * NC + 3u] += p0.z * k_3;
          dq[3u * NC + 3u] += p0.w * k_3;
        }
      }
    }
  }

  // ---- Small heads: add the key parts into part 0, in part order (dsT is free: the last tile is done). ----
  if (KS > 1u) { // then NC = 1: dq[0 .. 4 RV) are the thread's outputs
    let slot = (ty * DL + dl) * 8u;
    for (var p = 1u; p < KS; p++) {
      workgroupBarrier();
      if (kp == p) {
        dsT[slot] = dq[0]; dsT[slot + 1u] = dq[1]; dsT[slot + 2u] = dq[2]; dsT[slot + 3u] = dq[3];
        if (RV > 1u) {
          dsT[slot + 4u] = dq[4]; dsT[slot + 5u] = dq[5]; dsT[slot + 6u] = dq[6]; dsT[slot + 7u] = dq[7];
        }
      }
      workgroupBarrier();
      if (kp == 0u) {
        dq[0] += dsT[slot]; dq[1] += dsT[slot + 1u]; dq[2] += dsT[slot + 2u]; dq[3] += dsT[slot + 3u];
        if (RV > 1u) {
          dq[4] += dsT[slot + 4u]; dq[5] += dsT[slot + 5u]; dq[6] += dsT[slot + 6u]; dq[7] += dsT[slot + 7u];
        }
      }
    }
  }

  // ---- Store dq = scale * sum (the scores were in log2 units; ds is in natural units already). ----
  let ta = q0 + 4u * ty;
  if (kp != 0u) { return; } // small heads: part 0 holds the sums
  store_row(b, h, ta, dl, dq[0], dq[1], dq[2], dq[3]);
  store_row(b, h, ta + 1u, dl, dq[NC], dq[NC + 1u], dq[NC + 2u], dq[NC + 3u]);
  store_row(b, h, ta + 2u, dl, dq[2u * NC], dq[2u * NC + 1u], dq[2u * NC + 2u], dq[2u * NC + 3u]);
  store_row(b, h, ta + 3u, dl, dq[3u * NC], dq[3u * NC + 1u], dq[3u * NC + 2u], dq[3u * NC + 3u]);
  if (RV > 1u) {
    store_row(b, h, ta + 32u, dl, dq[R1], dq[R1 + 1u], vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 33u, dl, dq[R1 + NC], dq[R1 + NC + 1u], vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 34u, dl, dq[R1 + 2u * NC], dq[R1 + 2u * NC + 1u], vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 35u, dl, dq[R1 + 3u * NC], dq[R1 + 3u * NC + 1u], vec4<f32>(), vec4<f32>());
  }
}

// Stores scale times this thread's dim vec4s dl + 8c (c < NC, those < HS4) of query row t's dq (if t < T).
// Callers pass 4 vec4s whatever NC is; those past NC are never stored (with RV = 2, NC <= 2).
fn store_row(b: u32, h: u32, t: u32, dl: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
  if (t >= dims.T) { return; }
  let a = (b * dims.T + t) * 3u * dims.C4 + h * HS4;
  if (dl < HS4) { dqkv[a + dl] = vec4<GT>(v0 * SCALE); }
  if (NC > 1u && dl + 8u < HS4) { dqkv[a + dl + 8u] = vec4<GT>(v1 * SCALE); }
  if (NC > 2u && dl + 16u < HS4) { dqkv[a + dl + 16u] = vec4<GT>(v2 * SCALE); }
  if (NC > 3u && dl + 24u < HS4) { dqkv[a + dl + 24u] = vec4<GT>(v3 * SCALE); }
}
