/**
 * GPT-2 in and out, as Hugging Face ships it: PyTorch (Debian's python3-torch) writes a GPT-2 folder from
 * random weights (config.json with activation "gelu_new", model.safetensors under GPT-2's names with
 * Conv1D weights [in, out] and the attention-mask buffers, a small byte-level BPE as vocab.json +
 * merges.txt); tforce's eval loss on a text equals PyTorch's float64 GPT-2 forward (Conv1D, tanh GELU) on
 * the same token ids within 1e-5 relative, with and without the `transformer.` prefix. A model written back
 * in the layout loads to the same weights and loss, and bad folders are refused in one line.
 *
 * Runs where /usr/bin/python3 has torch; elsewhere the PyTorch-written cases are reported as ignored.
 */
import assert from "node:assert/strict";
import { hasTorch, PYTHON } from "./python.ts";
import { refuses, testGpu } from "./helpers.ts";
import { runCli } from "./cli_run.ts";
import { loadModel } from "../src/model/checkpoint.ts";
import { hfGpt2Config, saveHfGpt2 } from "../src/model/hf_gpt2.ts";
import { evaluateTokens } from "../src/train/evaluate.ts";
import { InputError } from "../src/util/errors.ts";

const torchHere = await hasTorch();
const NEEDS = torchHere ? "" : " (ignored: needs /usr/bin/python3 with torch)";

/** Writes the GPT-2 folders into argv[1]: gpt2-lm (GPT2LMHeadModel's names) and gpt2-bare (GPT2Model's). */
const FIXTURES = String.raw`
import json, struct, sys
from collections import Counter
import torch

out = sys.argv[1]
torch.manual_seed(4321)
text = ("The quick brown fox jumps over the lazy dog. It's 2026, isn't it? "
        "Caf\u00e9 na\u00efve \u4f60\u597d \U0001F600  spaces\n\nand newlines 12345.\n") * 6
open(f"{out}/text.txt", "w", encoding="utf-8").write(text)

# GPT-2's byte-to-unicode map and a small byte-level BPE learned on the text's bytes (not on GPT-2's
# pre-tokens: any list of merges of earlier tokens is a valid GPT-2 vocabulary).
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
spell = {b: chr(c) for b, c in zip(bs, cs)}
vocab = {spell[b]: i for i, b in enumerate(bs)}
words = [[spell[b] for b in w.encode("utf-8")] for w in text.replace("\n", " \n").split(" ")]
merges = []
for _ in range(40):
    pairs = Counter((w[i], w[i + 1]) for w in words for i in range(len(w) - 1))
    if not pairs: break
    (a, b), _ = pairs.most_common(1)[0]
    merges.append(f"{a} {b}")
    vocab[a + b] = len(vocab)
    for w in words:
        i = 0
        while i < len(w) - 1:
            if w[i] == a and w[i + 1] == b: w[i:i + 2] = [a + b]
            i += 1
vocab["<|endoftext|>"] = len(vocab)
V, C, L, H, T = len(vocab), 32, 2, 4, 32

sd = {"wte.weight": torch.randn(V, C) * 0.3, "wpe.weight": torch.randn(T, C) * 0.3,
      "ln_f.weight": 1 + torch.randn(C) * 0.2, "ln_f.bias": torch.randn(C) * 0.2}
for i in range(L):
    p = f"h.{i}."
    for ln in ("ln_1", "ln_2"):
        sd[p + ln + ".weight"] = 1 + torch.randn(C) * 0.2
        sd[p + ln + ".bias"] = torch.randn(C) * 0.2
    for name, (nin, nout) in {"attn.c_attn": (C, 3 * C), "attn.c_proj": (C, C),
                              "mlp.c_fc": (C, 4 * C), "mlp.c_proj": (4 * C, C)}.items():
        sd[p + name + ".weight"] = torch.randn(nin, nout) * 0.3  # Conv1D: [in, out]
        sd[p + name + ".bias"] = torch.randn(nout) * 0.2
    sd[p + "attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    sd[p + "attn.masked_bias"] = torch.tensor(-1e4)

def save(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in tensors.items():
        b = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
          "n_layer": L, "n_head": H, "n_embd": C, "n_positions": T, "n_ctx": T, "vocab_size": V,
          "layer_norm_epsilon": 1e-5, "n_inner": None, "attn_pdrop": 0.1, "embd_pdrop": 0.1,
          "resid_pdrop": 0.1, "scale_attn_weights": True, "tie_word_embeddings": True}
import os
for folder, prefix, head in (("gpt2-lm", "transformer.", True), ("gpt2-bare", "", False)):
    os.makedirs(f"{out}/{folder}")
    tensors = {prefix + k: v for k, v in sd.items()}
    if head: tensors["lm_head.weight"] = sd["wte.weight"]
    save(f"{out}/{folder}/model.safetensors", tensors)
    json.dump(config, open(f"{out}/{folder}/config.json", "w"))
    json.dump(vocab, open(f"{out}/{folder}/vocab.json", "w"))
    open(f"{out}/{folder}/merges.txt", "w").write("#version: 0.2\n" + "\n".join(merges) + "\n")
torch.save({k: v for k, v in sd.items()}, f"{out}/sd.pt")
`;

/** PyTorch's float64 GPT-2 forward (Conv1D, gelu_new) over argv[2]'s ids, T-token windows: mean loss. */
const LOSS = String.raw`
import json, math, sys
import torch, torch.nn.functional as F
sd = {k: v.double() for k, v in torch.load(sys.argv[1]).items()}
ids = json.load(open(sys.argv[2]))
V, C = sd["wte.weight"].shape
T, L, H = sd["wpe.weight"].shape[0], 2, 4
def ln(x, p): return F.layer_norm(x, (C,), sd[p + ".weight"], sd[p + ".bias"], 1e-5)
def conv(x, p): return x @ sd[p + ".weight"] + sd[p + ".bias"]
def loss(x_ids, y_ids):
    t = len(x_ids)
    x = sd["wte.weight"][torch.tensor(x_ids)] + sd["wpe.weight"][:t]
    for i in range(L):
        p = f"h.{i}."
        q, k, v = conv(ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=-1)
        q, k, v = (z.view(t, H, C // H).transpose(0, 1) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(torch.tril(torch.ones(t, t)) == 0, float("-inf")).softmax(-1)
        x = x + conv((att @ v).transpose(0, 1).reshape(t, C), p + "attn.c_proj")
        x = x + conv(F.gelu(conv(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    logits = ln(x, "ln_f") @ sd["wte.weight"].T
    return F.cross_entropy(logits, torch.tensor(y_ids), reduction="sum").item()
n = len(ids)
total = sum(loss(ids[w * T:min(w * T + T, n - 1)], ids[w * T + 1:min(w * T + T + 1, n)])
            for w in range(math.ceil((n - 1) / T)))
print(json.dumps(total / (n - 1)))
`;

let fixtures: Promise<string> | null = null;

function pytorchFixtures(): Promise<string> {
  fixtures ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "tforce-hf-gpt2-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    await python(FIXTURES, dir);
    return dir;
  })();
  return fixtures;
}

async function python(script: string, ...args: string[]): Promise<string> {
  const r = await new Deno.Command(PYTHON, {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const err = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `the PyTorch script failed: ${err.split("\n").slice(-6).join("\n")}`);
  return new TextDecoder().decode(r.stdout);
}

/** PyTorch's loss of the fixture weights on the text as tforce's tokenizer encodes it. */
async function pytorchLoss(dir: string, ids: Uint32Array): Promise<number> {
  await Deno.writeTextFile(`${dir}/ids.json`, JSON.stringify(Array.from(ids)));
  return JSON.parse(await python(LOSS, `${dir}/sd.pt`, `${dir}/ids.json`));
}

Deno.test({
  name: `a Hugging Face GPT-2 folder (with and without 'transformer.'): eval loss = PyTorch's${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), gpu = await testGpu();
    const text = await Deno.readTextFile(`${dir}/text.txt`);
    let want = NaN;
    for (const folder of ["gpt2-lm", "gpt2-bare"]) {
      const ck = await loadModel(`${dir}/${folder}`);
      assert.equal(ck.config.activation, "gelu_new");
      assert.equal(ck.tokenizer.type, "gpt2");
      assert.equal(ck.tokenizer.decode(ck.tokenizer.encode(text)), text);
      const ids = ck.tokenizer.encode(text);
      if (Number.isNaN(want)) want = await pytorchLoss(dir, ids);
      const r = await evaluateTokens(ck, ids, { gpu });
      const rel = Math.abs(r.loss - want) / want;
      console.log(
        `${folder}: loss tforce ${r.loss} PyTorch ${want} (relative difference ${rel.toExponential(2)})`,
      );
      assert.ok(rel < 1e-5, `${folder}: loss ${r.loss} vs PyTorch ${want}`);
    }
  },
});

Deno.test({
  name: `a model written in GPT-2's layout loads back to the same weights, tokenizer and loss${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), gpu = await testGpu();
    const ck = await loadModel(`${dir}/gpt2-lm`);
    await saveHfGpt2(`${dir}/written`, ck);
    const back = await loadModel(`${dir}/written`);
    assert.deepEqual(back.config, ck.config);
    assert.deepEqual(back.tokenizer.toJSON(), ck.tokenizer.toJSON());
    for (const [name, w] of ck.weights) assert.deepEqual(back.weights.get(name), w, name);
    // The files themselves are GPT-2's: Conv1D orientation and names as PyTorch wrote them.
    const original = await Deno.readTextFile(`${dir}/gpt2-bare/merges.txt`);
    assert.equal(await Deno.readTextFile(`${dir}/written/merges.txt`), original);
    const check = String.raw`
import json, struct, sys, torch
sd = torch.load(sys.argv[1])
raw = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
bad = [k for k in sd if k in header and list(sd[k].shape) != header[k]["shape"]]
missing = [k for k in sd if ".attn.bias" not in k and ".masked_bias" not in k and k not in header]
print(json.dumps({"bad": bad, "missing": missing}))`;
    const r = JSON.parse(await python(check, `${dir}/sd.pt`, `${dir}/written/model.safetensors`));
    assert.deepEqual(r, { bad: [], missing: [] });
    const ids = ck.tokenizer.encode(await Deno.readTextFile(`${dir}/text.txt`));
    const a = await evaluateTokens(ck, ids, { gpu }), b = await evaluateTokens(back, ids, { gpu });
    assert.equal(b.loss, a.loss);
  },
});

Deno.test("GPT-2 config.json: what tforce's model does not implement is refused, naming the field", () => {
  const base = { n_layer: 2, n_head: 4, n_embd: 32, n_positions: 32, vocab_size: 300 };
  const config = (extra: Record<string, unknown>) =>
    hfGpt2Config(JSON.stringify({ ...base, ...extra }), "c.json");
  assert.deepEqual(config({}), {
    n_layer: 2,
    n_head: 4,
    n_embd: 32,
    block_size: 32,
    vocab_size: 300,
    bias: true,
    dropout: 0,
    activation: "gelu_new",
  });
  assert.equal(config({ activation_function: "gelu" }).activation, undefined);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ n_inner: 100 }, /^c\.json: "n_inner" is 100; tforce's GPT-2 needs null or 4 \* n_embd \(128\)$/],
    [{ layer_norm_epsilon: 1e-6 }, /"layer_norm_epsilon" is 0\.000001; tforce's GPT-2 needs 1e-5/],
    [{ tie_word_embeddings: false }, /"tie_word_embeddings" is false/],
    [{ activation_function: "relu" }, /activation_function is "relu"; tforce has "gelu_new" and "gelu"/],
    [{ model_type: "llama" }, /model_type is "llama", not "gpt2"/],
    [{ n_head: 5 }, /n_embd \(32\) must be divisible by n_head \(5\)/],
    [{ n_positions: undefined }, /has no "n_positions"/],
  ];
  for (const [extra, re] of cases) {
    assert.throws(
      () => config(extra),
      (e: Error) => e instanceof InputError && re.test(e.message),
      String(re),
    );
  }
  assert.throws(
    () => hfGpt2Config("{", "c.json"),
    (e: Error) => /^c\.json: is not valid JSON \(/.test(e.message),
  );
});

Deno.test("a folder that is neither GPT-2's layout nor a run is refused in one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-hf-bad-" });
  try {
    await refuses(() => loadModel(dir), /a folder without config\.json \+ model\.safetensors/);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ n_layer: 1, n_head: 1, n_embd: 4, n_positions: 4, vocab_size: 257 }),
    );
    await refuses(() => loadModel(dir), /cannot read model\.safetensors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: `fine-tuning a GPT-2 folder writes OUT/hf in the same layout; sample and eval read it${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), out = `${dir}/run`;
    const train = await runCli([
      "train",
      "--init-from",
      `${dir}/gpt2-lm`,
      "--data",
      `${dir}/text.txt`,
      "--steps",
      "3",
      "--batch-size",
      "2",
      "--eval-interval",
      "3",
      "--eval-iters",
      "1",
      "--out",
      out,
    ]);
    assert.equal(train.code, 0, train.err.join("\n"));
    const tuned = await loadModel(`${out}/hf`), run = await loadModel(`${out}/model.safetensors`);
    assert.deepEqual(tuned.config, run.config);
    assert.equal(tuned.config.activation, "gelu_new");
    for (const [name, w] of run.weights) assert.deepEqual(tuned.weights.get(name), w, name);
    const before = await loadModel(`${dir}/gpt2-lm`);
    const moved = [...before.weights].some(([name, w]) =>
      !w.every((v, i) => v === tuned.weights.get(name)![i])
    );
    assert.ok(moved, "three AdamW steps left every weight unchanged");
    // eval reads the folder as it reads the run's own checkpoint: the same loss.
    const losses: string[] = [];
    for (const checkpoint of [`${out}/hf`, `${out}/model.safetensors`]) {
      const r = await runCli(["eval", "--checkpoint", checkpoint, "--data", `${dir}/text.txt`]);
      assert.equal(r.code, 0, r.err.join("\n"));
      losses.push(r.out.join("\n").match(/"loss":\s*([\d.]+)/)?.[1] ?? `no loss in ${r.out.join("\n")}`);
    }
    assert.match(losses[0], /^\d/);
    assert.equal(losses[0], losses[1]);
  },
});
