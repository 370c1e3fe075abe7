// Snippet appended by src/kernels/attention.ts to each blocked attention kernel (attention_forward.wgsl,
// attention_dkdv.wgsl, attention_dq.wgsl), which declares `var<workgroup> stage: array<vec4<f32>, STAGE>`.

// Stores 4 rows' vec4s at one dim quad (r0 .. r3: 4 consecutive rows, vec4s along dims) transposed: one vec4
// along the 4 rows per dim, at stage[at + k * stride] for dim k < 4.
fn stage_t4(at: u32, stride: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) {
  stage[at] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
  stage[at + stride] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
  stage[at + 2u * stride] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
  stage[at + 3u * stride] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
}
