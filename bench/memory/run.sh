#!/usr/bin/env bash
# Peak memory (max RSS from /usr/bin/time -v) of `doppel embed` on 1,000
# images, per model. Usage: bench/memory/run.sh [DIR] (default samples-eval)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-samples-eval}
command -v /usr/bin/time >/dev/null || sudo apt-get install -y -q time >/dev/null || apt-get install -y -q time >/dev/null
bash scripts/build.sh release >/dev/null
mapfile -t files < <(find "$dir" -type f -name '*.png' | sort | head -1000)
echo "| model | images | peak RSS MB | wall s |"
echo "|---|---|---|---|"
for m in mobilenet-v2-mid inception-v3; do
  /usr/bin/time -v build/doppel embed --model "$m" -q -o /tmp/dp_mem.npy "${files[@]}" 2>/tmp/dp_mem.txt
  rss=$(awk -F': ' '/Maximum resident/{print $2}' /tmp/dp_mem.txt)
  wall=$(awk -F': ' '/Elapsed/{print $2}' /tmp/dp_mem.txt)
  echo "| $m | ${#files[@]} | $((rss / 1024)) | $wall |"
done
rm -f /tmp/dp_mem.npy /tmp/dp_mem.txt
