/**
 * The tied head and the loss: logits [rows, V] = lnf · wteᵀ, the cross-entropy and its gradient, and the
 * head's two gradient products. A large vocabulary's head runs `R` rows at a time (GPTShape.headRows):
 * then the forwards end at the final layernorm and the head's matmul runs chunk by chunk, in the backward
 * before each chunk's loss and in `lossOnly`, so that `logits` holds one chunk at a time.
 *
 * A token embedding split across buffers (model/params.ts paramLayout) goes a vocabulary slice of W rows
 * at a time: each slice's logits [rows, W] land in `logitsSlice` and are copied into their columns of the
 * full-width logits, so the cross-entropy and every consumer of logits see rows of width V as always; in
 * the backward each slice's columns of dlogits are copied out, dlnf sums the slices' products (the first
 * written, the others through `dres`, free until the final layernorm's backward, then added) and each
 * slice's dwte accumulates on its own.
 *
 * @module
 */
import type { Dispatch, Resource } from "../gpu/kernel.ts";
import { copyColumns } from "../kernels/columns.ts";
import { accumulateLoss, crossEntropyForwardBackward, crossEntropyLoss } from "../kernels/crossentropy.ts";
import { matmulBackwardInput, matmulBackwardWeightSplit, matmulForward } from "../kernels/matmul.ts";
import { addInPlace } from "../kernels/residual.ts";
import { type PassContext, rows, view } from "./context.ts";

/** One chunk of the head's rows (GPT.headChunks). */
export interface HeadChunk {
  /** First batch row of the chunk. */
  readonly r0: number;
  /** Rows in the chunk. */
  readonly rows: number;
  /** Compute the chunk's logits into `logits` after forwardEval; none when the head is whole. */
  readonly logits: readonly Dispatch[];
}

/** The head's chunks of rows as [r0, rows] pairs covering 0 .. N-1 in order (one when R = N). */
export function headChunkRows(N: number, R: number): [number, number][] {
  const chunks: [number, number][] = [];
  for (let r0 = 0; r0 < N; r0 += R) chunks.push([r0, Math.min(R, N - r0)]);
  return chunks;
}

/** Whether the head runs in chunks, after the forward, rather than at the end of it. */
export function headChunked(ctx: PassContext): boolean {
  return ctx.dims.R < ctx.dims.N;
}

/** logits[0 .. n) = lnf[r0 .. r0+n) · wteᵀ: [n, V]; a vocabulary slice at a time when wte is split. */
export async function headForward(ctx: PassContext, r0: number, n: number): Promise<Dispatch[]> {
  const { gpu, buffers: b } = ctx, { C, V } = ctx.dims;
  const inp = rows(b.lnf, r0, n, C, ctx.operandBytes), logits = view(b.logits, n * V);
  const product = (out: Resource, weight: Resource, cols: number) =>
    matmulForward(gpu, { out, inp, weight }, { M: n, K: C, N: cols }, ctx.forwardMatmul("f32"));
  if (!b.logitsSlice) return [await product(logits, ctx.vocabSlices[0].weight, V)];
  const ds: Dispatch[] = [];
  for (const s of ctx.vocabSlices) {
    const slice = view(b.logitsSlice, n * s.rows);
    ds.push(
      await product(slice, s.weight, s.rows),
      await copyColumns(gpu, { dst: logits, src: slice }, {
        rows: n,
        cols: s.rows,
        src: { width: s.rows, col: 0 },
        dst: { width: V, col: s.row0 },
      }),
    );
  }
  return ds;
}

/**
 * The tied head's gradients for rows [r0, r0+n) from dlogits [n, V] (operand type): dlnf = dlogits · wte
 * into those rows of dBranch, and dwte += dlogitsᵀ · lnf; a vocabulary slice at a time when wte is split.
 */
async function headBackward(ctx: PassContext, dlogits: Resource, r0: number, n: number): Promise<Dispatch[]> {
  const { gpu, buffers: b, operand: A } = ctx, { C, V } = ctx.dims;
  const dlnf = rows(b.dBranch, r0, n, C), lnf = rows(b.lnf, r0, n, C, ctx.operandBytes);
  const ds: Dispatch[] = [];
  for (const [k, s] of ctx.vocabSlices.entries()) {
    const product = { M: n, K: C, N: s.rows };
    let dout = dlogits;
    if (b.logitsSlice) {
      dout = view(b.logitsSlice, n * s.rows, ctx.operandBytes);
      const cols = { rows: n, cols: s.rows, src: { width: V, col: s.row0 }, dst: { width: s.rows, col: 0 } };
      ds.push(await copyColumns(gpu, { dst: dout, src: dlogits }, { ...cols, type: A }));
    }
    // The first slice writes dlnf; the others write their share to dres's rows and add it.
    const dinp = k === 0 ? dlnf : rows(b.dres, r0, n, C);
    ds.push(
      await matmulBackwardInput(gpu, { dinp, dout, weight: s.weight }, product, ctx.inputGradMatmul(A)),
      ...(k === 0 ? [] : [await addInPlace(gpu, { acc: dlnf, inp: dinp }, n * C)]),
      ...await matmulBackwardWeightSplit(
        gpu,
        { dweight: s.grad, dout, inp: lnf, ...ctx.splitScratch },
        product,
        ctx.weightGradMatmul(A),
      ),
    );
  }
  return ds;
}

/**
 * The start of the backward, per chunk of rows: the head's matmul when chunked, the losses and dlogits (in
 * place over the logits, or in mixed precision into the f16 buffer, times the loss scale), then the tied
 * head's gradients dlnf = dlogits · wte (into dBranch) and dwte += dlogitsᵀ · lnf; then the loss's
 * accumulation.
 */
export async function recordLossBackward(ctx: PassContext): Promise<Dispatch[]> {
  const { gpu, buffers: b, operand: A, operandBytes } = ctx;
  const { N, V, R } = ctx.dims, { meanFactor, ignoreIndex } = ctx.loss;
  const half = b.dlogits16 !== undefined;
  const dlogitsBuffer = b.dlogits16 ?? b.logits;
  const ds: Dispatch[] = [];
  for (const [r0, n] of headChunkRows(N, R)) {
    const dlogits = view(dlogitsBuffer, n * V, operandBytes);
    if (headChunked(ctx)) ds.push(...await headForward(ctx, r0, n));
    ds.push(
      await crossEntropyForwardBackward(
        gpu,
        {
          logits: view(b.logits, n * V),
          losses: rows(b.losses, r0, n, 1),
          targets: rows(b.targets, r0, n, 1),
          ...(half ? { dlogits, lossScale: ctx.lossScaler } : {}),
        },
        { N: n, V, scale: meanFactor, ignoreIndex, ...(half ? { types: { dlogits: A } } : {}) },
      ),
      ...await headBackward(ctx, dlogits, r0, n),
    );
  }
  ds.push(
    await accumulateLoss(gpu, { acc: b.lossAcc, losses: b.losses, targets: b.targets }, { N, ignoreIndex }),
  );
  return ds;
}

/**
 * The loss without gradients (logits untouched), after forwardEval: per chunk the head's matmul when
 * chunked and the losses, then their accumulation. Also the chunks, for consumers of every row's logits.
 */
export async function recordLossOnly(
  ctx: PassContext,
): Promise<{ lossOnly: Dispatch[]; headChunks: HeadChunk[] }> {
  const { gpu, buffers: b } = ctx, { N, V, R } = ctx.dims, { ignoreIndex } = ctx.loss;
  const lossOnly: Dispatch[] = [];
  const headChunks: HeadChunk[] = [];
  for (const [r0, n] of headChunkRows(N, R)) {
    const logits = headChunked(ctx) ? await headForward(ctx, r0, n) : [];
    headChunks.push({ r0, rows: n, logits });
    lossOnly.push(...logits);
    lossOnly.push(
      await crossEntropyLoss(
        gpu,
        {
          losses: rows(b.losses, r0, n, 1),
          logits: view(b.logits, n * V),
          targets: rows(b.targets, r0, n, 1),
        },
        { N: n, V, ignoreIndex },
      ),
    );
  }
  lossOnly.push(
    await accumulateLoss(gpu, { acc: b.lossAcc, losses: b.losses, targets: b.targets }, { N, ignoreIndex }),
  );
  return { lossOnly, headChunks };
}
