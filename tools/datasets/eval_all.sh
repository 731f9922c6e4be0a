#!/usr/bin/env bash
# Reproduce docs/evaluation.md's table: build both datasets, index each with
# every model, run doppel eval on the full set and on the 600-image
# class-proportional sample (seed 1), and print a markdown table.
#
#   tools/datasets/eval_all.sh [--models "mobilenet-v2-mid inception-v3 hist phash thumb8"]
#                              [--doppel PATH] [--out DIR] [--eval-only] [--sweep]
#
# Indexes go to DIR (default out/eval) as <dataset>-<model>.dpl; the JSON of
# each eval to DIR/<dataset>-<model>[-s600].json. Indexing is incremental, so
# a rerun only evaluates. "inception-v3-mixed8" means inception-v3 with
# --embedding-node mixed8 (the calibration run's layer). --sweep also runs
# the PCA sweep of docs/evaluation.md on openclipart with mobilenet-v2-mid
# (table to DIR/openclipart-mnv2-pca-sweep.txt, plot beside it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODELS="mobilenet-v2-mid inception-v3 hist phash thumb8"
DP=$ROOT/build-eval/doppel
O=$ROOT/out/eval
EVAL_ONLY=0
SWEEP=0
while (($#)); do
  case "$1" in
    --models) MODELS=$2; shift 2 ;;
    --doppel) DP=$2; shift 2 ;;
    --out) O=$2; shift 2 ;;
    --eval-only) EVAL_ONLY=1; shift ;;
    --sweep) SWEEP=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "eval_all: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$O"
D=$ROOT/out/datasets
for s in emoji-vendors openclipart; do
  [[ -f $D/$s/manifest.tsv ]] || "$ROOT/tools/datasets/build.sh" "$s"
done
echo "| dataset | model | set | queries | precision@4 | top-1 | mAP@100 | instance R@1 | instance R@5 |"
echo "|---|---|---|---|---|---|---|---|---|"
for s in emoji-vendors openclipart; do
  for m in $MODELS; do
    idx=$O/$s-$m.dpl
    if ((!EVAL_ONLY)); then
      extra=()
      model=$m
      if [[ $m == inception-v3-mixed8 ]]; then model=inception-v3; extra=(--embedding-node mixed8); fi
      "$DP" index "$D/$s" -o "$idx" --model "$model" "${extra[@]}" -q || [[ $? == 3 ]]
    fi
    [[ -f $idx ]] || continue
    for set in full s600; do
      args=()
      [[ $set == s600 ]] && args=(--sample 600 --seed 1)
      j=$O/$s-$m${set/full/}.json
      j=${j/s600.json/-s600.json}
      "$DP" eval "$idx" --labels "$D/$s/manifest.tsv" "${args[@]}" --json >"$j"
      /usr/bin/python3 - "$j" "$s" "$m" "$set" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
r1 = "%.3f" % j["instance_recall1"] if "instance_recall1" in j else "–"
r5 = "%.3f" % j["instance_recall5"] if "instance_recall5" in j else "–"
print("| %s | %s | %s | %d | %.3f | %.3f | %.3f | %s | %s |" % (
    sys.argv[2], sys.argv[3], "full" if sys.argv[4] == "full" else "600 sample (seed 1)",
    j["queries"], j["precision_at_k"], j["top1"], j["map100"], r1, r5))
PY
    done
  done
done
if ((SWEEP)) && [[ -f $O/openclipart-mobilenet-v2-mid.dpl ]]; then
  "$DP" eval "$O/openclipart-mobilenet-v2-mid.dpl" --labels "$D/openclipart/manifest.tsv" \
    --pca-sweep 1,2,3,4,5,10,20,50,75,100,150,200 --threads 1 --repeats 5 \
    --plot "$O/openclipart-mnv2-pca-sweep.png" >"$O/openclipart-mnv2-pca-sweep.txt"
  cat "$O/openclipart-mnv2-pca-sweep.txt"
fi
