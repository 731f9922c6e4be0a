#!/usr/bin/env bash
# Index the sample images, search with one of them, print the top 5 and draw
# the grid. Assumes the build, the model and samples/ exist (scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DOPPEL_BIN:-build/doppel}
model=${DOPPEL_MODEL:-mobilenet-v2-mid}
mkdir -p out
echo "== doppel index samples -o out/samples.dpl --model $model"
"$D" index samples -o out/samples.dpl --model "$model" || [[ $? == 3 ]]
# A stored path as the query: doppel uses its stored vector and leaves the
# image itself out of the results. An image file works the same way.
query=animals-and-nature/monkey-face-google.png
[[ -f samples/$query ]] || query=$(cd samples && find . -type f -name '*.png' | sort | sed -n '1p' | sed 's|^\./||')
echo
echo "== doppel search out/samples.dpl $query -k 5 --grid out/demo-grid.png"
"$D" search out/samples.dpl "$query" -k 5 --grid out/demo-grid.png
echo
echo "grid of the query and its neighbours: out/demo-grid.png"
