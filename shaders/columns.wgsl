// A block of columns copied between row-major matrices: the tied head's vocabulary slices when the token
// embedding is split across buffers (src/model/head.ts): one slice's logits [R, W] into their columns of
// the full-width logits [R, V], and those columns of the loss gradient back out into [R, W].
//
// Shapes: rows R, cols W; src [R, src_width] from column src_col, dst [R, dst_width] from column dst_col.
//   copy_columns: dst[r, dst_col + j] = src[r, src_col + j] for r < rows, j < cols (written; the rest of
//   dst is untouched).
// Element type T of both: f32, or f16 (the loss gradient in mixed precision); a copy, exact either way.
// Gradients: none (a copy).
// Grid: 1-D over rows * cols elements (Groups, flat_id: shaders/grid.wgsl, appended by the dispatcher).

struct Dims {
  rows: u32,
  cols: u32,
  src_width: u32,  // elements per row of src
  src_col: u32,    // first column read from src
  dst_width: u32,  // elements per row of dst
  dst_col: u32,    // first column written in dst
}

alias T = f32; // element type of src and dst: f32 or f16 (src/gpu/source.ts withTypes)

@group(0) @binding(0) var<storage, read_write> dst: array<T>;  // [rows, dst_width]
@group(0) @binding(1) var<storage, read> src: array<T>;        // [rows, src_width]
@group(0) @binding(2) var<uniform> dims: Dims;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn copy_columns(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.rows * dims.cols) { return; }
  let r = i / dims.cols;
  let j = i - r * dims.cols;
  dst[r * dims.dst_width + dims.dst_col + j] = src[r * dims.src_width + dims.src_col + j];
}
