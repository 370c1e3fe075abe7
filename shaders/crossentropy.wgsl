// Fused log-softmax cross-entropy (loss and dlogits in one kernel), its forward-only twin, and the
// deterministic loss-sum accumulator.
//
// Shapes: N rows (= B*T positions), V vocabulary (any V >= 1, not a multiple of anything).
//   logits     [N, V]  f32, read_write: crossentropy_forward_backward overwrites it with dlogits IN PLACE,
//                      unless built with OUT (see below).
//   dlogits    [N, V]  GT (f32 or f16), written by crossentropy_forward_backward built with OUT.
//   losses     [N]     f32, written: losses[n] = -log softmax(logits[n])[targets[n]].
//   acc        [2]     f32, accumulated: acc[0] += sum(losses), acc[1] += count(targets != ignore_index).
//   targets    [N]     u32, each < V or equal to ignore_index.
//   loss_scale [>= 1]  f32, read by crossentropy_forward_backward built with LOSS_SCALE: element
//                      dims.loss_scale_index is the dynamic loss scale of mixed-precision training.
// Gradients: dlogits is an activation gradient and is WRITTEN (=):
//   dlogits[n, v] = (softmax(logits[n])[v] - (v == targets[n])) * scale * loss_scale[loss_scale_index]
// (the last factor only with LOSS_SCALE; the losses are never scaled). An f16 dlogits is the f32 value
// rounded; a value beyond the f16 range becomes +-Inf, which is how the caller detects overflow.
// Rows whose target equals ignore_index (0xFFFFFFFF means "no index is ignored") get loss 0 and an
// all-zero gradient row. A target >= V that is not ignore_index is a caller error (the loss is then
// meaningless).
// Variants, chosen by the dispatcher with a line preprocessor (`// #if FLAG` / `// #else` / `// #endif`,
// no nesting; src/kernels/crossentropy.ts blanks the lines of the branch not taken, so line numbers
// stay): OUT writes the gradient to dlogits and leaves logits untouched; LOSS_SCALE multiplies it by
// loss_scale[dims.loss_scale_index]. Without flags the file is the in-place, unscaled kernel.
// Stability: per thread an online (max, sum of exp(x - max)) pair, merged over the workgroup by a fixed
// tree, so logits of +-1e4 stay finite; loss = (max - x[target]) + log(sum).
// Grid: one workgroup per row, rows folded into (x, y) workgroups (shaders/grid.wgsl group_index). Each row
// is read twice (reduction, then the gradient write): a 50304-float row fits no workgroup memory.
// accumulate_loss runs as ONE workgroup: strided per-thread sums in index order, then a fixed tree, so
// the result is bitwise reproducible run to run (no float atomics).

struct Dims {
  N: u32,
  V: u32,
  scale: f32,
  ignore_index: u32,
  loss_scale_index: u32,
}

alias GT = f32; // element type of dlogits: f32 or f16 (src/gpu/source.ts withTypes)

// Bindings, one number per variable across the file: forward_backward uses 0 or 1 (OUT), 2, 4, 5
// (LOSS_SCALE), 6; forward uses 0, 2, 4, 6; accumulate_loss uses 2, 3, 4, 6.
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;  // [N, V] in (and dlogits out in place)
@group(0) @binding(1) var<storage, read_write> dlogits: array<GT>;  // [N, V] out (OUT)
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;  // [N]
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;     // [2]
@group(0) @binding(4) var<storage, read> targets: array<u32>;       // [N]
@group(0) @binding(5) var<storage, read> loss_scale: array<f32>;    // [>= 1] (LOSS_SCALE)
@group(0) @binding(6) var<uniform> dims: Dims;

override WG: u32 = 256; // threads per workgroup, a power of two
const NEG_BIG: f32 = -3.402823e38; // stands in for -inf: exp(NEG_BIG - x) = 0 and never NaN

var<workgroup> sm_max: array<f32, WG>;
var<workgroup> sm_sum: array<f32, WG>;
var<workgroup> sm_cnt: array<u32, WG>;

// Loss (and, when write_grad, dlogits) of one row. Called in uniform control flow by the whole workgroup.
fn ce_row(row: u32, lid: u32, write_grad: bool) {
  let V = dims.V;
  let base = row * V;
  let t = targets[row];
  if (t == dims.ignore_index) {
    if (write_grad) {
      for (var i = lid; i < V; i += WG) {
// #if OUT
        dlogits[base + i] = GT(0.0);
// #else
        logits[base + i] = 0.0;
// #endif
      }
    }
    if (lid == 0u) { losses[row] = 0.0; }
    return;
  }
  // Read the target's logit before any thread can overwrite the row with its gradient (in place).
  let xt = logits[base + min(t, V - 1u)];
  var m = NEG_BIG;
  var s = 0.0;
  for (var i = lid; i < V; i += WG) {
    let x = logits[base + i];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }
  sm_max[lid] = m;
  sm_sum[lid] = s;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      let m1 = sm_max[lid];
      let m2 = sm_max[lid + stride];
      let mm = max(m1, m2);
      sm_sum[lid] = sm_sum[lid] * exp(m1 - mm) + sm_sum[lid + stride] * exp(m2 - mm);
      sm_max[lid] = mm;
    }
  }
  workgroupBarrier();
  let rmax = sm_max[0];
  let rsum = sm_sum[0];
  if (lid == 0u) { losses[row] = (rmax - xt) + log(rsum); }
  if (write_grad) {
    var sc = dims.scale;
// #if LOSS_SCALE
    sc *= loss_scale[dims.loss_scale_index];
// #endif
    let k = sc / rsum;
    for (var i = lid; i < V; i += WG) {
      let p = exp(logits[base + i] - rmax) * k;
      let g = select(p, p - sc, i == t);
// #if OUT
      dlogits[base + i] = GT(g);
// #else
      logits[base + i] = g;
// #endif
    }
  }
}

// The workgroup's row (Groups, group_index: shaders/grid.wgsl, appended by the dispatcher).
fn ce_rows(g: Groups, lid: u32, write_grad: bool) {
  let row = group_index(g);
  if (row < dims.N) { ce_row(row, lid, write_grad); }
}

@compute @workgroup_size(WG)
fn crossentropy_forward_backward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  ce_rows(g, lid, true);
}

// Forward only (evaluation): losses written, logits left untouched.
@compute @workgroup_size(WG)
fn crossentropy_forward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  ce_rows(g, lid, false);
}

// acc[0] += sum(losses[0..N)), acc[1] += #{n : targets[n] != ignore_index}. Dispatch exactly 1 workgroup.
@compute @workgroup_size(WG)
fn accumulate_loss(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var c = 0u;
  for (var i = lid; i < dims.N; i += WG) {
    s += losses[i];
    c += select(0u, 1u, targets[i] != dims.ignore_index);
  }
  sm_sum[lid] = s;
  sm_cnt[lid] = c;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      sm_sum[lid] += sm_sum[lid + stride];
      sm_cnt[lid] += sm_cnt[lid + stride];
    }
  }
  workgroupBarrier();
  if (lid == 0u) {
    acc[0] += sm_sum[0];
    acc[1] += f32(sm_cnt[0]);
  }
}
