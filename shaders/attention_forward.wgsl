// Causal multi-head self-attention forward, register-blocked (FlashAttention-2 on SIMT cores).
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4, HS4 = HS / 4.
//   qkv [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   out [B, T, C]   heads merged the same way: out[b, t, h*HS + d]
//   lse [B, NH, T]  natural logsumexp over keys j <= t of the scaled scores of query row t (for backward)
// Scores s_tj = scale * q_t . k_j, scale = 1 / sqrt(HS), keys j <= t only. Forward only: no gradients here
// (the backward, attention.wgsl's delta then attention_dkdv.wgsl and attention_dq.wgsl, reads out and lse).
//
// A workgroup of 64 threads (an 8 x 8 grid, tx = lid % 8, ty = lid / 8) owns BR = 32 * RV query rows of one
// (batch, head), heaviest (last) blocks first, and streams key tiles of BC = 32 * KV keys up to its last row.
// Per tile, three phases, each a small matmul or a row pass over workgroup memory:
//   1. S^T = K Q^T (BC x BR, reduced over HS in chunks of BD dims): thread (tx, ty) holds keys
//      4ty + 32g + i (g < KV, i < 4) by query vec4s 4tx + 32h (h < RV): up to 8 x 8 scores in 16 vec4s.
//      Q and K chunks are staged transposed (d-major) so each step reads two vec4s of each operand.
//      Masked (key > query) scores become MASKED; the block is stored as pT[key][query].
//   2. Softmax, one thread per query row: the row's running max m moves to the tile's max, alpha =
//      exp2(m_old - m_new) rescales the row's sum l and (phase 3) its output; p = exp2(s - m) overwrites pT.
//   3. O += P V (BR x HS, reduced over the tile's keys in chunks of KC staged V rows): thread (tx, ty) holds
//      queries 4ty + 32h + i by dim vec4s dl + 8c (c < NC; dl = tx but for small heads, see KS), up to 16
//      vec4 accumulators.
// Register arrays are indexed by constants only (each statement written out, guarded by `if (KV > g)` and
// the like, which the compiler folds): dynamically indexed private arrays can land in slow local memory.
// Scores are in log2 units (q pre-multiplied by scale * log2(e)) so exp2 does the softmax.
// With the DROP flag, dropout on the probabilities (nanoGPT's attn_dropout): phase 2 adds every p to the
// row's sum l but stores p / (1 - p_drop) or 0 for phase 3 (drop1 in attention_dropout.wgsl: the mask the
// backward kernels regenerate and src/reference/attention.ts draws too).
// Every summation order is fixed: results are bitwise reproducible.

// Specialised by the dispatcher (src/kernels/attention.ts, plan from attention_plan.ts), which rewrites
// these lines: private and workgroup arrays need const sizes.
const HS: u32 = 64u; // head size, a multiple of 4, at most 128
const RV: u32 = 2u; // query vec4s per thread in each phase: BR = 32 * RV rows per block (RV * NC <= 4)
const KV: u32 = 2u; // key quads per thread in phase 1: BC = 32 * KV keys per tile
const BD: u32 = 16u; // head dims per staged Q/K chunk (16, 8 or 4, divides HS)
const KC: u32 = 32u; // keys per staged V chunk (divides BC)
const STAGE: u32 = 512u; // vec4s of `stage`: max(BD * (BR + BC) / 4, KC * HS4)
const KS: u32 = 1u; // phase 3 key split: 8 / DL, more than 1 only for HS <= 16 (see DL)

const HS4: u32 = HS / 4u;
const BR: u32 = 32u * RV;
const BC: u32 = 32u * KV;
const NC: u32 = (HS4 + 7u) / 8u; // dim vec4s per thread in phase 3: dl + 8c, valid while < HS4
// Phase 3 lanes: tx = kp * DL + dl. With HS4 >= 8, DL = 8 and each thread takes every key of the tile for
// dims dl + 8c. A small head (HS4 <= 4) would leave lanes dl >= HS4 idle, so the lanes split the keys
// instead: lane kp takes keys j = kp (mod KS), and the KS partial sums are added at the end.
const DL: u32 = 8u / KS;
const R1: u32 = 4u * NC * (RV - 1u); // o index of query 4ty + 32 (0 when RV = 1: keeps indices in range)
const SCALE_LOG2E: f32 = 1.4426950408889634 / sqrt(f32(HS));
const LN2: f32 = 0.6931471805599453;
const MASKED: f32 = -1.0e30; // stands in for -inf: exp2(MASKED - m) == 0 for any finite m

// Storage element types, f32 or f16 (withTypes in src/gpu/source.ts rewrites these lines): QT qkv, OT out.
// Loads convert to f32 and stores round to the type; workgroup tiles, arithmetic and lse stay f32.
alias QT = f32;
alias OT = f32;

// drop_*: the dropout's keep threshold on (hash >> 8), its scale 1 / (1 - p) and hash stream (DROP only).
struct Dims { T: u32, C4: u32, NH: u32, drop_threshold: u32, drop_scale: f32, drop_stream: u32 }

@group(0) @binding(0) var<storage, read_write> out: array<vec4<OT>>; // [B, T, C/4]
@group(0) @binding(1) var<storage, read_write> lse: array<f32>; // [B, NH, T]
@group(0) @binding(2) var<storage, read> qkv: array<vec4<QT>>; // [B, T, 3C/4]
@group(0) @binding(3) var<uniform> dims: Dims;
@group(0) @binding(4) var<storage, read> rng: array<u32>; // DROP only: the step's dropout seed in rng[0]

// Phase 1: qT[d][query] at stage[0, BD * BR / 4) and kT[d][key] after it, vec4s along queries / keys.
// Phase 3: vs[key][dim] at stage[0, KC * HS4), vec4s along dims.
var<workgroup> stage: array<vec4<f32>, STAGE>; // stage_t4 (attention_shared.wgsl, appended) writes it
var<workgroup> pT: array<vec4<f32>, BC * BR / 4u>; // [BC keys][BR queries]: scores, then probabilities
var<workgroup> rowstat: array<vec4<f32>, BR / 4u>; // per query row: alpha of this tile, at the end 1 / l

// Stages dims d0 .. d0+BD-1 of the block's queries (times scale * log2(e)) and of the tile's keys,
// transposed; rows past T read as zeros. Each item is 4 consecutive rows at one dim vec4: 4 loads,
// transposed in registers into 4 vec4 stores (one per dim, along the 4 rows).
fn stage_qk(b: u32, h: u32, q0: u32, k0: u32, d0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  let bd4 = BD / 4u;
  for (var x = lid; x < (BR + BC) / 4u * bd4; x += 64u) {
    let r4 = x / bd4; // row quad
    let dv = x % bd4;
    var t: u32; // first row of the quad
    var a: u32; // its vec4 in qkv
    var at: u32; // its first vec4 in stage
    var stride: u32; // vec4s per dim row of the chunk
    var sc: f32;
    if (r4 < BR / 4u) { // 4 queries
      t = q0 + 4u * r4;
      a = (b * T + t) * 3u * C4 + h * HS4 + d0 / 4u + dv;
      at = 4u * dv * (BR / 4u) + r4;
      stride = BR / 4u;
      sc = SCALE_LOG2E;
    } else { // 4 keys
      t = k0 + 4u * (r4 - BR / 4u);
      a = (b * T + t) * 3u * C4 + C4 + h * HS4 + d0 / 4u + dv;
      at = BD * BR / 4u + 4u * dv * (BC / 4u) + r4 - BR / 4u;
      stride = BC / 4u;
      sc = 1.0;
    }
    var u0 = vec4<f32>(0.0);
    var u1 = vec4<f32>(0.0);
    var u2 = vec4<f32>(0.0);
    var u3 = vec4<f32>(0.0);
    if (t < T) { u0 = vec4<f32>(qkv[a]) * sc; }
    if (t + 1u < T) { u1 = vec4<f32>(qkv[a + 3u * C4]) * sc; }
    if (t + 2u < T) { u2 = vec4<f32>(qkv[a + 6u * C4]) * sc; }
    if (t + 3u < T) { u3 = vec4<f32>(qkv[a + 9u * C4]) * sc; }
    stage_t4(at, stride, u0, u1, u2, u3);
  }
}

// Stages keys k0 .. k0+KC-1 of the head's V (zeros past T).
fn stage_v(b: u32, h: u32, k0: u32, lid: u32) {
  let T = dims.T;
  let C4 = dims.C4;
  for (var x = lid; x < KC * HS4; x += 64u) {
    let t = k0 + x / HS4;
    var v = vec4<f32>(0.0);
    if (t < T) { v = vec4<f32>(qkv[(b * T + t) * 3u * C4 + 2u * C4 + h * HS4 + x % HS4]); }
    stage[x] = v;
  }
}

@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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

  // Phase 3 accumulators: o[(4h + i) * NC + c] = query 4ty + 32h + i, dims 4(tx + 8c) .. +3 (R1 = 4 NC).
  var o: array<vec4<f32>, 16>;
  var s: array<vec4<f32>, 16>; // phase 1 scores (below)
  // Phase 2 state of query row lid (threads lid < BR): running max (log2 units) and sum.
  var m = MASKED;
  var l = 0.0;
  let dkey = drop_key(b * dims.NH + h); // DROP only (0 without)
  let drow = (q0 + lid) * T; // hash index of query row lid's key 0

  let ntiles = qlast / BC + 1u;
  for (var kt = 0u; kt < ntiles; kt++) {
    let k0 = kt * BC;
    // ---- Phase 1: s[2(4g + i) + h] = scores of key 4ty + 32g + i with queries 4tx + 32h .. +3. ----
    // Zeroed by an explicit assignment: a `var` declared in a loop body is not re-zeroed per iteration by
    // every compiler (naga hoists it), so the previous tile's scores would remain.
    s = array<vec4<f32>, 16>();
    for (var d0 = 0u; d0 < HS; d0 += BD) {
      workgroupBarrier(); // the previous readers of `stage` are done
      stage_qk(b, h, q0, k0, d0, lid);
      workgroupBarrier();
      for (var d = 0u; d < BD; d++) {
        let qa = d * (BR / 4u) + tx;
        let ka = BD * BR / 4u + d * (BC / 4u) + ty;
        let q_0 = stage[qa];
        let q_1 = stage[qa + 8u * (RV - 1u)]; // only used when RV > 1
        let k_0 = stage[ka];
        let k_1 = stage[ka + 8u * (KV - 1u)]; // only used when KV > 1
        s[0] += k_0.x * q_0; s[2] += k_0.y * q_0; s[4] += k_0.z * q_0; s[6] += k_0.w * q_0;
        if (RV > 1u) { s[1] += k_0.x * q_1; s[3] += k_0.y * q_1; s[5] += k_0.z * q_1; s[7] += k_0.w * q_1; }
        if (KV > 1u) {
          s[8] += k_1.x * q_0; s[10] += k_1.y * q_0; s[12] += k_1.z * q_0; s[14] += k_1.w * q_0;
          if (RV > 1u) {
            s[9] += k_1.x * q_1; s[11] += k_1.y * q_1; s[13] += k_1.z * q_1; s[15] += k_1.w * q_1;
          }
        }
      }
    }
    // Mask and store: pT[key][query]. Only tiles reaching past the block's first row need the mask.
    let qv0 = vec4<u32>(q0 + 4u * tx) + vec4<u32>(0u, 1u, 2u, 3u);
    let qv1 = qv0 + vec4<u32>(32u);
    let kk = k0 + 4u * ty;
    let diag = k0 + BC > q0 + 1u;
    let pa = (4u * ty) * (BR / 4u) + tx; // pT index of key 4ty, query vec4 tx
    let kq = 32u * (BR / 4u); // pT index step of 32 keys
    let pm = MASKED;
    if (diag) {
      pT[pa] = select(s[0], vec4<f32>(pm), vec4<u32>(kk) > qv0);
      pT[pa + BR / 4u] = select(s[2], vec4<f32>(pm), vec4<u32>(kk + 1u) > qv0);
      pT[pa + 2u * (BR / 4u)] = select(s[4], vec4<f32>(pm), vec4<u32>(kk + 2u) > qv0);
      pT[pa + 3u * (BR / 4u)] = select(s[6], vec4<f32>(pm), vec4<u32>(kk + 3u) > qv0);
      if (RV > 1u) {
        pT[pa + 8u] = select(s[1], vec4<f32>(pm), vec4<u32>(kk) > qv1);
        pT[pa + 8u + BR / 4u] = select(s[3], vec4<f32>(pm), vec4<u32>(kk + 1u) > qv1);
        pT[pa + 8u + 2u * (BR / 4u)] = select(s[5], vec4<f32>(pm), vec4<u32>(kk + 2u) > qv1);
        pT[pa + 8u + 3u * (BR / 4u)] = select(s[7], vec4<f32>(pm), vec4<u32>(kk + 3u) > qv1);
      }
      if (KV > 1u) {
        pT[pa + kq] = select(s[8], vec4<f32>(pm), vec4<u32>(kk + 32u) > qv0);
        pT[pa + kq + BR / 4u] = select(s[10], vec4<f32>(pm), vec4<u32>(kk + 33u) > qv0);
        pT[pa + kq + 2u * (BR / 4u)] = select(s[12], vec4<f32>(pm), vec4<u32>(kk + 34u) > qv0);
        pT[pa + kq + 3u * (BR / 4u)] = select(s[14], vec4<f32>(pm), vec4<u32>(kk + 35u) > qv0);
        if (RV > 1u) {
          pT[pa + kq + 8u] = select(s[9], vec4<f32>(pm), vec4<u32>(kk + 32u) > qv1);
          pT[pa + kq + 8u + BR / 4u] = select(s[11], vec4<f32>(pm), vec4<u32>(kk + 33u) > qv1);
          pT[pa + kq + 8u + 2u * (BR / 4u)] = select(s[13], vec4<f32>(pm), vec4<u32>(kk + 34u) > qv1);
          pT[pa + kq + 8u + 3u * (BR / 4u)] = select(s[15], vec4<f32>(pm), vec4<u32>(kk + 35u) > qv1);
        }
      }
    } else {
      pT[pa] = s[0];
      pT[pa + BR / 4u] = s[2];
      pT[pa + 2u * (BR / 4u)] = s[4];
      pT[pa + 3u * (BR / 4u)] = s[6];
      if (RV > 1u) {
        pT[pa + 8u] = s[1];
        pT[pa + 8u + BR / 4u] = s[3];
        pT[pa + 8u + 2u * (BR / 4u)] = s[5];
        pT[pa + 8u + 3u * (BR / 4u)] = s[7];
      }
      if (KV > 1u) {
        pT[pa + kq] = s[8];
        pT[pa + kq + BR / 4u] = s[10];
        pT[pa + kq + 2u * (BR / 4u)] = s[12];
        pT[pa + kq + 3u * (BR / 4u)] = s[14];
        if (RV > 1u) {
          pT[pa + kq + 8u] = s[9];
          pT[pa + kq + 8u + BR / 4u] = s[11];
          pT[pa + kq + 8u + 2u * (BR / 4u)] = s[13];
          pT[pa + kq + 8u + 3u * (BR / 4u)] = s[15];
        }
      }
    }
    workgroupBarrier();

    // ---- Phase 2: softmax of query row lid over this tile's keys. ----
    if (lid < BR) {
      let qa = lid / 4u;
      let e = lid % 4u;
      var mx = MASKED;
      for (var j = 0u; j < BC; j++) {
        mx = max(mx, pT[j * (BR / 4u) + qa][e]);
      }
      let mnew = max(m, mx);
      let alpha = exp2(m - mnew); // 0 on the first tile (m was MASKED), 1 when the max did not move
      var sum = 0.0;
      for (var j = 0u; j < BC; j++) {
        let p = exp2(pT[j * (BR / 4u) + qa][e] - mnew);
        sum += p;
        pT[j * (BR / 4u) + qa][e] = p * drop1(dkey, drow + k0 + j); // dropout factor: 1 without DROP
      }
      l = l * alpha + sum;
      m = mnew;
      rowstat[qa][e] = alpha;
    }
    workgroupBarrier();

    // ---- Phase 3: o = alpha * o + P V over the tile's keys. ----
    let al0 = rowstat[ty];
    let al1 = rowstat[ty + 8u * (RV - 1u)];
    o[0] *= al0.x; o[NC] *= al0.y; o[2u * NC] *= al0.z; o[3u * NC] *= al0.w;
    if (NC > 1u) { o[1] *= al0.x; o[NC + 1u] *= al0.y; o[2u * NC + 1u] *= al0.z; o[3u * NC + 1u] *= al0.w; }
    if (NC > 2u) { o[2] *= al0.x; o[NC + 2u] *= al0.y; o[2u * NC + 2u] *= al0.z; o[3u * NC + 2u] *= al0.w; }
    if (NC > 3u) { o[3] *= al0.x; o[NC + 3u] *= al0.y; o[2u * NC + 3u] *= al0.z; o[3u * NC + 3u] *= al0.w; }
    if (RV > 1u) {
      o[R1] *= al1.x; o[R1 + NC] *= al1.y; o[R1 + 2u * NC] *= al1.z; o[R1 + 3u * NC] *= al1.w;
      if (NC > 1u) {
        o[R1 + 1u] *= al1.x; o[R1 + NC + 1u] *= al1.y; o[R1 + 2u * NC + 1u] *= al1.z; o[R1 + 3u * NC + 1u] *= al1.w;
      }
    }
    let vd = min(dl, HS4 - 1u); // dim vec4 0 of this thread (clamped: past HS4 only garbage, never stored)
    let vd1 = min(dl + 8u, HS4 - 1u);
    let vd2 = min(dl + 16u, HS4 - 1u);
    let vd3 = min(dl + 24u, HS4 - 1u);
    let nchunks = (min(BC, qlast + 1u - k0) + KC - 1u) / KC; // chunks wholly past the last row hold p = 0
    for (var c0 = 0u; c0 < nchunks; c0++) {
      workgroupBarrier(); // phase 1's (or the previous chunk's) readers of `stage` are done
      stage_v(b, h, k0 + c0 * KC, lid);
      workgroupBarrier();
      for (var j = kp; j < KC; j += KS) {
        let pj = (c0 * KC + j) * (BR / 4u) + ty;
        let p0 = pT[pj];
        let p1 = pT[pj + 8u * (RV - 1u)];
        let va = j * HS4;
        let v0 = stage[va + vd];
        o[0] += p0.x * v0; o[NC] += p0.y * v0; o[2u * NC] += p0.z * v0; o[3u * NC] += p0.w * v0;
        if (NC > 1u) {
          let v1 = stage[va + vd1];
          o[1] += p0.x * v1; o[NC + 1u] += p0.y * v1; o[2u * NC + 1u] += p0.z * v1; o[3u * NC + 1u] += p0.w * v1;
          if (RV > 1u) {
            o[R1 + 1u] += p1.x * v1; o[R1 + NC + 1u] += p1.y * v1;
            o[R1 + 2u * NC + 1u] += p1.z * v1; o[R1 + 3u * NC + 1u] += p1.w * v1;
          }
        }
        if (NC > 2u) {
          let v2 = stage[va + vd2];
          o[2] += p0.x * v2; o[NC + 2u] += p0.y * v2; o[2u * NC + 2u] += p0.z * v2; o[3u * NC + 2u] += p0.w * v2;
        }
        if (NC > 3u) {
          let v3 = stage[va + vd3];
          o[3] += p0.x * v3; o[NC + 3u] += p0.y * v3; o[2u * NC + 3u] += p0.z * v3; o[3u * NC + 3u] += p0.w * v3;
        }
        if (RV > 1u) {
          o[R1] += p1.x * v0; o[R1 + NC] += p1.y * v0; o[R1 + 2u * NC] += p1.z * v0; o[R1 + 3u * NC] += p1.w * v0;
        }
      }
    }
  }

  // ---- Small heads: add the key parts into part 0, in part order (pT is free: the last tile is done). ----
  if (KS > 1u) { // then NC = 1: o[0 .. 4 RV) are the thread's outputs
    let slot = (ty * DL + dl) * 8u;
    for (var p = 1u; p < KS; p++) {
      workgroupBarrier();
      if (kp == p) {
        pT[slot] = o[0]; pT[slot + 1u] = o[1]; pT[slot + 2u] = o[2]; pT[slot + 3u] = o[3];
        if (RV > 1u) { pT[slot + 4u] = o[4]; pT[slot + 5u] = o[5]; pT[slot + 6u] = o[6]; pT[slot + 7u] = o[7]; }
      }
      workgroupBarrier();
      if (kp == 0u) {
        o[0] += pT[slot]; o[1] += pT[slot + 1u]; o[2] += pT[slot + 2u]; o[3] += pT[slot + 3u];
        if (RV > 1u) {
          o[4] += pT[slot + 4u]; o[5] += pT[slot + 5u]; o[6] += pT[slot + 6u]; o[7] += pT[slot + 7u];
        }
      }
    }
  }

  // ---- Normalise and store: out = o / l, lse = (m + log2 l) ln 2. ----
  workgroupBarrier();
  if (lid < BR) {
    let t = q0 + lid;
    if (t < T) { lse[(b * dims.NH + h) * T + t] = (m + log2(l)) * LN2; }
    rowstat[lid / 4u][lid % 4u] = 1.0 / l;
  }
  workgroupBarrier();
  let inv0 = rowstat[ty];
  let inv1 = rowstat[ty + 8u * (RV - 1u)];
  let ta = q0 + 4u * ty;
  if (kp != 0u) { return; } // small heads: part 0 holds the sums
  store_row(b, h, ta, dl, o[0] * inv0.x, o[1] * inv0.x, o[2] * inv0.x, o[3] * inv0.x);
  store_row(b, h, ta + 1u, dl, o[NC] * inv0.y, o[NC + 1u] * inv0.y, o[NC + 2u] * inv0.y, o[NC + 3u] * inv0.y);
  store_row(b, h, ta + 2u, dl, o[2u * NC] * inv0.z, o[2u * NC + 1u] * inv0.z, o[2u * NC + 2u] * inv0.z,
            o[2u * NC + 3u] * inv0.z);
  store_row(b, h, ta + 3u, dl, o[3u * NC] * inv0.w, o[3u * NC + 1u] * inv0.w, o[3u * NC + 2u] * inv0.w,
            o[3u * NC + 3u] * inv0.w);
  if (RV > 1u) {
    store_row(b, h, ta + 32u, dl, o[R1] * inv1.x, o[R1 + 1u] * inv1.x, vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 33u, dl, o[R1 + NC] * inv1.y, o[R1 + NC + 1u] * inv1.y, vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 34u, dl, o[R1 + 2u * NC] * inv1.z, o[R1 + 2u * NC + 1u] * inv1.z, vec4<f32>(), vec4<f32>());
    store_row(b, h, ta + 35u, dl, o[R1 + 3u * NC] * inv1.w, o[R1 + 3u * NC + 1u] * inv1.w, vec4<f32>(), vec4<f32>());
  }
}

// Stores this thread's dim vec4s dl + 8c (c < NC, those < HS4) of query row t (if t < T). Callers pass
// o[... + c] for c < 4 whatever NC is; the entries past NC are never stored (with RV = 2, NC <= 2).
fn store_row(b: u32, h: u32, t: u32, dl: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
  if (t >= dims.T) { return; }
  let a = (b * dims.T + t) * dims.C4 + h * HS4;
  if (dl < HS4) { out[a + dl] = vec4<OT>(v0); }
  if (NC > 1u && dl + 8u < HS4) { out[a + dl + 8u] = vec4<OT>(v1); }
  if (NC > 2u && dl + 16u < HS4) { out[a + dl + 16u] = vec4<OT>(v2); }
  if (NC > 3u && dl + 24u < HS4) { out[a + dl + 24u] = vec4<OT>(v3); }
}
