/**
 * CPU reference for GELU, float64 arithmetic: the exact GELU (erf by a series/continued fraction accurate
 * to ~1e-15, independent of the shader's approximation) and GPT-2's tanh approximation ("gelu_new").
 *
 * @module
 */
import type { Activation } from "../gpu/source.ts";

/** erf(x) to ~1e-15: Taylor series for |x| < 3, continued fraction for erfc beyond. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 3) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = a, sum = a;
    for (let n = 1; n < 200; n++) {
      term *= -a * a / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...)))) evaluated bottom-up.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return Math.sign(x) * (1 - erfc);
}

/** gelu(x) = x * Phi(x). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** d gelu / dx = Phi(x) + x * phi(x). */
export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

const TANH_K = Math.sqrt(2 / Math.PI), TANH_A = 0.044715;

/** GPT-2's gelu_new(x) = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(TANH_K * (x + TANH_A * x * x * x)));
}

/** d gelu_new / dx = 0.5 (1 + t) + 0.5 x (1 − t²) √(2/π) (1 + 3·0.044715 x²), t the tanh above. */
export function geluTanhGrad(x: number): number {
  const t = Math.tanh(TANH_K * (x + TANH_A * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * TANH_K * (1 + 3 * TANH_A * x * x);
}

/** out = gelu(inp), elementwise (`activation` picks the exact GELU or GPT-2's tanh form). */
export function geluForward(inp: ArrayLike<number>, activation: Activation = "gelu"): Float64Array {
  return Float64Array.from(inp, activation === "gelu_new" ? geluTanh : gelu);
}

/** dinp = dout * gelu'(inp), elementwise. */
export function geluBackward(
  inp: ArrayLike<number>,
  dout: ArrayLike<number>,
  activation: Activation = "gelu",
): Float64Array {
  const grad = activation === "gelu_new" ? geluTanhGrad : geluGrad;
  const d = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) d[i] = dout[i] * grad(inp[i]);
  return d;
}
