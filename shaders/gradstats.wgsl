// Gradient agreement between successive optimizer steps: the dot product of this step's gradient with the
// previous step's, and both squared norms, so the cosine similarity of successive gradients can be read
// back with the loss (a gradient-noise measure for the exposure-bias experiment). Optional; the trainer
// records it only when asked.
//
// Shapes: N = floats in the gradient arena (zero padding between tensors adds nothing); P = number of
// partial sums (<= MAX_PARTS, fixed by N alone); S = 3 stats.
//   grads   [N]     this step's gradient (read).
//   prev    [N]     the previous step's gradient on entry; this step's on exit (the copy is part of the
//                   pass: each element is read, then overwritten, by the one thread that owns it).
//   scratch [3, P]  partial sums (written by the partial stage, read by the finish).
// An arena spread over several buffers has one partial stage per buffer (its own n and parts, its partial
// sums at columns part0 .. part0 + parts - 1 of scratch [3, total]) and one finish over all `total`.
//   gstats  [S]     written: gstats[0] = sum g*p, gstats[1] = sum g*g, gstats[2] = sum p*p.
// Gradients: nothing here produces gradients; grads is only read.
//
// grad_cosine_partial: P workgroups; thread t = g*WG + lid walks i = t, t + P*WG, ... accumulating the three
//   sums, then a fixed tree in workgroup memory -> scratch[k*P + g] (k = 0, 1, 2).
// grad_cosine_finish: one workgroup sums scratch[k*P .. k*P + P) in the same fixed pattern -> gstats[k].
// Fixed order everywhere (no atomics), so the result is deterministic. cos = gstats[0] / sqrt(gstats[1] *
// gstats[2]) is formed on the CPU (0/0 at the first step, when prev is zero).

struct Dims {
  n: u32,
  parts: u32,  // partial: workgroups of this dispatch
  part0: u32,  // partial: column of its first partial sum in scratch
  total: u32,  // columns of scratch [3, total]: partial sums of all the partial dispatches
}

// Bindings, one number per variable across the file: partial uses 0, 1, 2, 4; finish 2, 3, 4.
@group(0) @binding(0) var<storage, read_write> prev: array<f32>;     // [N]
@group(0) @binding(1) var<storage, read> grads: array<f32>;          // [N]
@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;  // [3, P]
@group(0) @binding(3) var<storage, read_write> gstats: array<f32>;   // [3]
@group(0) @binding(4) var<uniform> dims: Dims;

override WG: u32 = 256; // threads per workgroup, a power of two

var<workgroup> tree: array<vec3<f32>, WG>;

// Sums tree[0..WG) into tree[0] in a fixed order; every thread of the workgroup must call it.
fn reduce_tree(lid: u32, v: vec3<f32>) -> vec3<f32> {
  tree[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { tree[lid] = tree[lid] + tree[lid + s]; }
    workgroupBarrier();
  }
  return tree[0];
}

@compute @workgroup_size(WG)
fn grad_cosine_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let stride = dims.parts * WG;
  var acc = vec3<f32>(0.0);
  for (var i = wg.x * WG + lid; i < dims.n; i += stride) {
    let g = grads[i];
    let p = prev[i];
    acc += vec3<f32>(g * p, g * g, p * p);
    prev[i] = g;
  }
  let total = reduce_tree(lid, acc);
  if (lid == 0u) {
    let j = dims.part0 + wg.x;
    scratch[j] = total.x;
    scratch[dims.total + j] = total.y;
    scratch[2u * dims.total + j] = total.z;
  }
}

@compute @workgroup_size(WG)
fn grad_cosine_finish(@builtin(local_invocation_index) lid: u32) {
  let P = dims.total;
  var acc = vec3<f32>(0.0);
  for (var j = lid; j < P; j += WG) {
    acc += vec3<f32>(scratch[j], scratch[P + j], scratch[2u * P + j]);
  }
  let total = reduce_tree(lid, acc);
  if (lid == 0u) {
    gstats[0] = total.x;
    gstats[1] = total.y;
    gstats[2] = total.z;
  }
}
