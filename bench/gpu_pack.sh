#!/usr/bin/env bash
# Prepares .gpu/ for the device run of bench/h200.sh; run it from anywhere in the project, then `run` with
# carry [".gpu"] only:
#
#   bash bench/gpu_pack.sh          (SHARED: the shared folder, default ../shared beside the project)
#   bash bench/gpu_rehearse.sh      (both parts, dry and offline, on a copy of what the device receives)
#
# 1. $SHARED/gpu/pack.sh: Deno, the Vulkan/GL loaders, the PyTorch scripts and a Deno cache.
# 2. $SHARED/data/tinyshakespeare.txt for the recipe part.
# 3. .gpu/node_modules: the npm package the engine runs on (wgsl_reflect, the one in deno.json's imports
#    and deno.lock), copied flat, in npm's layout and without symbolic links. h200.sh copies it to
#    node_modules when the device has none and runs deno with --node-modules-dir=manual, which resolves
#    packages from it and installs nothing. Carrying the whole node_modules instead does not work: it is
#    28 MiB (playwright-core and esbuild serve the tests and the web build, from deno.dev.lock) beside .gpu's
#    36, against 64 MiB for everything carried, its layout is symbolic links, and Deno's default mode
#    fetches every package of deno.lock, which a device without network cannot (checked offline here, under
#    `unshare -n`).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${SHARED:-$root/../shared}
runtime_packages=(wgsl_reflect)

[ -x "$shared/gpu/pack.sh" ] || [ -f "$shared/gpu/pack.sh" ] || {
  echo "gpu_pack: no $shared/gpu/pack.sh (set SHARED to the shared folder)" >&2
  exit 2
}
# pack.sh caches every .ts file, the browser test and the web build among them, which writes their npm
# packages into deno.lock; they belong in deno.dev.lock (`deno task` installs all that deno.lock names).
lock=$(mktemp)
cp deno.lock "$lock"
trap 'cp "$lock" deno.lock; rm -f "$lock"' EXIT
bash "$shared/gpu/pack.sh"

if [ -f "$shared/data/tinyshakespeare.txt" ]; then
  cp "$shared/data/tinyshakespeare.txt" .gpu/
else
  echo "gpu_pack: no $shared/data/tinyshakespeare.txt: the recipe part will be skipped" >&2
fi

[ -d node_modules ] || deno install >/dev/null
rm -rf .gpu/node_modules
for p in "${runtime_packages[@]}"; do
  [ -e "node_modules/$p/package.json" ] || {
    echo "gpu_pack: node_modules/$p is missing (run deno install)" >&2
    exit 2
  }
  mkdir -p ".gpu/node_modules/$(dirname "$p")"
  cp -rL "node_modules/$p" ".gpu/node_modules/$p"
done

links=$(find .gpu -type l | wc -l)
[ "$links" = 0 ] || echo "gpu_pack: warning: .gpu holds $links symbolic links, which a carry may drop" >&2
tree=$(du -sb --exclude=.git --exclude=node_modules --exclude=.gpu . | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
mib=$(awk -v a="$tree" -v b="$gpu" 'BEGIN { printf "%.1f", (a + b) / 1048576 }')
echo "gpu_pack: .gpu and the working tree come to $mib MiB of the 64 MiB a run carries; carry [\".gpu\"]"
