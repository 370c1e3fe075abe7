/**
 * CPU reference for exact GELU, float64 arithmetic. erf by a series/continued fraction accurate to ~1e-15,
 * independent of the shader's approximation.
 *
 * @module
 */

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

/** out = gelu(inp), elementwise. */
export function geluForward(inp: ArrayLike<number>): Float64Array {
  return Float64Array.from(inp, gelu);
}

/** dinp = dout * gelu'(inp), elementwise. */
export function geluBackward(inp: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  const d = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) d[i] = dout[i] * geluGrad(inp[i]);
  return d;
}
