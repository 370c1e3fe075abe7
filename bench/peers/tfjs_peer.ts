/**
 * TensorFlow.js with its WebGPU backend as a peer of the comparison (bench/peers/protocol.ts).
 *
 *   deno run --config SCRATCH/deno.json --unstable-detect-cjs --unstable-sloppy-imports \
 *     --allow-read --allow-env bench/peers/tfjs_peer.ts DATA_DIR SCRATCH
 *
 * The packages' bundled builds register no gradients, so the unbundled ESM build is loaded instead:
 * bench/peers/install.ts copies `@tensorflow/tfjs-core`, `-backend-cpu` and `-backend-webgpu` out of the
 * scratch node_modules into SCRATCH/esm (inside node_modules Deno resolves them as npm packages, which
 * refuses their extensionless imports; outside, sloppy imports accept them) and writes SCRATCH/deno.json,
 * whose import map points the packages' bare imports there. tfjs-core calls `require` when it sees Node's
 * `process` (Deno has one), hence the shim below.
 *
 * The model is nanoGPT's (bench/nanogpt_check.py); the step is tape gradients, global-norm clip and AdamW
 * written with tf ops. No `tf.addN` over the parameter list: with more than 7 inputs it exceeds WebGPU's 8
 * storage buffers per stage and returns garbage (the error only reaches the uncaptured-error stream).
 *
 * @module
 */
import { createRequire } from "node:module";
import { type MatmulReply, type PeerInfo, probeIndices, servePeer, type TrainReply } from "./protocol.ts";
import { type LoadedSetup, readMatmul, readSetup } from "./inputs.ts";

// deno-lint-ignore no-explicit-any
type Tf = any;
// deno-lint-ignore no-explicit-any
type Tensor = any;

/** Loads tfjs-core (with its gradients) and the WebGPU backend from SCRATCH/esm and selects the backend. */
async function loadTf(scratch: string): Promise<Tf> {
  const root = await Deno.realPath(scratch);
  (globalThis as { require?: unknown }).require = createRequire(`file://${root}/package.json`);
  const esm = `file://${root}/esm`;
  const tf: Tf = await import(`${esm}/tfjs-core/dist/index.js`);
  await import(`${esm}/tfjs-core/dist/register_all_gradients.js`);
  await import(`${esm}/tfjs-backend-webgpu/dist/index.js`);
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs: the webgpu backend did not initialise");
  await tf.ready();
  return tf;
}

/** The parameter names in the order the step's tensor list holds them. */
function paramNames(s: LoadedSetup): string[] {
  const names = ["transformer.wte.weight", "transformer.wpe.weight"];
  for (let l = 0; l < s.config.n_layer; l++) {
    const h = `transformer.h.${l}`;
    names.push(
      `${h}.ln_1.weight`,
      `${h}.attn.c_attn.weight`,
      `${h}.attn.c_proj.weight`,
      `${h}.ln_2.weight`,
      `${h}.mlp.c_fc.weight`,
      `${h}.mlp.c_proj.weight`,
    );
  }
  names.push("transformer.ln_f.weight");
  return names;
}

/** Mean cross-entropy of nanoGPT on the batch, from the parameter list in {@linkcode paramNames} order. */
function lossFunction(
  tf: Tf,
  s: LoadedSetup,
  batch: { tokens: Tensor; yoh: Tensor; maskBias: Tensor },
): (...p: Tensor[]) => Tensor {
  const { B, T } = s, C = s.config.n_embd, NH = s.config.n_head, HS = C / NH;
  const linear = (x: Tensor, w: Tensor) => tf.matMul(x, w, false, true); // x [N, in], w [out, in]
  const layerNorm = (x: Tensor, w: Tensor) => {
    const xc = tf.sub(x, tf.mean(x, -1, true));
    return tf.mul(tf.div(xc, tf.sqrt(tf.add(tf.mean(tf.square(xc), -1, true), 1e-5))), w);
  };
  const gelu = (x: Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  const heads = (z: Tensor) => tf.transpose(tf.reshape(z, [B, T, NH, HS]), [0, 2, 1, 3]);
  const attention = (x: Tensor, wAttn: Tensor, wProj: Tensor) => {
    const [q, k, v] = tf.split(linear(x, wAttn), 3, 1);
    const scores = tf.mul(tf.matMul(heads(q), heads(k), false, true), 1 / Math.sqrt(HS));
    const att = tf.softmax(tf.add(scores, batch.maskBias), -1);
    return linear(tf.reshape(tf.transpose(tf.matMul(att, heads(v)), [0, 2, 1, 3]), [B * T, C]), wProj);
  };
  return (...p) => {
    const [wte, wpe] = p;
    let x = tf.add(tf.reshape(tf.gather(wte, batch.tokens), [B, T, C]), wpe);
    x = tf.reshape(x, [B * T, C]);
    for (let l = 0; l < s.config.n_layer; l++) {
      const [ln1, attn, attnProj, ln2, fc, mlpProj] = p.slice(2 + 6 * l, 8 + 6 * l);
      x = tf.add(x, attention(layerNorm(x, ln1), attn, attnProj));
      x = tf.add(x, linear(gelu(linear(layerNorm(x, ln2), fc)), mlpProj));
    }
    const logits = linear(layerNorm(x, p[p.length - 1]), wte);
    return tf.mul(tf.sum(tf.mul(tf.logSoftmax(logits, -1), batch.yoh)), -1 / (B * T));
  };
}

/** The training state and the step. */
class Training {
  #t = 0;
  constructor(
    readonly tf: Tf,
    readonly s: LoadedSetup,
    readonly loss: (...p: Tensor[]) => Tensor,
    public state: { p: Tensor[]; m: Tensor[]; v: Tensor[] },
  ) {}

  static async create(tf: Tf, dir: string): Promise<Training> {
    const s = await readSetup(dir);
    if (s.T !== s.config.block_size) throw new Error("tfjs peer: T must equal block_size");
    const V = s.config.vocab_size, T = s.T;
    const p = paramNames(s).map((n) => tf.tensor(s.weights.get(n)!, [...s.shapes.get(n)!]));
    const bias = Float32Array.from({ length: T * T }, (_, i) => (i % T) <= Math.floor(i / T) ? 0 : -Infinity);
    const batch = {
      tokens: tf.tensor(s.tokens, [s.B * T], "int32"),
      yoh: tf.oneHot(tf.tensor(s.targets, [s.B * T], "int32"), V),
      maskBias: tf.tensor(bias, [T, T]),
    };
    const zeros = () => p.map((x: Tensor) => tf.zerosLike(x));
    return new Training(tf, s, lossFunction(tf, s, batch), { p, m: zeros(), v: zeros() });
  }

  /** One step: returns the loss (a scalar tensor) and replaces the state. */
  #step(): Tensor {
    const tf = this.tf, h = this.s.hyper, t = ++this.#t;
    const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
    const { p, m, v } = this.state;
    const out = tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads(this.loss)(p);
      let sq = tf.sum(tf.square(grads[0]));
      for (const g of grads.slice(1)) sq = tf.add(sq, tf.sum(tf.square(g)));
      const norm = tf.sqrt(sq); // torch.nn.utils.clip_grad_norm_: scale max_norm / (norm + 1e-6) when above
      const scale = tf.where(
        tf.greater(norm, h.gradClip),
        tf.div(h.gradClip, tf.add(norm, 1e-6)),
        tf.scalar(1),
      );
      const p2: Tensor[] = [], m2: Tensor[] = [], v2: Tensor[] = [];
      grads.forEach((graw: Tensor, i: number) => {
        const g = tf.mul(graw, scale);
        const mi = tf.add(tf.mul(m[i], h.beta1), tf.mul(g, 1 - h.beta1));
        const vi = tf.add(tf.mul(v[i], h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
        const decayed = p[i].rank >= 2 ? tf.mul(p[i], 1 - h.lr * h.weightDecay) : p[i];
        const update = tf.div(tf.mul(tf.div(mi, bc1), h.lr), tf.add(tf.sqrt(tf.div(vi, bc2)), h.eps));
        p2.push(tf.sub(decayed, update));
        m2.push(mi);
        v2.push(vi);
      });
      return { value, p2, m2, v2 };
    });
    tf.dispose([p, m, v]);
    this.state = { p: out.p2, m: out.m2, v: out.v2 };
    return out.value;
  }

  async run(steps: number): Promise<TrainReply> {
    const losses: Tensor[] = [];
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) losses.push(this.#step());
    const values = await Promise.all(losses.map((l) => l.data()));
    const ms = (performance.now() - t0) / steps;
    this.tf.dispose(losses);
    return { ms, losses: values.map((x: Float32Array) => x[0]) };
  }
}

async function matmul(tf: Tf, dir: string, n: number, reps: number): Promise<MatmulReply> {
  const { a: ha, b: hb } = await readMatmul(dir, n);
  const a = tf.tensor(ha, [n, n]), b = tf.tensor(hb, [n, n]);
  const warm = tf.matMul(a, b); // compiles the kernel
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  const cs = Array.from({ length: reps }, () => tf.matMul(a, b));
  const c = await cs[reps - 1].data(); // waits for all: one queue
  const ms = (performance.now() - t0) / reps;
  tf.dispose([a, b, ...cs]);
  return { ms, probe: probeIndices(n).map((i) => c[i]) };
}

async function info(tf: Tf, scratch: string): Promise<PeerInfo> {
  const pkg = JSON.parse(await Deno.readTextFile(`${scratch}/esm/tfjs-backend-webgpu/package.json`));
  const adapter = await navigator.gpu.requestAdapter();
  const device = adapter?.info.description || adapter?.info.vendor || "unknown adapter";
  return {
    system: "tfjs-webgpu",
    version: pkg.version,
    device: `${device} (tfjs backend ${tf.getBackend()})`,
  };
}

if (import.meta.main) {
  const [dir, scratch] = Deno.args;
  if (!dir || !scratch) {
    console.error("usage: deno run --config SCRATCH/deno.json ... bench/peers/tfjs_peer.ts DATA_DIR SCRATCH");
    Deno.exit(2);
  }
  const tf = await loadTf(scratch);
  let training: Training | null = null;
  await servePeer({
    info: () => info(tf, scratch),
    matmul: (n, reps) => matmul(tf, dir, n, reps),
    trainInit: async () => {
      training = await Training.create(tf, dir);
      return { params: training.state.p.reduce((a: number, x: Tensor) => a + x.size, 0) };
    },
    train: (steps) => {
      if (!training) throw new Error("train before train_init");
      return training.run(steps);
    },
  });
}
