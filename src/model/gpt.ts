/**
 * The GPT on the GPU: parameter and gradient arenas, activation buffers for a fixed (B, T), and the
 * forward and backward passes as lists of dispatches, recorded once and replayed every step.
 *
 * Activation shapes (N = B*T rows): residual stream [N,C] per layer boundary; per block ln1/ln2 [N,C]
 * with mean/rstd [N], qkv [N,3C], attention output [N,C] with logsumexp [B,NH,T], MLP hidden
 * fch/gelu [N,4C]; logits [N,V], overwritten in place by dlogits in the backward.
 *
 * @module
 */
import { Arena, createStorage } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch, Resource } from "../gpu/kernel.ts";
import { attentionBackward, attentionForward, attentionScratchBytes } from "../kernels/attention.ts";
import { accumulateLoss, crossEntropyForwardBackward, crossEntropyLoss } from "../kernels/crossentropy.ts";
import { encoderBackward, encoderForward, encoderScratchBytes } from "../kernels/encoder.ts";
import { geluBackward, geluForward } from "../kernels/gelu.ts";
import { layernormBackward, layernormForward, layernormScratchBytes } from "../kernels/layernorm.ts";
import {
  matmulBackwardBias,
  matmulBackwardInput,
  matmulBackwardWeight,
  matmulForward,
} from "../kernels/matmul.ts";
import { dropoutBackward, dropoutForward, residualForward } from "../kernels/residual.ts";
import { dropoutStream, type GPTConfig, validateConfig } from "./config.ts";
import { paramLayout } from "./params.ts";
import { checkMemory, memoryPlan } from "./memory.ts";

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
  /** Logits [B*T, V]; after the backward they hold dlogits. */
  readonly logits: GPUBuffer;
  /** Per-position losses [B*T]. */
  readonly losses: GPUBuffer;
  /** Loss accumulator: [0] += sum of losses, [1] += count of scored positions. */
  readonly lossAcc: GPUBuffer;
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
    this.losses = init.losses;
    this.lossAcc = init.lossAcc;
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
    checkMemory(
      gpu,
      memoryPlan(c, B, T, shape.training ?? false),
      "reduce --batch-size, --block-size, the model or the vocabulary",
    );
    const { layout, decayEnd } = paramLayout(c);
    const params = new Arena(gpu, "params", layout);
    const grads = new Arena(gpu, "grads", layout);
    const f32 = (label: string, n: number) => createStorage(gpu, label, n * 4);
    const tokens = f32("tokens", N), targets = f32("targets", N), rng = f32("rng", 4);
    const logits = f32("logits", N * V), losses = f32("losses", N), lossAcc = f32("loss_acc", 4);

    // Forward activations.
    const res: GPUBuffer[] = [];
    for (let l = 0; l <= L; l++) res.push(f32(`res${l}`, N * C));
    const emb = f32("emb", N * C); // encoder output before embedding dropout
    const blocks: BlockActs[] = [];
    for (let l = 0; l < L; l++) {
      blocks.push({
        ln1: f32(`h${l}.ln1`, N * C),
        ln1Mean: f32(`h${l}.ln1_mean`, N),
        ln1Rstd: f32(`h${l}.ln1_rstd`, N),
        qkv: f32(`h${l}.qkv`, N * 3 * C),
        atty: f32(`h${l}.atty`, N * C),
        lse: f32(`h${l}.lse`, B * NH * T),
        x2: f32(`h${l}.x2`, N * C),
        ln2: f32(`h${l}.ln2`, N * C),
        ln2Mean: f32(`h${l}.ln2_mean`, N),
        ln2Rstd: f32(`h${l}.ln2_rstd`, N),
        fch: f32(`h${l}.fch`, N * 4 * C),
        fcg: f32(`h${l}.fcg`, N * 4 * C),
      });
    }
    const proj = f32("proj", N * C), projDrop = f32("proj_drop", N * C);
    const lnf = f32("lnf", N * C), lnfMean = f32("lnf_mean", N), lnfRstd = f32("lnf_rstd", N);

    // Backward scratch, shared by all layers.
    const dres = f32("dres", N * C), dC = f32("d_c", N * C);
    const d4a = f32("d_4c_a", N * 4 * C), d4b = f32("d_4c_b", N * 4 * C);
    const attScratch = createStorage(gpu, "att_scratch", attentionScratchBytes({ B, T, C, NH }));
    const lnScratchBytes = layernormScratchBytes({ N, C });
    const lnScratch = lnScratchBytes > 0 ? createStorage(gpu, "ln_scratch", lnScratchBytes) : undefined;
    const encScratch = createStorage(gpu, "enc_scratch", encoderScratchBytes({ B, T, C, V }));
    const view = (b: GPUBuffer, floats: number): Resource => ({ buffer: b, offset: 0, size: floats * 4 });

    const P = (n: string) => params.bind(n);
    const G = (n: string) => grads.bind(n);
    const PB = (n: string) => c.bias ? { bias: P(n) } : {};

    const forward = async (train: boolean): Promise<Dispatch[]> => {
      const ds: Dispatch[] = [];
      const drop = train && c.dropout > 0;
      const wpe = P("transformer.wpe.weight"), wte = P("transformer.wte.weight");
      ds.push(await encoderForward(gpu, { out: drop ? emb : res[0], tokens, wte, wpe }, { B, T, C, V }));
      if (drop) {
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
          }, { N, C }),
        );
        ds.push(
          await matmulForward(gpu, {
            out: a.qkv,
            inp: a.ln1,
            weight: P(`${h}.attn.c_attn.weight`),
            ...PB(`${h}.attn.c_attn.bias`),
          }, { M: N, K: C, N: 3 * C }),
        );
        ds.push(await attentionForward(gpu, { out: a.atty, lse: a.lse, qkv: a.qkv }, { B, T, C, NH }));
        ds.push(
          await matmulForward(gpu, {
            out: proj,
            inp: a.atty,
            weight: P(`${h}.attn.c_proj.weight`),
            ...PB(`${h}.attn.c_proj.bias`),
          }, { M: N, K: C, N: C }),
        );
        if (drop) {
          ds.push(
            await dropoutForward(gpu, { out: projDrop, inp: proj, rng }, {
              n: N * C,
              p: c.dropout,
              stream: dropoutStream("attn_resid", l),
            }),
          );
        }
        ds.push(await residualForward(gpu, { out: a.x2, a: res[l], b: drop ? projDrop : proj }, N * C));
        ds.push(
          await layernormForward(gpu, {
            out: a.ln2,
            mean: a.ln2Mean,
            rstd: a.ln2Rstd,
            inp: a.x2,
            weight: P(`${h}.ln_2.weight`),
            ...PB(`${h}.ln_2.bias`),
          }, { N, C }),
        );
        ds.push(
          await matmulForward(gpu, {
            out: a.fch,
            inp: a.ln2,
            weight: P(`${h}.mlp.c_fc.weight`),
            ...PB(`${h}.mlp.c_fc.bias`),
          }, { M: N, K: C, N: 4 * C }),
        );
        ds.push(await geluForward(gpu, { out: a.fcg, inp: a.fch }, N * 4 * C));
        ds.push(
          await matmulForward(gpu, {
            out: proj,
            inp: a.fcg,
            weight: P(`${h}.mlp.c_proj.weight`),
            ...PB(`${h}.mlp.c_proj.bias`),
          }, { M: N, K: 4 * C, N: C }),
        );
        if (drop) {
          ds.push(
            await dropoutForward(gpu, { out: projDrop, inp: proj, rng }, {
              n: N * C,
              p: c.dropout,
              stream: dropoutStream("mlp_resid", l),
            }),
          );
        }
        ds.push(await residualForward(gpu, { out: res[l + 1], a: a.x2, b: drop ? projDrop : proj }, N * C));
      }
      ds.push(
        await layernormForward(gpu, {
          out: lnf,
          mean: lnfMean,
          rstd: lnfRstd,
          inp: res[L],
          weight: P("transformer.ln_f.weight"),
          ...PB("transformer.ln_f.bias"),
        }, { N, C }),
      );
      ds.push(await matmulForward(gpu, { out: logits, inp: lnf, weight: wte }, { M: N, K: C, N: V }));
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
    ) => {
      const s = { M: N, K, N: M2 };
      const ds = [
        await matmulBackwardInput(gpu, { dinp, dout, weight: P(`${prefix}.weight`) }, s),
        await matmulBackwardWeight(gpu, { dweight: G(`${prefix}.weight`), dout, inp }, s),
      ];
      if (c.bias) {
        ds.push(await matmulBackwardBias(gpu, { dbias: G(`${prefix}.bias`), dout }, { M: N, N: M2 }));
      }
      return ds;
    };

    const backward: Dispatch[] = [];
    const scale = shape.lossScale ?? 1 / N;
    const ignoreIndex = shape.ignoreIndex;
    backward.push(
      await crossEntropyForwardBackward(gpu, { logits, losses, targets }, { N, V, scale, ignoreIndex }),
    );
    backward.push(await accumulateLoss(gpu, { acc: lossAcc, losses, targets }, { N, ignoreIndex }));
    // Tied head: dlnf = dlogits · wte, dwte += dlogitsᵀ · lnf.
    backward.push(
      await matmulBackwardInput(gpu, { dinp: dC, dout: logits, weight: P("transformer.wte.weight") }, {
        M: N,
        K: C,
        N: V,
      }),
      await matmulBackwardWeight(gpu, { dweight: G("transformer.wte.weight"), dout: logits, inp: lnf }, {
        M: N,
        K: C,
        N: V,
      }),
    );
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
      backward.push(...await linBack(`${h}.mlp.c_proj`, d4a, dmlp, a.fcg, 4 * C, C));
      backward.push(await geluBackward(gpu, { dinp: d4b, inp: a.fch, dout: d4a }, N * 4 * C));
      backward.push(...await linBack(`${h}.mlp.c_fc`, dC, d4b, a.ln2, C, 4 * C));
      backward.push(
        ...await lnBack(
          { dinp: dres, dout: dC, inp: a.x2, mean: a.ln2Mean, rstd: a.ln2Rstd },
          `${h}.ln_2`,
          true,
        ),
      );
      // Attention: dres is now d(x2).
      const datt = await dropBack(dropoutStream("attn_resid", l));
      const dAtty = view(d4a, N * C), dQkv = view(d4b, N * 3 * C);
      backward.push(...await linBack(`${h}.attn.c_proj`, dAtty, datt, a.atty, C, C));
      backward.push(
        ...await attentionBackward(gpu, {
          dqkv: dQkv,
          dout: dAtty,
          qkv: a.qkv,
          out: a.atty,
          lse: a.lse,
          scratch: attScratch,
        }, { B, T, C, NH }),
      );
      backward.push(...await linBack(`${h}.attn.c_attn`, dC, dQkv, a.ln1, C, 3 * C));
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

    const lossOnly = [
      await crossEntropyLoss(gpu, { losses, logits, targets }, { N, V, ignoreIndex }),
      await accumulateLoss(gpu, { acc: lossAcc, losses, targets }, { N, ignoreIndex }),
    ];
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
      losses,
      lossAcc,
      forwardTrain,
      forwardEval,
      backward,
      lossOnly,
    });
  }
}
