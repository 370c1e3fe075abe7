/**
 * The tied head and the loss: logits [rows, V] = lnf · wteᵀ, the cross-entropy and its gradient, and the
 * head's two gradient products. A large vocabulary's head runs `R` rows at a time (GPTShape.headRows):
 * then the forwards end at the final layernorm and the head's matmul runs chunk by chunk, in the backward
 * before each chunk's loss and in `lossOnly`, so that `logits` holds one chunk at a time.
 *
 * @module
 */
import type { Dispatch } from "../gpu/kernel.ts";
import { accumulateLoss, crossEntropyForwardBackward, crossEntropyLoss } from "../kernels/crossentropy.ts";
import { matmulBackwardInput, matmulBackwardWeightSplit, matmulForward } from "../kernels/matmul.ts";
import { type PassContext, rows, view } from "./context.ts";

const WTE = "transformer.wte.weight";

/** One chunk of the head's rows (GPT.headChunks). */
export interface HeadChunk {
  /** First batch row of the chunk. */
  readonly r0: number;
  /** Rows in the chunk. */
  readonly rows: number;
  /** Computes the chunk's logits into `logits` after forwardEval; null when the head is whole. */
  readonly logits: Dispatch | null;
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

/** logits[0 .. n) = lnf[r0 .. r0+n) · wteᵀ: [n, V]. */
export async function headForward(ctx: PassContext, r0: number, n: number): Promise<Dispatch> {
  const { C, V } = ctx.dims, b = ctx.buffers;
  return await matmulForward(
    ctx.gpu,
    { out: view(b.logits, n * V), inp: rows(b.lnf, r0, n, C, ctx.operandBytes), weight: ctx.weight(WTE) },
    { M: n, K: C, N: V },
    ctx.forwardMatmul("f32"),
  );
}

/**
 * The start of the backward, per chunk of rows: the head's matmul when chunked, the losses and dlogits (in
 * place over the logits, or in mixed precision into the f16 buffer, times the loss scale), then the tied
 * head's gradients dlnf = dlogits · wte (into dBranch) and dwte += dlogitsᵀ · lnf; then the loss's
 * accumulation.
 */
export async function recordLossBackward(ctx: PassContext): Promise<Dispatch[]> {
  const { gpu, buffers: b, operand: A, operandBytes } = ctx;
  const { N, C, V, R } = ctx.dims, { meanFactor, ignoreIndex } = ctx.loss;
  const half = b.dlogits16 !== undefined;
  const dlogitsBuffer = b.dlogits16 ?? b.logits;
  const ds: Dispatch[] = [];
  for (const [r0, n] of headChunkRows(N, R)) {
    const dlogits = view(dlogitsBuffer, n * V, operandBytes), product = { M: n, K: C, N: V };
    if (headChunked(ctx)) ds.push(await headForward(ctx, r0, n));
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
    );
    const dlnf = rows(b.dBranch, r0, n, C), lnf = rows(b.lnf, r0, n, C, operandBytes);
    ds.push(
      await matmulBackwardInput(
        gpu,
        { dinp: dlnf, dout: dlogits, weight: ctx.weight(WTE) },
        product,
        ctx.inputGradMatmul(A),
      ),
      ...await matmulBackwardWeightSplit(
        gpu,
        { dweight: ctx.grad(WTE), dout: dlogits, inp: lnf, ...ctx.splitScratch },
        product,
        ctx.weightGradMatmul(A),
      ),
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
    const logits = headChunked(ctx) ? await headForward(ctx, r0, n) : null;
    headChunks.push({ r0, rows: n, logits });
    if (logits) lossOnly.push(logits);
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
