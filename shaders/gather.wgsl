// Teacher-forcing batch gather: windows of the token corpus become inputs (the true tokens) and
// targets (the true next tokens), on the GPU, so a training step needs no token upload.
//
// Shapes: B windows of T positions; corpus u32 [n]; offsets u32 [M, B] and lengths u32 [M, B] for M
// micro-steps; seeds u32 [M]. Window b of micro-step m starts at o = offsets[m*B + b] and has
// len = lengths[m*B + b] usable tokens (T + 1 for a contiguous stream; less for a short padded example):
//   tokens[b, t]  = t     < len ? corpus[o + t]     : pad_id
//   targets[b, t] = t + 1 < len ? corpus[o + t + 1] : ignore_id     (ignored: no loss, no gradient)
// The micro-step's dropout seed is copied to rng[0] so dropout kernels replaying the same dispatches
// draw a fresh mask per micro-step. No gradients.

struct Dims { B: u32, T: u32, micro: u32, pad_id: u32, ignore_id: u32 }

@group(0) @binding(0) var<storage, read_write> tokens: array<u32>;   // [B, T]
@group(0) @binding(1) var<storage, read_write> targets: array<u32>;  // [B, T]
@group(0) @binding(2) var<storage, read_write> rng: array<u32>;      // [>= 1]
@group(0) @binding(3) var<storage, read> corpus: array<u32>;         // [n]
@group(0) @binding(4) var<storage, read> offsets: array<u32>;        // [M, B]
@group(0) @binding(5) var<storage, read> lengths: array<u32>;        // [M, B]
@group(0) @binding(6) var<storage, read> seeds: array<u32>;          // [M]
@group(0) @binding(7) var<uniform> dims: Dims;

override WG: u32 = 256;

// One thread per (b, t): Groups and flat_id of shaders/grid.wgsl, appended by the dispatcher.
@compute @workgroup_size(WG)
fn gather(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i == 0u) { rng[0] = seeds[dims.micro]; }
  if (i >= dims.B * dims.T) { return; }
  let b = i / dims.T;
  let t = i % dims.T;
  let o = offsets[dims.micro * dims.B + b];
  let len = lengths[dims.micro * dims.B + b];
  tokens[i] = select(dims.pad_id, corpus[o + t], t < len);
  targets[i] = select(dims.ignore_id, corpus[o + t + 1u], t + 1u < len);
}
