/**
 * KV-cache decoding dispatchers: token + position embedding of the current position, appending the
 * position's keys and values to the caches, single-query attention over the cache, and the commit that
 * stores the chosen token and advances the GPU-side position. Every kernel reads the position from the
 * `state` buffer (state[0] = pos), so the same dispatches can be replayed many times in one compute pass:
 * a whole generation or free-running rollout needs no CPU round trip per token.
 *
 * A decode step, recorded once and replayed (per layer: kvAppend + attentionDecode between the matmuls):
 * decodeEmbed -> ... kvAppend, attentionDecode ... -> head -> argmax / sample (src/kernels/sample.ts,
 * seed in rng[0]) -> commit.
 *
 * Buffers (u32 unless said): state [4] (state[0] = pos; state[1] = dropped count, see shaders/decode.wgsl;
 * state[2..3] reserved), seq [B, maxT], rng [1+], sampled [B]; f32: x [B, C], wte [V, C], wpe [>= maxT, C],
 * qkv [B, 3C], kcache / vcache [B, NH, maxT, HS], y [B, C]. HS = C / NH must be a multiple of 4 up to 128.
 *
 * @module
 */
import decodeWgsl from "../../shaders/decode.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { withGrid, withHash } from "../gpu/source.ts";

const source = withGrid(withHash(decodeWgsl));
const WG = 256;

/** The shader's uniforms; each dispatcher sets those its entry point reads, the rest are 0. */
const NO_DIMS = { B: 0, maxT: 0, C: 0, C4: 0, NH: 0, V: 0, forced_len: 0, v0: 0 };

/**
 * Compiles (or finds cached) entry point `entry`, with HS4 = `hs4` where the entry point sizes by the head,
 * and dispatches it over `groups` with the uniforms `dims`.
 */
async function run(
  gpu: Gpu,
  entry: string,
  res: Record<string, Resource>,
  dims: Partial<typeof NO_DIMS>,
  groups: [number, number?],
  hs4?: number,
): Promise<Dispatch> {
  const constants: Record<string, number> = hs4 === undefined ? { WG } : { WG, HS4: hs4 };
  const k = await getKernel(gpu, { name: entry, source, entryPoint: entry, constants });
  return k.dispatch(res, { ...NO_DIMS, ...dims }, groups);
}

function checkInts(name: string, s: Readonly<Record<string, number>>, min: number): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < min || v > 0xffffffff) {
      throw new Error(`${name}: ${k} = ${v} must be an integer >= ${min}`);
    }
  }
}

/** Checks B, maxT, C, NH and returns HS / 4; throws a plain Error naming what is unsupported. */
function headVec4s(name: string, s: { B: number; maxT: number; C: number; NH: number }): number {
  checkInts(name, { B: s.B, maxT: s.maxT, C: s.C, NH: s.NH }, 1);
  if (s.C % s.NH !== 0) throw new Error(`${name}: C = ${s.C} is not divisible by NH = ${s.NH}`);
  const hs = s.C / s.NH;
  if (hs % 4 !== 0 || hs > 128) {
    throw new Error(`${name}: head size HS = C / NH = ${hs} must be a multiple of 4 between 4 and 128`);
  }
  if (s.B * s.C * s.maxT > 0xffffffff) {
    throw new Error(`${name}: a cache of B*C*maxT floats must index in u32`);
  }
  return hs / 4;
}

/**
 * x[b, c] = wte[seq[b, pos], c] + wpe[pos, c] with pos = state[0]; x [B, C] is written (nothing when
 * pos >= maxT). A token id >= V gives a zero token embedding (nothing is read from wte for it).
 * seq [B, maxT] u32, wte [V, C], wpe [>= maxT, C], state [4] u32.
 *
 * With `s.slice`, wte binds rows row0 .. row0+rows-1 of a token embedding split across buffers: the
 * slice with row0 0 writes x as above with a zero embedding for tokens past it, every other slice adds its
 * tokens' rows (dispatch the slices in order).
 */
export async function decodeEmbed(
  gpu: Gpu,
  b: { x: Resource; seq: Resource; wte: Resource; wpe: Resource; state: Resource },
  s: { B: number; maxT: number; C: number; V: number; slice?: { row0: number; rows: number } },
): Promise<Dispatch> {
  const { B, maxT, C, V } = s, slice = s.slice ?? { row0: 0, rows: V };
  checkInts("decode_embed", { B, maxT, C, V, rows: slice.rows }, 1);
  checkInts("decode_embed", { row0: slice.row0 }, 0);
  if (slice.row0 + slice.rows > V) throw new Error(`decode_embed: slice past the vocabulary of ${V}`);
  const res = { x_out: b.x, seq: b.seq, wte: b.wte, wpe: b.wpe, state: b.state };
  const dims = { B, maxT, C, V: slice.rows, v0: slice.row0 };
  return await run(gpu, "decode_embed", res, dims, grid(B * C, WG));
}

/**
 * Appends position pos = state[0]: kcache[b, h, pos, :] = qkv[b, C + h*HS .. C + h*HS + HS) and
 * vcache[b, h, pos, :] = qkv[b, 2C + h*HS ..), for every b and head h (nothing when pos >= maxT).
 * qkv [B, 3C] (this position's c_attn output), kcache / vcache [B, NH, maxT, HS]; other positions untouched.
 */
export async function kvAppend(
  gpu: Gpu,
  b: { kcache: Resource; vcache: Resource; qkv: Resource; state: Resource },
  s: { B: number; maxT: number; C: number; NH: number },
): Promise<Dispatch> {
  const hs4 = headVec4s("kv_append", s);
  const res = { kcache: b.kcache, vcache: b.vcache, qkv: b.qkv, state: b.state };
  const dims = { B: s.B, maxT: s.maxT, C4: s.C / 4, NH: s.NH };
  return await run(gpu, "kv_append", res, dims, grid(s.B * s.C / 4, WG), hs4);
}

/**
 * Single-query causal attention at pos = state[0]: y[b, h*HS + d] = sum_{j <= pos} softmax_j(q . k_j /
 * sqrt(HS)) vcache[b, h, j, d], q = qkv[b, h*HS .. h*HS + HS), k_j = kcache[b, h, j, :]. One workgroup per
 * (b, h) streams the cache in tiles with an online softmax. y [B, C] is written (nothing when pos >= maxT).
 */
export async function attentionDecode(
  gpu: Gpu,
  b: { y: Resource; qkv: Resource; kcache: Resource; vcache: Resource; state: Resource },
  s: { B: number; maxT: number; C: number; NH: number },
): Promise<Dispatch> {
  const hs4 = headVec4s("attention_decode", s);
  const res = { y: b.y, qkv: b.qkv, kcache: b.kcache, vcache: b.vcache, state: b.state };
  const dims = { B: s.B, maxT: s.maxT, C4: s.C / 4, NH: s.NH };
  return await run(gpu, "attention_decode", res, dims, grid(s.B * s.NH, 1), hs4);
}

/**
 * Commits the chosen tokens and advances the decode state (one workgroup). With pos = state[0]: for each b,
 * if pos + 1 >= forcedLen then seq[b, pos + 1] = sampled[b] (else the given token stays); then
 * state[0] = pos + 1 and rng[0] = pcgHash(rng[0] ^ (pos + 1)). When pos + 1 >= maxT nothing is written to
 * seq, state[1] counts the dropped commit, and pos saturates at maxT. `forcedLen` (the number of leading
 * given tokens of every row) can be changed later with `Dispatch.update({ forced_len })`.
 * seq [B, maxT], state [4], rng [1+], sampled [B], all u32.
 */
export async function commit(
  gpu: Gpu,
  b: { seq: Resource; state: Resource; rng: Resource; sampled: Resource },
  s: { B: number; maxT: number; forcedLen: number },
): Promise<Dispatch> {
  checkInts("commit", { B: s.B, maxT: s.maxT }, 1);
  checkInts("commit", { forcedLen: s.forcedLen }, 0);
  const res = { seq: b.seq, state: b.state, rng: b.rng, sampled: b.sampled };
  return await run(gpu, "commit", res, { B: s.B, maxT: s.maxT, forced_len: s.forcedLen }, [1]);
}
