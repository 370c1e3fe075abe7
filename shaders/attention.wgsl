// Causal multi-head self-attention (nanoGPT CausalSelfAttention after c_attn), FlashAttention-2 style: the
// forward never writes the T x T score matrix (the backward may keep dS, see below). This file holds the
// math shared by the attention kernels
// and the backward's delta kernel; the blocked kernels are in attention_forward.wgsl, attention_dkdv.wgsl
// and attention_dq.wgsl.
//
// Shapes: B batch, T time, C channels, NH heads, HS = C / NH head size, C4 = C / 4 (vec4 units).
//   qkv   [B, T, 3C]  q = [0, C), k = [C, 2C), v = [2C, 3C); head h uses columns h*HS .. h*HS+HS-1 of each
//   out   [B, T, C]   heads merged the same way: out[b, t, h*HS + d]
//   lse   [B, NH, T]  natural logsumexp over keys j <= t of the scaled scores of query row t (for backward)
//   dout  [B, T, C]   gradient of out
//   dqkv  [B, T, 3C]  gradient of qkv, same layout
//   delta [B, NH, T]  scratch: delta_t = sum_d dout[b, t, h*HS + d] * out[b, t, h*HS + d]
// Scores s_tj = scale * q_t . k_j with scale = 1 / sqrt(HS), for keys j <= t only (causal). The forward
// keeps a running max and sum per row over key tiles (online softmax) and saves lse. Gradients: dqkv is an
// activation gradient, WRITTEN (=) entirely, masked positions included. Backward by recomputation from q,
// k, v and lse:
//   p_tj = exp(s_tj - lse_t), dp_tj = dout_t . v_j, ds_tj = p_tj * (dp_tj - delta_t),
//   dq_t = scale * sum_j ds_tj k_j,  dk_j = scale * sum_t ds_tj q_t,  dv_j = sum_t p_tj dout_t.
// With dropout on the probabilities (mask factor F_tj = 0 or 1 / (1 - p), attention_dropout.wgsl): out uses
// p F, so dp_tj = (dout_t . v_j) F_tj and dv_j = sum_t p_tj F_tj dout_t; delta is unchanged (dout . out).
// Three backward dispatches: delta (here), dk/dv per key block, dq per query block; with a stored dS
// (src/kernels/attention.ts `ds`) dk/dv also writes ds and dq reads it instead of recomputing it. No float
// atomics and a fixed summation order: results are bitwise reproducible.

override WG: u32 = 64u; // threads per workgroup

// Storage element types, each f32 or f16 (withTypes in src/gpu/source.ts rewrites these lines): OT out (the
// forward's), DT dout. Loads convert to f32; delta stays f32.
alias OT = f32;
alias DT = f32;

struct Dims { C4: u32, NH: u32, T: u32, HS4: u32, n: u32 } // n = B * NH * T

@group(0) @binding(0) var<storage, read_write> delta: array<f32>; // [B, NH, T]
@group(0) @binding(1) var<storage, read> dout: array<vec4<DT>>; // [B, T, C/4]
@group(0) @binding(2) var<storage, read> fwd_out: array<vec4<OT>>; // [B, T, C/4], the forward's out
@group(0) @binding(3) var<uniform> dims: Dims;

// delta[b, h, t] = dout[b, t, head h] . out[b, t, head h]; one thread per output, 1-D grid folded into
// (x, y).
@compute @workgroup_size(WG)
fn attention_backward_delta(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let n = (wg.x + wg.y * nwg.x) * WG + lid;
  if (n >= dims.n) { return; }
  let T = dims.T;
  let t = n % T;
  let bh = n / T;
  let h = bh % dims.NH;
  let b = bh / dims.NH;
  let row = (b * T + t) * dims.C4 + h * dims.HS4;
  var acc = vec4<f32>(0.0);
  for (var d = 0u; d < dims.HS4; d++) {
    acc += vec4<f32>(dout[row + d]) * vec4<f32>(fwd_out[row + d]);
  }
  delta[n] = (acc.x + acc.y) + (acc.z + acc.w);
}
