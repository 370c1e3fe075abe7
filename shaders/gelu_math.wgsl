// Exact GELU and its derivative in f32, shared (appended by src/gpu/source.ts withGeluMath) by the GELU
// kernels and the matmul epilogues that fuse it: gelu(x) = x * Phi(x), gelu'(x) = Phi(x) + x * phi(x).
// WGSL has no erf: Phi uses Abramowitz & Stegun 7.1.26 (|erf error| <= 1.5e-7).
const GELU_SQRT1_2: f32 = 0.70710678118654752;
const GELU_INV_SQRT_2PI: f32 = 0.39894228040143268;

// Phi(x) = 0.5 * erfc(-x / sqrt(2)). For x < 0 the tail 0.5 * erfc(|x|/sqrt(2)) is computed directly as
// poly * exp(-a^2), which keeps its relative accuracy instead of cancelling in 1 - erf.
fn normal_cdf(x: f32) -> f32 {
  let a = abs(x) * GELU_SQRT1_2;
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let half_erfc = 0.5 * poly * exp(-a * a);
  return select(1.0 - half_erfc, half_erfc, x < 0.0);
}

fn gelu(x: f32) -> f32 {
  return x * normal_cdf(x);
}

// d/dx [x * Phi(x)] = Phi(x) + x * phi(x), phi the standard normal density.
fn gelu_grad(x: f32) -> f32 {
  return normal_cdf(x) + x * (GELU_INV_SQRT_2PI * exp(-0.5 * x * x));
}

fn gelu4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
}

fn gelu_grad4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_grad(v.x), gelu_grad(v.y), gelu_grad(v.z), gelu_grad(v.w));
}
