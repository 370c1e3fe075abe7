// Storage type conversion: the f16 working copy of f32 tensors (mixed-precision training reads its matmul
// weights from an f16 copy of the parameter arena, refreshed from the f32 master weights every forward).
//
// Shapes: N = number of floats, a multiple of 4 (an arena's total: tensors padded to 128 floats).
//   inp [N] f32 read as N/4 vec4s;  out [N] f16 written as N/4 vec4<f16>s.
// Rounding: f32 -> f16 round to nearest even; |x| > 65504 becomes +-Inf (weights never get there).
// Gradients: none (a copy).
// Grid: 1-D over N/4 vec4s (Groups, flat_id: shaders/grid.wgsl, appended by the dispatcher).
enable f16;

struct Dims { n4: u32 } // N / 4

@group(0) @binding(0) var<storage, read_write> out: array<vec4<f16>>; // [N/4]
@group(0) @binding(1) var<storage, read> inp: array<vec4<f32>>;       // [N/4]
@group(0) @binding(2) var<uniform> dims: Dims;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn cast_f16(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.n4) { return; }
  out[i] = vec4<f16>(inp[i]);
}
