/**
 * The GPT's forward pass as a list of dispatches, one kernel a line (llm.c's gpt2_forward): embedding,
 * L blocks of (layernorm, qkv matmul, causal attention, projection + residual, layernorm, MLP matmul with
 * GELU, projection + residual), final layernorm, and the tied head unless it runs in chunks (model/head.ts).
 *
 * @module
 */
import type { Dispatch, Resource } from "../gpu/kernel.ts";
import { attentionForward } from "../kernels/attention.ts";
import { castToF16 } from "../kernels/convert.ts";
import { encoderForward } from "../kernels/encoder.ts";
import { layernormForward } from "../kernels/layernorm.ts";
import { matmulForward } from "../kernels/matmul.ts";
import { dropoutForward } from "../kernels/residual.ts";
import type { BlockBuffers } from "./buffers.ts";
import { type DropoutSite, dropoutStream } from "./config.ts";
import type { PassContext, VocabSlice } from "./context.ts";
import { headChunked, headForward } from "./head.ts";

/** Options of {@linkcode recordForward}. */
export interface ForwardOptions {
  /** Apply the config's dropout (training); false for evaluation and sampling. */
  readonly dropout: boolean;
}

/** The forward from `tokens` to the logits (to the final layernorm when the head runs in chunks). */
export async function recordForward(ctx: PassContext, o: ForwardOptions): Promise<Dispatch[]> {
  const { gpu, config: c, buffers: b, operand: A } = ctx;
  const { B, T, N, C, NH, V, L } = ctx.dims;
  const drop = o.dropout && c.dropout > 0;
  // The hash stream of a dropout site, or undefined without dropout.
  const stream = (site: DropoutSite, l?: number) => drop ? dropoutStream(site, l) : undefined;
  const dropout = (s: number | undefined) => s === undefined ? {} : { dropout: { p: c.dropout, stream: s } };
  const rng = (s: number | undefined) => s === undefined ? {} : { rng: b.seed };

  // out, mean, rstd = layernorm(inp) with the weights of `prefix`.
  const layernorm = (out: Resource, mean: Resource, rstd: Resource, inp: Resource, prefix: string) =>
    layernormForward(
      gpu,
      { out, mean, rstd, inp, weight: ctx.param(`${prefix}.weight`), ...ctx.bias(`${prefix}.bias`) },
      { N, C, types: { out: A } },
    );
  // out [N, outs] = inp [N, ins] · Wᵀ + b, with `gelu` also written as gelu(out) (the MLP's fused GELU).
  const linear = (out: Resource, inp: Resource, prefix: string, ins: number, outs: number, gelu?: Resource) =>
    matmulForward(
      gpu,
      {
        out,
        inp,
        weight: ctx.weight(`${prefix}.weight`),
        ...ctx.bias(`${prefix}.bias`),
        ...(gelu ? { act: gelu } : {}),
      },
      { M: N, K: ins, N: outs },
      { ...ctx.forwardMatmul(A), activation: c.activation },
    );
  // out [N, C] = resid + dropout(inp [N, ins] · Wᵀ + b): dropout and residual add in the matmul's epilogue
  // (the backward regenerates the mask from the stream).
  const project = (out: Resource, resid: Resource, inp: Resource, prefix: string, ins: number, s?: number) =>
    matmulForward(
      gpu,
      { out, resid, inp, weight: ctx.weight(`${prefix}.weight`), ...ctx.bias(`${prefix}.bias`), ...rng(s) },
      { M: N, K: ins, N: C, ...dropout(s) },
      ctx.forwardMatmul("f32"),
    );
  // atty = causal attention over qkv (dropout on its probabilities), with logsumexp for the backward.
  const attention = (a: BlockBuffers, s?: number) =>
    attentionForward(
      gpu,
      { out: a.atty, lse: a.lse, qkv: a.qkv, ...rng(s) },
      { B, T, C, NH, types: { qkv: A, out: A }, ...dropout(s) },
    );
  // The encoder writes res[0] directly, or emb for the embedding dropout to write res[0].
  const embedding = stream("embedding");
  const encoded = embedding === undefined ? b.res[0] : b.emb!;
  const wpe = ctx.param("transformer.wpe.weight");
  // One token embedding's forward, or one per vocabulary slice of a split one (model/context.ts).
  const sliced = ctx.vocabSlices.length > 1;
  const embed = (s: VocabSlice) =>
    encoderForward(
      gpu,
      { out: encoded, tokens: b.tokens, wte: s.param, wpe },
      { B, T, C, V, ...(sliced ? { slice: s } : {}) },
    );

  const ds: Dispatch[] = [];
  if (b.params16) {
    const arena = ctx.params;
    for (const [k, out] of b.params16.entries()) {
      ds.push(await castToF16(gpu, { out, inp: arena.buffers[k] }, arena.layout.buffers[k].floats));
    }
  }
  for (const s of ctx.vocabSlices) ds.push(await embed(s));
  if (embedding !== undefined) {
    const s = { n: N * C, p: c.dropout, stream: embedding };
    ds.push(await dropoutForward(gpu, { out: b.res[0], inp: encoded, rng: b.seed }, s));
  }
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`, a = b.blocks[l];
    ds.push(await layernorm(a.ln1, a.ln1Mean, a.ln1Rstd, b.res[l], `${h}.ln_1`));
    ds.push(await linear(a.qkv, a.ln1, `${h}.attn.c_attn`, C, 3 * C));
    ds.push(await attention(a, stream("attn", l)));
    ds.push(await project(a.x2, b.res[l], a.atty, `${h}.attn.c_proj`, C, stream("attn_resid", l)));
    ds.push(await layernorm(a.ln2, a.ln2Mean, a.ln2Rstd, a.x2, `${h}.ln_2`));
    ds.push(await linear(a.fch, a.ln2, `${h}.mlp.c_fc`, C, 4 * C, a.fcg));
    ds.push(await project(b.res[l + 1], a.x2, a.fcg, `${h}.mlp.c_proj`, 4 * C, stream("mlp_resid", l)));
  }
  ds.push(await layernorm(b.lnf, b.lnfMean, b.lnfRstd, b.res[L], "transformer.ln_f"));
  if (!headChunked(ctx)) ds.push(...await headForward(ctx, 0, N));
  return ds;
}
