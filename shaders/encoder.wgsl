// Token + position embedding ("encoder"): forward, and a deterministic backward.
//
// Shapes: B batch, T time (T <= block_size), C channels, V vocab, N = B*T positions; position n = b*T + t.
//   tokens u32 [B,T]; wte [V,C]; wpe [>=T,C] (only the first T rows are read); out, dout [B,T,C].
//   Indices are u32: N*C, V*C and T*C must stay below 2^32.
// Forward (written): out[b,t,c] = wte[tokens[b,t],c] + wpe[t,c]. A token id >= V contributes a ZERO token
//   embedding and nothing is read from wte for it (the tokenizer validates ids upstream; this only keeps a
//   bad id from reading out of bounds).
// Vocabulary slices (a token embedding split across buffers): wte, dwte bind rows v0 .. v0+vs-1 only (v0 = 0
// and vs = V when whole). The forward of the slice with v0 = 0 writes out = e + wpe with e = 0 for tokens
// outside it; every later slice adds e (out += e) to the rows of its tokens only, so each out element gets
// exactly wte[token] + wpe (float addition commutes). The dwte kernels of a slice add the runs of its
// tokens only. Range tests use u32 wrap-around: token - v0 < vs holds exactly for tokens in the slice.
// Backward: parameter gradients ACCUMULATE (+=):
//   dwpe[t,c] += sum_b dout[b,t,c]                         (one thread per (t,c), b in order)
//   dwte[v,c] += sum of dout[n,c] over positions n with tokens[n] == v, in increasing n order, via a
//   stable GPU sort of the positions by token. Positions whose token is >= V add nothing to dwte, and rows
//   of tokens that do not occur are neither read nor written.
//
// Determinism: no float atomics. Every float sum has one fixed order whatever the scheduling, so results are
// bitwise identical run to run. Integer atomics appear only in workgroup-local histogram counts, whose
// values do not depend on the order of the additions.
//
// dwte, step by step (key(n) = min(tokens[n], V): out-of-range ids share the last bucket V and are skipped):
//  1. LSD radix sort of the positions 0..N-1 by key, RADIX = 256 (8 bits a pass), ceil(bits(V)/8) passes
//     (1 pass for V <= 255, 2 for V <= 65535). Each pass is three kernels over chunks of SWG positions:
//     a. encoder_sort_hist:    chunk k counts its digits in workgroup memory -> hist[d * nchunks + k].
//     b. encoder_sort_binscan: scans each digit's row hist[d, 0..nchunks) exclusively (so it holds the
//        number of d's in earlier chunks) and writes the digit's total to tot[d].
//     c. encoder_sort_scatter: chunk k scans tot[] into digit starts, gives each position its rank among
//        equal digits earlier in the chunk (comparisons in workgroup memory), and writes it to
//        start[d] + hist[d, k] + rank. Equal digits keep their input order, so each pass is stable and the
//        final order is (key, position).
//  2. encoder_backward_wte: the sorted array is cut into segments of RWG positions; one workgroup per
//     (segment, block of RWG columns) walks the segment's runs of equal keys, one thread per column,
//     summing dout rows in sorted (= position) order. A run wholly inside the segment is added to dwte
//     directly. A bucket that spans segments leaves partial sums instead: tail[seg] for the run that starts
//     in the segment and continues past it, head[seg] for a run that began in an earlier segment.
//  3. encoder_backward_wte_combine: the segment holding a spanning bucket's first element sums tail[seg] +
//     head[seg+1] + head[seg+2] + ... in segment order and adds it to dwte.
// Work: O(N * SWG) integer comparisons per sort pass (the in-chunk ranks: linear in N, SWG = 256 per
// position), O(N + RADIX * nchunks) memory traffic per pass, O(N * C) float adds to sum the rows, and
// O(N / RWG * C) for the combine; no term grows with V (except the number of passes, by log V) and none
// with N^2. Every workgroup sums at most RWG rows, so a very frequent token does not serialise the step.
//
// Scratch (one u32 array; offsets in dims): sort ping-pong A and B [N] each, hist [RADIX * nchunks],
// tot [RADIX], head and tail [nseg * C] f32 each (stored as bits). Sizes: src/kernels/encoder.ts.
// Grids are 1-D over workgroups, folded into (x, y); linear group id = wg.x + wg.y * nwg.x.

struct Dims {
  B: u32,
  T: u32,
  C: u32,
  V: u32,
  v0: u32,         // first token id (row of the full wte) of the bound wte / dwte slice
  vs: u32,         // token ids (rows) in the bound slice
  N: u32,          // B*T
  C4: u32,         // C/4 (vec4 forward only)
  nchunks: u32,    // ceil(N / SWG): sort chunks
  shift: u32,      // this sort pass's digit: (key >> shift) & 255
  first: u32,      // 1 on the first pass: input is the identity order, not scratch[in_off..]
  in_off: u32,     // scratch offset of this pass's input order [N]
  out_off: u32,    // scratch offset of this pass's output order [N]
  hist_off: u32,   // scratch offset of hist [RADIX * nchunks]
  tot_off: u32,    // scratch offset of tot [RADIX]
  sorted_off: u32, // scratch offset of the final sorted positions [N]
  nseg: u32,       // ceil(N / RWG): segments of the sorted array
  col_blocks: u32, // ceil(C / RWG)
  head_off: u32,   // scratch offset of head partials [nseg * C] (f32 bits)
  tail_off: u32,   // scratch offset of tail partials [nseg * C] (f32 bits)
  scan_w: u32,     // lanes scanning one digit's row in encoder_sort_binscan: a power of two <= SWG
}

// Bindings, one number per variable across the file. encoder_forward uses out, tokens, wte, wpe;
// encoder_forward4 out4, tokens, wte4, wpe4; encoder_backward_wpe dwpe, dout; the sort kernels scratch,
// tokens; the wte kernels dwte, scratch, tokens, dout. All use dims.
@group(0) @binding(0) var<storage, read_write> out: array<f32>;         // [B,T,C]
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;  // [B,T,C/4]
@group(0) @binding(2) var<storage, read_write> dwte: array<f32>;        // [vs,C]: rows v0..v0+vs-1
@group(0) @binding(3) var<storage, read_write> dwpe: array<f32>;        // [>=T,C]
@group(0) @binding(4) var<storage, read_write> scratch: array<u32>;     // see above
@group(0) @binding(5) var<storage, read> tokens: array<u32>;            // [B,T]
@group(0) @binding(6) var<storage, read> wte: array<f32>;               // [vs,C]: rows v0..v0+vs-1
@group(0) @binding(7) var<storage, read> wte4: array<vec4<f32>>;        // [vs,C/4]
@group(0) @binding(8) var<storage, read> wpe: array<f32>;               // [>=T,C]
@group(0) @binding(9) var<storage, read> wpe4: array<vec4<f32>>;        // [>=T,C/4]
@group(0) @binding(10) var<storage, read> dout: array<f32>;             // [B,T,C]
@group(0) @binding(11) var<uniform> dims: Dims;

override WG: u32 = 256;   // forward and dwpe: threads per workgroup, one element each
override SWG: u32 = 256;  // sort: positions per chunk = threads per workgroup (a power of two)
override RWG: u32 = 128;  // dwte sums: positions per segment = columns per block = threads per workgroup
const RADIX: u32 = 256u;
const NONE: u32 = 0xffffffffu;

fn group_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + wg.y * nwg.x;
}

// ---------------------------------------------------------------------------------------------- forward

@compute @workgroup_size(WG)
fn encoder_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = group_id(wg, nwg) * WG + lid;
  if (i >= dims.N * dims.C) { return; }
  let n = i / dims.C;
  let c = i - n * dims.C;
  let t = n % dims.T;
  let tok = tokens[n] - dims.v0;
  let held = tok < dims.vs;
  var e = 0.0;
  if (held) { e = wte[tok * dims.C + c]; }
  if (dims.v0 == 0u) {
    out[i] = e + wpe[t * dims.C + c];
  } else if (held) {
    out[i] += e;
  }
}

// The same with four channels a thread, for C % 4 == 0.
@compute @workgroup_size(WG)
fn encoder_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = group_id(wg, nwg) * WG + lid;
  if (i >= dims.N * dims.C4) { return; }
  let n = i / dims.C4;
  let c = i - n * dims.C4;
  let t = n % dims.T;
  let tok = tokens[n] - dims.v0;
  let held = tok < dims.vs;
  var e = vec4<f32>(0.0);
  if (held) { e = wte4[tok * dims.C4 + c]; }
  if (dims.v0 == 0u) {
    out4[i] = e + wpe4[t * dims.C4 + c];
  } else if (held) {
    out4[i] += e;
  }
}

// ------------------------------------------------------------------------------------------------- dwpe

// dwpe[t,c] += sum_{b = 0..B-1} dout[b,t,c], summed in b order, one thread per (t,c).
@compute @workgroup_size(WG)
fn encoder_backward_wpe(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let i = group_id(wg, nwg) * WG + lid;  // t*C + c
  let tc = dims.T * dims.C;
  if (i >= tc) { return; }
  var acc = 0.0;
  for (var b = 0u; b < dims.B; b++) {
    acc += dout[b * tc + i];
  }
  dwpe[i] += acc;
}

// ------------------------------------------------------------------------------------------ radix sort

var<workgroup> wg_hist: array<atomic<u32>, RADIX>;
var<workgroup> scan_sh: array<u32, SWG>;
var<workgroup> chunk_digit: array<u32, SWG>;
var<workgroup> bin_start: array<u32, RADIX>;

// The position at index i of this pass's input order.
fn sort_input(i: u32) -> u32 {
  if (dims.first != 0u) { return i; }
  return scratch[dims.in_off + i];
}

fn key_of(pos: u32) -> u32 {
  return min(tokens[pos], dims.V);
}

fn digit_of(pos: u32) -> u32 {
  return (key_of(pos) >> dims.shift) & (RADIX - 1u);
}

// Segmented inclusive scan (Hillis-Steele, log2(w) steps): lanes are cut into aligned groups of w (a
// power of two dividing SWG), each scanned on its own. Returns (inclusive, total of the lane's group).
// Call in uniform control flow; scan_sh is free again when it returns.
fn wg_scan(lid: u32, x: u32, w: u32) -> vec2<u32> {
  scan_sh[lid] = x;
  workgroupBarrier();
  let lane = lid & (w - 1u);
  for (var off = 1u; off < w; off = off << 1u) {
    var y = 0u;
    if (lane >= off) { y = scan_sh[lid - off]; }
    workgroupBarrier();
    scan_sh[lid] += y;
    workgroupBarrier();
  }
  let r = vec2<u32>(scan_sh[lid], scan_sh[lid | (w - 1u)]);
  workgroupBarrier();
  return r;
}

// One workgroup per chunk k: hist[d * nchunks + k] = number of digit d among the chunk's positions.
@compute @workgroup_size(SWG)
fn encoder_sort_hist(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let k = group_id(wg, nwg);
  if (k >= dims.nchunks) { return; }
  for (var d = lid; d < RADIX; d += SWG) { atomicStore(&wg_hist[d], 0u); }
  workgroupBarrier();
  let i = k * SWG + lid;
  if (i < dims.N) { atomicAdd(&wg_hist[digit_of(sort_input(i))], 1u); }
  workgroupBarrier();
  for (var d = lid; d < RADIX; d += SWG) {
    scratch[dims.hist_off + d * dims.nchunks + k] = atomicLoad(&wg_hist[d]);
  }
}

// hist[d, k] <- sum_{j<k} hist[d, j] (exclusive), tot[d] <- sum_j hist[d, j]. Each digit's row is scanned
// by a group of scan_w lanes (scan_w = min(SWG, next power of two >= nchunks)), SWG / scan_w digits a
// workgroup, in tiles of scan_w chunks.
@compute @workgroup_size(SWG)
fn encoder_sort_binscan(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let w = dims.scan_w;
  let d = group_id(wg, nwg) * (SWG / w) + lid / w;
  let lane = lid & (w - 1u);
  let row = dims.hist_off + d * dims.nchunks;
  var carry = 0u;
  for (var k0 = 0u; k0 < dims.nchunks; k0 += w) {
    let k = k0 + lane;
    let ok = d < RADIX && k < dims.nchunks;
    var x = 0u;
    if (ok) { x = scratch[row + k]; }
    let r = wg_scan(lid, x, w);
    if (ok) { scratch[row + k] = carry + r.x - x; }
    carry += r.y;
  }
  if (lane == 0u && d < RADIX) { scratch[dims.tot_off + d] = carry; }
}

// One workgroup per chunk k: stable scatter of the chunk's positions into this pass's output order.
@compute @workgroup_size(SWG)
fn encoder_sort_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let k = group_id(wg, nwg);
  if (k >= dims.nchunks) { return; }
  let i = k * SWG + lid;
  var pos = 0u;
  var d = NONE;
  if (i < dims.N) {
    pos = sort_input(i);
    d = digit_of(pos);
  }
  chunk_digit[lid] = d;
  // bin_start[d] = number of positions with a smaller digit (exclusive scan of tot over digits).
  var carry = 0u;
  for (var d0 = 0u; d0 < RADIX; d0 += SWG) {
    let dd = d0 + lid;
    var x = 0u;
    if (dd < RADIX) { x = scratch[dims.tot_off + dd]; }
    let r = wg_scan(lid, x, SWG);
    if (dd < RADIX) { bin_start[dd] = carry + r.x - x; }
    carry += r.y;
  }
  workgroupBarrier();
  if (i < dims.N) {
    var rank = 0u;
    for (var j = 0u; j < lid; j++) {
      rank += select(0u, 1u, chunk_digit[j] == d);
    }
    let dest = bin_start[d] + scratch[dims.hist_off + d * dims.nchunks + k] + rank;
    scratch[dims.out_off + dest] = pos;
  }
}

// ------------------------------------------------------------------------------------------------- dwte

var<workgroup> seg_pos: array<u32, RWG>;
var<workgroup> seg_key: array<u32, RWG>;

fn sorted_key(s: u32) -> u32 {
  return key_of(scratch[dims.sorted_off + s]);
}

fn dout_at(pos: u32, c: u32) -> f32 {
  return dout[pos * dims.C + c];
}

// One workgroup per (segment, column block): sums of dout rows over the segment's runs of equal tokens.
@compute @workgroup_size(RWG)
fn encoder_backward_wte(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let gi = group_id(wg, nwg);
  let seg = gi / dims.col_blocks;
  if (seg >= dims.nseg) { return; }
  let cb = gi - seg * dims.col_blocks;
  let s0 = seg * RWG;
  let n = min(RWG, dims.N - s0);
  if (lid < n) {
    let p = scratch[dims.sorted_off + s0 + lid];
    seg_pos[lid] = p;
    seg_key[lid] = key_of(p);
  }
  workgroupBarrier();
  var key_prev = NONE;
  if (seg > 0u) { key_prev = sorted_key(s0 - 1u); }
  var key_next = NONE;
  if (s0 + n < dims.N) { key_next = sorted_key(s0 + n); }
  let c = cb * RWG + lid;
  let col_ok = c < dims.C;
  var i = 0u;
  loop {
    if (i >= n) { break; }
    let v = seg_key[i];
    var j = i + 1u;
    while (j < n && seg_key[j] == v) { j++; }
    if (v - dims.v0 < dims.vs && col_ok) {
      // Rows i..j-1 in order; four loads issued before their (ordered) adds.
      var acc = 0.0;
      var r = i;
      while (r + 4u <= j) {
        let a0 = dout_at(seg_pos[r], c);
        let a1 = dout_at(seg_pos[r + 1u], c);
        let a2 = dout_at(seg_pos[r + 2u], c);
        let a3 = dout_at(seg_pos[r + 3u], c);
        acc += a0;
        acc += a1;
        acc += a2;
        acc += a3;
        r += 4u;
      }
      while (r < j) {
        acc += dout_at(seg_pos[r], c);
        r++;
      }
      let began_before = i == 0u && v == key_prev;
      let goes_on = j == n && v == key_next;
      if (began_before) {
        scratch[dims.head_off + seg * dims.C + c] = bitcast<u32>(acc);
      } else if (goes_on) {
        scratch[dims.tail_off + seg * dims.C + c] = bitcast<u32>(acc);
      } else {
        dwte[(v - dims.v0) * dims.C + c] += acc;
      }
    }
    i = j;
  }
}

// One workgroup per (segment, column block): if a bucket starts in this segment and continues past it,
// dwte[v] += tail[seg] + head[seg+1] + ... over the following segments that begin with v, in order.
@compute @workgroup_size(RWG)
fn encoder_backward_wte_combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
  let gi = group_id(wg, nwg);
  let seg = gi / dims.col_blocks;
  if (seg >= dims.nseg) { return; }
  let cb = gi - seg * dims.col_blocks;
  let c = cb * RWG + lid;
  let s0 = seg * RWG;
  let s_next = s0 + RWG;  // first index of the next segment
  if (c >= dims.C || s_next >= dims.N) { return; }
  let v = sorted_key(s_next - 1u);
  if (v - dims.v0 >= dims.vs || sorted_key(s_next) != v) { return; }
  // The run continues past this segment; it is owned here unless it also began before this segment.
  if (seg > 0u && sorted_key(s0) == v && sorted_key(s0 - 1u) == v) { return; }
  var acc = bitcast<f32>(scratch[dims.tail_off + seg * dims.C + c]);
  for (var g = seg + 1u; g < dims.nseg; g++) {
    if (sorted_key(g * RWG) != v) { break; }
    acc += bitcast<f32>(scratch[dims.head_off + g * dims.C + c]);
  }
  dwte[(v - dims.v0) * dims.C + c] += acc;
}
