/**
 * The one table of every buffer a GPT uses for a fixed (B, T): label, element count, element type and
 * when it exists. GPT.create allocates from it ({@linkcode allocateBuffers}) and the memory check reads
 * it (model/memory.ts memoryPlan), so the check before allocation counts exactly what is allocated.
 *
 * Shapes (N = B*T rows, C channels, NH heads, V vocabulary, R = headRows, P = parameter floats): residual
 * stream [N,C] per layer boundary; per block ln1/ln2 [N,C] with mean/rstd [N], qkv [N,3C], attention
 * output [N,C] with logsumexp [B,NH,T], MLP hidden fch/fcg [N,4C]; logits [R,V].
 *
 * Parameters, gradients and AdamW's moments are arenas of P floats each, in one buffer or, beyond the
 * adapter's binding limit (`maxBindingBytes`), in several (model/params.ts paramLayout): then the token
 * embedding may be cut into slices of W rows, and the tied head computes logits a slice at a time through
 * `logitsSlice` [R,W].
 *
 * @module
 */
import { Arena, type ArenaLayout, createStorage } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { attentionDsBytes, attentionScratchBytes } from "../kernels/attention.ts";
import { encoderScratchBytes } from "../kernels/encoder.ts";
import { layernormScratchBytes } from "../kernels/layernorm.ts";
import { matmulBackwardWeightScratchBytes } from "../kernels/matmul.ts";
import { createLossScaler } from "../kernels/optimizer.ts";
import type { GPTConfig, Precision } from "./config.ts";
import { paramLayout, WTE } from "./params.ts";

/** Element type of a buffer: f16 takes 2 bytes a value; "byte" is a scratch sized in bytes. */
export type BufferType = "f32" | "u32" | "f16" | "byte";

/** One buffer of the model. */
export interface BufferSpec {
  /** Its GPU label, e.g. "h0.qkv". */
  readonly label: string;
  /** What the memory check calls it, with its shape where that helps: "logits [16384 x 65]". */
  readonly name: string;
  /** Values it holds (bytes for "byte"). */
  readonly elements: number;
  /** Element type. */
  readonly type: BufferType;
  /** Size as allocated: whole 4-byte words, at least one. */
  readonly bytes: number;
}

/** One transformer block's forward activations, kept for its backward. */
export interface BlockBuffers<B = GPUBuffer> {
  /** ln_1's output [N,C], operand type. */
  readonly ln1: B;
  /** ln_1's mean [N]. */
  readonly ln1Mean: B;
  /** ln_1's 1/std [N]. */
  readonly ln1Rstd: B;
  /** q, k, v [N,3C], operand type. */
  readonly qkv: B;
  /** Attention output before the projection [N,C], operand type. */
  readonly atty: B;
  /** Attention's logsumexp [B,NH,T]. */
  readonly lse: B;
  /** Residual stream after the attention branch [N,C]. */
  readonly x2: B;
  /** ln_2's output [N,C], operand type. */
  readonly ln2: B;
  /** ln_2's mean [N]. */
  readonly ln2Mean: B;
  /** ln_2's 1/std [N]. */
  readonly ln2Rstd: B;
  /** MLP hidden layer before GELU [N,4C], operand type. */
  readonly fch: B;
  /** MLP hidden layer after GELU [N,4C], operand type. */
  readonly fcg: B;
}

/** The storage buffers GPT.create allocates, other than the arenas and the loss scaler. */
export interface ModelBuffers<B = GPUBuffer> {
  /** Input token ids, u32 [N]. */
  readonly tokens: B;
  /** Target token ids, u32 [N]. */
  readonly targets: B;
  /** The step's random seed, u32 [4] (element 0: dropout masks, sampling). */
  readonly seed: B;
  /** Logits [R,V] (f32; dlogits in place in float32). */
  readonly logits: B;
  /** Per-position losses [N]. */
  readonly losses: B;
  /** Loss sum and count of scored positions, f32 [4]. */
  readonly lossAcc: B;
  /** Residual stream at each of the L+1 layer boundaries [N,C]. */
  readonly res: readonly B[];
  /** The encoder's output before embedding dropout [N,C]; only with dropout. */
  readonly emb?: B;
  /** Each block's activations. */
  readonly blocks: readonly BlockBuffers<B>[];
  /** Final layernorm's output [N,C], operand type. */
  readonly lnf: B;
  /** Final layernorm's mean [N]. */
  readonly lnfMean: B;
  /** Final layernorm's 1/std [N]. */
  readonly lnfRstd: B;
  /** Gradient of the residual stream [N,C], shared by all layers. */
  readonly dres: B;
  /**
   * Gradient of one branch's [N,C] tensor, shared by all layers: a layernorm's output (dlnf, dln1, dln2)
   * or a residual branch's output after dropout's backward.
   */
  readonly dBranch: B;
  /** Gradient of the attention output [N,C], operand type. */
  readonly dAtty: B;
  /** Gradient of the MLP hidden layer before GELU [N,4C], operand type; reused as dqkv [N,3C]. */
  readonly dHidden: B;
  /** float16 only: the f16 copy of the parameter arena (one per parameter buffer), refreshed by each forward. */
  readonly params16?: readonly B[];
  /** float16 only: the loss gradient [R,V] times the loss scale, f16. */
  readonly dlogits16?: B;
  /**
   * Only when the token embedding is split across buffers: one vocabulary slice's logits [R,W] (f32), or its
   * columns of the loss gradient (operand type), W the widest slice (model/head.ts).
   */
  readonly logitsSlice?: B;
  /** Attention backward's scratch (kernels/attention.ts attentionScratchBytes). */
  readonly attScratch: B;
  /** Layernorm backward's column partials; only where its reduction needs them. */
  readonly lnScratch?: B;
  /** Embedding backward's sort scratch. */
  readonly encScratch: B;
  /** Split-K weight gradients' slices; only with splitK where some shape splits. */
  readonly splitScratch?: B;
  /** Attention backward's dS [B*NH, T, T]; only with storedDs. */
  readonly attDs?: B;
}

/** Every buffer of a GPT for one (B, T), by who allocates it. */
export interface BufferTable {
  /** The parameter layout all four arenas share, over buffers within `maxBindingBytes` (model/params.ts). */
  readonly layout: ArenaLayout;
  /** First float of the non-decayed parameter group. */
  readonly decayEnd: number;
  /** Parameters and gradients: one arena each over model/params.ts's layout (P floats), a spec per buffer. */
  readonly arenas: { readonly params: readonly BufferSpec[]; readonly grads: readonly BufferSpec[] };
  /** AdamW's two moment arenas when `training` (a spec per buffer): allocated by the optimizer, counted here. */
  readonly optimizer: readonly BufferSpec[];
  /** float16 only: [loss scale, good steps] (kernels/optimizer.ts createLossScaler). */
  readonly lossScaler?: BufferSpec;
  /** Storage buffers of the passes. */
  readonly storage: ModelBuffers<BufferSpec>;
}

/** What decides the buffers, besides the config. */
export interface BufferOptions {
  /** Sequences per micro-batch (B). */
  readonly batch: number;
  /** Positions per sequence (T). */
  readonly time: number;
  /** Count AdamW's two moment arenas (the trainer allocates them); default false. */
  readonly training?: boolean;
  /** Storage precision; default "float32". "float16" stores the operands of matmuls and attention as f16. */
  readonly dtype?: Precision;
  /** Split-K weight-gradient scratch, where some weight gradient splits; default true. */
  readonly splitK?: boolean;
  /** Attention backward's stored dS; default false (model/memory.ts storedDsDefault). */
  readonly storedDs?: boolean;
  /** Rows of logits held at a time; default batch*time (model/memory.ts headRowsDefault). */
  readonly headRows?: number;
  /**
   * Bytes one buffer binding may hold (the adapter's min(maxStorageBufferBindingSize, maxBufferSize)):
   * the parameter arenas spread over buffers of at most this; default unlimited, one buffer each.
   */
  readonly maxBindingBytes?: number;
}

/**
 * The weight-gradient products of one step as matmul shapes {M: rows, K: in features, N: out features}:
 * each block's four Linear layers and the tied head (N = vocab); M = B*T. One split-K scratch serves them
 * all, sized for the largest (src/kernels/matmul.ts matmulBackwardWeightSplit).
 */
export function linearWeightShapes(c: GPTConfig, M: number): { M: number; K: number; N: number }[] {
  const C = c.n_embd;
  return [
    { M, K: C, N: 3 * C },
    { M, K: C, N: C },
    { M, K: C, N: 4 * C },
    { M, K: 4 * C, N: C },
    { M, K: C, N: c.vocab_size },
  ];
}

/** Bytes of `elements` values of `type`, as allocated: whole 4-byte words, at least one. */
function bytesOf(elements: number, type: BufferType): number {
  const raw = type === "byte" ? elements : type === "f16" ? elements * 2 : elements * 4;
  return Math.max(4, Math.ceil(raw / 4) * 4);
}

function spec(label: string, elements: number, type: BufferType, name = label): BufferSpec {
  return { label, name, elements, type, bytes: bytesOf(elements, type) };
}

/** The buffers of a GPT with config `c` and options `o`: the one definition of what exists and its size. */
export function bufferTable(c: GPTConfig, o: BufferOptions): BufferTable {
  const B = o.batch, T = o.time, N = B * T, R = o.headRows ?? N;
  const C = c.n_embd, V = c.vocab_size, L = c.n_layer, NH = c.n_head;
  const half = (o.dtype ?? "float32") === "float16";
  const { layout, decayEnd } = paramLayout(c, o.maxBindingBytes);
  const P = layout.totalFloats, many = layout.buffers.length > 1;
  // An arena's buffers: "params" [P floats], or "params.0" [P0 floats], "params.1" ...
  const arena = (label: string, what: string, type: BufferType = "f32") =>
    layout.buffers.map((b, k) => {
      const id = many ? `${label}.${k}` : label, unit = type === "f16" ? "halves" : "floats";
      // A buffer wholly one tensor's (one too large to share a buffer) names it too.
      const held = layout.entries.filter((e) => e.offset >= b.start && e.offset < b.start + b.floats);
      const which = !many
        ? ""
        : ` ${k}${held.length === 1 && held[0].size === b.floats ? `, ${held[0].name}` : ""}`;
      return spec(id, b.floats, type, `${what}${which} [${many ? b.floats : P} ${unit}]`);
    });
  const wteSlices = layout.slices(WTE), W = Math.max(...wteSlices.map((s) => s.rows));
  const f32 = (label: string, n: number, name?: string) => spec(label, n, "f32", name);
  const u32 = (label: string, n: number) => spec(label, n, "u32");
  // An operand of matmuls and attention: f16 in mixed precision.
  const operand = (label: string, n: number, name?: string) => spec(label, n, half ? "f16" : "f32", name);
  const scratch = (label: string, bytes: number, name: string) => spec(label, bytes, "byte", name);
  const lnScratchBytes = layernormScratchBytes({ N, C });
  // Split-K weight gradients: a Linear layer's dW has few output tiles and a reduction over all B*T rows,
  // which would leave most of a large GPU idle; slices of rows go to this scratch, then add up in order.
  // Sized with the default bk of 16: slices of 32 rows (bk 32) are never more numerous.
  const splitBytes = (o.splitK ?? true)
    ? Math.max(0, ...linearWeightShapes(c, N).map((s) => matmulBackwardWeightScratchBytes(s)))
    : 0;
  const block = (l: number): BlockBuffers<BufferSpec> => ({
    ln1: operand(`h${l}.ln1`, N * C),
    ln1Mean: f32(`h${l}.ln1_mean`, N),
    ln1Rstd: f32(`h${l}.ln1_rstd`, N),
    qkv: operand(`h${l}.qkv`, N * 3 * C, `h${l}.qkv [${N} x ${3 * C}]`),
    atty: operand(`h${l}.atty`, N * C),
    lse: f32(`h${l}.lse`, B * NH * T),
    x2: f32(`h${l}.x2`, N * C),
    ln2: operand(`h${l}.ln2`, N * C),
    ln2Mean: f32(`h${l}.ln2_mean`, N),
    ln2Rstd: f32(`h${l}.ln2_rstd`, N),
    fch: operand(`h${l}.fch`, N * 4 * C, `h${l}.fch [${N} x ${4 * C}]`),
    fcg: operand(`h${l}.fcg`, N * 4 * C, `h${l}.fcg [${N} x ${4 * C}]`),
  });
  const dsType = half ? "f16" : "f32";
  return {
    layout,
    decayEnd,
    arenas: { params: arena("params", "parameters"), grads: arena("grads", "gradients") },
    optimizer: o.training ? [...arena("adam_m", "adam_m"), ...arena("adam_v", "adam_v")] : [],
    lossScaler: half ? f32("loss_scaler", 2, "loss scaler") : undefined,
    storage: {
      tokens: u32("tokens", N),
      targets: u32("targets", N),
      seed: u32("seed", 4),
      logits: f32("logits", R * V, `logits [${R} x ${V}]`),
      losses: f32("losses", N),
      lossAcc: f32("loss_acc", 4),
      res: Array.from({ length: L + 1 }, (_, l) => f32(`res${l}`, N * C, `residual ${l} [${N} x ${C}]`)),
      emb: c.dropout > 0 ? f32("emb", N * C) : undefined,
      blocks: Array.from({ length: L }, (_, l) => block(l)),
      lnf: operand("lnf", N * C),
      lnfMean: f32("lnf_mean", N),
      lnfRstd: f32("lnf_rstd", N),
      dres: f32("dres", N * C),
      dBranch: f32("d_branch", N * C),
      dAtty: operand("d_atty", N * C),
      dHidden: operand("d_hidden", N * 4 * C, `d_hidden [${N} x ${4 * C}]`),
      params16: half ? arena("params_f16", "f16 parameters", "f16") : undefined,
      dlogits16: half ? spec("dlogits_f16", R * V, "f16", `f16 dlogits [${R} x ${V}]`) : undefined,
      logitsSlice: wteSlices.length > 1
        ? f32("logits_slice", R * W, `logits slice [${R} x ${W}]`)
        : undefined,
      attScratch: scratch("att_scratch", attentionScratchBytes({ B, T, C, NH }), "attention scratch"),
      lnScratch: lnScratchBytes > 0 ? scratch("ln_scratch", lnScratchBytes, "layernorm scratch") : undefined,
      encScratch: scratch("enc_scratch", encoderScratchBytes({ B, T, C, V }), "embedding scratch"),
      splitScratch: splitBytes > 0
        ? scratch("dw_split_scratch", splitBytes, "split-K weight-gradient scratch")
        : undefined,
      attDs: o.storedDs
        ? scratch(
          "att_ds",
          attentionDsBytes({ B, T, C, NH }, dsType),
          `attention dS [${B * NH} x ${T} x ${T}]`,
        )
        : undefined,
    },
  };
}

/** Each leaf of `tree` (a buffer spec, possibly inside arrays and objects) through `f`, same structure. */
function mapSpecs(tree: unknown, f: (s: BufferSpec) => unknown): unknown {
  if (tree === undefined) return undefined;
  if (Array.isArray(tree)) return tree.map((t) => mapSpecs(t, f));
  const node = tree as Record<string, unknown>;
  if (typeof node.label === "string" && typeof node.bytes === "number") {
    return f(node as unknown as BufferSpec);
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, mapSpecs(v, f)]));
}

/** Every buffer of the table, in one list: arenas, optimizer moments, storage, loss scaler. */
export function tableBuffers(t: BufferTable): BufferSpec[] {
  const out: BufferSpec[] = [...t.arenas.params, ...t.arenas.grads, ...t.optimizer];
  mapSpecs(t.storage, (s) => out.push(s));
  if (t.lossScaler) out.push(t.lossScaler);
  return out;
}

/** What {@linkcode allocateBuffers} returns: the model's share of the table, allocated. */
export interface AllocatedBuffers {
  /** Parameters, nanoGPT names, decayed tensors first. */
  readonly params: Arena;
  /** Gradients, same layout as params. */
  readonly grads: Arena;
  /** First float of the non-decayed parameter group. */
  readonly decayEnd: number;
  /** float16 only: the dynamic loss scale (kernels/optimizer.ts createLossScaler). */
  readonly lossScaler?: GPUBuffer;
  /** The passes' storage buffers. */
  readonly storage: ModelBuffers;
}

/** Allocates the table's arenas, loss scaler and storage buffers (the optimizer's moments are the trainer's). */
export function allocateBuffers(gpu: Gpu, t: BufferTable): AllocatedBuffers {
  return {
    params: new Arena(gpu, "params", t.layout),
    grads: new Arena(gpu, "grads", t.layout),
    decayEnd: t.decayEnd,
    lossScaler: t.lossScaler ? createLossScaler(gpu) : undefined,
    storage: mapSpecs(t.storage, (s) => createStorage(gpu, s.label, s.bytes)) as ModelBuffers,
  };
}
