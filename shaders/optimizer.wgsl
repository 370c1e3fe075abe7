// Optimizer over whole arenas: global gradient norm with clipping scale, then AdamW.
//
// Shapes: N = floats in each arena (params, grads, m, v all hold N floats with the same layout, zero padding
// between tensors); P = number of partial sums of the norm (<= MAX_PARTS, fixed by N alone); S = 2 stats.
// Parameters are laid out decay-first: weight decay applies to [0, decay_end), not to [decay_end, N).
// Gradients: nothing here produces gradients. grads is READ, never zeroed (the trainer clears it); params,
// m and v are updated in place.
//
// grad_norm_partial / grad_norm_finish: a two-stage deterministic reduction (fixed order, no atomics).
//   Stage 1: P workgroups; thread t = g*WG + lid sums grads[i]^2 for i = t, t + P*WG, t + 2*P*WG, ... (four
//   independent accumulators, in a fixed pattern), then a fixed tree in workgroup memory -> scratch[part0 + g].
//   An arena spread over several buffers has one stage 1 per buffer, each with its own P and its partial sums
//   after the previous buffers' (part0); stage 2 then runs once with P the total.
//   Stage 2: one workgroup sums scratch[0..P) the same way and writes
//     stats[0] = norm  = sqrt(sum of squares)
//     stats[1] = scale = (max_norm > 0 && norm > max_norm) ? max_norm / (norm + 1e-6) : 1
//   (torch.nn.utils.clip_grad_norm_ with its clamp to 1). A non-finite norm (NaN, or Inf from f32 overflow of
//   the squares) is written as is for the trainer to see, and its scale is 1: no clipping is attempted.
//     stats[2] = skipped = 0, stats[3] = loss scale = 1.
// grad_norm_finish_scaled (mixed precision, dynamic loss scaling as torch.cuda.amp.GradScaler): the grads were
//   computed from a loss multiplied by S = scaler[0]. Finite: stats = [norm / S, clip / S, 0, S], where clip is
//   the scale above for the unscaled norm; scaler[1] (steps since the last change) += 1, and when it reaches
//   growth_interval, S doubles and the count restarts. Non-finite (an f16 overflow somewhere in the backward):
//   stats = [norm, 0, 1, S], the step is skipped, S halves, the count restarts. The new S is what the next
//   step's loss gradient is multiplied by; this step's update uses the S it was computed with.
// adamw: one thread per element over N, 1-D grid folded into (x, y); linear group id = wg.x + wg.y * nwg.x.
// adamw4: the same arithmetic on 4 consecutive elements per thread through vec4 views of the arenas (N and
//   decay_end multiples of 4): fewer, wider loads and stores, which llvmpipe runs at about 2.3 times fewer
//   ns per element (bench/results/cpu_elementwise.md).
//   nothing at all when stats[2] != 0 (a skipped step: params, m, v untouched)
//   g = grads[i] * stats[1]
//   p = p * (1 - lr * weight_decay)           only for i < decay_end (decoupled decay, torch.optim.AdamW)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p = p - lr * (m / bc1) / (sqrt(v / bc2) + eps),   bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (t the 1-based step)
//   lr, bc1 and bc2 change every step (rewritten with Dispatch.update); 1 - beta1 and 1 - beta2 come from the
//   CPU in float64 (f32 1 - 0.999 alone is off by 1.3e-5). With eps > 0, an element whose p, g, m and v are
//   all zero (arena padding) stays exactly zero.

// One struct for the file: the norm entry points read n, parts, max_norm; adamw reads the rest and n.
struct Dims {
  n: u32,
  parts: u32,
  part0: u32,      // grad_norm_partial: index of its first partial sum in scratch
  decay_end: u32,
  max_norm: f32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  eps: f32,
  weight_decay: f32,
  bc1: f32,
  bc2: f32,
  growth_interval: u32,
}

// Bindings, one number per variable across the file: partial uses 1, 5, 6; finish 0, 1, 6; finish_scaled
// 0, 1, 6, 7; adamw 0, 2-6; adamw4 0, 6, 8-11.
@group(0) @binding(0) var<storage, read_write> stats: array<f32>;    // [4]: norm, multiplier, skipped, S
@group(0) @binding(1) var<storage, read_write> scratch: array<f32>;  // [P] partial sums of squares
@group(0) @binding(2) var<storage, read_write> params: array<f32>;   // [N]
@group(0) @binding(3) var<storage, read_write> m: array<f32>;        // [N] first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>;        // [N] second moment
@group(0) @binding(5) var<storage, read> grads: array<f32>;          // [N]
@group(0) @binding(6) var<uniform> dims: Dims;
@group(0) @binding(7) var<storage, read_write> scaler: array<f32>;   // [2]: loss scale S, steps since change
@group(0) @binding(8) var<storage, read_write> params4: array<vec4<f32>>; // [N / 4], adamw4's views
@group(0) @binding(9) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> v4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> grads4: array<vec4<f32>>;

override WG: u32 = 256;  // threads per workgroup, a power of two (the partial sums: 8 on llvmpipe)

var<workgroup> tree: array<f32, WG>;

// Sums tree[0..WG) into tree[0] in a fixed order; every thread of the workgroup must call it.
fn reduce_tree(lid: u32, x: f32) -> f32 {
  tree[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { tree[lid] = tree[lid] + tree[lid + s]; }
    workgroupBarrier();
  }
  return tree[0];
}

fn sq(i: u32) -> f32 {
  if (i >= dims.n) { return 0.0; }
  let g = grads[i];
  return g * g;
}

@compute @workgroup_size(WG)
fn grad_norm_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let stride = dims.parts * WG;
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  var i = wg.x * WG + lid;
  // 4 loads in flight per thread; i stays < n + 4 * stride, far below 2^32 for any bindable buffer.
  for (; i < dims.n; i += 4u * stride) {
    a0 += sq(i);
    a1 += sq(i + stride);
    a2 += sq(i + 2u * stride);
    a3 += sq(i + 3u * stride);
  }
  let total = reduce_tree(lid, (a0 + a1) + (a2 + a3));
  if (lid == 0u) { scratch[dims.part0 + wg.x] = total; }
}

const EXP_MASK: u32 = 0x7f800000u;

fn is_finite(x: f32) -> bool {
  // On the bits: compilers may assume no NaN/Inf in float comparisons.
  return (bitcast<u32>(x) & EXP_MASK) != EXP_MASK;
}

// The clipping scale for a finite norm.
fn clip_scale(norm: f32) -> f32 {
  if (dims.max_norm > 0.0 && norm > dims.max_norm) { return dims.max_norm / (norm + 1e-6); }
  return 1.0;
}

// Sum of the partial sums, by every thread (fixed order); the square root of the total.
fn total_norm(lid: u32) -> f32 {
  var acc = 0.0;
  for (var j = lid; j < dims.parts; j += WG) { acc += scratch[j]; }
  return sqrt(reduce_tree(lid, acc));
}

@compute @workgroup_size(WG)
fn grad_norm_finish(@builtin(local_invocation_index) lid: u32) {
  let norm = total_norm(lid);
  if (lid == 0u) {
    var scale = 1.0;
    if (is_finite(norm)) { scale = clip_scale(norm); }
    stats[0] = norm;
    stats[1] = scale;
    stats[2] = 0.0;
    stats[3] = 1.0;
  }
}

@compute @workgroup_size(WG)
fn grad_norm_finish_scaled(@builtin(local_invocation_index) lid: u32) {
  let scaled = total_norm(lid);
  if (lid == 0u) {
    let s = scaler[0];
    if (is_finite(scaled)) {
      let norm = scaled / s;
      stats[0] = norm;
      stats[1] = clip_scale(norm) / s;
      stats[2] = 0.0;
      let good = scaler[1] + 1.0;
      if (good >= f32(dims.growth_interval)) {
        scaler[0] = s * 2.0;
        scaler[1] = 0.0;
      } else {
        scaler[1] = good;
      }
    } else {
      stats[0] = scaled;
      stats[1] = 0.0;
      stats[2] = 1.0;
      scaler[0] = s * 0.5;
      scaler[1] = 0.0;
    }
    stats[3] = s;
  }
}

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + lid;
  if (i >= dims.n || stats[2] != 0.0) { return; }
  let g = grads[i] * stats[1];
  var p = params[i];
  if (i < dims.decay_end) { p = p * (1.0 - dims.lr * dims.weight_decay); }
  let mi = dims.beta1 * m[i] + dims.one_minus_beta1 * g;
  let vi = dims.beta2 * v[i] + dims.one_minus_beta2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  params[i] = p - dims.lr * (mi / dims.bc1) / (sqrt(vi / dims.bc2) + dims.eps);
}

@compute @workgroup_size(WG)
fn adamw4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + lid; // elements 4i .. 4i + 3
  if (4u * i >= dims.n || stats[2] != 0.0) { return; }
  let g = grads4[i] * stats[1];
  var p = params4[i];
  if (4u * i < dims.decay_end) { p = p * (1.0 - dims.lr * dims.weight_decay); }
  let mi = dims.beta1 * m4[i] + dims.one_minus_beta1 * g;
  let vi = dims.beta2 * v4[i] + dims.one_minus_beta2 * (g * g);
  m4[i] = mi;
  v4[i] = vi;
  params4[i] = p - dims.lr * (mi / dims.bc1) / (sqrt(vi / dims.bc2) + dims.eps);
}
