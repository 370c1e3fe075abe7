/**
 * jax-js (npm `@jax-js/jax`, WebGPU device) as a peer of the comparison (bench/peers/protocol.ts).
 *
 *   deno run --allow-read --allow-env bench/peers/jax_peer.ts DATA_DIR MODULES_DIR
 *
 * MODULES_DIR is the scratch install's node_modules (bench/peers/install.ts); the library is imported
 * from there at run time, so its API is untyped here. jax-js counts references: every function consumes
 * its array arguments (`x.ref` keeps one), so each array below is used exactly once or taken with `.ref`.
 *
 * The model is nanoGPT's (bench/nanogpt_check.py) in one `jit`-compiled step: forward, loss, backward,
 * global-norm clip and AdamW. The token embedding is a one-hot matmul: the gradient of `np.take` compiles
 * to a WGSL helper taking an atomic storage pointer, which Deno's WGSL compiler rejects.
 *
 * @module
 */
import { type MatmulReply, type PeerInfo, probeIndices, servePeer, type TrainReply } from "./protocol.ts";
import { type LoadedSetup, readMatmul, readSetup } from "./inputs.ts";

// deno-lint-ignore no-explicit-any
type Jax = any;
// deno-lint-ignore no-explicit-any
type Arr = any;

/** Host one-hot rows [ids.length, V]. */
function oneHot(ids: Int32Array, V: number): Float32Array {
  const out = new Float32Array(ids.length * V);
  ids.forEach((id, i) => out[i * V + id] = 1);
  return out;
}

/** The nanoGPT forward and mean cross-entropy loss, for jax-js, from the one-hot batch. */
function lossFunction(jax: Jax, s: LoadedSetup): (p: Arr, xoh: Arr, yoh: Arr, maskBias: Arr) => Arr {
  const { numpy: np, nn } = jax;
  const { B, T } = s, C = s.config.n_embd, NH = s.config.n_head, HS = C / NH;
  const linear = (x: Arr, w: Arr) => np.matmul(x, np.matrixTranspose(w)); // w [out, in]
  const layerNorm = (x: Arr, w: Arr) => {
    const xc = x.ref.sub(np.mean(x, -1, { keepdims: true }));
    const variance = np.mean(np.square(xc.ref), -1, { keepdims: true });
    return xc.div(np.sqrt(variance.add(1e-5))).mul(w);
  };
  const heads = (z: Arr) => z.reshape([B, T, NH, HS]).transpose([0, 2, 1, 3]); // [B, NH, T, HS]
  const attention = (x: Arr, wAttn: Arr, wProj: Arr, maskBias: Arr) => {
    const [q, k, v] = np.split(linear(x, wAttn), 3, -1);
    const scores = np.matmul(heads(q), heads(k).transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(HS));
    const att = nn.softmax(scores.add(maskBias), -1);
    return linear(np.matmul(att, heads(v)).transpose([0, 2, 1, 3]).reshape([B, T, C]), wProj);
  };
  const mlp = (x: Arr, wFc: Arr, wProj: Arr) =>
    linear(nn.gelu(linear(x, wFc), { approximate: false }), wProj);
  return (p, xoh, yoh, maskBias) => {
    let x = np.matmul(xoh, p.wte.ref).reshape([B, T, C]).add(p.wpe);
    for (const b of p.blocks) {
      x = x.ref.add(attention(layerNorm(x, b.ln1), b.attn, b.attnProj, maskBias.ref));
      x = x.ref.add(mlp(layerNorm(x, b.ln2), b.fc, b.mlpProj));
    }
    maskBias.dispose();
    const logits = linear(layerNorm(x, p.lnf).reshape([B * T, C]), p.wte);
    return np.sum(nn.logSoftmax(logits, -1).mul(yoh)).mul(-1 / (B * T));
  };
}

/** The parameter tree from the nanoGPT-named weights (T must equal block_size: wpe is used whole). */
function paramTree(jax: Jax, s: LoadedSetup): Arr {
  const np = jax.numpy;
  const w = (name: string) => np.array(s.weights.get(name)!).reshape([...s.shapes.get(name)!]);
  const blocks = Array.from({ length: s.config.n_layer }, (_, l) => {
    const h = `transformer.h.${l}`;
    return {
      ln1: w(`${h}.ln_1.weight`),
      attn: w(`${h}.attn.c_attn.weight`),
      attnProj: w(`${h}.attn.c_proj.weight`),
      ln2: w(`${h}.ln_2.weight`),
      fc: w(`${h}.mlp.c_fc.weight`),
      mlpProj: w(`${h}.mlp.c_proj.weight`),
    };
  });
  return {
    wte: w("transformer.wte.weight"),
    wpe: w("transformer.wpe.weight"),
    blocks,
    lnf: w("transformer.ln_f.weight"),
  };
}

/** One jit-compiled optimizer step: (params, m, v, xoh, yoh, maskBias, bc1, bc2) -> [loss, params, m, v]. */
function stepFunction(jax: Jax, s: LoadedSetup): Arr {
  const { numpy: np, tree, valueAndGrad, jit } = jax;
  const h = s.hyper, loss = lossFunction(jax, s);
  return jit((p: Arr, m: Arr, v: Arr, xoh: Arr, yoh: Arr, maskBias: Arr, bc1: Arr, bc2: Arr) => {
    const [value, g] = valueAndGrad(loss)(tree.ref(p), xoh, yoh, maskBias);
    const pl = tree.leaves(p), gl = tree.leaves(g), ml = tree.leaves(m), vl = tree.leaves(v);
    let sq: Arr = null;
    for (const gi of gl) {
      const si = np.sum(np.square(gi.ref));
      sq = sq ? sq.add(si) : si;
    }
    const norm = np.sqrt(sq); // torch.nn.utils.clip_grad_norm_: scale max_norm / (norm + 1e-6) when above
    const scale = np.where(norm.ref.greater(h.gradClip), np.divide(h.gradClip, norm.add(1e-6)), 1);
    const np2 = [], nm = [], nv = [];
    for (let i = 0; i < pl.length; i++) {
      const gi = gl[i].mul(scale.ref);
      const mi = ml[i].mul(h.beta1).add(gi.ref.mul(1 - h.beta1));
      const vi = vl[i].mul(h.beta2).add(np.square(gi).mul(1 - h.beta2));
      const decayed = pl[i].shape.length >= 2 ? pl[i].mul(1 - h.lr * h.weightDecay) : pl[i];
      const update = mi.ref.div(bc1.ref).mul(h.lr).div(np.sqrt(vi.ref.div(bc2.ref)).add(h.eps));
      np2.push(decayed.sub(update));
      nm.push(mi);
      nv.push(vi);
    }
    scale.dispose();
    bc1.dispose();
    bc2.dispose();
    const def = tree.structure(p);
    return [value, tree.unflatten(def, np2), tree.unflatten(def, nm), tree.unflatten(def, nv)];
  });
}

/** The training state on the device and the compiled step. */
class Training {
  #t = 0;
  constructor(
    readonly jax: Jax,
    readonly hyper: LoadedSetup["hyper"],
    readonly step: Arr,
    public state: { p: Arr; m: Arr; v: Arr },
    readonly batch: { xoh: Arr; yoh: Arr; maskBias: Arr },
  ) {}

  static async create(jax: Jax, dir: string): Promise<Training> {
    const s = await readSetup(dir);
    if (s.T !== s.config.block_size) throw new Error("jax-js peer: T must equal block_size");
    const { numpy: np, tree } = jax, V = s.config.vocab_size, T = s.T;
    const p = paramTree(jax, s);
    const zeros = () => tree.map((x: Arr) => np.zerosLike(x), tree.ref(p));
    const bias = Float32Array.from({ length: T * T }, (_, i) => (i % T) <= Math.floor(i / T) ? 0 : -Infinity);
    return new Training(jax, s.hyper, stepFunction(jax, s), { p, m: zeros(), v: zeros() }, {
      xoh: np.array(oneHot(s.tokens, V)).reshape([s.B * T, V]),
      yoh: np.array(oneHot(s.targets, V)).reshape([s.B * T, V]),
      maskBias: np.array(bias).reshape([T, T]),
    });
  }

  async run(steps: number): Promise<TrainReply> {
    const np = this.jax.numpy, h = this.hyper, b = this.batch;
    const losses: Arr[] = [];
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const t = ++this.#t;
      const bc1 = np.array([1 - h.beta1 ** t]).reshape([]), bc2 = np.array([1 - h.beta2 ** t]).reshape([]);
      const { p, m, v } = this.state;
      const [loss, p2, m2, v2] = this.step(p, m, v, b.xoh.ref, b.yoh.ref, b.maskBias.ref, bc1, bc2);
      this.state = { p: p2, m: m2, v: v2 };
      losses.push(loss);
    }
    const values = await Promise.all(losses.map((l) => l.data()));
    const ms = (performance.now() - t0) / steps;
    return { ms, losses: values.map((x: Float32Array) => x[0]) };
  }
}

async function matmul(jax: Jax, dir: string, n: number, reps: number): Promise<MatmulReply> {
  const np = jax.numpy;
  const { a: ha, b: hb } = await readMatmul(dir, n);
  const a = np.array(ha).reshape([n, n]), b = np.array(hb).reshape([n, n]);
  await jax.blockUntilReady([a, b]);
  const warm = np.matmul(a.ref, b.ref); // compiles the kernel
  await warm.data();
  const t0 = performance.now();
  const cs = Array.from({ length: reps }, () => np.matmul(a.ref, b.ref));
  await jax.blockUntilReady(cs);
  const ms = (performance.now() - t0) / reps;
  const c = await cs[reps - 1].ref.data();
  jax.tree.dispose([a, b, ...cs]);
  return { ms, probe: probeIndices(n).map((i) => c[i]) };
}

async function info(jax: Jax, modules: string): Promise<PeerInfo> {
  const pkg = JSON.parse(await Deno.readTextFile(`${modules}/@jax-js/jax/package.json`));
  const adapter = await navigator.gpu.requestAdapter();
  const device = adapter?.info.description || adapter?.info.vendor || "unknown adapter";
  return {
    system: "jax-js",
    version: pkg.version,
    device: `${device} (jax-js device ${jax.defaultDevice()})`,
  };
}

if (import.meta.main) {
  const [dir, modules] = Deno.args;
  if (!dir || !modules) {
    console.error("usage: deno run --allow-read --allow-env bench/peers/jax_peer.ts DATA_DIR MODULES_DIR");
    Deno.exit(2);
  }
  const url = new URL(`file://${await Deno.realPath(modules)}/@jax-js/jax/dist/index.js`);
  const jax: Jax = await import(url.href);
  const devices: string[] = await jax.init();
  if (!devices.includes("webgpu")) throw new Error(`jax-js: no webgpu device (have ${devices.join(", ")})`);
  jax.defaultDevice("webgpu");
  let training: Training | null = null;
  await servePeer({
    info: () => info(jax, modules),
    matmul: (n, reps) => matmul(jax, dir, n, reps),
    trainInit: async () => {
      training = await Training.create(jax, dir);
      const sizes = jax.tree.leaves(training.state.p).map((x: Arr) => x.size);
      return { params: sizes.reduce((a: number, b: number) => a + b, 0) };
    },
    train: (steps) => {
      if (!training) throw new Error("train before train_init");
      return training.run(steps);
    },
  });
}
