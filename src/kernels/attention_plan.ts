/**
 * Block layouts of the register-blocked attention kernels (shaders/attention_forward.wgsl,
 * attention_dkdv.wgsl, attention_dq.wgsl) for one head size and workgroup-memory budget. Each plan is the
 * set of `const` lines the dispatcher rewrites in its shader (private and workgroup arrays need const
 * sizes); every kernel runs 64 threads as an 8 x 8 grid.
 *
 * Shared rules: a head size HS is a multiple of 4 up to 128; a thread's output block is at most 16 vec4s
 * (RV * ceil(HS / 32) <= 4, RV query vec4s by ceil(HS / 32) dim vec4s); the staged chunk of BD head dims
 * divides HS (16, 8 or 4); the largest blocks that fit the budget win. A plan that cannot fit throws a
 * one-line Error.
 *
 * @module
 */

/** Const lines of the forward: BR = 32 * RV query rows per workgroup, BC = 32 * KV keys per tile. */
export interface ForwardPlan {
  HS: number;
  /** Query vec4s per thread. */
  RV: number;
  /** Key quads per thread in the score block. */
  KV: number;
  /** Head dims per staged Q/K chunk. */
  BD: number;
  /** Keys per staged V chunk. */
  KC: number;
  /** vec4s of the staging buffer. */
  STAGE: number;
  /** Key split of the output phase (small heads): see {@linkcode keySplit}. */
  KS: number;
}

/** Const lines of the dq kernel: BR = 32 * RV query rows per workgroup, 32 keys per tile. */
export interface DqPlan {
  HS: number;
  /** Query vec4s per thread. */
  RV: number;
  /** Head dims per staged Q/dO/K/V chunk. */
  BD: number;
  /** Keys per staged K chunk. */
  KC: number;
  /** vec4s of the staging buffer. */
  STAGE: number;
  /** Key split of the output phase (small heads): see {@linkcode keySplit}. */
  KS: number;
}

/** Const lines of the dk/dv kernel: 32 keys per workgroup, BQ = 32 * RV queries per tile. */
export interface DkdvPlan {
  HS: number;
  /** Query vec4s per thread. */
  RV: number;
  /** Head dims per staged K/V/Q/dO chunk. */
  BD: number;
  /** Queries per staged Q/dO row chunk. */
  QC: number;
  /** vec4s of the staging buffer. */
  STAGE: number;
  /** Query split of the output phase (small heads): see {@linkcode keySplit}. */
  KS: number;
}

/** Whether `hs` is a head size the blocked kernels take. */
export function supportedHeadSize(hs: number): boolean {
  return Number.isInteger(hs) && hs >= 4 && hs <= 128 && hs % 4 === 0;
}

function check(hs: number): void {
  if (!supportedHeadSize(hs)) {
    throw new Error(`attention: head size HS = ${hs} is unsupported; supported: multiples of 4 up to 128`);
  }
}

/** RV values to try, largest first: 2 only while a thread's block stays within 16 vec4s. */
function rowVec4s(hs: number): number[] {
  return Math.ceil(hs / 32) <= 2 ? [2, 1] : [1];
}

/** BD values to try, largest first. */
function chunkDims(hs: number): number[] {
  return [16, 8, 4].filter((bd) => hs % bd === 0);
}

/** The largest power of two <= `max` (and >= `min`) with `n * perRow <= room`, else `min`. */
function chunkRows(max: number, min: number, perRow: number, room: number): number {
  let n = max;
  while (n > min && n * perRow > room) n /= 2;
  return n;
}

/**
 * Key split of an output phase whose 8 lanes per thread row hold dim vec4s: 1 when the head has at least 8
 * dim vec4s (HS >= 32); else 8 / DL, DL the power of two >= HS / 4, so that the lanes a small head leaves
 * without dims take a share of the keys (or queries) instead.
 */
export function keySplit(hs: number): number {
  let dl = 1;
  while (dl < hs / 4 && dl < 8) dl *= 2;
  return 8 / dl;
}

function tooSmall(budget: number, hs: number): Error {
  return new Error(`attention: ${budget} bytes of workgroup memory is too little for HS = ${hs}`);
}

/** The forward's layout for head size `hs` within `budget` bytes of workgroup memory. */
export function forwardPlan(hs: number, budget: number): ForwardPlan {
  check(hs);
  const hs4 = hs / 4;
  for (const RV of rowVec4s(hs)) {
    for (const KV of [2, 1]) {
      for (const BD of chunkDims(hs)) {
        const BR = 32 * RV, BC = 32 * KV, qk = BD * (BR + BC) / 4;
        const KC = chunkRows(BC, 4, hs4, qk);
        const STAGE = Math.max(qk, KC * hs4);
        // stage + pT [BC][BR] + rowstat [BR]
        if (16 * (STAGE + BC * BR / 4 + BR / 4) <= budget) {
          return { HS: hs, RV, KV, BD, KC, STAGE, KS: keySplit(hs) };
        }
      }
    }
  }
  throw tooSmall(budget, hs);
}

/**
 * The dq kernel's layout for head size `hs` within `budget` bytes of workgroup memory. `stored`: the
 * stored-dS form (no phase 1, so `stage` holds only K rows: as many of the tile's 32 as fit; BD unused).
 */
export function dqPlan(hs: number, budget: number, stored = false): DqPlan {
  check(hs);
  const hs4 = hs / 4, BC = 32;
  for (const RV of rowVec4s(hs)) {
    for (const BD of chunkDims(hs)) {
      const BR = 32 * RV, chunks = stored ? 0 : BD * (2 * BR + 2 * BC) / 4;
      const KC = chunkRows(BC, 4, hs4, stored ? budget / 16 - BC * BR / 4 : chunks);
      const STAGE = Math.max(chunks, KC * hs4);
      // stage + dsT [BC][BR]
      if (16 * (STAGE + BC * BR / 4) <= budget) return { HS: hs, RV, BD, KC, STAGE, KS: keySplit(hs) };
    }
  }
  throw tooSmall(budget, hs);
}

/** The dk/dv kernel's layout for head size `hs` within `budget` bytes of workgroup memory. */
export function dkdvPlan(hs: number, budget: number): DkdvPlan {
  check(hs);
  const hs4 = hs / 4, BK = 32;
  for (const RV of rowVec4s(hs)) {
    for (const BD of chunkDims(hs)) {
      const BQ = 32 * RV, qk = BD * (2 * BK + 2 * BQ) / 4; // phase 1: K, V, Q, dO chunks
      const QC = chunkRows(BQ, 1, 2 * hs4, qk); // phase 4: QC rows each of Q and dO
      const STAGE = Math.max(qk, 2 * QC * hs4);
      // stage + P and dS [BQ][BK] + lse and delta [BQ]
      if (16 * (STAGE + 2 * BQ * BK / 4 + BQ / 2) <= budget) {
        return { HS: hs, RV, BD, QC, STAGE, KS: keySplit(hs) };
      }
    }
  }
  throw tooSmall(budget, hs);
}
