#!/usr/bin/env python3
"""PyTorch on the CPU as a peer of the comparison (bench/peers/protocol.ts says the protocol): one JSON
request a line on stdin, one reply a line on stdout prefixed with "@peer ".

  python3 bench/peers/torch_peer.py DATA_DIR SYSTEM_NAME [BLAS_LIB_DIR]

The model is bench/nanogpt_check.py's (nanoGPT's model.py layout, load_state_dict strict, tied head); the
step is its --train step: cross-entropy, backward, clip_grad_norm_, torch.optim.AdamW with nanoGPT's
parameter groups. Which BLAS runs is whatever libblas.so.3 the loader finds: with BLAS_LIB_DIR the script
re-executes itself with that directory first on LD_LIBRARY_PATH (OpenBLAS instead of Debian's netlib
reference build); the reply to "info" names the library it mapped. PyTorch's own threads are set to every
CPU this process may use (its default here is 1). OpenBLAS keeps a thread pool of its own besides; each
workload gets the setting that ran it fastest here (bench/results/peers.md): every CPU for one large
product, 1 in the training step, where PyTorch's threads already cover the cores and two pools of 2 threads
oversubscribe them.
"""
import ctypes, importlib.util, json, os, sys, time

if len(sys.argv) == 4 and os.environ.get("LD_LIBRARY_PATH", "").split(":")[0] != sys.argv[3]:
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(filter(None, [sys.argv[3], os.environ.get("LD_LIBRARY_PATH")])))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import torch, torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def load_nanogpt_check():
    """bench/nanogpt_check.py as a module: its GPT and read_safetensors."""
    path = os.path.join(HERE, "..", "nanogpt_check.py")
    spec = importlib.util.spec_from_file_location("nanogpt_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


NG = load_nanogpt_check()


def blas_library():
    """The BLAS this process mapped (from /proc/self/maps): OpenBLAS's library when present, else libblas."""
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})
    return next((x for x in libs if "libopenblas" in x), libs[0] if libs else "none mapped")


def set_blas_threads(n):
    """OpenBLAS's own thread count (nothing to set for a single-threaded BLAS)."""
    lib = blas_library()
    if "libopenblas" in lib:
        ctypes.CDLL(lib).openblas_set_num_threads(n)


def blas_threads_note():
    return " (its threads: all for a product, 1 in the training step)" if "libopenblas" in blas_library() else ""


def probe_indices(n):
    rows = [0, 1, n >> 2, n >> 1, n - 2, n - 1]
    return [r * n + ((r * 7 + i * 13) % n) for i, r in enumerate(rows)]


class Peer:
    def __init__(self, data_dir, system):
        self.dir, self.system = data_dir, system
        self.model = self.opt = self.tokens = self.targets = None
        self.clip = 1.0

    def info(self):
        torch.ones(4, 4) @ torch.ones(4, 4)  # maps the BLAS library
        return {"system": self.system, "version": torch.__version__,
                "device": f"cpu, {torch.get_num_threads()} threads, BLAS {blas_library()}{blas_threads_note()}"}

    def matmul(self, n, reps):
        with open(os.path.join(self.dir, f"matmul_{n}.f32"), "rb") as f:
            raw = bytearray(f.read())
        ab = torch.frombuffer(raw, dtype=torch.float32)
        a, b = ab[:n * n].reshape(n, n).clone(), ab[n * n:].reshape(n, n).clone()
        set_blas_threads(len(os.sched_getaffinity(0)))
        c = a @ b  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            c = a @ b
        ms = (time.perf_counter() - t0) * 1000 / reps
        flat = c.reshape(-1)
        return {"ms": ms, "probe": [flat[i].item() for i in probe_indices(n)]}

    def train_init(self):
        setup = json.load(open(os.path.join(self.dir, "setup.json")))
        tensors, _ = NG.read_safetensors(os.path.join(self.dir, "init.safetensors"))
        batch = json.load(open(os.path.join(self.dir, "batch.json")))
        self.model = NG.GPT(setup["config"])
        self.model.load_state_dict(tensors, strict=True)
        self.model.train()
        h = setup["hyper"]
        params = [p for p in self.model.parameters() if p.requires_grad]  # the tied weight once
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": h["weightDecay"]},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
        self.clip = h["gradClip"]
        self.tokens, self.targets = torch.tensor(batch["tokens"]), torch.tensor(batch["targets"])
        return {"params": sum(p.numel() for p in params)}

    def train(self, steps):
        if self.model is None:
            raise RuntimeError("train before train_init")
        losses = []
        set_blas_threads(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            logits = self.model(self.tokens)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), self.targets.view(-1))
            losses.append(loss.detach())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
        ms = (time.perf_counter() - t0) * 1000 / steps
        return {"ms": ms, "losses": [x.item() for x in losses]}


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python3 bench/peers/torch_peer.py DATA_DIR SYSTEM_NAME [BLAS_LIB_DIR]")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    peer = Peer(sys.argv[1], sys.argv[2])
    ops = {"info": lambda r: peer.info(), "matmul": lambda r: peer.matmul(r["n"], r["reps"]),
           "train_init": lambda r: peer.train_init(), "train": lambda r: peer.train(r["steps"])}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            reply = ops[req["op"]](req) if req["op"] in ops else {"error": f"unknown op {req['op']!r}"}
        except Exception as e:  # the orchestrator reports it and stops this peer
            reply = {"error": f"{type(e).__name__}: {e}"}
        print("@peer " + json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
