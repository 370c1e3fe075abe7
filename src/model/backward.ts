/**
 * The GPT's backward pass below the head as a list of dispatches (llm.c's gpt2_backward): the final
 * layernorm, the blocks in reverse, the embedding. Parameter gradients accumulate into `grads`; the
 * residual stream's gradient lives in `dres`, a branch's in `dBranch`. Dropout's backward regenerates each
 * mask from its hash stream. The head and the loss come before this (model/head.ts recordLossBackward).
 *
 * @module
 */
import type { Dispatch, Resource } from "../gpu/kernel.ts";
import type { StorageType } from "../gpu/source.ts";
import { attentionBackward } from "../kernels/attention.ts";
import { encoderBackward } from "../kernels/encoder.ts";
import { layernormBackward } from "../kernels/layernorm.ts";
import { matmulBackwardBias, matmulBackwardInput, matmulBackwardWeightSplit } from "../kernels/matmul.ts";
import { dropoutBackward } from "../kernels/residual.ts";
import type { BlockBuffers } from "./buffers.ts";
import { dropoutStream } from "./config.ts";
import { type PassContext, view } from "./context.ts";

/** A gradient tensor and its storage type (f16 where it is a matmul or attention operand). */
interface Grad {
  readonly at: Resource;
  readonly type: StorageType;
}

/** The backward from dlnf (in dBranch, from the head) to the embedding's gradients. */
export async function recordBackward(ctx: PassContext): Promise<Dispatch[]> {
  const { gpu, config: c, buffers: b, operand: A } = ctx;
  const { B, T, N, C, NH, V, L } = ctx.dims;
  const rng = c.dropout > 0 ? { rng: b.seed } : {};
  const ds: Dispatch[] = [];

  // dinp = (or += with `accumulate`) the layernorm's input gradient from dout; dweight, dbias +=.
  const layernorm = async (
    prefix: string,
    dinp: Resource,
    dout: Resource,
    inp: Resource,
    mean: Resource,
    rstd: Resource,
    o: { accumulate: boolean },
  ) => {
    const scratch = b.lnScratch ? { scratch: b.lnScratch } : {};
    const weights = { weight: ctx.param(`${prefix}.weight`), dweight: ctx.grad(`${prefix}.weight`) };
    const bindings = { dinp, dout, inp, mean, rstd, ...weights, ...ctx.dbias(`${prefix}.bias`), ...scratch };
    ds.push(...await layernormBackward(gpu, bindings, { N, C, accumulate: o.accumulate }));
  };
  // For out [N, outs] = inp [N, ins] · Wᵀ + b: dinp = dout · W (times gelu'(geluInput), the MLP's fused
  // GELU), dW += doutᵀ · inp, db += the column sums of dout.
  const linear = async (
    prefix: string,
    dinp: Grad,
    dout: Grad,
    inp: Resource,
    [ins, outs]: [number, number],
    geluInput?: Resource,
  ) => {
    const shape = { M: N, K: ins, N: outs };
    const opts = ctx.inputGradMatmul(dout.type, dinp.type);
    const [pre, inputOpts] = geluInput
      ? [{ pre: geluInput }, { ...opts, types: { ...opts.types, pre: A }, activation: c.activation }]
      : [{}, opts];
    const weight = ctx.weight(`${prefix}.weight`);
    ds.push(
      await matmulBackwardInput(gpu, { dinp: dinp.at, dout: dout.at, weight, ...pre }, shape, inputOpts),
    );
    const dweight = { dweight: ctx.grad(`${prefix}.weight`), dout: dout.at, inp, ...ctx.splitScratch };
    ds.push(...await matmulBackwardWeightSplit(gpu, dweight, shape, ctx.weightGradMatmul(dout.type)));
    if (c.bias) {
      const dbias = { dbias: ctx.grad(`${prefix}.bias`), dout: dout.at };
      ds.push(await matmulBackwardBias(gpu, dbias, { M: N, N: outs }, { types: { dout: dout.type } }));
    }
  };
  // d(qkv) from d(atty), recomputing the probabilities from lse (or reading the stored dS).
  const attention = async (dqkv: Resource, a: BlockBuffers, l: number) => {
    const bindings = {
      dqkv,
      dout: b.dAtty,
      qkv: a.qkv,
      out: a.atty,
      lse: a.lse,
      scratch: b.attScratch,
      ...rng,
    };
    const dropout = c.dropout > 0 ? { dropout: { p: c.dropout, stream: dropoutStream("attn", l) } } : {};
    const types = { qkv: A, out: A, dout: A, dqkv: A };
    ds.push(
      ...await attentionBackward(gpu, { ...bindings, ds: b.attDs }, { B, T, C, NH, types, ...dropout }),
    );
  };
  // The gradient of a residual branch's output: dres through the branch's dropout (into dBranch), or dres.
  const dropout = async (stream: number): Promise<Resource> => {
    if (c.dropout <= 0) return b.dres;
    const s = { n: N * C, p: c.dropout, stream };
    ds.push(await dropoutBackward(gpu, { dinp: b.dBranch, dout: b.dres, rng: b.seed }, s));
    return b.dBranch;
  };

  const f32 = (at: Resource): Grad => ({ at, type: "f32" }),
    operand = (at: Resource): Grad => ({ at, type: A });
  const { dres, dBranch, dAtty, dHidden: dfch } = b;
  // dqkv [N,3C] reuses d(fch)'s buffer, free once c_fc's backward has read it.
  const dQkv = view(dfch, N * 3 * C, ctx.operandBytes);
  await layernorm("transformer.ln_f", dres, dBranch, b.res[L], b.lnfMean, b.lnfRstd, { accumulate: false });
  for (let l = L - 1; l >= 0; l--) {
    const h = `transformer.h.${l}`, a = b.blocks[l];
    // MLP: dres is d(res[l+1]).
    const dMlp = await dropout(dropoutStream("mlp_resid", l));
    await linear(`${h}.mlp.c_proj`, operand(dfch), f32(dMlp), a.fcg, [4 * C, C], a.fch);
    await linear(`${h}.mlp.c_fc`, f32(dBranch), operand(dfch), a.ln2, [C, 4 * C]);
    await layernorm(`${h}.ln_2`, dres, dBranch, a.x2, a.ln2Mean, a.ln2Rstd, { accumulate: true });
    // Attention: dres is now d(x2).
    const dAttn = await dropout(dropoutStream("attn_resid", l));
    await linear(`${h}.attn.c_proj`, operand(dAtty), f32(dAttn), a.atty, [C, C]);
    await attention(dQkv, a, l);
    await linear(`${h}.attn.c_attn`, f32(dBranch), operand(dQkv), a.ln1, [C, 3 * C]);
    await layernorm(`${h}.ln_1`, dres, dBranch, b.res[l], a.ln1Mean, a.ln1Rstd, { accumulate: true });
  }
  const dEmbedding = await dropout(dropoutStream("embedding"));
  // dwte whole, or by the slices of a token embedding split across buffers (model/context.ts).
  const slices = ctx.vocabSlices.map((s) => ({ dwte: s.grad, row0: s.row0, rows: s.rows }));
  const embeddingGrads = {
    dwte: slices.length > 1 ? slices : slices[0].dwte,
    dwpe: ctx.grad("transformer.wpe.weight"),
    dout: dEmbedding,
    tokens: b.tokens,
    scratch: b.encScratch,
  };
  ds.push(...await encoderBackward(gpu, embeddingGrads, { B, T, C, V }));
  return ds;
}
