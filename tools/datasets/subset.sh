#!/usr/bin/env bash
# Copy the images listed in LIST (paths relative to ROOT, one a line, e.g. from
# `doppel eval --sample 600 --seed 1 --sample-list LIST`) into OUT with the
# matching manifest rows, so that a slow model can index just the sample:
# evaluating OUT's index without --sample scores exactly the same queries
# against the same database as --sample on the full index.
#
#   tools/datasets/subset.sh ROOT LIST OUT
set -euo pipefail
(($# == 3)) || { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
ROOT=$1 LIST=$2 OUT=$3
[[ -f $ROOT/manifest.tsv ]] || { echo "subset.sh: $ROOT has no manifest.tsv" >&2; exit 1; }
if [[ -e $OUT ]]; then
  [[ -f $OUT/.doppel-dataset ]] || { echo "subset.sh: $OUT exists and was not made by tools/datasets" >&2; exit 1; }
  rm -rf "$OUT"
fi
mkdir -p "$OUT"
while IFS= read -r p; do
  [[ -n $p ]] || continue
  [[ -f $ROOT/$p ]] || { echo "subset.sh: $ROOT/$p: no such image" >&2; exit 1; }
  mkdir -p "$OUT/$(dirname "$p")"
  cp "$ROOT/$p" "$OUT/$p"
done <"$LIST"
# Exact match on the path column (awk, not grep: no substring matches).
awk -F'\t' 'NR == FNR { want[$0] = 1; next } FNR == 1 && $1 == "path" { print; next } ($1 in want)' \
  "$LIST" "$ROOT/manifest.tsv" >"$OUT/manifest.tsv"
echo "subset of $(basename "$ROOT")" >"$OUT/.doppel-dataset"
echo "subset.sh: $OUT: $(($(wc -l <"$OUT/manifest.tsv") - 1)) images"
