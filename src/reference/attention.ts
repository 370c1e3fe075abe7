/**
 * CPU reference for causal multi-head self-attention (nanoGPT CausalSelfAttention after c_attn), float64.
 *
 * qkv [B, T, 3C]: q = columns [0, C), k = [C, 2C), v = [2C, 3C); head h uses h*HS .. h*HS+HS-1 of each,
 * HS = C / NH. Scores s_tj = q_t . k_j / sqrt(HS) for j <= t; out [B, T, C] (heads merged the same way);
 * lse [B, NH, T] = log sum_j<=t exp(s_tj). Plain dense softmax with max subtraction: no tiling, no online
 * rescaling, so it checks the GPU kernels' algorithm rather than repeating it.
 *
 * Optional attention-probability dropout (nanoGPT's `attn_dropout`, applied to the softmax output before
 * it multiplies V): probability P_tj of head (b, h) is kept, scaled by 1 / (1 - p), when
 * uniform01(pcg(t * T + j ^ hash3(seed, stream, b * NH + h))) >= p, the mask the GPU kernels draw; lse is
 * that of the undropped softmax.
 *
 * @module
 */
import { hash3, pcgHash, uniform01 } from "../util/hash.ts";

/** Attention-probability dropout: probability p, and the seed and stream its masks are hashed from. */
export interface AttentionDropout {
  /** Drop probability in [0, 1). */
  readonly p: number;
  /** Per-step seed (the GPU reads it from rng[0]). */
  readonly seed: number;
  /** Hash stream of this dropout site (model/config.ts dropoutStream("attn", layer)). */
  readonly stream: number;
}

/**
 * The factor dropout applies to P_tj of head bh = b * NH + h: 1 / (1 - p) when kept, else 0 (1 without
 * dropout).
 */
export function attentionDropFactor(
  drop: AttentionDropout | undefined,
  bh: number,
  T: number,
  t: number,
  j: number,
): number {
  if (!drop || drop.p === 0) return 1;
  const key = hash3(drop.seed, drop.stream, bh);
  return uniform01(pcgHash(((t * T + j) ^ key) >>> 0)) >= drop.p ? 1 / (1 - drop.p) : 0;
}

/** Forward: out [B, T, C] and lse [B, NH, T] (natural log), with dropout on the probabilities if `drop`. */
export function attentionForward(
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  NH: number,
  drop?: AttentionDropout,
): { out: Float64Array; lse: Float64Array } {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * 3 * C + h * HS;
        let m = -Infinity;
        for (let j = 0; j <= t; j++) {
          const ko = (b * T + j) * 3 * C + C + h * HS;
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[qo + d] * qkv[ko + d];
          s[j] = dot * scale;
          if (s[j] > m) m = s[j];
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += Math.exp(s[j] - m);
        lse[(b * NH + h) * T + t] = m + Math.log(sum);
        const oo = (b * T + t) * C + h * HS;
        for (let j = 0; j <= t; j++) {
          const p = Math.exp(s[j] - m) / sum * attentionDropFactor(drop, b * NH + h, T, t, j);
          const vo = (b * T + j) * 3 * C + 2 * C + h * HS;
          for (let d = 0; d < HS; d++) out[oo + d] += p * qkv[vo + d];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Backward: dqkv [B, T, 3C] (every element written) from dout [B, T, C] and qkv. Builds each head's
 * probability matrix P and dP = dout V^T explicitly, then dS = P * (dP - rowsum(P * dP)),
 * dq = scale dS K, dk = scale dS^T Q, dv = P^T dout. With `drop` (mask factors F, 0 or 1 / (1 - p)): out
 * used P * F, so dv = (P * F)^T dout and dP = (dout V^T) * F before dS.
 */
export function attentionBackward(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  NH: number,
  drop?: AttentionDropout,
): Float64Array {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const dqkv = new Float64Array(B * T * 3 * C);
  const P = new Float64Array(T * T);
  const dS = new Float64Array(T * T);
  const F = new Float64Array(T * T); // dropout factors
  const q = (b: number, t: number, h: number) => (b * T + t) * 3 * C + h * HS;
  const k = (b: number, t: number, h: number) => q(b, t, h) + C;
  const v = (b: number, t: number, h: number) => q(b, t, h) + 2 * C;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      P.fill(0);
      dS.fill(0);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j <= t; j++) F[t * T + j] = attentionDropFactor(drop, b * NH + h, T, t, j);
      }
      for (let t = 0; t < T; t++) {
        let m = -Infinity;
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < HS; d++) dot += qkv[q(b, t, h) + d] * qkv[k(b, j, h) + d];
          P[t * T + j] = dot * scale;
          m = Math.max(m, P[t * T + j]);
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += P[t * T + j] = Math.exp(P[t * T + j] - m);
        for (let j = 0; j <= t; j++) P[t * T + j] /= sum;
        // dP_tj = (dout_t . v_j) F_tj, then dS_tj = P_tj (dP_tj - sum_j' P_tj' dP_tj').
        const go = (b * T + t) * C + h * HS;
        let rowDot = 0;
        for (let j = 0; j <= t; j++) {
          let dp = 0;
          for (let d = 0; d < HS; d++) dp += dout[go + d] * qkv[v(b, j, h) + d];
          dp *= F[t * T + j];
          dS[t * T + j] = dp;
          rowDot += P[t * T + j] * dp;
        }
        for (let j = 0; j <= t; j++) dS[t * T + j] = P[t * T + j] * (dS[t * T + j] - rowDot);
      }
      for (let t = 0; t < T; t++) {
        const go = (b * T + t) * C + h * HS;
        for (let j = 0; j <= t; j++) {
          const p = P[t * T + j] * F[t * T + j], ds = dS[t * T + j] * scale;
          for (let d = 0; d < HS; d++) {
            dqkv[q(b, t, h) + d] += ds * qkv[k(b, j, h) + d];
            dqkv[k(b, j, h) + d] += ds * qkv[q(b, t, h) + d];
            dqkv[v(b, j, h) + d] += p * dout[go + d];
          }
        }
      }
    }
  }
  return dqkv;
}
