// Token plumbing of the exposure-bias training modes (src/train/modes.ts): free-running rollouts and the
// scheduled-sampling mix. They move token ids between the teacher-forcing batch and the KV-cache decoder,
// inside the step's one submission, so no token ever goes through the CPU.
//
// Shapes: B rows (sequences), T positions of the training window, maxT >= T the decoder's row length
// (block_size), N = B * T.
//   tokens     [B, T]     u32, the model's inputs: gold after gather; rewritten here with model predictions.
//   targets    [B, T]     u32, gold next tokens. targets[b, t - 1] == ignore_id means input t is padding
//                         (no gold token there), so it is never replaced.
//   seq        [B, maxT]  u32, the decoder's rows (shaders/decode.wgsl).
//   roll_state [4]        u32, the decoder's state (decode.wgsl `state`: [0] pos, [1] dropped count).
//   roll_rng   [1+]       u32, the decoder's sampling seed (decode.wgsl `rng`; commit rehashes it per step).
//   pred       [N]        u32, one predicted token per position of a teacher-forced pass: pred[b*T + t] is the
//                         model's choice for token t + 1 (made at position t).
//   rng        [1+]       u32, rng[0] is the micro-step seed (written by gather), only read here.
// No gradients: token choices are not differentiable; training treats the rewritten tokens as given inputs.
//
// Entry points (1-D grids over B*T threads: Groups and flat_id of shaders/grid.wgsl, appended):
//   rollout_begin   seq[b, t] = tokens[b, t] for t < T (the gold window; the decoder keeps positions
//                   < prefix and overwrites the rest); thread 0 resets roll_state[0..4) = 0 and sets
//                   roll_rng[0] = hash3(rng[0], stream, 0), a fresh sampling stream per micro-step.
//   rollout_end     tokens[b, t] = seq[b, t] for prefix <= t < T where targets[b, t - 1] != ignore_id;
//                   other positions are left as they are.
//   ss_mix          for 1 <= t < T with targets[b, t - 1] != ignore_id:
//                     u = uniform01(hash3(rng[0], stream, b*T + t));
//                     tokens[b, t] = u < eps ? tokens[b, t] (gold, kept) : pred[b*T + t - 1].
//                   Position 0 and padding stay gold. eps = 1 keeps every token (uniform01 < 1), eps = 0
//                   replaces every one. The CPU twin is src/reference/modes.ts.
// Race freedom: each thread reads and writes only its own (b, t); in rollout_begin thread 0 alone writes
// roll_state and roll_rng.
//
// Note: module variables avoid the names of hash.wgsl's locals and parameters (x, state, word, seed,
// stream, index, h): wgsl_reflect 1.6.0 counts those as uses of a module variable of the same name.

struct Dims {
  B: u32,
  T: u32,
  maxT: u32,
  prefix: u32,    // rollout_end: first position taken from the rollout (>= 1)
  ignore_id: u32, // target id that marks padding (0xffffffff: none)
  stream: u32,    // hash stream of rollout_begin's seed and of ss_mix's coins
  eps: f32,       // ss_mix: probability of keeping the gold token
}

// Bindings, one number per variable across the file: rollout_begin 0, 1, 2, 3, 6, 7; rollout_end 0, 1, 4,
// 7; ss_mix 0, 4, 5, 6, 7.
@group(0) @binding(0) var<storage, read_write> tokens: array<u32>;      // [B, T]
@group(0) @binding(1) var<storage, read_write> seq: array<u32>;         // [B, maxT]
@group(0) @binding(2) var<storage, read_write> roll_state: array<u32>;  // [4]
@group(0) @binding(3) var<storage, read_write> roll_rng: array<u32>;    // [1+]
@group(0) @binding(4) var<storage, read> targets: array<u32>;           // [B, T]
@group(0) @binding(5) var<storage, read> pred: array<u32>;              // [B * T]
@group(0) @binding(6) var<storage, read> rng: array<u32>;               // [1+]
@group(0) @binding(7) var<uniform> dims: Dims;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn rollout_begin(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i == 0u) {
    for (var k = 0u; k < 4u; k++) { roll_state[k] = 0u; }
    roll_rng[0] = hash3(rng[0], dims.stream, 0u);
  }
  if (i >= dims.B * dims.T) { return; }
  let b = i / dims.T;
  let t = i - b * dims.T;
  seq[b * dims.maxT + t] = tokens[i];
}

// Whether token i = b*T + t may be replaced: not position 0 (t == 0), not padding (targets[b, t - 1] is
// ignore_id), and, for rollout_end, from the prefix on.
fn replaceable(i: u32, t: u32, first: u32) -> bool {
  return t >= max(first, 1u) && targets[i - 1u] != dims.ignore_id;
}

@compute @workgroup_size(WG)
fn rollout_end(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.B * dims.T) { return; }
  let b = i / dims.T;
  let t = i - b * dims.T;
  if (replaceable(i, t, dims.prefix)) { tokens[i] = seq[b * dims.maxT + t]; }
}

@compute @workgroup_size(WG)
fn ss_mix(g: Groups, @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(g, lid);
  if (i >= dims.B * dims.T || !replaceable(i, i % dims.T, 1u)) { return; }
  let u = uniform01(hash3(rng[0], dims.stream, i));
  if (u >= dims.eps) { tokens[i] = pred[i - 1u]; }
}
