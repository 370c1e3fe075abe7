#!/usr/bin/env bash
# Merges the $OUT folders of several bench/h200.sh calls (a device command runs at most 600 s, so the
# benchmarks and the shakespeare_char recipe run as separate calls) into one folder and assembles
# h200.json from it with bench/collect.ts:
#
#   bash bench/h200_merge.sh MERGED DIR1 DIR2 ...
#
# Files are copied in argument order (a later folder's file of the same name wins, e.g. env.txt);
# status.txt lines are concatenated. Then, if MERGED/h200.json says "dry": false, copy it to
# bench/results/h200.json and update the README table from it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 2 ] || { echo "usage: bash bench/h200_merge.sh MERGED DIR1 [DIR2 ...]" >&2; exit 2; }
merged=$1
shift
mkdir -p "$merged"
: > "$merged/status.txt.new"
for d in "$@"; do
  [ -d "$d" ] || { echo "h200_merge: no folder $d" >&2; exit 2; }
  [ -f "$d/status.txt" ] && cat "$d/status.txt" >> "$merged/status.txt.new"
  cp -r "$d"/. "$merged"/
done
mv "$merged/status.txt.new" "$merged/status.txt"
rm -f "$merged/h200.json"
deno run --allow-read="$merged" --allow-write="$merged" bench/collect.ts "$merged"
