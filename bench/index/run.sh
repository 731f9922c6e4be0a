#!/usr/bin/env bash
# Indexing throughput end to end vs pure inference on the same images
# (issue: end to end >= 90 % of inference). Usage: bench/index/run.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-samples}
bash scripts/build.sh release >/dev/null
echo "| model | images | threads | batch | inference img/s | pipeline img/s | end-to-end img/s | end-to-end / inference |"
echo "|---|---|---|---|---|---|---|---|"
for m in mobilenet-v2-mid inception-v3; do
  build/tests/bench_index "$dir" --model "$m" --threads 2 --batch 16
done
