/**
 * nanoGPT's files in: PyTorch (Debian's python3-torch) writes a `ckpt.pt` exactly as nanoGPT's train.py
 * saves it (model, optimizer, model_args, iter_num, best_val_loss, config), its char `meta.pkl`, and a
 * state_dict as safetensors without tforce's metadata; tforce's eval loss on a text equals PyTorch's
 * (nanoGPT's forward in float64 on the same weights) within 1e-5 relative, for float32, float16 and
 * bfloat16 checkpoints. Pickles that name other globals are refused without running them (their payloads
 * would create files; they do not exist afterwards, and do once PyTorch's own `torch.load` runs one), and
 * a few hundred mutated checkpoints each fail with one line, quickly.
 *
 * Runs where /usr/bin/python3 has torch; elsewhere the PyTorch-written cases are reported as ignored.
 */
import { hasTorch, PYTHON } from "./python.ts";
import { tinyGPT } from "./fixtures.ts";
import type { GPTConfig } from "../src/model/config.ts";
import { runCli } from "./cli_run.ts";
import assert from "node:assert/strict";
import { exists, refuses, testGpu } from "./helpers.ts";
import { decodeCheckpoint, loadModel } from "../src/model/checkpoint.ts";
import { charTokenizerFromMeta } from "../src/model/nanogpt.ts";
import { evaluateCheckpoint, evaluateTokens } from "../src/train/evaluate.ts";
import { Generator as TextGenerator } from "../src/model/generate.ts";
import { train } from "../src/train/trainer.ts";
import { unpickle } from "../src/io/pickle.ts";
import { crc32, zipEntries } from "../src/io/zip.ts";
import { InputError } from "../src/util/errors.ts";
import { Rng } from "../src/util/rng.ts";

const torchHere = await hasTorch();
const NEEDS = torchHere ? "" : " (ignored: needs /usr/bin/python3 with torch)";
if (!torchHere) {
  console.log(`nanogpt_import.test.ts: no torch for ${PYTHON}; the PyTorch-written cases are ignored`);
}

/** Writes every fixture into argv[1]: checkpoints, meta.pkl, the text, PyTorch's losses, hostile pickles. */
const FIXTURES = String.raw`
import io, json, math, os, pickle, struct, sys, zipfile
from collections import OrderedDict
import torch, torch.nn as nn, torch.nn.functional as F

out = sys.argv[1]
torch.manual_seed(1234)
text = ("First Citizen: Before we proceed any further, hear me speak.\nAll: Speak, speak.\n"
        "Caf\u00e9 na\u00efve \u00fcber \u03a9 \u4f60\u597d \U0001F600 \u00bfs\u00ed? 0123456789\n") * 12
chars = sorted(list(set(text)))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
with open(f"{out}/meta.pkl", "wb") as f:
    pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
with open(f"{out}/text.txt", "w", encoding="utf-8") as f:
    f.write(text)
ids = [stoi[c] for c in text]
json.dump({"ids": ids, "itos": [itos[i] for i in range(len(chars))]}, open(f"{out}/ids.json", "w"))

# nanoGPT's model.py as bench/nanogpt_check.py (argv[2]) writes it, under torch < 2: no flash attention, so
# each block also registers the causal mask 'attn.bias' in its state_dict; the loss summed over targets.
import importlib.util
spec = importlib.util.spec_from_file_location("nanogpt_check", sys.argv[2])
ng = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ng)

class CausalSelfAttention(ng.CausalSelfAttention):
    def __init__(self, c):
        super().__init__(c)
        T = c["block_size"]
        self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))
ng.CausalSelfAttention = CausalSelfAttention  # the blocks build their attention by this name

class GPT(ng.GPT):
    def forward(self, idx, targets):
        logits = super().forward(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="sum")

def make(bias, vocab_size=len(chars)):
    c = dict(n_layer=2, n_head=4, n_embd=32, block_size=32, bias=bias, vocab_size=vocab_size, dropout=0.0)
    model = GPT(c)
    with torch.no_grad():  # weights far from init, so every tensor matters to the loss
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() >= 2 else 0.2) + (1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight") else 0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.tensor(ids[:33])
    model(x[None, :32], x[None, 1:33]).backward()
    opt.step()  # the optimizer state now holds tensors (step, exp_avg, exp_avg_sq)
    return c, model, opt

def loss64(c, model):
    m = GPT(c).double()
    m.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m.eval()
    T, n, total = c["block_size"], len(ids), 0.0
    with torch.no_grad():
        for w in range(math.ceil((n - 1) / T)):
            x = torch.tensor(ids[w * T:min(w * T + T, n - 1)])[None]
            y = torch.tensor(ids[w * T + 1:min(w * T + T + 1, n)])[None]
            total += m(x, y).item()
    return total / (n - 1)

def save(path, c, model, opt, state_dict):
    torch.save({"model": state_dict, "optimizer": opt.state_dict(), "model_args": c, "iter_num": 250,
                "best_val_loss": torch.tensor(1.4697), "config": {"dataset": "mydata", "batch_size": 12,
                "learning_rate": 6e-4, "compile": False, "init_from": "scratch", "wandb_log": False}}, path)

losses = {}
# float32, bias, a torch.compile'd model's "_orig_mod." names, and one weight saved as a strided view.
c, model, opt = make(True)
sd = OrderedDict(("_orig_mod." + k, v) for k, v in model.state_dict().items())
w = sd["_orig_mod.transformer.h.0.attn.c_attn.weight"]
sd["_orig_mod.transformer.h.0.attn.c_attn.weight"] = w.t().contiguous().t()
assert not sd["_orig_mod.transformer.h.0.attn.c_attn.weight"].is_contiguous()
save(f"{out}/ckpt.pt", c, model, opt, sd)
losses["float32"] = loss64(c, model)
# The same archive deflated, as a zip tool would re-pack it (torch.load reads that too).
with zipfile.ZipFile(f"{out}/ckpt.pt") as zin, zipfile.ZipFile(f"{out}/deflated.pt", "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        zout.writestr(item.filename, zin.read(item.filename))
# A state_dict as safetensors, no metadata (PyTorch's tensors' bytes; lm_head is wte, as nanoGPT's).
tensors = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith(".attn.bias")}
header, blobs, off = {}, [], 0
for k, v in tensors.items():
    b = v.numpy().tobytes()
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
with open(f"{out}/state.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# float16 and bfloat16 checkpoints: PyTorch casts; the reference loss is that of the cast weights.
for dtype, name, bias in ((torch.float16, "float16", True), (torch.bfloat16, "bfloat16", False)):
    c, model, opt = make(bias)
    model = model.to(dtype)
    save(f"{out}/ckpt_{name}.pt", c, model, opt, model.state_dict())
    losses[name] = loss64(c, model)

# nanoGPT's padded vocabulary (its GPT-2 runs use 50304 > 50257): more rows than the tokenizer has ids.
# ln_f's output is the constant b, so every position's logits are b . wte[v]; the padding rows are 2b, far
# above every real id (about 2|b|^2 = 64 against about 10), so a sampler that saw them would pick them.
c, model, opt = make(True, len(chars) + 3)
with torch.no_grad():
    b = torch.randn(c["n_embd"])
    model.transformer.ln_f.weight.zero_()
    model.transformer.ln_f.bias.copy_(b)
    model.transformer.wte.weight[len(chars):] = 2 * b
save(f"{out}/padded.pt", c, model, opt, model.state_dict())
losses["padded"] = loss64(c, model)
real = model.transformer.wte.weight[:len(chars)].double() @ b.double()
losses["padded_greedy"] = int(real.argmax())
json.dump(losses, open(f"{out}/losses.json", "w"))

# Hostile pickles: loading them with torch.load would run the payload, which creates a marker file.
class Call:
    def __init__(self, f, arg):
        self.f, self.arg = f, arg
    def __reduce__(self):
        return (self.f, (self.arg,))
torch.save({"model": Call(os.system, f"touch {out}/ran_system")}, f"{out}/evil_system.pt")
torch.save({"model": Call(eval, f"open({out + '/ran_eval'!r}, 'w').close()")}, f"{out}/evil_eval.pt")
# Protocol 4 names builtins.exec with STACK_GLOBAL; put it in an otherwise valid archive.
with zipfile.ZipFile(f"{out}/evil_exec.pt", "w") as z:
    z.writestr("evil_exec/data.pkl", pickle.dumps({"model": Call(exec, f"open({out + '/ran_exec'!r}, 'w').close()")}, protocol=4))
    z.writestr("evil_exec/version", "3\n")
torch.save({"model": nn.Linear(2, 2), "model_args": c}, f"{out}/module.pt")
with open(f"{out}/evil_meta.pkl", "wb") as f:
    pickle.dump({"itos": Call(os.system, f"touch {out}/ran_meta")}, f)
print(json.dumps(losses))
`;

let fixtures: Promise<string> | null = null;

/** The fixtures' folder, written once by PyTorch. */
function pytorchFixtures(): Promise<string> {
  fixtures ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "tforce-nanogpt-import-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const r = await new Deno.Command(PYTHON, {
      args: ["-c", FIXTURES, dir, new URL("../bench/nanogpt_check.py", import.meta.url).pathname],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const err = new TextDecoder().decode(r.stderr);
    assert.ok(r.success, `the PyTorch fixture script failed: ${err.split("\n").slice(-6).join("\n")}`);
    return dir;
  })();
  return fixtures;
}

/** The model of {@linkcode pytorchFixtures}' checkpoints over a vocabulary of `V` tokens. */
function fixtureConfig(V: number): GPTConfig {
  return tinyGPT({ n_layer: 2, n_head: 4, n_embd: 32, block_size: 32, vocab_size: V, bias: true });
}

Deno.test({
  name: `nanoGPT ckpt.pt (float32, _orig_mod., strided, stored and deflated): eval loss = PyTorch's${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), gpu = await testGpu();
    const want = JSON.parse(await Deno.readTextFile(`${dir}/losses.json`)).float32;
    for (const file of ["ckpt.pt", "deflated.pt"]) {
      // The tokenizer: the meta.pkl beside the checkpoint (no option given).
      const r = await evaluateCheckpoint(`${dir}/${file}`, `${dir}/text.txt`, { gpu });
      const rel = Math.abs(r.loss - want) / want;
      console.log(
        `${file}: loss tforce ${r.loss} PyTorch ${want} (relative difference ${rel.toExponential(2)})`,
      );
      assert.ok(rel < 1e-5, `${file}: loss ${r.loss} vs PyTorch ${want}`);
    }
    const ck = await loadModel(`${dir}/ckpt.pt`);
    assert.deepEqual(ck.config, fixtureConfig(ck.tokenizer.vocabSize));
    assert.ok([...ck.weights.keys()].every((k) => !k.startsWith("_orig_mod.")));
    assert.equal(ck.metadata.iter_num, "250");
    assert.ok(Math.abs(Number(ck.metadata.best_val_loss) - 1.4697) < 1e-6);
  },
});

for (const dtype of ["float16", "bfloat16"]) {
  Deno.test({
    name: `nanoGPT ckpt.pt in ${dtype}: eval loss = PyTorch's on the cast weights${NEEDS}`,
    ignore: !torchHere,
    fn: async () => {
      const dir = await pytorchFixtures(), gpu = await testGpu();
      const want = JSON.parse(await Deno.readTextFile(`${dir}/losses.json`))[dtype];
      const r = await evaluateCheckpoint(`${dir}/ckpt_${dtype}.pt`, `${dir}/text.txt`, { gpu });
      const rel = Math.abs(r.loss - want) / want;
      console.log(
        `${dtype}: loss tforce ${r.loss} PyTorch ${want} (relative difference ${rel.toExponential(2)})`,
      );
      assert.ok(rel < 1e-5);
    },
  });
}

Deno.test({
  name: `a PyTorch state_dict as safetensors without metadata loads with nHead: same loss${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), gpu = await testGpu();
    const want = JSON.parse(await Deno.readTextFile(`${dir}/losses.json`)).float32;
    const ck = await loadModel(`${dir}/state.safetensors`, { nHead: 4 });
    assert.deepEqual(ck.config, fixtureConfig(ck.tokenizer.vocabSize));
    const ids = ck.tokenizer.encode(await Deno.readTextFile(`${dir}/text.txt`));
    const r = await evaluateTokens(ck, ids, { gpu });
    assert.ok(Math.abs(r.loss - want) / want < 1e-5, `loss ${r.loss} vs PyTorch ${want}`);
    await refuses(() => loadModel(`${dir}/state.safetensors`), /metadata has no 'config'.*number of heads/);
    await refuses(
      () => loadModel(`${dir}/state.safetensors`, { nHead: 5 }),
      /n_embd \(32\) must be divisible by n_head \(5\)/,
    );
  },
});

Deno.test({
  name:
    `nanoGPT's meta.pkl: tforce's char tokenizer with nanoGPT's ids, found beside or as data/DATASET${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures();
    const { ids, itos } = JSON.parse(await Deno.readTextFile(`${dir}/ids.json`));
    const text = await Deno.readTextFile(`${dir}/text.txt`);
    const tok = charTokenizerFromMeta(await Deno.readFile(`${dir}/meta.pkl`), "meta.pkl");
    assert.equal(tok.vocabSize, itos.length);
    itos.forEach((ch: string, id: number) => assert.equal(tok.decode([id]), ch));
    assert.deepEqual(Array.from(tok.encode(text)), ids);
    assert.equal(tok.decode(tok.encode(text)), text);
    // nanoGPT's layout: out-DATASET/ckpt.pt and data/DATASET/meta.pkl (sample.py's rule), nothing beside.
    const root = await Deno.makeTempDir({ prefix: "tforce-nanogpt-layout-" });
    await Deno.mkdir(`${root}/out`);
    await Deno.mkdir(`${root}/data/mydata`, { recursive: true });
    await Deno.copyFile(`${dir}/ckpt.pt`, `${root}/out/ckpt.pt`);
    await refuses(() => loadModel(`${root}/out/ckpt.pt`), /has no tokenizer.*data\/mydata\/meta\.pkl/);
    await Deno.copyFile(`${dir}/meta.pkl`, `${root}/data/mydata/meta.pkl`);
    const ck = await loadModel(`${root}/out/ckpt.pt`);
    assert.deepEqual(ck.tokenizer.toJSON(), tok.toJSON());
    const given = await loadModel(`${root}/out/ckpt.pt`, { meta: `${dir}/meta.pkl` });
    assert.equal(given.tokenizer.vocabSize, tok.vocabSize);
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test({
  name: `a padded vocab_size (nanoGPT's 50304 for GPT-2): PyTorch's loss, padding ids never sampled${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures(), gpu = await testGpu();
    const want = JSON.parse(await Deno.readTextFile(`${dir}/losses.json`));
    const ck = await loadModel(`${dir}/padded.pt`);
    const n = ck.tokenizer.vocabSize;
    assert.equal(ck.config.vocab_size, n + 3);
    const r = await evaluateCheckpoint(`${dir}/padded.pt`, `${dir}/text.txt`, { gpu });
    const rel = Math.abs(r.loss - want.padded) / want.padded;
    console.log(
      `padded: loss tforce ${r.loss} PyTorch ${want.padded} (relative difference ${rel.toExponential(2)})`,
    );
    assert.ok(rel < 1e-5, `loss ${r.loss} vs PyTorch ${want.padded}`);
    // The padding rows hold nearly all the probability, yet neither greedy decoding nor sampling picks them.
    const gen = await TextGenerator.fromCheckpoint(ck, { gpu, batch: 4 });
    assert.equal(gen.tokens, n);
    const [greedy] = await gen.generate([0], 6, { temperature: 0 });
    assert.deepEqual(greedy, Array(6).fill(want.padded_greedy));
    const sampled = (await gen.generate([0], 16, { temperature: 1, topK: 0, topP: 0.9 })).flat();
    assert.ok(sampled.every((t) => t < n), `sampled ids ${sampled} include padding (>= ${n})`);
    await assert.rejects(gen.generate([n], 1), {
      message: `generate: token id ${n} is outside the vocabulary`,
    });
    // Fine-tuned and saved, the padded shape and its tokenizer load back as they were.
    const out = await Deno.makeTempDir({ prefix: "tforce-padded-" });
    const text = await Deno.readTextFile(`${dir}/text.txt`);
    await train({ text, init_from: `${dir}/padded.pt`, steps: 2, eval_interval: 2, batch_size: 2, out }, {
      gpu,
    });
    const back = await loadModel(`${out}/model.safetensors`);
    assert.equal(back.config.vocab_size, n + 3);
    assert.deepEqual(back.tokenizer.toJSON(), ck.tokenizer.toJSON());
    await Deno.remove(out, { recursive: true });
  },
});

Deno.test({
  name: `pickles naming other globals are refused, and their payloads never run${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures();
    const cases: [string, string, string][] = [
      ["evil_system.pt", "posix.system", "ran_system"],
      ["evil_eval.pt", "__builtin__.eval", "ran_eval"],
      ["evil_exec.pt", "builtins.exec", "ran_exec"],
      ["module.pt", "torch.nn.modules.linear.Linear", ""],
    ];
    for (const [file, global, marker] of cases) {
      const esc = global.replaceAll(".", "\\.");
      const msg = await refuses(
        () => loadModel(`${dir}/${file}`, { meta: `${dir}/meta.pkl` }),
        new RegExp(
          `^${dir}/${file}: pickle refers to '${esc}', which a checkpoint may not ` +
            `\\(only tensors, dicts, lists, tuples, strings and numbers\\)$`,
        ),
      );
      console.log(msg);
      if (marker) assert.equal(await exists(`${dir}/${marker}`), false, `${file}'s payload ran`);
    }
    await refuses(
      () => loadModel(`${dir}/ckpt.pt`, { meta: `${dir}/evil_meta.pkl` }),
      /evil_meta\.pkl: pickle refers to 'posix\.system', which a meta\.pkl may not/,
    );
    assert.equal(await exists(`${dir}/ran_meta`), false);
    // The payload is real: PyTorch's own (unrestricted) torch.load runs it.
    const r = await new Deno.Command(PYTHON, {
      args: ["-c", `import torch, sys; torch.load(sys.argv[1])`, `${dir}/evil_system.pt`],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(r.success);
    assert.equal(await exists(`${dir}/ran_system`), true, "torch.load did not run the payload");
  },
});

/** Byte flips, runs of random bytes and truncations of `bytes`, `n` of them, from a seeded stream. */
function* mutations(bytes: Uint8Array, n: number, seed: number): Generator<[string, Uint8Array]> {
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 3) {
      const at = rng.int(bytes.length);
      yield [`truncated to ${at} bytes`, bytes.slice(0, at)];
      continue;
    }
    const m = bytes.slice();
    const flips = kind === 0 ? 1 : kind === 1 ? 1 + rng.int(8) : 1 + rng.int(64);
    const at = rng.int(bytes.length);
    for (let k = 0; k < flips; k++) {
      const p = kind === 2 ? Math.min(bytes.length - 1, at + k) : rng.int(bytes.length);
      m[p] = kind === 2 ? rng.int(256) : m[p] ^ (1 << rng.int(8));
    }
    yield [`${flips} byte(s) changed from ${at}`, m];
  }
}

Deno.test({
  name: `mutated ckpt.pt files (flips, truncations; stored and deflated) fail with one line, quickly${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures();
    const tokenizer = charTokenizerFromMeta(await Deno.readFile(`${dir}/meta.pkl`), "meta.pkl");
    let failed = 0, loaded = 0, slowest = 0;
    const t0 = performance.now();
    for (const [file, n, seed] of [["ckpt.pt", 300, 1], ["deflated.pt", 100, 2]] as const) {
      const bytes = await Deno.readFile(`${dir}/${file}`);
      const original = await decodeCheckpoint(bytes, file, { tokenizer });
      for (const [how, m] of mutations(bytes, n, seed)) {
        const t = performance.now();
        try {
          const ck = await decodeCheckpoint(m, "mutant.pt", { tokenizer });
          // A change outside what is read (zip padding, an optimizer storage, a local header's copy of
          // the sizes) leaves the file loadable; the model's bytes are CRC-checked, so it loads unchanged.
          for (const [name, w] of original.weights) {
            const got = ck.weights.get(name)!;
            assert.ok(got.every((x, i) => Object.is(x, w[i])), `${file}, ${how}: '${name}' changed`);
          }
          assert.deepEqual(ck.config, original.config);
          loaded++;
        } catch (e) {
          if (!(e instanceof InputError) || e.message.includes("\n")) {
            throw new Error(`${file}, ${how}: not a one-line InputError: ${(e as Error).stack}`);
          }
          failed++;
        }
        slowest = Math.max(slowest, performance.now() - t);
        assert.ok(performance.now() - t < 5000, `${file}, ${how}: took ${performance.now() - t} ms`);
      }
    }
    console.log(
      `${failed} mutants refused, ${loaded} loaded; slowest ${slowest.toFixed(1)} ms, all ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    assert.ok(failed > 100);
  },
});

/**
 * `bytes` with the central-directory CRC of entry `name` set to 0 ("not computed", as PyTorch can be told
 * to write), so that a mutated entry reaches its reader instead of failing the CRC check.
 */
function withoutCrc(bytes: Uint8Array, name: string): Uint8Array {
  const out = bytes.slice(), v = new DataView(out.buffer), want = new TextEncoder().encode(name);
  for (let p = out.length - 22; p >= 0; p--) {
    if (v.getUint32(p, true) !== 0x02014b50 || v.getUint16(p + 28, true) !== want.length) continue;
    if (want.every((b, i) => out[p + 46 + i] === b)) {
      v.setUint32(p + 16, 0, true);
      return out;
    }
  }
  throw new Error(`no central directory entry '${name}'`);
}

Deno.test({
  name: `mutated pickles inside ckpt.pt (CRC check off) reach the unpickler and fail with one line${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures();
    const tokenizer = charTokenizerFromMeta(await Deno.readFile(`${dir}/meta.pkl`), "meta.pkl");
    const bytes = withoutCrc(await Deno.readFile(`${dir}/ckpt.pt`), "ckpt/data.pkl");
    const entry = zipEntries(bytes, "ckpt.pt").get("ckpt/data.pkl")!;
    const pickle = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.size);
    await decodeCheckpoint(bytes, "ckpt.pt", { tokenizer }); // loads without the CRC
    const messages = new Map<string, number>();
    let loaded = 0;
    const t0 = performance.now();
    for (const [how, m] of mutations(pickle, 400, 3)) {
      if (m.length !== pickle.length) continue; // truncations: the archive's size fields disagree
      const file = bytes.slice();
      file.set(m, entry.dataOffset);
      const t = performance.now();
      try {
        await decodeCheckpoint(file, "mutant.pt", { tokenizer });
        loaded++;
      } catch (e) {
        if (!(e instanceof InputError) || e.message.includes("\n")) {
          throw new Error(`data.pkl, ${how}: not a one-line InputError: ${(e as Error).stack}`);
        }
        const kind = e.message.replace(/[\d]+/g, "N").slice(0, 70);
        messages.set(kind, (messages.get(kind) ?? 0) + 1);
      }
      assert.ok(performance.now() - t < 5000, `data.pkl, ${how}: took ${performance.now() - t} ms`);
    }
    const refused = [...messages.values()].reduce((a, b) => a + b, 0);
    console.log(
      `${refused} pickle mutants refused (${messages.size} kinds of message), ${loaded} loaded, in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; most common: ${
        [...messages].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${n}x ${k}`).join(" | ")
      }`,
    );
    assert.ok(refused > 150);
  },
});

Deno.test("unpickle: refuses an unknown opcode, an unsupported one, and a truncated pickle, each in one line", () => {
  const what = "x.pkl";
  const cases: [Uint8Array, RegExp][] = [
    [
      Uint8Array.of(0x80, 2, 0xff, 0x2e),
      /pickle opcode 0xff at byte 2 is not supported \(not a pickle opcode/,
    ],
    [Uint8Array.of(0x80, 2, 0x81, 0x2e), /pickle opcode NEWOBJ at byte 2 is not supported/],
    [Uint8Array.of(0x80, 2, 0x58, 9, 0, 0, 0, 0x61), /pickle ends inside BINUNICODE at byte 2/],
    [Uint8Array.of(0x80, 2, 0x4e), /pickle ends without STOP/],
    [Uint8Array.of(0x80, 2, 0x52, 0x2e), /REDUCE at byte 2 finds the stack empty/],
    [Uint8Array.of(0x80, 9, 0x2e), /names protocol 9/],
    [
      Uint8Array.from("\x80\x02cos\nsystem\n.", (c) => c.charCodeAt(0)),
      /pickle refers to 'os\.system', which a checkpoint may not/,
    ],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => unpickle(bytes, { what }), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, re);
      assert.ok(e.message.startsWith("x.pkl: ") && !e.message.includes("\n"));
      return true;
    });
  }
});

/** A one-entry stored zip archive. */
function zipOf(name: string, data: Uint8Array): Uint8Array {
  const n = new TextEncoder().encode(name), crc = crc32(data);
  const out = new Uint8Array(30 + n.length + data.length + 46 + n.length + 22);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint32(14, crc, true);
  v.setUint32(18, data.length, true);
  v.setUint32(22, data.length, true);
  v.setUint16(26, n.length, true);
  out.set(n, 30);
  out.set(data, 30 + n.length);
  const cd = 30 + n.length + data.length;
  v.setUint32(cd, 0x02014b50, true);
  v.setUint32(cd + 16, crc, true);
  v.setUint32(cd + 20, data.length, true);
  v.setUint32(cd + 24, data.length, true);
  v.setUint16(cd + 28, n.length, true);
  out.set(n, cd + 46);
  const end = cd + 46 + n.length;
  v.setUint32(end, 0x06054b50, true);
  v.setUint16(end + 8, 1, true);
  v.setUint16(end + 10, 1, true);
  v.setUint32(end + 12, 46 + n.length, true);
  v.setUint32(end + 16, cd, true);
  return out;
}

Deno.test("a zip entry whose CRC-32 does not match is refused; crc32 is the zip polynomial", async () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  // The legacy (pre-1.6) torch.save format and a non-zip non-safetensors file are named as such.
  const legacy = Uint8Array.of(
    0x80,
    0x02,
    0x8a,
    0x0a,
    0x6c,
    0xfc,
    0x9c,
    0x46,
    0xf9,
    0x20,
    0x6a,
    0xa8,
    0x50,
    0x19,
    0x2e,
  );
  await refuses(() => decodeCheckpoint(legacy, "old.pt"), /^old\.pt: torch\.save's old \(pre-1\.6\) format/);
  // A stored entry whose bytes changed: the archive is otherwise intact.
  const zip = zipOf("a/data.pkl", Uint8Array.of(0x80, 0x02, 0x7d, 0x2e));
  zip[30 + "a/data.pkl".length + 2] ^= 1;
  await refuses(
    () => decodeCheckpoint(zip, "crc.pt"),
    /crc\.pt: entry 'a\/data\.pkl' fails its CRC-32 check/,
  );
});

Deno.test({
  name: `the CLI reads nanoGPT's files: eval --n-head --meta, sample from ckpt.pt${NEEDS}`,
  ignore: !torchHere,
  fn: async () => {
    const dir = await pytorchFixtures();
    const want = JSON.parse(await Deno.readTextFile(`${dir}/losses.json`)).float32;
    const run = runCli;
    const state = `${dir}/state.safetensors`, data = `${dir}/text.txt`;
    const e = await run([
      "eval",
      "--checkpoint",
      state,
      "--n-head",
      "4",
      "--meta",
      `${dir}/meta.pkl`,
      "--data",
      data,
    ]);
    assert.equal(e.code, 0, e.err.join("\n"));
    const loss = JSON.parse(e.out.at(-1)!).loss;
    assert.ok(Math.abs(loss - want) / want < 1e-5, `eval --n-head 4: ${loss} vs PyTorch ${want}`);
    const bad = await run(["eval", "--checkpoint", state, "--n-head", "0", "--data", data]);
    assert.equal(bad.code, 2);
    assert.deepEqual(bad.err, ["tforce eval: --n-head must be a positive integer (got 0)"]);
    const none = await run(["eval", "--checkpoint", state, "--data", data]);
    assert.equal(none.code, 2);
    assert.match(none.err[0], /metadata has no 'config'.*number of heads/);
    const s = await run(["sample", "--checkpoint", `${dir}/ckpt.pt`, "--max-tokens", "8"]);
    assert.equal(s.code, 0, s.err.join("\n"));
  },
});
