/**
 * Use tforce's kernels directly: a matmul, causal attention and the fused cross-entropy on the GPU,
 * each checked against the float64 CPU reference.
 *
 *   deno run --allow-read examples/kernels.ts
 */
import { createGpu, createStorage, readF32, Rng, submitDispatches, upload } from "@tforce/core/kernels";
import * as kernels from "@tforce/core/kernels";
import * as reference from "@tforce/core/reference";

const gpu = await createGpu();
console.log(`adapter: ${gpu.description}`);
const rng = new Rng(1);
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

// out[M,N] = inp[M,K] · weight[N,K]ᵀ + bias[N]  (a Linear layer, weight stored [out, in] as in PyTorch)
{
  const M = 64, K = 96, N = 48;
  const x = rng.normalArray(M * K), w = rng.normalArray(N * K), b = rng.normalArray(N);
  const out = createStorage(gpu, "out", M * N * 4);
  const d = await kernels.matmulForward(gpu, {
    out,
    inp: upload(gpu, "inp", x),
    weight: upload(gpu, "weight", w),
    bias: upload(gpu, "bias", b),
  }, { M, K, N });
  submitDispatches(gpu, [d]);
  const got = await readF32(gpu, out);
  console.log(
    `matmul ${M}x${K} · ${N}x${K}ᵀ: max error vs reference ${
      maxErr(got, reference.matmulForward(x, w, b, M, K, N)).toExponential(2)
    }`,
  );
}

// Causal self-attention over qkv [B,T,3C] (nanoGPT's c_attn output), heads of size C/NH.
{
  const B = 2, T = 33, C = 64, NH = 4;
  const qkv = rng.normalArray(B * T * 3 * C);
  const out = createStorage(gpu, "att", B * T * C * 4), lse = createStorage(gpu, "lse", B * NH * T * 4);
  submitDispatches(gpu, [
    await kernels.attentionForward(gpu, { out, lse, qkv: upload(gpu, "qkv", qkv) }, { B, T, C, NH }),
  ]);
  const got = await readF32(gpu, out);
  console.log(
    `attention B=${B} T=${T} C=${C} NH=${NH}: max error ${
      maxErr(got, reference.attentionForward(qkv, B, T, C, NH).out).toExponential(2)
    }`,
  );
}

// Fused log-softmax cross-entropy: per-row loss, and dlogits written over the logits in place.
{
  const logits = new Float32Array([0.1, 0.2, 3.0, 0.1, 0.05]);
  const buf = upload(gpu, "logits", logits), losses = createStorage(gpu, "losses", 4);
  const targets = upload(gpu, "targets", new Uint32Array([2]));
  submitDispatches(gpu, [
    await kernels.crossEntropyForwardBackward(gpu, { logits: buf, losses, targets }, {
      N: 1,
      V: 5,
      scale: 1,
    }),
  ]);
  const [loss] = await readF32(gpu, losses);
  const dlogits = await readF32(gpu, buf);
  console.log(
    `cross-entropy: loss ${loss.toFixed(5)} (true value 0.20147), dlogits = softmax - onehot = [${
      [...dlogits].map((v) => v.toFixed(4))
    }]`,
  );
}
