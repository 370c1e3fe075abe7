#!/usr/bin/env python3
"""Loads a tforce model.safetensors into a PyTorch module laid out as nanoGPT's model.py (the same
state_dict names: transformer.wte/wpe/h.N.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}/ln_f,
lm_head tied to wte) with load_state_dict(strict=True), then compares its loss and last-position logits on
the batch written by bench/nanogpt_batch.ts. Prints one JSON line; exits 1 when they disagree.

  python3 bench/nanogpt_check.py CHECKPOINT BATCH.json
  python3 bench/nanogpt_check.py --train INIT.safetensors TRAIN.json

With --train, repeats the engine's first training steps (bench/nanogpt_train.ts) from the same initial
weights on the same batch: cross-entropy, backward, clip_grad_norm_(1.0), torch.optim.AdamW with
nanoGPT's parameter groups (weight decay on >= 2-D tensors only), and compares the losses step by step.

Needs only torch (the safetensors file is parsed here: 8-byte header length, JSON header, raw F32 data).
"""
import json, math, struct, sys
import torch, torch.nn as nn, torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        data = bytearray(raw[base + a:base + b])
        tensors[name] = torch.frombuffer(data, dtype=torch.float32).reshape(t["shape"]).clone()
    return tensors, meta


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias, as nanoGPT's."""
    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]
        t = c["block_size"]
        # Not part of the state_dict (nanoGPT with flash attention has no such buffer either).
        self.register_buffer("mask", torch.tril(torch.ones(t, t, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = [z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.n_head)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(c["n_embd"], c["bias"]), CausalSelfAttention(c)
        self.ln_2, self.mlp = LayerNorm(c["n_embd"], c["bias"]), MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
            wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            drop=nn.Dropout(0.0),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
            ln_f=LayerNorm(c["n_embd"], c["bias"]),
        ))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT

    def forward(self, idx):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe(torch.arange(idx.shape[1])))
        for b in t.h:
            x = b(x)
        return self.lm_head(t.ln_f(x))


def train(init_path, run_path):
    tensors, meta = read_safetensors(init_path)
    run = json.load(open(run_path))
    model = GPT(json.loads(meta["config"]))
    model.load_state_dict(tensors, strict=True)
    model.train()
    h = run["hyper"]
    params = [p for p in model.parameters() if p.requires_grad]  # the tied weight once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": h["weightDecay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    tokens, targets = torch.tensor(run["tokens"]), torch.tensor(run["targets"])
    losses = []
    for _ in run["losses"]:
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), h["gradClip"])
        opt.step()
    rel = [abs(a - b) / abs(a) for a, b in zip(losses, run["losses"])]
    tol = 1e-5 if run["dtype"] == "float32" else 2e-4  # measured 2.2e-7 and 1.5e-5 over 10 steps
    ok = max(rel) < tol
    print(json.dumps({"torch": "nanogpt_train", "dtype": run["dtype"], "steps": len(losses),
                      "losses_torch": losses, "losses_ours": run["losses"], "max_rel_diff": max(rel),
                      "tolerance": tol, "ok": ok}), flush=True)
    sys.exit(0 if ok else 1)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--train":
        return train(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 3:
        raise SystemExit("usage: python3 bench/nanogpt_check.py CHECKPOINT BATCH.json | --train INIT TRAIN.json")
    tensors, meta = read_safetensors(sys.argv[1])
    batch = json.load(open(sys.argv[2]))
    cfg = json.loads(meta["config"])
    model = GPT(cfg)
    result = model.load_state_dict(tensors, strict=True)  # raises on a missing or unexpected key
    model.eval()
    tokens, targets = torch.tensor(batch["tokens"]), torch.tensor(batch["targets"])
    with torch.no_grad():
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1)).item()
    ours = torch.tensor(batch["logits"])
    diff = (logits[0, -1] - ours).abs().max().item()
    rel = abs(loss - batch["loss"]) / abs(loss)
    ok = rel < 1e-5 and diff < 1e-4
    print(json.dumps({"torch": "nanogpt_load", "strict": str(result), "loss_torch": loss,
                      "loss_ours": batch["loss"], "loss_rel_diff": rel, "logits_max_abs_diff": diff,
                      "ok": ok}), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
