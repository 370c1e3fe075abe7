// Autoregressive decoding with a KV cache, driven entirely by GPU-side state, so that many decode steps
// (embed -> blocks with kv_append + attention_decode -> head -> argmax/sample -> commit) can be recorded
// into ONE compute pass and replayed with no CPU round trip per token.
//
// Shapes: B batch (sequences decoded together), maxT the cache length (block size; positions 0..maxT-1),
// C channels, NH heads, HS = C / NH head size (a multiple of 4), HS4 = HS / 4, C4 = C / 4, V vocabulary.
//   state    [4]              u32, the decode state (read_write: only commit writes it):
//                               state[0] = pos, the position being processed now (0-based).
//                               state[1] = dropped count: commits that ran with pos + 1 >= maxT, so their
//                                          sampled tokens had no place in the row and were dropped. At most
//                                          1 when decoding stops at pos = maxT - 1 as it should; the caller
//                                          may read it to detect a rollout that ran off the end.
//                               state[2], state[3] reserved: never read or written here.
//   seq      [B, maxT]        u32, each sequence's tokens; the caller pre-fills the forced (gold) prefix.
//   x        [B, C]           f32, decode_embed output (written).
//   wte      [V, C], wpe [>= maxT, C]  f32 token and position embeddings.
//   qkv      [B, 3C]          f32, this position's c_attn output: q | k | v along the last dim, head h at
//                             columns h*HS .. h*HS+HS-1 of each (nanoGPT layout).
//   kcache, vcache [B, NH, maxT, HS]  f32, keys and values of positions 0..pos.
//   y        [B, C]           f32, attention_decode output (heads merged: y[b, h*HS + d]).
//   sampled  [B]              u32, the next-token choices made by argmax / sample (src/kernels/sample.ts).
//   rng      [1+]             u32, rng[0] is the sampling seed that the sample kernel reads.
// No gradients: nothing here is differentiated (inference / free-running rollouts only).
//
// Kernels, in the order a decode step records them:
//   decode_embed      x[b, c] = wte[seq[b, pos], c] + wpe[pos, c]; a token >= V gives a zero token embedding.
//   kv_append         kcache[b, h, pos, :] = k of qkv row b, vcache[b, h, pos, :] = v (per layer).
//   attention_decode  y[b, h*HS + d] = sum_{j <= pos} softmax_j(q . k_j / sqrt(HS)) v_j[d] (per layer).
//   commit            for each b: if pos + 1 >= forced_len (and pos + 1 < maxT) seq[b, pos + 1] = sampled[b],
//                     else the gold token already there stays; then pos += 1 and
//                     rng[0] = pcg_hash(rng[0] ^ new_pos), so the next replay of the sampling dispatch draws
//                     fresh randomness (new_pos is the advanced pos). If pos + 1 >= maxT nothing is written
//                     to seq, state[1] += 1, and pos saturates at maxT (the other kernels then do nothing).
// decode_embed, kv_append and attention_decode return without writing when pos >= maxT.
// Race freedom: pos is read once by thread 0 and broadcast with workgroupUniformLoad; in commit (a single
// workgroup) only thread 0 touches `state` and `rng`, after its one read of pos.
// Grids: decode_embed and kv_append are 1-D over B*C (resp. B*C4) threads, folded into (x, y); linear group
// id = wg.x + wg.y * nwg.x. attention_decode: one workgroup per (b, h), linear id = b * NH + h, folded the
// same way. commit: one workgroup.
//
// attention_decode, per workgroup (b, h), WG threads: q (pre-scaled by log2(e) / sqrt(HS), so exp2 does the
// softmax) sits in workgroup memory. The cache is walked in tiles of WG keys with an online softmax:
//   1. thread i scores key j = tile + i (the full HS-long dot product, vec4 loads) into `sc`;
//   2. a tree reduction gives the tile max; m_new = max(m, tile max);
//   3. thread i writes p_j = exp2(s_j - m_new) (0 for j > pos) into `sc`;
//   4. thread (r, c) with c = lid % HS4, r = lid / HS4 < R = WG / HS4 rescales its running vec4 sum and
//      weight sum by exp2(m - m_new) and adds p_j * v_j[c] and p_j for keys j = r, r + R, ... of the tile
//      (adjacent threads read adjacent vec4s of a value row).
// At the end the R partial sums of each column are added in order of r, then divided by the total weight.
// Every running quantity is rescaled to the same running max, so nothing overflows for any scores.

struct Dims {
  B: u32,
  maxT: u32,
  C: u32,          // decode_embed: channels of x, wte, wpe
  C4: u32,         // kv_append, attention_decode: C / 4
  NH: u32,         // kv_append, attention_decode: heads
  V: u32,          // decode_embed: rows of the bound wte (the vocabulary, or a slice's token ids)
  forced_len: u32, // commit: number of leading (given) tokens of every row
  v0: u32,         // decode_embed: first token id of the bound wte (0 unless wte is split in slices)
}

// Bindings, one number per variable across the file: decode_embed 0, 4, 5, 6, 7, 11; kv_append 1, 2, 7,
// 8, 11; attention_decode 1, 2, 3, 7, 8, 11; commit 4, 7, 9, 10, 11. `state` and `seq` are read_write
// everywhere because commit writes them; only commit does. The output x is named x_out because
// wgsl_reflect 1.6.0 counts pcg_hash's parameter `x` (shaders/hash.wgsl) as a use of a module variable `x`
// by every entry point that calls pcg_hash, which would make commit demand an `x` binding.
@group(0) @binding(0) var<storage, read_write> x_out: array<f32>;   // [B, C] (not `x`: see below)
@group(0) @binding(1) var<storage, read_write> kcache: array<vec4<f32>>;  // [B, NH, maxT, HS4]
@group(0) @binding(2) var<storage, read_write> vcache: array<vec4<f32>>;  // [B, NH, maxT, HS4]
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;       // [B, C4]
@group(0) @binding(4) var<storage, read_write> seq: array<u32>;           // [B, maxT]
@group(0) @binding(5) var<storage, read> wte: array<f32>;                 // [V, C]
@group(0) @binding(6) var<storage, read> wpe: array<f32>;                 // [>= maxT, C]
@group(0) @binding(7) var<storage, read_write> state: array<u32>;         // [4]
@group(0) @binding(8) var<storage, read> qkv: array<vec4<f32>>;           // [B, 3 * C4]
@group(0) @binding(9) var<storage, read_write> rng: array<u32>;           // [1+]
@group(0) @binding(10) var<storage, read> sampled: array<u32>;            // [B]
@group(0) @binding(11) var<uniform> dims: Dims;

override WG: u32 = 256u;  // threads per workgroup (attention_decode: a power of two >= HS4)
override HS4: u32 = 16u;  // attention_decode: head size / 4, at most 32 (HS <= 128)

const LOG2E: f32 = 1.4426950408889634;
const MASKED: f32 = -1.0e30; // stands in for -inf: exp2(MASKED - m) == 0 for any finite m

var<workgroup> wpos: u32;
var<workgroup> qs: array<vec4<f32>, HS4>;   // q of (b, h), scaled by log2(e) / sqrt(HS)
var<workgroup> sc: array<f32, WG>;          // a tile's scores, then its weights p
var<workgroup> red: array<f32, WG>;         // tile max reduction; end: the R weight sums
var<workgroup> acc_sm: array<vec4<f32>, WG>; // end: the R partial sums of each column

// pos, read once by thread 0 and broadcast (uniform control flow for everything that depends on it).
fn load_pos(lid: u32) -> u32 {
  if (lid == 0u) { wpos = state[0]; }
  return workgroupUniformLoad(&wpos);
}

// Entry points take Groups (group_index, flat_id: shaders/grid.wgsl, appended by the dispatcher).
@compute @workgroup_size(WG)
fn decode_embed(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let pos = load_pos(lid);
  let C = dims.C;
  let i = flat_id(g, lid);
  if (pos >= dims.maxT || i >= dims.B * C) { return; }
  let b = i / C;
  let c = i - b * C;
  // A token embedding split across buffers: the slice at v0 = 0 writes (a zero embedding for tokens past
  // it), the others add their tokens' rows; u32 wrap-around keeps tokens below v0 out of the slice.
  let tok = seq[b * dims.maxT + pos] - dims.v0;
  if (dims.v0 == 0u) {
    var e = wpe[pos * C + c];
    if (tok < dims.V) { e += wte[tok * C + c]; }
    x_out[i] = e;
  } else if (tok < dims.V) {
    x_out[i] += wte[tok * C + c];
  }
}

@compute @workgroup_size(WG)
fn kv_append(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let pos = load_pos(lid);
  let C4 = dims.C4;
  let i = flat_id(g, lid); // (b, c4)
  if (pos >= dims.maxT || i >= dims.B * C4) { return; }
  let b = i / C4;
  let c4 = i - b * C4;
  let h = c4 / HS4;
  let d = c4 - h * HS4;
  let dst = ((b * dims.NH + h) * dims.maxT + pos) * HS4 + d;
  let src = b * 3u * C4 + c4;
  kcache[dst] = qkv[src + C4];
  vcache[dst] = qkv[src + 2u * C4];
}

@compute @workgroup_size(WG)
fn attention_decode(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let pos = load_pos(lid);
  let NH = dims.NH;
  let bh = group_index(g); // b * NH + h
  if (pos >= dims.maxT || bh >= dims.B * NH) { return; } // uniform per workgroup
  let C4 = dims.C4;
  let b = bh / NH;
  let h = bh - b * NH;
  let scale = LOG2E / sqrt(f32(HS4 * 4u));
  if (lid < HS4) { qs[lid] = qkv[b * 3u * C4 + h * HS4 + lid] * scale; }
  workgroupBarrier();

  let cache0 = bh * dims.maxT * HS4; // row 0 of (b, h) in the caches
  let R = WG / HS4;
  let r = lid / HS4;
  let col = lid - r * HS4;
  let n = pos + 1u; // keys 0..pos
  var m = MASKED;
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var t0 = 0u; t0 < n; t0 += WG) {
    // 1. scores of this tile's keys
    let j = t0 + lid;
    var s = MASKED;
    if (j < n) {
      let kr = cache0 + j * HS4;
      var dotv = vec4<f32>(0.0);
      for (var d = 0u; d < HS4; d++) { dotv = fma(qs[d], kcache[kr + d], dotv); }
      s = dotv.x + dotv.y + dotv.z + dotv.w;
    }
    // 2. tile max
    red[lid] = s;
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
      workgroupBarrier();
      if (lid < stride) { red[lid] = max(red[lid], red[lid + stride]); }
    }
    let m_new = max(m, workgroupUniformLoad(&red[0]));
    // 3. weights
    sc[lid] = select(0.0, exp2(s - m_new), j < n);
    workgroupBarrier();
    // 4. rescale and accumulate this thread's keys of the tile
    let alpha = exp2(m - m_new);
    acc *= alpha;
    l *= alpha;
    m = m_new;
    if (r < R) {
      let len = min(WG, n - t0);
      for (var jj = r; jj < len; jj += R) {
        let p = sc[jj];
        acc = fma(vec4<f32>(p), vcache[cache0 + (t0 + jj) * HS4 + col], acc);
        l += p;
      }
    }
    workgroupBarrier(); // sc and red are rewritten by the next tile
  }
  // Combine the R partial sums of each column (same running max m in every thread).
  acc_sm[lid] = acc;
  red[lid] = l;
  workgroupBarrier();
  if (lid < HS4) {
    var sum = vec4<f32>(0.0);
    var tot = 0.0;
    for (var rr = 0u; rr < R; rr++) {
      sum += acc_sm[rr * HS4 + lid];
      tot += red[rr * HS4]; // the weight sum of group rr (every column of the group holds it)
    }
    y[b * C4 + h * HS4 + lid] = sum / tot;
  }
}

@compute @workgroup_size(WG)
fn commit(@builtin(local_invocation_index) lid: u32) {
  let pos = load_pos(lid);
  let maxT = dims.maxT;
  let room = pos < maxT - 1u; // there is a position pos + 1 in the row
  if (room && pos + 1u >= dims.forced_len) {
    for (var b = lid; b < dims.B; b += WG) { seq[b * maxT + pos + 1u] = sampled[b]; }
  }
  if (lid == 0u) {
    if (!room) { state[1] = state[1] + 1u; }
    let next = min(pos, maxT - 1u) + 1u; // pos + 1, saturating at maxT
    state[0] = next;
    rng[0] = pcg_hash(rng[0] ^ next);
  }
}
