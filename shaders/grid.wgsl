// The 1-D grid of the elementwise kernels, appended by src/gpu/source.ts withGrid to a shader that declares
// `override WG` (threads per workgroup): n items run as ceil(n / WG) workgroups folded into (x, y) by
// src/gpu/kernel.ts grid, and an entry point taking `id: Grid1` finds its item as flat_id(id).
struct Grid1 {
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
}

// The invocation's item: the linear workgroup id wg.x + wg.y * nwg.x, times WG, plus the local index.
fn flat_id(id: Grid1) -> u32 {
  return (id.wg.x + id.wg.y * id.nwg.x) * WG + id.lid;
}
