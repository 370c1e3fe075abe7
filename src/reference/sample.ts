/**
 * CPU reference for token selection: argmax and temperature + top-k + top-p sampling, float64 arithmetic.
 *
 * @module
 */

/** Per row of logits [N, V], the first index of the maximum. */
export function argmax(logits: ArrayLike<number>, N: number, V: number): Uint32Array {
  const out = new Uint32Array(N);
  for (let n = 0; n < N; n++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[n * V + v] > logits[n * V + best]) best = v;
    out[n] = best;
  }
  return out;
}

/**
 * Unnormalised sampling probabilities of one row: p_i = exp((l_i - max) / temperature) for the logits
 * >= the topK-th largest value (topK 0 or >= V: all; ties at the threshold all kept), 0 for the rest.
 * Then, for topP < 1, nucleus sampling on that distribution: only the logits >= the one at which the
 * running sum of p from the largest logit down first reaches topP * sum(p) stay (ties there all kept).
 */
export function sampleWeights(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number,
  topP = 1,
): Float64Array {
  const V = logits.length;
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, logits[i]);
  let threshold = -Infinity;
  if (topK > 0 && topK < V) {
    const sorted = Float64Array.from(logits).sort();
    threshold = sorted[V - topK];
  }
  const p = new Float64Array(V);
  for (let i = 0; i < V; i++) p[i] = logits[i] >= threshold ? Math.exp((logits[i] - m) / temperature) : 0;
  if (topP < 1) {
    const order = Array.from({ length: V }, (_, i) => i).filter((i) => p[i] > 0);
    order.sort((a, b) => logits[b] - logits[a]);
    const goal = topP * p.reduce((a, b) => a + b, 0);
    let run = 0, cut = -Infinity;
    for (const i of order) {
      run += p[i];
      if (run >= goal) {
        cut = logits[i];
        break;
      }
    }
    for (let i = 0; i < V; i++) if (logits[i] < cut) p[i] = 0;
  }
  return p;
}

/**
 * Samples one token from a row of logits at `temperature` (> 0) among the `topK` largest (0: all), then
 * the top-`topP` nucleus (1: all): the smallest index i whose running sum of p (in index order) exceeds
 * u * total, u in [0, 1).
 */
export function sampleRow(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number,
  u: number,
  topP = 1,
): number {
  if (!(temperature > 0)) throw new Error(`sampleRow: temperature ${temperature} must be > 0`);
  return drawIndex(sampleWeights(logits, temperature, topK, topP), u);
}

/** The smallest index i whose running sum of p (in index order) exceeds u * sum(p), u in [0, 1). */
export function drawIndex(p: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  const target = u * total;
  let run = 0, last = 0;
  for (let i = 0; i < p.length; i++) {
    run += p[i];
    if (p[i] > 0) last = i;
    if (run > target) return i;
  }
  return last; // only reachable if u * total rounds up to total
}
