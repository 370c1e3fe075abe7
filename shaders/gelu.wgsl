// Exact GELU, as torch.nn.GELU(): gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
//
// Shapes: N = number of elements (B*T*4C in the MLP), flat.
// Gradients: activation gradients are written (dinp = ...), never accumulated.
// WGSL has no erf: normal_cdf uses Abramowitz & Stegun 7.1.26 (|erf error| <= 1.5e-7).
// Grid: 1-D over N, folded into (x, y) workgroups; linear group id = wg.x + wg.y * nwg.x.
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
const SQRT1_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

// Phi(x) = 0.5 * erfc(-x / sqrt(2)). For x < 0 the tail 0.5 * erfc(|x|/sqrt(2)) is computed directly as
// poly * exp(-a^2), which keeps its relative accuracy instead of cancelling in 1 - erf.
fn normal_cdf(x: f32) -> f32 {
  let a = abs(x) * SQRT1_2;
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let half_erfc = 0.5 * poly * exp(-a * a);
  return select(1.0 - half_erfc, half_erfc, x < 0.0);
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= dims.n) { return; }
  let x = f32(inp[i]);
  out[i] = OT(x * normal_cdf(x));
}

// d/dx [x * Phi(x)] = Phi(x) + x * phi(x), phi the standard normal density.
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= dims.n) { return; }
  let x = f32(inp[i]);
  let cdf = normal_cdf(x);
  let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
  dinp[i] = GT(f32(dout[i]) * (cdf + x * pdf));
}
