// GELU and its derivative in f32, shared (appended by src/gpu/source.ts withGeluMath) by the GELU kernels
// and the matmul epilogues that fuse it. Two forms, chosen by the flag TANH:
// - exact (nanoGPT's nn.GELU()): gelu(x) = x * Phi(x), gelu'(x) = Phi(x) + x * phi(x). WGSL has no erf:
//   Phi uses Abramowitz & Stegun 7.1.26 (|erf error| <= 1.5e-7).
// - TANH (GPT-2's "gelu_new"): gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
//   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u), computed
//   through sigmoid(2u) = (1 + t) / 2.
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

// #if TANH
const GELU_TANH_K: f32 = 0.79788456080286536; // sqrt(2/pi)
const GELU_TANH_A: f32 = 0.044715;

// (s, 1 - s) with s = sigmoid(2u) = (1 + tanh(u)) / 2, each as 1 / (1 + exp(-+2u)): no cancellation in
// the tails, where 1 + tanh(u) would round to 0. x is clamped to +-10 (|u| <= 44, exp(88) is finite in
// f32; beyond it s is 0 or 1 to f32 precision).
fn gelu_tanh_s(x: f32) -> vec2<f32> {
  let xc = clamp(x, -10.0, 10.0);
  let u2 = 2.0 * GELU_TANH_K * (xc + GELU_TANH_A * xc * xc * xc);
  return vec2<f32>(1.0 / (1.0 + exp(-u2)), 1.0 / (1.0 + exp(u2)));
}

fn gelu(x: f32) -> f32 {
  return x * gelu_tanh_s(x).x;
}

// 0.5 (1 - t^2) = 2 s (1 - s); the second term uses the clamped x (it is 0 to f32 precision beyond +-10).
fn gelu_grad(x: f32) -> f32 {
  let s = gelu_tanh_s(x);
  let xc = clamp(x, -10.0, 10.0);
  return s.x + 2.0 * xc * s.x * s.y * GELU_TANH_K * (1.0 + 3.0 * GELU_TANH_A * xc * xc);
}
// #else
fn gelu(x: f32) -> f32 {
  return x * normal_cdf(x);
}

// d/dx [x * Phi(x)] = Phi(x) + x * phi(x), phi the standard normal density.
fn gelu_grad(x: f32) -> f32 {
  return normal_cdf(x) + x * (GELU_INV_SQRT_2PI * exp(-0.5 * x * x));
}
// #endif

fn gelu4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
}

fn gelu_grad4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_grad(v.x), gelu_grad(v.y), gelu_grad(v.z), gelu_grad(v.w));
}
