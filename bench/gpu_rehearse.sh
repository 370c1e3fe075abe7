#!/usr/bin/env bash
# Rehearses the device run here, as the device will see it, before spending device time on it:
#
#   bash bench/gpu_rehearse.sh        (after bash bench/gpu_pack.sh)
#
# Copies what a `run` with carry [".gpu"] sends (the tracked and untracked-but-not-ignored files, plus .gpu)
# into a temporary folder, then, without network (`unshare -n`, root only), sources .gpu/setup.sh and runs
# both parts of bench/h200.sh as dry runs (CI sizes on this machine's adapter). Fails unless every part that
# can run here exits 0 (the PyTorch parts skip without CUDA) and merging them leaves bench/results and the
# README alone (dry figures are not GPU figures). Prints the carried size against the 64 MiB limit.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
[ -f .gpu/setup.sh ] && [ -d .gpu/node_modules ] || {
  echo "gpu_rehearse: run bash bench/gpu_pack.sh first" >&2
  exit 2
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -co --exclude-standard -z | tar cf - --null -T - | tar xf - -C "$work"
cp -r .gpu "$work/"
mib=$(du -sb "$work" | awk '{ printf "%.1f", $1 / 1048576 }')
echo "gpu_rehearse: carried tree and .gpu: $mib MiB of 64"

cd "$work"
out1="$work/out_bench" out2="$work/out_recipe"
# A clean environment like the device's: only the system paths, setup.sh's Deno, no network.
unshare -n env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME="$work" bash -c '
  source .gpu/setup.sh >/dev/null 2>&1
  OUT="$1" H200_DRY=1 H200_BUDGET=300 bash bench/h200.sh >/dev/null
  OUT="$2" H200_DRY=1 H200_PARTS=recipe H200_BUDGET=200 bash bench/h200.sh >/dev/null
' rehearse "$out1" "$out2" 2>&1 | grep '^#' || true

failed=$(cat "$out1/status.txt" "$out2/status.txt" | awk '$2 != 0 && $2 != 127 { print $1 " rc " $2 }')
ran=$(cat "$out1/status.txt" "$out2/status.txt" | awk '$2 == 0' | wc -l)
cd "$root"
sums() { cat README.md bench/results/h200.json 2>/dev/null | sha256sum || true; }
before=$(sums)
bash bench/h200_merge.sh "$work/merged" "$out1" "$out2" >/dev/null 2>&1 || true
if [ "$(sums)" != "$before" ]; then
  echo "gpu_rehearse: the merge wrote dry figures into the README or bench/results (restore them)" >&2
  exit 1
fi
# adapter, bench_matmul, bench_step, profile, profile_f16, bench_attention, bench_rest, recipe
if [ -n "$failed" ] || [ "$ran" -lt 8 ]; then
  echo "gpu_rehearse: failed parts: ${failed:-none}; $ran parts ran" >&2
  exit 1
fi
echo "gpu_rehearse: $ran parts ran offline and exited 0; the merge refused the dry figures"
