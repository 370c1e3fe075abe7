/**
 * The GPT on the GPU: parameter and gradient arenas, activation buffers for a fixed (B, T), and the
 * forward and backward passes as lists of dispatches, recorded once and replayed every step.
 *
 * Activation shapes (N = B*T rows): residual stream [N,C] per layer boundary; per block ln1/ln2 [N,C]
 * with mean/rstd [N], qkv [N,3C], attention output [N,C] with logsumexp [B,NH,T], MLP hidden
 * fch/gelu [N,4C]; logits [N,V], overwritten in place by dlogits in the backward. A large vocabulary's
 * logits are computed `headRows` rows at a time (the head's matmul, the loss and the head's two gradient
 * products per chunk of rows, all in the backward; model/memory.ts headRowsDefault), so logits [R,V] is
 * the chunk's and memory no longer grows with N*V.
 *
 * Mixed precision (dtype "float16"): the forward starts by refreshing an f16 copy of the parameter arena;
 * ln1/ln2/lnf, qkv, the attention output, fch/gelu and the gradients of the attention output, of qkv and of
 * fch are stored as f16 (the operands of matmuls and attention), and the loss gradient goes to a separate
 * f16 [N,V] buffer, multiplied by the dynamic loss scale in `lossScaler`. Residual stream and its gradient,
 * layernorm statistics, lse, logits and the parameter gradients stay f32; arithmetic is f32 (the matmuls
 * whose two operands are f16 sum each 16-term tile in f16 unless `halfMath` is false).
 *
 * @module
 */
import { Arena, createStorage } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch, Resource } from "../gpu/kernel.ts";
import {
  attentionBackward,
  attentionDsBytes,
  attentionForward,
  attentionScratchBytes,
} from "../kernels/attention.ts";
import { accumulateLoss, crossEntropyForwardBackward, crossEntropyLoss } from "../kernels/crossentropy.ts";
import { castToF16 } from "../kernels/convert.ts";
import { encoderBackward, encoderForward, encoderScratchBytes } from "../kernels/encoder.ts";
import { layernormBackward, layernormForward, layernormScratchBytes } from "../kernels/layernorm.ts";
import {
  matmulBackwardBias,
  matmulBackwardInput,
  matmulBackwardWeightScratchBytes,
  matmulBackwardWeightSplit,
  matmulForward,
  type MatmulOptions,
} from "../kernels/matmul.ts";
import { createLossScaler } from "../kernels/optimizer.ts";
import { dropoutBackward, dropoutForward } from "../kernels/residual.ts";
import { dropoutStream, type GPTConfig, type Precision, validateConfig } from "./config.ts";
import { paramLayout } from "./params.ts";
import {
  checkMemory,
  headRowsDefault,
  linearWeightShapes,
  memoryPlan,
  storedDsBuffer,
  storedDsDefault,
} from "./memory.ts";

/** Buffers of one transformer block's forward pass, kept for its backward. */
interface BlockActs {
  ln1: GPUBuffer;
  ln1Mean: GPUBuffer;
  ln1Rstd: GPUBuffer;
  qkv: GPUBuffer;
  atty: GPUBuffer;
  lse: GPUBuffer;
  x2: GPUBuffer;
  ln2: GPUBuffer;
  ln2Mean: GPUBuffer;
  ln2Rstd: GPUBuffer;
  fch: GPUBuffer;
  fcg: GPUBuffer;
}

type GPTParts = { [K in keyof GPT]: GPT[K] };

/** One chunk of the head's rows (GPT.headChunks). */
export interface HeadChunk {
  /** First batch row of the chunk. */
  readonly r0: number;
  /** Rows in the chunk. */
  readonly rows: number;
  /** Computes the chunk's logits into `logits` after forwardEval; null when the head is whole. */
  readonly logits: Dispatch | null;
}

/** Options for {@linkcode GPT.create}. */
export interface GPTShape {
  /** Sequences per micro-batch. */
  B: number;
  /** Positions per sequence (<= block_size). */
  T: number;
  /** Loss scale of the backward: dlogits = (softmax - onehot) * lossScale; default 1/(B*T). */
  lossScale?: number;
  /** Targets equal to this id (padding) give no loss and no gradient; default: none. */
  ignoreIndex?: number;
  /** Count the optimizer's two moment arenas in the memory check (the trainer allocates them). */
  training?: boolean;
  /** Storage precision (default "float32"); "float16" needs the adapter feature `shader-f16`. */
  dtype?: Precision;
  /**
   * Split the weight gradients' reduction over B*T when their output has too few tiles to fill a GPU
   * (kernels/matmul.ts matmulBackwardWeightSplit decides per shape); false: one dispatch each. Default:
   * true, except on a software adapter (`gpu.software`: lavapipe measured 5-13% slower with the split at
   * the default training shape, its 2 threads being busy anyway).
   */
  splitK?: boolean;
  /**
   * float16 only: matmuls whose two operands are both f16 sum each 16-term tile in f16 arithmetic (twice
   * the FMA rate on GPUs with packed half math), widening into f32 accumulators per tile (default true).
   * false: f32 arithmetic on f16-stored operands.
   */
  halfMath?: boolean;
  /**
   * Attention's backward keeps dS in a [B, NH, T, T] f32 buffer, written by the dk/dv kernel and read by
   * the dq kernel instead of recomputing S and dP (model/memory.ts storedDsDefault). Default: when that
   * buffer fits one binding and adds at most a quarter to the model's other buffers.
   */
  storedDs?: boolean;
  /**
   * Rows of logits computed at a time by the tied head and the loss: B*T (the default while the f32
   * logits take at most min(256 MiB, the binding limit): model/memory.ts headRowsDefault), or fewer, a
   * multiple of 64. With fewer, the forwards end at the final layernorm, the head runs chunk by chunk in
   * the backward and in `lossOnly`, and `logits` holds one chunk at a time: a consumer of every row's
   * logits after `forwardEval` goes through `headChunks` (scheduled sampling) or asks for B*T (the exposure
   * measure, which reads them all back).
   */
  headRows?: number;
}

/**
 * A GPT with its buffers and recorded passes for one (B, T). Inputs: write token ids into `tokens`
 * and next-token targets into `targets` (u32 [B,T]), and the dropout seed into `rng[0]`.
 */
export class GPT {
  /** The model's configuration. */
  readonly config: GPTConfig;
  /** Sequences per micro-batch. */
  readonly B: number;
  /** Positions per sequence. */
  readonly T: number;
  /** Parameters, nanoGPT names, decayed tensors first. */
  readonly params: Arena;
  /** Gradients, same layout as params (accumulated by the backward: clear before a step). */
  readonly grads: Arena;
  /** First float of the non-decayed parameter group. */
  readonly decayEnd: number;
  /** Input token ids, u32 [B,T]. */
  readonly tokens: GPUBuffer;
  /** Target token ids, u32 [B,T]. */
  readonly targets: GPUBuffer;
  /** Dropout seed, u32 [4] (element 0 used). */
  readonly rng: GPUBuffer;
  /**
   * Logits [headRows, V]: every row's after `forwardEval` or `forwardTrain` when headRows = B*T (after
   * the backward they hold dlogits in float32; float16 writes dlogits elsewhere); else one chunk's scratch.
   */
  readonly logits: GPUBuffer;
  /** Rows of logits computed at a time (GPTShape.headRows). */
  readonly headRows: number;
  /**
   * The head's chunks of rows, in order: batch rows r0 .. r0+rows-1, and the dispatch that computes their
   * logits into rows 0 .. rows-1 of `logits` after `forwardEval` (null when headRows = B*T: the forward
   * computed every row's logits itself). For consumers of every row's logits, such as scheduled sampling.
   */
  readonly headChunks: readonly HeadChunk[];
  /** Per-position losses [B*T]. */
  readonly losses: GPUBuffer;
  /** Loss accumulator: [0] += sum of losses, [1] += count of scored positions. */
  readonly lossAcc: GPUBuffer;
  /** Storage precision of the passes. */
  readonly dtype: Precision;
  /**
   * float16 only: [loss scale S, good steps], 2 f32 (optimizer.ts createLossScaler, starting at 2^16). The
   * backward's gradients are S times the true ones; the trainer's gradNorm unscales them and updates S.
   */
  readonly lossScaler?: GPUBuffer;
  /** Forward to logits with dropout (training). */
  readonly forwardTrain: Dispatch[];
  /** Forward to logits without dropout (evaluation, sampling). */
  readonly forwardEval: Dispatch[];
  /** Loss, dlogits in place, loss accumulation, backward into `grads`. */
  readonly backward: Dispatch[];
  /** Loss only (logits untouched) and loss accumulation: for evaluation after forwardEval. */
  readonly lossOnly: Dispatch[];

  private constructor(init: GPTParts) {
    this.config = init.config;
    this.B = init.B;
    this.T = init.T;
    this.params = init.params;
    this.grads = init.grads;
    this.decayEnd = init.decayEnd;
    this.tokens = init.tokens;
    this.targets = init.targets;
    this.rng = init.rng;
    this.logits = init.logits;
    this.headRows = init.headRows;
    this.headChunks = init.headChunks;
    this.losses = init.losses;
    this.lossAcc = init.lossAcc;
    this.dtype = init.dtype;
    this.lossScaler = init.lossScaler;
    this.forwardTrain = init.forwardTrain;
    this.forwardEval = init.forwardEval;
    this.backward = init.backward;
    this.lossOnly = init.lossOnly;
  }

  /** Allocates the arenas and activations for (B, T) and records the passes. */
  static async create(gpu: Gpu, config: GPTConfig, shape: GPTShape): Promise<GPT> {
    validateConfig(config);
    const { B, T } = shape;
    if (!(Number.isInteger(B) && B >= 1)) throw new Error(`batch size must be a positive integer (got ${B})`);
    if (!(Number.isInteger(T) && T >= 1 && T <= config.block_size)) {
      throw new Error(`sequence length ${T} must be in [1, block_size=${config.block_size}]`);
    }
    const c = config, C = c.n_embd, V = c.vocab_size, L = c.n_layer, N = B * T, NH = c.n_head;
    const dtype = shape.dtype ?? "float32";
    if (dtype !== "float32" && dtype !== "float16") {
      throw new Error(`dtype must be float32 or float16 (got ${dtype})`);
    }
    const half = dtype === "float16";
    if (half && !gpu.features.f16) {
      throw new Error(
        "dtype float16 needs the adapter feature 'shader-f16', which this GPU lacks; use float32",
      );
    }
    const R = shape.headRows ?? headRowsDefault(gpu, c, B, T);
    if (!(Number.isInteger(R) && R >= 1 && R <= N && (R === N || R % 64 === 0))) {
      throw new Error(`headRows must be B*T = ${N} or a multiple of 64 below it (got ${R})`);
    }
    const chunked = R < N;
    const plan = memoryPlan(c, B, T, shape.training ?? false, dtype, shape.splitK ?? !gpu.software, false, R);
    const storedDs = shape.storedDs ?? storedDsDefault(gpu, c, B, T, plan, dtype);
    if (storedDs) plan.push(storedDsBuffer(c, B, T, dtype));
    checkMemory(gpu, plan, "reduce --batch-size, --block-size, the model or the vocabulary");
    const { layout, decayEnd } = paramLayout(c);
    const params = new Arena(gpu, "params", layout);
    const grads = new Arena(gpu, "grads", layout);
    const f32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
    // Operands of matmuls and attention: f16 in mixed precision (2 bytes a value).
    const act = half ? (label: string, n: number) => createStorage(gpu, label, n * 2) : f32;
    const A: "f16" | "f32" = half ? "f16" : "f32";
    const tokens = f32("tokens", N), targets = f32("targets", N), rng = f32("rng", 4);
    const logits = f32("logits", R * V), losses = f32("losses", N), lossAcc = f32("loss_acc", 4);

    // Forward activations.
    const res: GPUBuffer[] = [];
    for (let l = 0; l <= L; l++) res.push(f32(`res${l}`, N * C));
    // The encoder's output before embedding dropout (without dropout the encoder writes res[0] directly).
    const emb = c.dropout > 0 ? f32("emb", N * C) : undefined;
    const blocks: BlockActs[] = [];
    for (let l = 0; l < L; l++) {
      blocks.push({
        ln1: act(`h${l}.ln1`, N * C),
        ln1Mean: f32(`h${l}.ln1_mean`, N),
        ln1Rstd: f32(`h${l}.ln1_rstd`, N),
        qkv: act(`h${l}.qkv`, N * 3 * C),
        atty: act(`h${l}.atty`, N * C),
        lse: f32(`h${l}.lse`, B * NH * T),
        x2: f32(`h${l}.x2`, N * C),
        ln2: act(`h${l}.ln2`, N * C),
        ln2Mean: f32(`h${l}.ln2_mean`, N),
        ln2Rstd: f32(`h${l}.ln2_rstd`, N),
        fch: act(`h${l}.fch`, N * 4 * C),
        fcg: act(`h${l}.fcg`, N * 4 * C),
      });
    }
    const lnf = act("lnf", N * C), lnfMean = f32("lnf_mean", N), lnfRstd = f32("lnf_rstd", N);

    // Backward scratch, shared by all layers.
    const dres = f32("dres", N * C), dC = f32("d_c", N * C);
    // Gradients that feed attention's backward and the MLP's up-projection: stored as A, like activations.
    const dAttyBuf = act("d_atty", N * C), d4b = act("d_4c_b", N * 4 * C);
    const attScratch = createStorage(gpu, "att_scratch", attentionScratchBytes({ B, T, C, NH }));
    const attDs = storedDs ? createStorage(gpu, "att_ds", attentionDsBytes({ B, T, C, NH }, A)) : undefined;
    const lnScratchBytes = layernormScratchBytes({ N, C });
    const lnScratch = lnScratchBytes > 0 ? createStorage(gpu, "ln_scratch", lnScratchBytes) : undefined;
    const encScratch = createStorage(gpu, "enc_scratch", encoderScratchBytes({ B, T, C, V }));
    // Split-K weight gradients: a Linear layer's dW has few output tiles and a reduction over all B*T rows,
    // which would leave most of a large GPU idle; slices of rows go to this scratch, then add up in order.
    // Sized with the default bk of 16: slices of 32 rows (bk 32) are never more numerous.
    const splitK = shape.splitK ?? !gpu.software;
    const splitBytes = !splitK
      ? 0
      : Math.max(0, ...linearWeightShapes(c, N).map((s) => matmulBackwardWeightScratchBytes(s)));
    const noSplit = splitBytes > 0 ? {} : { splits: 1 };
    const splitScratch = splitBytes > 0 ? createStorage(gpu, "dw_split_scratch", splitBytes) : undefined;
    const view = (b: GPUBuffer, values: number, bytes = 4): Resource => ({
      buffer: b,
      offset: 0,
      size: Math.ceil((values * bytes) / 4) * 4, // bindings are whole 4-byte words (an odd f16 count)
    });
    // Mixed precision: the f16 weight copy, the f16 loss gradient and the loss scale (the allocation order
    // matches memoryPlan's list only as a multiset; the memory test sorts).
    const params16 = half ? createStorage(gpu, "params_f16", layout.totalFloats * 2) : undefined;
    const dlogits16 = half ? act("dlogits_f16", R * V) : undefined;
    const lossScaler = half ? createLossScaler(gpu) : undefined;

    const P = (n: string) => params.bind(n);
    // A matmul weight as the matmuls read it: the f16 copy (2 bytes a value, same element offsets).
    const W = (n: string): Resource => {
      if (!params16) return P(n);
      const e = layout.get(n);
      return { buffer: params16, offset: e.offset * 2, size: Math.ceil(e.size / 2) * 4 }; // padded arena
    };
    // Matmul options: operand types (forward: inp, weight in A, out given; backward input / weight: dout
    // given) and their arithmetic.
    // f16 arithmetic (per-tile f16 sums, f32 across tiles) where both operands of a product are f16.
    const halfMath = half && (shape.halfMath ?? true);
    const math = (a: "f16" | "f32", b: "f16" | "f32") =>
      halfMath && a === "f16" && b === "f16" ? "f16" : "f32";
    const fwdT = (out: "f16" | "f32"): MatmulOptions => ({
      types: { inp: A, weight: A, out },
      math: math(A, A),
    });
    const bwdInT = (dout: "f16" | "f32", out: "f16" | "f32" = "f32"): MatmulOptions => ({
      types: { dout, weight: A, out },
      math: math(dout, A),
    });
    const bwdWT = (dout: "f16" | "f32"): MatmulOptions => ({
      types: { dout, inp: A },
      math: math(dout, A),
    });
    const G = (n: string) => grads.bind(n);
    const PB = (n: string) => c.bias ? { bias: P(n) } : {};

    // out = resid + dropout(inp · Wᵀ + b) for a projection [N, K] -> [N, C]: one matmul, the dropout and
    // the residual add in its epilogue (the backward regenerates the mask from the stream).
    const project = async (
      ds: Dispatch[],
      out: GPUBuffer,
      resid: GPUBuffer,
      inp: GPUBuffer,
      prefix: string,
      K: number,
      drop: boolean,
      stream: number,
    ) => {
      const b = {
        out,
        resid,
        inp,
        weight: W(`${prefix}.weight`),
        ...PB(`${prefix}.bias`),
        ...(drop ? { rng } : {}),
      };
      const s = { M: N, K, N: C, ...(drop ? { dropout: { p: c.dropout, stream } } : {}) };
      ds.push(await matmulForward(gpu, b, s, fwdT("f32")));
    };

    // Rows r0 .. r0+rows-1 of a row-major [N, width] buffer of `bytes`-byte values.
    const rows = (b: GPUBuffer, r0: number, n: number, width: number, bytes = 4): Resource => ({
      buffer: b,
      offset: r0 * width * bytes,
      size: Math.ceil((n * width * bytes) / 4) * 4,
    });
    const abytes = half ? 2 : 4;
    // The head's chunks of rows: [r0, rows] pairs covering 0 .. N-1 (one when unchunked).
    const chunks: [number, number][] = [];
    for (let r0 = 0; r0 < N; r0 += R) chunks.push([r0, Math.min(R, N - r0)]);
    // logits [rows, V] = lnf[r0 .. r0+rows) · wteᵀ.
    const headForward = async (r0: number, n: number) =>
      await matmulForward(
        gpu,
        { out: view(logits, n * V), inp: rows(lnf, r0, n, C, abytes), weight: W("transformer.wte.weight") },
        { M: n, K: C, N: V },
        fwdT("f32"),
      );

    const forward = async (train: boolean): Promise<Dispatch[]> => {
      const ds: Dispatch[] = [];
      const drop = train && c.dropout > 0;
      const wpe = P("transformer.wpe.weight"), wte = P("transformer.wte.weight");
      if (params16) ds.push(await castToF16(gpu, { out: params16, inp: params.buffer }, layout.totalFloats));
      ds.push(
        await encoderForward(gpu, { out: drop && emb ? emb : res[0], tokens, wte, wpe }, { B, T, C, V }),
      );
      if (drop && emb) {
        ds.push(
          await dropoutForward(gpu, { out: res[0], inp: emb, rng }, {
            n: N * C,
            p: c.dropout,
            stream: dropoutStream("embedding"),
          }),
        );
      }
      for (let l = 0; l < L; l++) {
        const h = `transformer.h.${l}`, a = blocks[l];
        ds.push(
          await layernormForward(gpu, {
            out: a.ln1,
            mean: a.ln1Mean,
            rstd: a.ln1Rstd,
            inp: res[l],
            weight: P(`${h}.ln_1.weight`),
            ...PB(`${h}.ln_1.bias`),
          }, { N, C, types: { out: A } }),
        );
        ds.push(
          await matmulForward(
            gpu,
            {
              out: a.qkv,
              inp: a.ln1,
              weight: W(`${h}.attn.c_attn.weight`),
              ...PB(`${h}.attn.c_attn.bias`),
            },
            { M: N, K: C, N: 3 * C },
            fwdT(A),
          ),
        );
        ds.push(
          await attentionForward(gpu, { out: a.atty, lse: a.lse, qkv: a.qkv, ...(drop ? { rng } : {}) }, {
            B,
            T,
            C,
            NH,
            types: { qkv: A, out: A },
            ...(drop ? { dropout: { p: c.dropout, stream: dropoutStream("attn", l) } } : {}),
          }),
        );
        // x2 = res + dropout(attn_proj(atty)).
        await project(ds, a.x2, res[l], a.atty, `${h}.attn.c_proj`, C, drop, dropoutStream("attn_resid", l));
        ds.push(
          await layernormForward(gpu, {
            out: a.ln2,
            mean: a.ln2Mean,
            rstd: a.ln2Rstd,
            inp: a.x2,
            weight: P(`${h}.ln_2.weight`),
            ...PB(`${h}.ln_2.bias`),
          }, { N, C, types: { out: A } }),
        );
        ds.push(
          await matmulForward(
            gpu,
            {
              out: a.fch,
              act: a.fcg, // fused GELU: fcg = gelu(fch)
              inp: a.ln2,
              weight: W(`${h}.mlp.c_fc.weight`),
              ...PB(`${h}.mlp.c_fc.bias`),
            },
            { M: N, K: C, N: 4 * C },
            fwdT(A),
          ),
        );
        // res[l+1] = x2 + dropout(mlp_proj(fcg)).
        await project(
          ds,
          res[l + 1],
          a.x2,
          a.fcg,
          `${h}.mlp.c_proj`,
          4 * C,
          drop,
          dropoutStream("mlp_resid", l),
        );
      }
      ds.push(
        await layernormForward(gpu, {
          out: lnf,
          mean: lnfMean,
          rstd: lnfRstd,
          inp: res[L],
          weight: P("transformer.ln_f.weight"),
          ...PB("transformer.ln_f.bias"),
        }, { N, C, types: { out: A } }),
      );
      // The tied head: here for all rows at once, else chunk by chunk in the backward and lossOnly.
      if (!chunked) ds.push(await headForward(0, N));
      return ds;
    };

    const lnBack = async (
      b: { dinp: Resource; dout: Resource; inp: Resource; mean: Resource; rstd: Resource },
      prefix: string,
      accumulate: boolean,
    ) =>
      await layernormBackward(gpu, {
        ...b,
        weight: P(`${prefix}.weight`),
        dweight: G(`${prefix}.weight`),
        ...(c.bias ? { dbias: G(`${prefix}.bias`) } : {}),
        ...(lnScratch ? { scratch: lnScratch } : {}),
      }, { N, C, accumulate });
    const linBack = async (
      prefix: string,
      dinp: Resource,
      dout: Resource,
      inp: Resource,
      K: number,
      M2: number,
      doutType: "f16" | "f32",
      dinpType: "f16" | "f32",
      geluPre?: Resource, // the MLP's fused GELU backward: dinp = (dout · W) * gelu'(pre)
    ) => {
      const s = { M: N, K, N: M2 };
      const inOpts = bwdInT(doutType, dinpType);
      const ds = [
        await matmulBackwardInput(
          gpu,
          { dinp, dout, weight: W(`${prefix}.weight`), ...(geluPre ? { pre: geluPre } : {}) },
          s,
          geluPre ? { ...inOpts, types: { ...inOpts.types, pre: A } } : inOpts,
        ),
        ...await matmulBackwardWeightSplit(
          gpu,
          {
            dweight: G(`${prefix}.weight`),
            dout,
            inp,
            ...(splitScratch ? { scratch: splitScratch } : {}),
          },
          s,
          { ...bwdWT(doutType), ...noSplit },
        ),
      ];
      if (c.bias) {
        ds.push(
          await matmulBackwardBias(gpu, { dbias: G(`${prefix}.bias`), dout }, { M: N, N: M2 }, {
            types: { dout: doutType },
          }),
        );
      }
      return ds;
    };

    const backward: Dispatch[] = [];
    const scale = shape.lossScale ?? 1 / N;
    const ignoreIndex = shape.ignoreIndex;
    // The loss gradient: in place over the logits, or (mixed precision) into the f16 buffer, times the loss scale.
    const dlogitsBuf = dlogits16 ?? logits;
    for (const [r0, n] of chunks) {
      const lg = view(logits, n * V), dlogits = view(dlogitsBuf, n * V, abytes);
      const lnfRows = rows(lnf, r0, n, C, abytes);
      if (chunked) backward.push(await headForward(r0, n));
      backward.push(
        await crossEntropyForwardBackward(
          gpu,
          {
            logits: lg,
            losses: rows(losses, r0, n, 1),
            targets: rows(targets, r0, n, 1),
            ...(half ? { dlogits, lossScale: lossScaler } : {}),
          },
          { N: n, V, scale, ignoreIndex, ...(half ? { types: { dlogits: A } } : {}) },
        ),
      );
      // Tied head: dlnf = dlogits · wte, dwte += dlogitsᵀ · lnf.
      backward.push(
        await matmulBackwardInput(
          gpu,
          { dinp: rows(dC, r0, n, C), dout: dlogits, weight: W("transformer.wte.weight") },
          { M: n, K: C, N: V },
          bwdInT(A),
        ),
        ...await matmulBackwardWeightSplit(
          gpu,
          {
            dweight: G("transformer.wte.weight"),
            dout: dlogits,
            inp: lnfRows,
            ...(splitScratch ? { scratch: splitScratch } : {}),
          },
          { M: n, K: C, N: V },
          { ...bwdWT(A), ...noSplit },
        ),
      );
    }
    backward.push(await accumulateLoss(gpu, { acc: lossAcc, losses, targets }, { N, ignoreIndex }));
    backward.push(
      ...await lnBack(
        { dinp: dres, dout: dC, inp: res[L], mean: lnfMean, rstd: lnfRstd },
        "transformer.ln_f",
        false,
      ),
    );
    const dropBack = async (stream: number): Promise<Resource> => {
      if (c.dropout <= 0) return dres;
      backward.push(
        await dropoutBackward(gpu, { dinp: dC, dout: dres, rng }, { n: N * C, p: c.dropout, stream }),
      );
      return dC;
    };
    for (let l = L - 1; l >= 0; l--) {
      const h = `transformer.h.${l}`, a = blocks[l];
      // MLP: dres is d(x3); the branch gradient passes the residual dropout first.
      const dmlp = await dropBack(dropoutStream("mlp_resid", l));
      // c_proj's input gradient goes through GELU in its epilogue: d4b = d(fch).
      backward.push(...await linBack(`${h}.mlp.c_proj`, d4b, dmlp, a.fcg, 4 * C, C, "f32", A, a.fch));
      backward.push(...await linBack(`${h}.mlp.c_fc`, dC, d4b, a.ln2, C, 4 * C, A, "f32"));
      backward.push(
        ...await lnBack(
          { dinp: dres, dout: dC, inp: a.x2, mean: a.ln2Mean, rstd: a.ln2Rstd },
          `${h}.ln_2`,
          true,
        ),
      );
      // Attention: dres is now d(x2).
      const datt = await dropBack(dropoutStream("attn_resid", l));
      const dAtty = dAttyBuf, dQkv = view(d4b, N * 3 * C, half ? 2 : 4);
      backward.push(...await linBack(`${h}.attn.c_proj`, dAtty, datt, a.atty, C, C, "f32", A));
      backward.push(
        ...await attentionBackward(gpu, {
          dqkv: dQkv,
          dout: dAtty,
          qkv: a.qkv,
          out: a.atty,
          lse: a.lse,
          scratch: attScratch,
          ds: attDs,
          ...(c.dropout > 0 ? { rng } : {}),
        }, {
          B,
          T,
          C,
          NH,
          types: { qkv: A, out: A, dout: A, dqkv: A },
          ...(c.dropout > 0 ? { dropout: { p: c.dropout, stream: dropoutStream("attn", l) } } : {}),
        }),
      );
      backward.push(...await linBack(`${h}.attn.c_attn`, dC, dQkv, a.ln1, C, 3 * C, A, "f32"));
      backward.push(
        ...await lnBack(
          { dinp: dres, dout: dC, inp: res[l], mean: a.ln1Mean, rstd: a.ln1Rstd },
          `${h}.ln_1`,
          true,
        ),
      );
    }
    const demb = await dropBack(dropoutStream("embedding"));
    backward.push(
      ...await encoderBackward(gpu, {
        dwte: G("transformer.wte.weight"),
        dwpe: G("transformer.wpe.weight"),
        dout: demb,
        tokens,
        scratch: encScratch,
      }, { B, T, C, V }),
    );

    const lossOnly: Dispatch[] = [];
    const headChunks: HeadChunk[] = [];
    for (const [r0, n] of chunks) {
      const lg = chunked ? await headForward(r0, n) : null;
      headChunks.push({ r0, rows: n, logits: lg });
      if (lg) lossOnly.push(lg);
      lossOnly.push(
        await crossEntropyLoss(
          gpu,
          { losses: rows(losses, r0, n, 1), logits: view(logits, n * V), targets: rows(targets, r0, n, 1) },
          { N: n, V, ignoreIndex },
        ),
      );
    }
    lossOnly.push(await accumulateLoss(gpu, { acc: lossAcc, losses, targets }, { N, ignoreIndex }));
    const forwardTrain = await forward(true);
    // Without dropout the two forwards are the same dispatches: share them rather than record twice.
    const forwardEval = c.dropout > 0 ? await forward(false) : forwardTrain;
    return new GPT({
      config: c,
      B,
      T,
      params,
      grads,
      decayEnd,
      tokens,
      targets,
      rng,
      logits,
      headRows: R,
      headChunks,
      losses,
      lossAcc,
      dtype,
      lossScaler,
      forwardTrain,
      forwardEval,
      backward,
      lossOnly,
    });
  }
}
