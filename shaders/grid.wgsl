// The grids of workgroups folded into (x, y) by src/gpu/kernel.ts grid, appended by src/gpu/source.ts
// withGrid to a shader that declares `override WG` (threads per workgroup). An entry point taking
// `g: Groups` finds its workgroup's linear id as group_index(g) (a kernel with a row or chunk per
// workgroup) and, with its local index, its item as flat_id(g, lid) (one item per invocation). Groups holds
// only workgroup-uniform builtins, so values derived from it stay uniform for barriers.
struct Groups {
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
}

// The linear workgroup id: wg.x + wg.y * nwg.x.
fn group_index(g: Groups) -> u32 {
  return g.wg.x + g.wg.y * g.nwg.x;
}

// The invocation's item: the linear workgroup id times WG, plus the local index.
fn flat_id(g: Groups, lid: u32) -> u32 {
  return group_index(g) * WG + lid;
}
