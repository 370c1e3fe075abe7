#!/usr/bin/env bash
# The one GPU run of issue 5, side by side with PyTorch, in about 3-5 minutes (hard cap H200_BUDGET s):
#
#   source .gpu/setup.sh && bash bench/h200.sh
#
# on the device, after `bash bench/gpu_pack.sh` here and with carry [".gpu"] (that script says why).
# Writes every raw log and $OUT/h200.json (bench/collect.ts) under $OUT (default /tmp/h200). Parts, most
# important first: PyTorch references (.gpu/torch_mm.py fp32 4096/8192, .gpu/torch_gpt.py, cuBLAS at the
# model's matmul shapes and SDPA at T 1024), then `deno task bench --large` for matmul, the training step,
# `--profile`, attention, and the other kernels if time is left. A part that fails or runs out of time
# leaves its fields null; status.txt lists each part's exit status (124: timed out, 127: skipped).
#
# H200_DRY=1: CI sizes (no --large) for a check on lavapipe; the PyTorch parts run only where torch sees
# CUDA. H200_BUDGET: seconds for the whole run (default 420). H200_PARTS: "bench" (default: everything
# above), "recipe" (nanoGPT's shakespeare_char recipe, `deno task train --preset shakespeare-char` on
# $H200_TORCH_DIR/tinyshakespeare.txt, log in $OUT/recipe; H200_RECIPE_DTYPE float16 (default:
# nanoGPT runs the recipe in mixed precision too, bf16 autocast) or float32; about
# 5 minutes), or "bench recipe". A device command runs at most 600 s, so run the two as separate calls
# and merge their $OUT folders with bench/h200_merge.sh (collect.ts reads recipe/log.jsonl when present).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-/tmp/h200}
mkdir -p "$out"
dry=${H200_DRY:-0}
parts=" ${H200_PARTS:-bench} "
budget=${H200_BUDGET:-420}
torch_dir=${H200_TORCH_DIR:-.gpu}
large=--large
[ "$dry" = 1 ] && large=
: > "$out/status.txt"
rm -f "$out/dry.txt" # a stale marker from an earlier dry run into the same folder
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

# The device has no network: deno runs on the flat node_modules that bench/gpu_pack.sh packed into .gpu,
# resolving packages from it and never installing (--node-modules-dir=manual). The commands are deno.json's
# `bench` and `train` tasks with that flag.
[ -d node_modules ] || { [ -d .gpu/node_modules ] && cp -r .gpu/node_modules node_modules; }
# (Arrays, not functions: `timeout` runs a program.)
bench=(deno run --node-modules-dir=manual --allow-read=. --allow-env bench/run.ts)
train=(deno run --node-modules-dir=manual --allow-read --allow-write cli.ts train)

# part NAME WANT_SECONDS CMD...: runs CMD with stdout to NAME.jsonl and stderr to NAME.log, under a timeout
# of WANT_SECONDS or what is left of the budget (leaving 20 s for collect), whichever is less.
part() {
  local name=$1 want=$2
  shift 2
  local left=$((budget - SECONDS - 20))
  local t=$((want < left ? want : left))
  if [ "$t" -lt 5 ]; then
    echo "$name 127" >> "$out/status.txt"
    echo "# $name: skipped, budget spent (${SECONDS}s of ${budget}s)" | tee "$out/$name.log" >&2
    return
  fi
  local t0=$SECONDS
  timeout -k 10 "$t" "$@" > "$out/$name.jsonl" 2> "$out/$name.log"
  local rc=$?
  echo "$name $rc" >> "$out/status.txt"
  echo "# $name: rc $rc, $((SECONDS - t0)) s (limit $t s)" >&2
}

skip() {
  echo "$1 127" >> "$out/status.txt"
  echo "# $1: skipped: $2" | tee "$out/$1.log" >&2
}

{
  date -u +%FT%TZ
  deno --version
  command -v nvidia-smi >/dev/null && nvidia-smi
  command -v python3 >/dev/null && python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
  git rev-parse HEAD 2>/dev/null
  git status --short 2>/dev/null
} > "$out/env.txt" 2>&1
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt" 2>/dev/null
fi

have_torch=0
if command -v python3 >/dev/null &&
  python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  have_torch=1
fi

# 0. The adapter's features and limits (bench/adapter.ts): what WebGPU offers on this GPU.
part adapter 30 deno run --node-modules-dir=manual bench/adapter.ts

# 1. PyTorch references.
if [[ "$parts" != *" bench "* ]]; then
  : # benchmarks not asked for
elif [ "$have_torch" = 1 ] && [ -f "$torch_dir/torch_mm.py" ]; then
  part torch_mm 60 python3 "$torch_dir/torch_mm.py" 4096,8192 fp32
else
  skip torch_mm "no python3 with CUDA torch, or no $torch_dir/torch_mm.py"
fi
if [[ "$parts" != *" bench "* ]]; then
  :
elif [ "$have_torch" = 1 ] && [ -f "$torch_dir/torch_gpt.py" ]; then
  part torch_gpt 120 python3 "$torch_dir/torch_gpt.py" --modes fp32-manual,fp32-flash,tf32-flash,bf16-flash \
    --n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --vocab-size 65
else
  skip torch_gpt "no python3 with CUDA torch, or no $torch_dir/torch_gpt.py"
fi
if [[ "$parts" != *" bench "* ]]; then
  :
elif [ "$have_torch" = 1 ]; then
  # cuBLAS (TF32 off) at the matmul forms and shapes of bench/matmul.ts --large, and SDPA fp32 at T 1024.
  part torch_shapes 60 python3 - <<'PY'
import json, torch, torch.nn.functional as F
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
def timed(f, n=20):
    for _ in range(3): f()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): f()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / n
r = lambda *s: torch.randn(*s, device="cuda")
def case(form, M, K, N):
    if form == "forward":
        x, w = r(M, K), r(N, K); f = lambda: x @ w.t()
    elif form == "backward_input":
        d, w = r(M, N), r(N, K); f = lambda: d @ w
    else:
        d, x, g = r(M, N), r(M, K), torch.zeros(N, K, device="cuda"); f = lambda: g.addmm_(d.t(), x)
    ms = timed(f)
    print(json.dumps({"torch": "fp32_shape", "form": form, "M": M, "K": K, "N": N, "ms": round(ms, 4),
                      "tflops": round(2 * M * K * N / ms / 1e9, 2)}), flush=True)
for c in [("forward", 4096, 4097, 4096), ("forward", 4096, 4096, 4097),
          ("forward", 16384, 384, 1152), ("forward", 16384, 1536, 384), ("forward", 16384, 384, 65),
          ("backward_input", 16384, 384, 1536), ("backward_input", 16384, 384, 1152),
          ("backward_weight", 16384, 384, 1536), ("backward_weight", 16384, 384, 1152),
          ("backward_weight", 16384, 1536, 384), ("backward_weight", 16384, 384, 384),
          ("backward_weight", 16384, 384, 65)]:
    case(*c)
for B, T, NH, HS in [(8, 1024, 12, 64), (64, 256, 6, 64)]:
    q, k, v = (r(B, NH, T, HS).requires_grad_() for _ in range(3)); do = r(B, NH, T, HS)
    fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    both = lambda: torch.autograd.grad(fwd(), (q, k, v), do)
    for name, f in (("forward", fwd), ("forward_backward", both)):
        print(json.dumps({"torch": "sdpa_fp32", "pass": name, "B": B, "T": T, "NH": NH, "HS": HS,
                          "ms": round(timed(f), 4)}), flush=True)
PY
else
  skip torch_shapes "no python3 with CUDA torch"
fi

# 2. The engine: matmul, the training step (float32 and float16), its profiles, attention, then the rest.
if [[ "$parts" == *" bench "* ]]; then
  part bench_matmul 150 "${bench[@]}" $large matmul
  part bench_step 110 "${bench[@]}" $large step
  part profile 90 "${bench[@]}" $large --profile
  part profile_f16 60 "${bench[@]}" $large --profile --dtype float16
  part bench_attention 60 "${bench[@]}" $large attention
  # Every other module registered in bench/modules.ts (one "  name," line each).
  rest=$(sed -n 's/^  \([a-z0-9_]*\),$/\1/p' bench/modules.ts | grep -vxE 'matmul|attention|step' | tr '\n' ' ')
  # shellcheck disable=SC2086
  part bench_rest 100 "${bench[@]}" $large $rest
fi

# 3. nanoGPT's shakespeare_char recipe, timed (val loss and seconds come from recipe/log.jsonl).
if [[ "$parts" == *" recipe "* ]]; then
  data="$torch_dir/tinyshakespeare.txt"
  if [ -f "$data" ]; then
    steps=()
    [ "$dry" = 1 ] && steps=(--steps 4 --eval-interval 2 --eval-iters 1 --batch-size 2 --n-layer 1 --sample-chars 0)
    # Checkpoints (~200 MB) stay outside $OUT; only the log and the plot come back.
    run_dir=${TMPDIR:-/tmp}/tforce-recipe
    rm -rf "$run_dir"
    part recipe 560 "${train[@]}" --preset shakespeare-char --data "$data" --out "$run_dir" \
      --dtype "${H200_RECIPE_DTYPE:-float16}" "${steps[@]}"
    mkdir -p "$out/recipe"
    cp "$run_dir/log.jsonl" "$run_dir/loss.svg" "$out/recipe/" 2>/dev/null || true
  else
    skip recipe "no $data (copy ../shared/data/tinyshakespeare.txt there before packing)"
  fi
fi

# 4. The figures.
dryflag=
# The marker travels with the folder (bench/h200_merge.sh copies it), so merged dry runs stay dry.
[ "$dry" = 1 ] && dryflag=--dry && echo "dry run at CI sizes: not GPU figures" > "$out/dry.txt"
deno run --node-modules-dir=manual --allow-read="$out" --allow-write="$out" bench/collect.ts "$out" $dryflag
echo "# h200.sh: ${SECONDS}s; logs and h200.json in $out" >&2
