// Counter-based random numbers, shared by dropout and sampling (prepended to their shader source).
// pcg_hash is the PCG-RXS-M-XS output permutation used as a hash (Jarzynski & Olano 2020): one u32 in,
// one well-mixed u32 out. hash3 chains it over (seed, stream, index), so any element's random number
// can be regenerated from its coordinates alone (dropout backward needs no stored mask).
// src/util/hash.ts is the bit-exact CPU twin.

fn pcg_hash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn hash3(seed: u32, stream: u32, index: u32) -> u32 {
  return pcg_hash(index ^ pcg_hash(stream ^ pcg_hash(seed)));
}

// pcg_hash of 4 values at once (the attention kernels' dropout: pcg_hash(index ^ hash3(seed, stream, head))
// over a vec4 of indices).
fn pcg_hash4(x: vec4<u32>) -> vec4<u32> {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> vec4<u32>(28u)) + 4u)) ^ state) * 277803737u;
  return (word >> vec4<u32>(22u)) ^ word;
}

// Uniform in [0, 1) with 24 random bits (every value exact in f32).
fn uniform01(h: u32) -> f32 {
  return f32(h >> 8u) * (1.0 / 16777216.0);
}
