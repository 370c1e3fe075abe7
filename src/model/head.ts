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
export function headChunked(x: PassContext): boolean {
  return x.dims.R < x.dims.N;
}

/** logits[0 .. n) = lnf[r0 .. r0+n) · wteᵀ: [n, V]. */
export async function headForward(x: PassContext, r0: number, n: number): Promise<Dispatch> {
  const { C, V } = x.dims, b = x.buffers;
  return await matmulForward(
    x.gpu,
    { out: view(b.logits, n * V), inp: rows(b.lnf, r0, n, C, x.operandBytes), weight: x.weight(WTE) },
    { M: n, K: C, N: V },
    x.forwardMatmul("f32"),
  );
}

/**
 * The start of the backward, per chunk of rows: the head's matmul when chunked, the losses and dlogits (in
 * place over the logits, or in mixed precision into the f16 buffer, times the loss scale), then the tied
 * head's gradients dlnf = dlogits · wte (into dBranch) and dwte += dlogitsᵀ · lnf; then the loss's
 * accumulation.
 */
export async function recordLossBackward(x: PassContext): Promise<Dispatch[]> {
  const { gpu, buffers: b, operand: A, operandBytes } = x;
  const { N, C, V, R } = x.dims, { meanFactor, ignoreIndex } = x.loss;
  const half = b.dlogits16 !== undefined;
  const dlogitsBuffer = b.dlogits16 ?? b.logits;
  const ds: Dispatch[] = [];
  for (const [r0, n] of headChunkRows(N, R)) {
    const dlogits = view(dlogitsBuffer, n * V, operandBytes), product = { M: n, K: C, N: V };
    if (headChunked(x)) ds.push(await headForward(x, r0, n));
    ds.push(
      await crossEntropyForwardBackward(
        gpu,
        {
          logits: view(b.logits, n * V),
          losses: rows(b.losses, r0, n, 1),
          targets: rows(b.targets, r0, n, 1),
          ...(half ? { dlogits, lossScale: x.lossScaler } : {}),
        },
        { N: n, V, scale: meanFactor, ignoreIndex, ...(half ? { types: { dlogits: A } } : {}) },
      ),
    );
    const dlnf = rows(b.dBranch, r0, n, C), lnf = rows(b.lnf, r0, n, C, operandBytes);
    ds.push(
      await matmulBackwardInput(
        gpu,
        { dinp: dlnf, dout: dlogits, weight: x.weight(WTE) },
        product,
        x.inputGradMatmul(A),
      ),
      ...await matmulBackwardWeightSplit(
        gpu,
        { dweight: x.grad(WTE), dout: dlogits, inp: lnf, ...x.splitScratch },
        product,
        x.weightGradMatmul(A),
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
  x: PassContext,
): Promise<{ lossOnly: Dispatch[]; headChunks: HeadChunk[] }> {
  const { gpu, buffers: b } = x, { N, V, R } = x.dims, { ignoreIndex } = x.loss;
  const lossOnly: Dispatch[] = [];
  const headChunks: HeadChunk[] = [];
  for (const [r0, n] of headChunkRows(N, R)) {
    const logits = headChunked(x) ? await headForward(x, r0, n) : null;
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
