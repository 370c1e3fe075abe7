// Matmul epilogue fusions, appended to shaders/matmul.wgsl by src/kernels/matmul.ts (same preprocessor
// flags, same type aliases; its tiles, loads and stores are used here). Binding numbers continue that
// file's. Shapes as there: inp [M, K], weight [N, K], out [M, N], dout [M, N], dinp [M, K].
//
// Fused GELU (the MLP: fch = ln2 · Wfcᵀ, fcg = gelu(fch); d(fch) = (d(fcg) · Wproj) * gelu'(fch)):
//   matmul_forward_gelu(_bias):  out[M, N] = inp · weightᵀ (+ bias), and act[M, N] = gelu(out)
//   matmul_backward_input_gelu:  dinp[M, K] = (dout · weight) * gelu'(pre[M, K])
// Fused residual (a projection added to the residual stream):
//   matmul_forward_residual(_bias): out[M, N] = resid[M, N] + inp · weightᵀ (+ bias)   (resid, out f32)
//   matmul_forward_residual_dropout(_bias): out = resid + dropout(inp · weightᵀ (+ bias)), the mask of
//     element (m, n) that of flat index m * N + n on stream dims.drop_stream with seed rng[0], exactly as
//     shaders/residual.wgsl's dropout_forward over the [M, N] product (whose backward regenerates it).
// gelu4 / gelu_grad4: shaders/gelu_math.wgsl; hash3: shaders/hash.wgsl (both appended by the dispatcher).
// Each fusion is an epilogue of matmul.wgsl's store_tile, kept by the dispatcher for its entry points
// alone (`// #if OUT_GELU` ...): WGSL has no function pointers, and a run-time choice would make every
// entry point bind every buffer.
// Bindings: forward_gelu adds act to the forward's; forward_residual adds resid (and rng with dropout);
// backward_input_gelu adds pre to the input gradient's.

alias TP = f32; // pre (src/gpu/source.ts withTypes rewrites it)
// #if K4
alias KP = vec4<TP>;   // element of pre
// #else
alias KP = TP;
// #endif

@group(0) @binding(11) var<storage, read_write> act: array<NO>;     // [M, N] gelu(out), fused forward
@group(0) @binding(12) var<storage, read> pre: array<KP>;           // [M, K] GELU input, fused backward
@group(0) @binding(13) var<storage, read> resid: array<NV>;         // [M, N] residual stream, fused forward
@group(0) @binding(14) var<storage, read> rng: array<u32>;          // [>= 1] dropout seed in rng[0]

// ---- Storage access, as in matmul.wgsl: 4 consecutive elements, zero outside. ----

// #if K4
fn ld_pre(r: u32, c: u32) -> vec4<f32> {
  if (r < dims.M && c < dims.K) { return vec4<f32>(pre[(r * dims.K + c) / 4u]); }
  return vec4<f32>();
}
// #else
fn ld_pre(r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (r < dims.M) {
    let i = r * dims.K + c;
    if (c + 3u < dims.K) { return vec4<f32>(f32(pre[i]), f32(pre[i + 1u]), f32(pre[i + 2u]), f32(pre[i + 3u])); }
    if (c < dims.K) { v.x = f32(pre[i]); }
    if (c + 1u < dims.K) { v.y = f32(pre[i + 1u]); }
    if (c + 2u < dims.K) { v.z = f32(pre[i + 2u]); }
  }
  return v;
}
// #endif

// #if N4
fn st_act(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M && c < dims.N) { act[(r * dims.N + c) / 4u] = NO(v); }
}
fn ld_resid(r: u32, c: u32) -> vec4<f32> {
  if (r < dims.M && c < dims.N) { return resid[(r * dims.N + c) / 4u]; }
  return vec4<f32>();
}
// #else
fn st_act(r: u32, c: u32, v: vec4<f32>) {
  if (r < dims.M) {
    let i = r * dims.N + c;
    if (c + 3u < dims.N) {
      act[i] = TO(v.x);
      act[i + 1u] = TO(v.y);
      act[i + 2u] = TO(v.z);
      act[i + 3u] = TO(v.w);
      return;
    }
    if (c < dims.N) { act[i] = TO(v.x); }
    if (c + 1u < dims.N) { act[i + 1u] = TO(v.y); }
    if (c + 2u < dims.N) { act[i + 2u] = TO(v.z); }
  }
}
fn ld_resid(r: u32, c: u32) -> vec4<f32> {
  var v = vec4<f32>();
  if (r < dims.M) {
    let i = r * dims.N + c;
    if (c + 3u < dims.N) { return vec4<f32>(resid[i], resid[i + 1u], resid[i + 2u], resid[i + 3u]); }
    if (c < dims.N) { v.x = resid[i]; }
    if (c + 1u < dims.N) { v.y = resid[i + 1u]; }
    if (c + 2u < dims.N) { v.z = resid[i + 2u]; }
  }
  return v;
}
// #endif

// ---- Epilogues (see matmul.wgsl's store_tile), one kept per entry point. ----

// Dropout of the 4 elements at flat indices i .. i+3 (the mask of shaders/residual.wgsl's dropout).
fn dropout4(v: vec4<f32>, i: u32) -> vec4<f32> {
  let seed = rng[0];
  let keep = vec4<bool>(
    (hash3(seed, dims.drop_stream, i) >> 8u) >= dims.drop_threshold,
    (hash3(seed, dims.drop_stream, i + 1u) >> 8u) >= dims.drop_threshold,
    (hash3(seed, dims.drop_stream, i + 2u) >> 8u) >= dims.drop_threshold,
    (hash3(seed, dims.drop_stream, i + 3u) >> 8u) >= dims.drop_threshold,
  );
  return select(vec4<f32>(), v * dims.drop_scale, keep);
}

// #if OUT_GELU
// out and act = gelu(out) at [r, c..c+3].
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) {
  st_out(r, c, v);
  st_act(r, c, gelu4(v));
}
// #endif
// #if OUT_RESID
// out = resid + v at [r, c..c+3].
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { st_out(r, c, ld_resid(r, c) + v); }
// #endif
// #if OUT_RESID_DROP
// out = resid + dropout(v) at [r, c..c+3].
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) {
  st_out(r, c, ld_resid(r, c) + dropout4(v, r * dims.N + c));
}
// #endif
// #if DINP_GELU
// dinp at [r, c..c+3] times gelu'(pre) there.
fn epilogue(z: u32, r: u32, c: u32, v: vec4<f32>) { st_dinp(r, c, v * gelu_grad4(ld_pre(r, c))); }
// #endif

@compute @workgroup_size(WGX, WGY) fn matmul_forward_gelu(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_gelu_bias(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_residual(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_residual_bias(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_residual_dropout(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_forward_residual_dropout_bias(g: Groups, t: Threads) { tiled(g, t); }
@compute @workgroup_size(WGX, WGY) fn matmul_backward_input_gelu(g: Groups, t: Threads) { tiled(g, t); }
