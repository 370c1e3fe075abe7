// Residual adds and dropout (nanoGPT: x = x + dropout(c_proj(y)), and dropout on the embeddings).
// Attention-probability dropout is NOT used: flash attention never materialises the probabilities, so
// there is nothing to drop; only these activation dropouts exist.
//
// Shapes: n = number of elements (B*T*C for the residual stream), flat; rng [>=1] u32, seed in rng[0].
// Gradients: activation gradients are WRITTEN (dinp = ...); add_in_place is the one accumulating op
// (acc += inp), used to add a branch gradient into the residual-stream gradient. The gradient of
// out = a + b is dout for both a and b, so residual_forward needs no backward kernel.
// Dropout mask: keep(i) = uniform01(hash3(seed, stream, i)) >= p, computed exactly as the integer test
// (h >> 8) >= threshold with threshold = ceil(p * 2^24) (uniform01(h) = (h >> 8) / 2^24, so the two are
// the same for every p). Kept values are scaled by scale = 1 / (1 - p). The backward regenerates the
// mask from (seed, stream, i): nothing is stored. `stream` is distinct per call site; the trainer
// writes a new seed into rng[0] every step.
// A dispatch must not bind one buffer both as an output (read_write) and as an input (read), so these
// are out of place: out must not alias inp / a / b (add_in_place is the in-place form).
// Grid: 1-D over n (Groups, flat_id: shaders/grid.wgsl, appended by the dispatcher).

struct Dims { n: u32, threshold: u32, scale: f32, stream: u32 }

// Bindings, one number per variable across the file: outputs, inputs, then dims.
@group(0) @binding(0) var<storage, read_write> out: array<f32>;   // [n]
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;   // [n]
@group(0) @binding(2) var<storage, read> a: array<f32>;           // [n]
@group(0) @binding(3) var<storage, read> b: array<f32>;           // [n]
@group(0) @binding(4) var<storage, read> inp: array<f32>;         // [n]
@group(0) @binding(5) var<storage, read> rng: array<u32>;         // [>=1], seed = rng[0]
@group(0) @binding(6) var<uniform> dims: Dims;

override WG: u32 = 256;

// x * scale where element i is kept, else 0 (select, so p = 1 gives 0 and never 0 * inf).
fn dropout(x: f32, i: u32) -> f32 {
  let h = hash3(rng[0], dims.stream, i);
  return select(0.0, x * dims.scale, (h >> 8u) >= dims.threshold);
}

// out = a + b.
@compute @workgroup_size(WG)
fn residual_forward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  out[i] = a[i] + b[i];
}

// acc += inp.
@compute @workgroup_size(WG)
fn add_in_place(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  acc[i] += inp[i];
}

// out = dropout(inp). Also the backward, with the forward's mask: d/dx (mask * x * scale) = mask * scale,
// so dinp = dropout(dout) (the dispatcher binds dinp as out and dout as inp).
@compute @workgroup_size(WG)
fn dropout_forward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  out[i] = dropout(inp[i], i);
}

// out = a + dropout(b): the residual add fused with the branch's dropout (one pass instead of two).
// Backward: da = dout (pass the gradient through), db = dropout of dout with the same stream.
@compute @workgroup_size(WG)
fn residual_dropout_forward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  out[i] = a[i] + dropout(b[i], i);
}
