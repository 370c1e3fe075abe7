// The tiled products of shaders/matmul.wgsl shaped for a CPU adapter (Mesa's lavapipe/llvmpipe,
// SwiftShader), appended to that file and matmul_fused.wgsl by src/kernels/matmul.ts: the same products,
// operand loads (ld_*), epilogues and preprocessor flags; only the tiling differs.
//
// Shapes as there: the output C[R, S] = sum_t A[r, t] · B[t, s] of the kept product (`// #if FWD`, `BIN`,
// `BW`), t over the range t_range(wg.z) of that file.
//
// Why a second tiling: a CPU adapter runs a workgroup's invocations as SIMD lanes of one CPU thread and
// each load from storage (or workgroup) memory as one scalar load per lane (llvmpipe of Mesa 22: a loop
// over the lanes with a bounds check per element), while arithmetic is one vector instruction for all
// lanes. Workgroup memory and barriers only add loads and coroutine switches. So each invocation reads
// its operands straight from storage, as vec4s along their contiguous dimension, and reuses each loaded
// value as often as registers (and the stack, where they spill) allow: a CR x 8 block of outputs (CR = 32
// rows as 4 blocks of 8, each an Acc of matmul.wgsl), per 4 steps of t 8 * CR / 4 + 8 vec4 loads for
// 4 * 8 * CR multiply-adds (6.4 per loaded element, against 2 for the GPU tiles' loads per thread).
// No workgroup memory, no barriers.
//
// Grid: (ceil(S / (CC * LC)), ceil(R / (CR * LR)), Z) workgroups of CL = LC x LR invocations, LC along
// output columns (CC = 8 columns each, 16 with WIDE) and LR along rows: invocation i = lr * LC + lc of
// workgroup (x, y, z) owns rows (y*LR + lr)*CR .. +CR-1 and columns (x*LC + lc)*CC .. +CC-1 of
// slice z. Outputs outside C are computed from zero-filled loads and never stored.

const CL: u32 = 8u;   // invocations per workgroup (one 256-bit SIMD vector of f32 on llvmpipe)
const LC: u32 = 8u;   // of them along output columns: 8, or 4 for outputs of at most 64 columns in WIDE
const LR: u32 = CL / LC;
const CR: u32 = 32u;  // output rows per invocation: the 4 accumulator blocks of 8 rows below
// Output columns per invocation: 8, or 16 with WIDE (a second column block reusing each loaded A quad:
// 4 * 8 * CR * 2 multiply-adds per 8 * CR / 4 + 16 vec4 loads, 10.7 per loaded element).
// #if WIDE
const CC: u32 = 16u;
// #else
const CC: u32 = 8u;
// #endif

// 4 consecutive steps of t of one operand for 8 consecutive rows or columns: tJh = the operand at step
// t + J for the 4 rows or columns of half h (a: 0-3, b: 4-7).
struct Quad {
  t0a: vec4<f32>, t0b: vec4<f32>, t1a: vec4<f32>, t1b: vec4<f32>,
  t2a: vec4<f32>, t2b: vec4<f32>, t3a: vec4<f32>, t3b: vec4<f32>,
}

// The Quad of 8 rows or columns read along t: vI = operand[I, t .. t+3].
fn quad_along_t(
  v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
  v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>,
) -> Quad {
  return Quad(
    vec4<f32>(v0.x, v1.x, v2.x, v3.x), vec4<f32>(v4.x, v5.x, v6.x, v7.x),
    vec4<f32>(v0.y, v1.y, v2.y, v3.y), vec4<f32>(v4.y, v5.y, v6.y, v7.y),
    vec4<f32>(v0.z, v1.z, v2.z, v3.z), vec4<f32>(v4.z, v5.z, v6.z, v7.z),
    vec4<f32>(v0.w, v1.w, v2.w, v3.w), vec4<f32>(v4.w, v5.w, v6.w, v7.w),
  );
}

// Adds 4 steps of t of the 8x8 block's product: rows of a, columns of b (fma8x8 of matmul.wgsl).
fn mac_quad(c: Acc, a: Quad, b: Quad) -> Acc {
  var d = fma8x8(c, a.t0a, a.t0b, b.t0a, b.t0b);
  d = fma8x8(d, a.t1a, a.t1b, b.t1a, b.t1b);
  d = fma8x8(d, a.t2a, a.t2b, b.t2a, b.t2b);
  return fma8x8(d, a.t3a, a.t3b, b.t3a, b.t3b);
}

// ---- Operand loads per product, kept like matmul.wgsl's load_a / load_b: A at rows r .. r+7, B at
// columns s .. s+7, steps t .. t+3; zero outside the operands (ld_* of matmul.wgsl). ----
// #if FWD
// A[r, t] = inp[r, t], B[t, s] = weight[s, t]: both read along t.
fn quad_a(r: u32, t: u32) -> Quad {
  return quad_along_t(
    ld_inp(r, t), ld_inp(r + 1u, t), ld_inp(r + 2u, t), ld_inp(r + 3u, t),
    ld_inp(r + 4u, t), ld_inp(r + 5u, t), ld_inp(r + 6u, t), ld_inp(r + 7u, t),
  );
}
fn quad_b(s: u32, t: u32) -> Quad {
  return quad_along_t(
    ld_weight(s, t), ld_weight(s + 1u, t), ld_weight(s + 2u, t), ld_weight(s + 3u, t),
    ld_weight(s + 4u, t), ld_weight(s + 5u, t), ld_weight(s + 6u, t), ld_weight(s + 7u, t),
  );
}
// #endif
// #if BIN
// A[r, t] = dout[r, t], read along t; B[t, s] = weight[t, s], read along s.
fn quad_a(r: u32, t: u32) -> Quad {
  return quad_along_t(
    ld_dout(r, t), ld_dout(r + 1u, t), ld_dout(r + 2u, t), ld_dout(r + 3u, t),
    ld_dout(r + 4u, t), ld_dout(r + 5u, t), ld_dout(r + 6u, t), ld_dout(r + 7u, t),
  );
}
fn quad_b(s: u32, t: u32) -> Quad {
  return Quad(
    ld_weight(t, s), ld_weight(t, s + 4u), ld_weight(t + 1u, s), ld_weight(t + 1u, s + 4u),
    ld_weight(t + 2u, s), ld_weight(t + 2u, s + 4u), ld_weight(t + 3u, s), ld_weight(t + 3u, s + 4u),
  );
}
// #endif
// #if BW
// A[r, t] = dout[t, r], read along r; B[t, s] = inp[t, s], read along s.
fn quad_a(r: u32, t: u32) -> Quad {
  return Quad(
    ld_dout(t, r), ld_dout(t, r + 4u), ld_dout(t + 1u, r), ld_dout(t + 1u, r + 4u),
    ld_dout(t + 2u, r), ld_dout(t + 2u, r + 4u), ld_dout(t + 3u, r), ld_dout(t + 3u, r + 4u),
  );
}
fn quad_b(s: u32, t: u32) -> Quad {
  return Quad(
    ld_inp(t, s), ld_inp(t, s + 4u), ld_inp(t + 1u, s), ld_inp(t + 1u, s + 4u),
    ld_inp(t + 2u, s), ld_inp(t + 2u, s + 4u), ld_inp(t + 3u, s), ld_inp(t + 3u, s + 4u),
  );
}
// #endif

// The 8x8 block at rows r .. r+7, columns s .. s+7 of slice z through the kept epilogue (and bias).
fn store_block(c: Acc, z: u32, r: u32, s: u32) {
  let ba = bias_at(s);
  let bb = bias_at(s + 4u);
  epilogue(z, r, s, c.r0a + ba); epilogue(z, r, s + 4u, c.r0b + bb);
  epilogue(z, r + 1u, s, c.r1a + ba); epilogue(z, r + 1u, s + 4u, c.r1b + bb);
  epilogue(z, r + 2u, s, c.r2a + ba); epilogue(z, r + 2u, s + 4u, c.r2b + bb);
  epilogue(z, r + 3u, s, c.r3a + ba); epilogue(z, r + 3u, s + 4u, c.r3b + bb);
  epilogue(z, r + 4u, s, c.r4a + ba); epilogue(z, r + 4u, s + 4u, c.r4b + bb);
  epilogue(z, r + 5u, s, c.r5a + ba); epilogue(z, r + 5u, s + 4u, c.r5b + bb);
  epilogue(z, r + 6u, s, c.r6a + ba); epilogue(z, r + 6u, s + 4u, c.r6b + bb);
  epilogue(z, r + 7u, s, c.r7a + ba); epilogue(z, r + 7u, s + 4u, c.r7b + bb);
}

// Every tiled entry point of matmul.wgsl and matmul_fused.wgsl in this tiling: the dispatcher compiles
// this one name with the blocks of the entry point it stands for, so it binds what that one binds.
@compute @workgroup_size(CL)
fn matmul_cpu(g: Groups, @builtin(local_invocation_id) li: vec3<u32>) {
  let r = (g.wg.y * LR + li.x / LC) * CR;
  let s = (g.wg.x * LC + li.x % LC) * CC;
  let span = t_range(g.wg.z);
  var c0 = Acc();
  var c1 = Acc();
  var c2 = Acc();
  var c3 = Acc();
  // #if WIDE
  var d0 = Acc();
  var d1 = Acc();
  var d2 = Acc();
  var d3 = Acc();
  // #endif
  for (var t = span.x; t < span.y; t += 4u) {
    let b = quad_b(s, t);
    let a0 = quad_a(r, t);
    let a1 = quad_a(r + 8u, t);
    let a2 = quad_a(r + 16u, t);
    let a3 = quad_a(r + 24u, t);
    c0 = mac_quad(c0, a0, b);
    c1 = mac_quad(c1, a1, b);
    c2 = mac_quad(c2, a2, b);
    c3 = mac_quad(c3, a3, b);
    // #if WIDE
    let e = quad_b(s + 8u, t);
    d0 = mac_quad(d0, a0, e);
    d1 = mac_quad(d1, a1, e);
    d2 = mac_quad(d2, a2, e);
    d3 = mac_quad(d3, a3, e);
    // #endif
  }
  let z = g.wg.z;
  store_block(c0, z, r, s);
  store_block(c1, z, r + 8u, s);
  store_block(c2, z, r + 16u, s);
  store_block(c3, z, r + 24u, s);
  // #if WIDE
  store_block(d0, z, r, s + 8u);
  store_block(d1, z, r + 8u, s + 8u);
  store_block(d2, z, r + 16u, s + 8u);
  store_block(d3, z, r + 24u, s + 8u);
  // #endif
}
