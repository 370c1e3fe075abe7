// Exact GELU, as torch.nn.GELU(): gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
//
// Shapes: N = number of elements (B*T*4C in the MLP), flat.
// Gradients: activation gradients are written (dinp = ...), never accumulated.
// gelu, gelu_grad: shaders/gelu_math.wgsl, appended by the dispatcher (withGeluMath).
// Grid: 1-D over N (Groups, flat_id: shaders/grid.wgsl, appended by the dispatcher).
// Storage types: each array's element type is f32 or f16, chosen by the dispatcher (src/gpu/source.ts
// withTypes rewrites the alias lines below); arithmetic is f32, f16 is converted on load and rounded on
// store.

struct Dims { n: u32 }

alias IT = f32; // inp (read by both passes)
alias OT = f32; // out
alias DT = f32; // dout
alias GT = f32; // dinp

// Bindings, one number per variable across the file: forward uses 0-2, backward 1-4.
@group(0) @binding(0) var<storage, read_write> out: array<OT>;  // [N]
@group(0) @binding(1) var<storage, read> inp: array<IT>;        // [N]
@group(0) @binding(2) var<uniform> dims: Dims;
@group(0) @binding(3) var<storage, read_write> dinp: array<GT>; // [N]
@group(0) @binding(4) var<storage, read> dout: array<DT>;       // [N]

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn gelu_forward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  out[i] = OT(gelu(f32(inp[i])));
}

@compute @workgroup_size(WG)
fn gelu_backward(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n) { return; }
  dinp[i] = GT(f32(dout[i]) * gelu_grad(f32(inp[i])));
}
