// Token selection for generation: argmax, and temperature + top-k sampling, one workgroup per row.
// (shaders/hash.wgsl is prepended by src/gpu/source.ts withHash: pcg_hash, hash3, uniform01.)
//
// Shapes: N rows (sequences being generated), V ids considered (any V >= 1, e.g. 50257 or 65), S >= V
// the row stride: a model whose vocabulary is padded (nanoGPT's 50304 for GPT-2's 50257 tokens) has rows
// of S logits of which only the first V are tokens, so ids >= V are never chosen.
//   out    [N]     u32, written: the chosen token id of each row.
//   logits [N, S]  f32, read only.
//   rng    [1+]    u32, read only: rng[0] is the seed, rewritten by the caller for every generated token.
// No gradients: nothing here is differentiated. Logits must be free of NaN.
//
// argmax: the first index of the row's maximum.
// sample: temperature T > 0, top-k K (K = 0 or K >= V: the whole vocabulary), top-p P in (0, 1] (1: off).
//   Top-k keeps the logits >= the K-th largest value (ties at the threshold are all kept); then top-p
//   (nucleus, as Hugging Face: on the renormalised top-k distribution) keeps the smallest set of largest
//   logits whose probability reaches P: those >= the logit at which the running sum from the largest down
//   first reaches P (ties kept). p_i ~ exp((l_i - max) / T) over kept i, 0 elsewhere.
//   With u = uniform01(hash3(rng[0], stream, row0 + row)), the token is the smallest i (in id order)
//   whose running sum of p exceeds u * total. row0: the first row's index in a larger batch whose logits
//   come in chunks of rows (0 otherwise), so every chunk draws what the whole batch would.
//
// How sample works, per row (one workgroup of WG threads):
//  1. max of the row, fused with the histogram of the top 11 bits of each logit's order-preserving key
//     (the f32 bit pattern with negatives flipped, so unsigned order == float order).
//  2. top-k only: radix selection of the K-th largest key in three digit passes (11, 11, 10 bits): each
//     pass histograms the keys that share the digits chosen so far into 2048 workgroup bins, and a
//     workgroup scan over the bins (largest first) finds the bin where the count reaches K.
//  2b. top-p only (P < 1): the same selection weighted by probability mass. With S the f32 fixed-order
//     sum of the p that top-k kept (as in step 3), each kept token weighs w_i = round(p_i * 2^30 / S), a
//     u32 (WGSL has no float atomics); the bins add w, and the scan finds the key where the mass from the
//     largest key down reaches G = clamp(round(P * 2^30), 1, sum w). No sum overflows: sum w <=
//     2^30 (1 + e) + V / 2 < 2^32. Rounding: w_i / 2^30 = q_i (1 + d_i) + r_i, q_i the exact probability,
//     |r_i| <= 2^-31, |d_i| <= e = (C + 12) 2^-24 + the relative error of the f32 p_i (C = ceil(V / WG),
//     the depth of S's sum), so the mass of any n tokens is off by at most e + n 2^-31 (V = 50304: e is
//     1.3e-5 plus exp's part, n 2^-31 at most 2.3e-5). The kept set is the exact one unless the exact mass
//     of the n tokens above one of its boundaries lies within that (and P's f32 rounding, 2^-24) of P.
//  3. each thread sums p over its CONTIGUOUS chunk of C = ceil(V / WG) ids; a workgroup scan of the
//     chunk sums gives each chunk's starting cumulative sum (excl) and the total.
//  4. the first chunk with excl + sum > u * total (and sum > 0) is walked by the whole workgroup, WG ids at
//     a time, with another workgroup scan; the first id whose cumulative sum exceeds u * total wins. A
//     rounding miss falls back to the last id with p > 0 in that chunk (or, if no chunk exceeded u * total,
//     in the last chunk with a positive sum).
// All sums are in a fixed order, so the same logits and seed always give the same token.
// sample_threshold: the key of each row's smallest kept logit after top-k and top-p (0: all kept); tests.
// Grid: rows folded into (x, y) workgroups; row = wg.x + wg.y * nwg.x.

struct Dims {
  N: u32,
  V: u32,
  stride: u32,
  temperature: f32,
  top_k: u32,
  stream: u32,
  row0: u32,
  top_p: f32,
}

// Bindings, one number per variable across the file: argmax and threshold use 0, 1, 3; sample uses 0-3.
@group(0) @binding(0) var<storage, read_write> out: array<u32>;  // [N]
@group(0) @binding(1) var<storage, read> logits: array<f32>;     // [N, S]
@group(0) @binding(2) var<storage, read> rng: array<u32>;        // [1]: the seed
@group(0) @binding(3) var<uniform> dims: Dims;

override WG: u32 = 256; // threads per workgroup: a power of two dividing NBINS
const NBINS: u32 = 2048u; // radix bins (11-bit digits)
const NONE: u32 = 0xffffffffu;
const NEG_BIG: f32 = -3.402823e38;
const MASS_ONE: f32 = 1073741824.0; // 2^30: top-p's fixed-point unit of a whole row's probability

var<workgroup> bins: array<atomic<u32>, NBINS>;
var<workgroup> sm_f: array<f32, WG>;
var<workgroup> sm_u: array<u32, WG>;
var<workgroup> sel_bin: u32;
var<workgroup> sel_above: u32;
var<workgroup> sel_first: atomic<u32>;
var<workgroup> sel_last: atomic<u32>;
var<workgroup> sel_excl: f32;
var<workgroup> pick_first: atomic<u32>;
var<workgroup> pick_last: atomic<u32>;
var<workgroup> walk_pick: u32;
var<workgroup> mass_sum: atomic<u32>;

// A row's max logit and the key of its smallest kept logit (0: every logit kept).
struct Keep {
  rmax: f32,
  thresh: u32,
}

// Order-preserving key: key(a) < key(b) iff a < b for non-NaN floats; -0 is mapped to +0.
fn fkey(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Unnormalised probability of logit x: kept iff its key >= thresh (thresh 0 keeps everything).
fn prob(x: f32, rmax: f32, temperature: f32, thresh: u32) -> f32 {
  return select(0.0, exp((x - rmax) / temperature), fkey(x) >= thresh);
}

// Workgroup max of v (fixed tree), returned to every thread.
fn wg_max(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  sm_f[lid] = v;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { sm_f[lid] = max(sm_f[lid], sm_f[lid + stride]); }
  }
  return workgroupUniformLoad(&sm_f[0]);
}

// Inclusive workgroup scan of u32 (Hillis-Steele); sm_u holds the inclusive sums on return.
fn wg_scan_u32(lid: u32, v: u32) -> u32 {
  workgroupBarrier();
  sm_u[lid] = v;
  for (var off = 1u; off < WG; off <<= 1u) {
    workgroupBarrier();
    var t = 0u;
    if (lid >= off) { t = sm_u[lid - off]; }
    workgroupBarrier();
    sm_u[lid] += t;
  }
  workgroupBarrier();
  return sm_u[lid];
}

// Inclusive workgroup scan of f32 in a fixed order; sm_f holds the inclusive sums on return.
fn wg_scan_f32(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  sm_f[lid] = v;
  for (var off = 1u; off < WG; off <<= 1u) {
    workgroupBarrier();
    var t = 0.0;
    if (lid >= off) { t = sm_f[lid - off]; }
    workgroupBarrier();
    sm_f[lid] += t;
  }
  workgroupBarrier();
  return sm_f[lid];
}

// Radix step: with the bins filled, finds the bin (scanning from the largest) where the running count
// reaches kr. Returns (bin, count in the bins above it), the same in every thread.
fn select_bin(lid: u32, kr: u32) -> vec2<u32> {
  let per = NBINS / WG;
  var c = 0u;
  for (var j = 0u; j < per; j++) { c += atomicLoad(&bins[NBINS - 1u - (lid * per + j)]); }
  let incl = wg_scan_u32(lid, c);
  let excl = incl - c;
  if (excl < kr && kr <= incl) {
    var e = excl;
    for (var j = 0u; j < per; j++) {
      let b = NBINS - 1u - (lid * per + j);
      let n = atomicLoad(&bins[b]);
      if (e + n >= kr) {
        sel_bin = b;
        sel_above = e;
        break;
      }
      e += n;
    }
  }
  return vec2<u32>(workgroupUniformLoad(&sel_bin), workgroupUniformLoad(&sel_above));
}

// Histogram of digit (key >> shift) & mask over the keys whose bits above `match_shift` equal prefix's.
fn histogram(lid: u32, base: u32, V: u32, shift: u32, mask: u32, match_shift: u32, prefix: u32) {
  workgroupBarrier();
  for (var b = lid; b < NBINS; b += WG) { atomicStore(&bins[b], 0u); }
  workgroupBarrier();
  for (var i = lid; i < V; i += WG) {
    let k = fkey(logits[base + i]);
    if ((k >> match_shift) == (prefix >> match_shift)) {
      atomicAdd(&bins[(k >> shift) & mask], 1u);
    }
  }
  workgroupBarrier();
}

// Entry points: one workgroup per row, the row group_index (Groups, shaders/grid.wgsl, appended by the
// dispatcher); rows >= N return at once (uniform per workgroup).
@compute @workgroup_size(WG)
fn argmax(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let row = group_index(g);
  if (row >= dims.N) { return; }
  let V = dims.V;
  let base = row * dims.stride;
  var best = 0.0;
  var idx = NONE;
  for (var i = lid; i < V; i += WG) {
    let x = logits[base + i];
    if (idx == NONE || x > best) {
      best = x;
      idx = i;
    }
  }
  sm_f[lid] = best;
  sm_u[lid] = idx;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      let i2 = sm_u[lid + stride];
      let i1 = sm_u[lid];
      let v2 = sm_f[lid + stride];
      let v1 = sm_f[lid];
      if (i2 != NONE && (i1 == NONE || v2 > v1 || (v2 == v1 && i2 < i1))) {
        sm_f[lid] = v2;
        sm_u[lid] = i2;
      }
    }
  }
  workgroupBarrier();
  if (lid == 0u) { out[row] = select(sm_u[0], 0u, sm_u[0] == NONE); }
}

// Like histogram, but each key (bits above match_shift equal to prefix's; all keys for match_shift 32)
// adds its fixed-point mass w = round(p * scale) instead of 1; mass_sum receives the total added.
fn mass_histogram(lid: u32, base: u32, V: u32, shift: u32, mask: u32, match_shift: u32, prefix: u32,
                  keep: Keep, scale: f32) {
  workgroupBarrier();
  for (var b = lid; b < NBINS; b += WG) { atomicStore(&bins[b], 0u); }
  if (lid == 0u) { atomicStore(&mass_sum, 0u); }
  workgroupBarrier();
  var added = 0u;
  for (var i = lid; i < V; i += WG) {
    let x = logits[base + i];
    let k = fkey(x);
    if (match_shift >= 32u || (k >> match_shift) == (prefix >> match_shift)) {
      let w = u32(prob(x, keep.rmax, dims.temperature, keep.thresh) * scale + 0.5);
      if (w > 0u) {
        atomicAdd(&bins[(k >> shift) & mask], w);
        added += w;
      }
    }
  }
  atomicAdd(&mass_sum, added);
  workgroupBarrier();
}

// Sum of p over this thread's contiguous chunk of C = ceil(V / WG) ids, [lid * C, lid * C + C).
fn chunk_sum(lid: u32, base: u32, V: u32, keep: Keep) -> f32 {
  let C = (V + WG - 1u) / WG;
  let lo = min(lid * C, V);
  let hi = min(lo + C, V);
  var s = 0.0;
  for (var i = lo; i < hi; i++) { s += prob(logits[base + i], keep.rmax, dims.temperature, keep.thresh); }
  return s;
}

// Top-p (step 2b): the largest key t whose mass at or above t, among the keys `keep` keeps, reaches
// top_p of their total. The mass of the max is 2^30 / S >= 2^30 / V >= 1, so the goal is >= 1.
fn nucleus_threshold(lid: u32, base: u32, V: u32, keep: Keep) -> u32 {
  wg_scan_f32(lid, chunk_sum(lid, base, V, keep));
  let scale = MASS_ONE / sm_f[WG - 1u];
  mass_histogram(lid, base, V, 21u, 2047u, 32u, 0u, keep, scale);
  let goal = clamp(u32(round(dims.top_p * MASS_ONE)), 1u, atomicLoad(&mass_sum));
  var r = select_bin(lid, goal);
  var prefix = r.x << 21u;
  var kr = goal - r.y;
  mass_histogram(lid, base, V, 10u, 2047u, 21u, prefix, keep, scale);
  r = select_bin(lid, kr);
  prefix |= r.x << 10u;
  kr -= r.y;
  mass_histogram(lid, base, V, 0u, 1023u, 10u, prefix, keep, scale);
  r = select_bin(lid, kr);
  return prefix | r.x;
}

// Steps 1, 2 and 2b for the row at `base`: its max and the key of its smallest kept logit.
fn keep_threshold(lid: u32, base: u32) -> Keep {
  let V = dims.V;
  let K = dims.top_k;
  let do_topk = K > 0u && K < V;

  // 1. Row max, fused with the first radix digit's histogram (bits 31..21).
  for (var b = lid; b < NBINS; b += WG) { atomicStore(&bins[b], 0u); }
  workgroupBarrier();
  var m = NEG_BIG;
  for (var i = lid; i < V; i += WG) {
    let x = logits[base + i];
    m = max(m, x);
    if (do_topk) { atomicAdd(&bins[fkey(x) >> 21u], 1u); }
  }
  var keep = Keep(wg_max(lid, m), 0u);

  // 2. Radix selection of the K-th largest key: digits 31..21, 20..10, 9..0.
  if (do_topk) {
    var prefix = 0u;
    var kr = K;
    var r = select_bin(lid, kr);
    prefix = r.x << 21u;
    kr -= r.y;
    histogram(lid, base, V, 10u, 2047u, 21u, prefix);
    r = select_bin(lid, kr);
    prefix |= r.x << 10u;
    kr -= r.y;
    histogram(lid, base, V, 0u, 1023u, 10u, prefix);
    r = select_bin(lid, kr);
    prefix |= r.x;
    keep.thresh = prefix;
  }
  // 2b. Top-p among the logits top-k kept. P >= 1 skips it, so the result is bit for bit top-k's.
  if (dims.top_p < 1.0) { keep.thresh = nucleus_threshold(lid, base, V, keep); }
  return keep;
}

@compute @workgroup_size(WG)
fn sample_threshold(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let row = group_index(g);
  if (row >= dims.N) { return; }
  let keep = keep_threshold(lid, row * dims.stride);
  if (lid == 0u) { out[row] = keep.thresh; }
}

@compute @workgroup_size(WG)
fn sample(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let row = group_index(g);
  if (row >= dims.N) { return; }
  let V = dims.V;
  let base = row * dims.stride;
  if (lid == 0u) {
    atomicStore(&sel_first, NONE);
    atomicStore(&sel_last, 0u);
    atomicStore(&pick_first, NONE);
    atomicStore(&pick_last, 0u);
  }
  let keep = keep_threshold(lid, base);
  let rmax = keep.rmax;
  let thresh = keep.thresh;
  let temperature = dims.temperature;

  // 3. Contiguous chunk sums and their exclusive prefix.
  let C = (V + WG - 1u) / WG;
  let s = chunk_sum(lid, base, V, keep);
  wg_scan_f32(lid, s);
  var excl = 0.0;
  if (lid > 0u) { excl = sm_f[lid - 1u]; }
  let total = sm_f[WG - 1u];
  let u = uniform01(hash3(rng[0], dims.stream, dims.row0 + row));
  let goal = u * total;
  if (s > 0.0 && excl + s > goal) { atomicMin(&sel_first, lid); }
  if (s > 0.0) { atomicMax(&sel_last, lid); }
  workgroupBarrier();
  let first = atomicLoad(&sel_first);
  let fallback = first == NONE;
  let chosen = select(first, atomicLoad(&sel_last), fallback);
  if (lid == chosen) { sel_excl = excl; }
  var carry = workgroupUniformLoad(&sel_excl);

  // 4. Walk the chosen chunk WG ids at a time. pick_last holds 1 + the last id with p > 0 (0: none yet).
  let clo = min(chosen * C, V);
  let chi = min(clo + C, V);
  let ntiles = (C + WG - 1u) / WG;
  for (var t = 0u; t < ntiles; t++) {
    let i = clo + t * WG + lid;
    var p = 0.0;
    if (i < chi) { p = prob(logits[base + i], rmax, temperature, thresh); }
    let cum = wg_scan_f32(lid, p);
    let tile_total = sm_f[WG - 1u];
    if (!fallback && p > 0.0 && carry + cum > goal) { atomicMin(&pick_first, i); }
    if (p > 0.0) { atomicMax(&pick_last, i + 1u); }
    workgroupBarrier();
    if (lid == 0u) { walk_pick = atomicLoad(&pick_first); }
    if (workgroupUniformLoad(&walk_pick) != NONE) { break; }
    carry += tile_total;
  }
  if (lid == 0u) {
    let pf = atomicLoad(&pick_first);
    out[row] = select(pf, atomicLoad(&pick_last) - 1u, pf == NONE);
  }
}
