// Snippet appended by src/kernels/attention.ts to every attention kernel but the delta (the blocked ones
// and attention_cpu.wgsl), which declares `dims` with T, drop_threshold, drop_scale and drop_stream, and
// (used with DROP only) `rng`. shaders/hash.wgsl is appended too.

// Dropout on the probabilities (DROP): the factor of probability (query t, key j) of head bh, 0 or
// 1 / (1 - p), kept when (pcg_hash(t * T + j ^ hash3(rng[0], drop_stream, bh)) >> 8) >= drop_threshold
// (src/reference/attention.ts attentionDropFactor draws the same). drop_key(bh) is the per-head part;
// drop1 takes the flat index t * T + j, drop4 key j against 4 queries qv. Without DROP every factor is 1.
// #if DROP
fn drop_key(bh: u32) -> u32 { return hash3(rng[0], dims.drop_stream, bh); }
fn drop1(key: u32, index: u32) -> f32 {
  return select(0.0, dims.drop_scale, (pcg_hash(index ^ key) >> 8u) >= dims.drop_threshold);
}
fn drop4(key: u32, qv: vec4<u32>, j: u32) -> vec4<f32> {
  let hh = pcg_hash4((qv * dims.T + vec4<u32>(j)) ^ vec4<u32>(key));
  return select(vec4<f32>(0.0), vec4<f32>(dims.drop_scale), (hh >> vec4<u32>(8u)) >= vec4<u32>(dims.drop_threshold));
}
// #else
fn drop_key(bh: u32) -> u32 { return 0u; }
fn drop1(key: u32, index: u32) -> f32 { return 1.0; }
fn drop4(key: u32, qv: vec4<u32>, j: u32) -> vec4<f32> { return vec4<f32>(1.0); }
// #endif
