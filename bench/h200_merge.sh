#!/usr/bin/env bash
# Merges the $OUT folders of several bench/h200.sh calls (a device command runs at most 600 s, so the
# benchmarks and the shakespeare_char recipe run as separate calls) into one folder and assembles
# h200.json from it with bench/collect.ts:
#
#   bash bench/h200_merge.sh MERGED DIR1 DIR2 ...
#
# Files are copied in argument order (a later folder's file of the same name wins, e.g. env.txt);
# status.txt lines are concatenated. Then, unless MERGED/h200.json is a dry run (CI sizes), it is copied to
# bench/results/h200.json and the README's table of the targets is written from it (bench/h200_table.ts).
# Review and commit both.
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
if deno run --allow-read="$merged" bench/h200_table.ts "$merged/h200.json" > /dev/null; then
  mkdir -p bench/results
  cp "$merged/h200.json" bench/results/h200.json
  deno run --allow-read=. --allow-write=. bench/h200_table.ts bench/results/h200.json --readme
  echo "# h200_merge: bench/results/h200.json and the README table written; review and commit them" >&2
else
  echo "# h200_merge: bench/results and the README left alone (see above)" >&2
fi
