#!/usr/bin/env bash
# Reproduce docs/evaluation.md's "Second look" at the calibration gap: every
# knob of the TF.js calibration run changed one at a time on the openclipart
# and emoji 600-image samples, and the scoring variants. Needs the full
# indexes of tools/datasets/eval_all.sh (mobilenet-v2-mid, inception-v3,
# hist, thumb8) and the s600 subsets of docs/evaluation.md (footnote 1).
#
#   tools/datasets/calib/run.sh [--doppel PATH]
#
# CPU: five inception-v3 runs over 600 images (about 5 minutes each on 2
# cores); results are printed and kept in out/eval/calib/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$ROOT/tools/datasets/calib
DP=$ROOT/build/doppel
[[ ${1:-} == --doppel ]] && DP=$2
PY=/usr/bin/python3
O=$ROOT/out/eval
C=$O/calib
D=$ROOT/out/datasets
mkdir -p "$C/exp"
cd "$ROOT"

# Model sidecars for the preprocessing/pooling variants: same ONNX file.
for v in max pm1; do
  mkdir -p "$C/models-$v"
  ln -sf "$ROOT/models/inception-v3.onnx" "$C/models-$v/inception-v3.onnx"
  $PY - "$ROOT/models/inception-v3.json" "$C/models-$v/inception-v3.json" "$v" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
alt = [a for a in j["embedding"]["alternatives"] if a["node"] == "mixed8"][0]
e = dict(j["embedding"]); e.update(node="mixed8", dim=alt["dim"], shape=alt["shape"], source_node="mixed8")
if sys.argv[3] == "max": e["pool"] = "max"
else: j["input"]["scale"] = 2 / 255; j["input"]["mean"] = [1.0, 1.0, 1.0]
j["embedding"] = e
json.dump(j, open(sys.argv[2], "w"), indent=2)
PY
done
awk -F'\t' 'BEGIN{OFS="\t"} NR==1{print;next} {split($2,a,"."); $2=a[1]; print}' \
  "$D/openclipart/manifest.tsv" >"$C/openclipart-coarse.tsv"

# TF.js-style resized copies of the samples.
for s in openclipart emoji-vendors; do
  [[ -f $D/$s-s600-tfresize/manifest.tsv ]] || $PY "$HERE/tf_resize_subset.py" "$D/$s-s600" "$D/$s-s600-tfresize"
done
idx() { "$DP" index "$1" -o "$2" --model inception-v3 "${@:3}" -q || [[ $? == 3 ]]; }
idx "$D/openclipart-s600" "$O/openclipart-s600-inception-v3-mixed8.dpl" --embedding-node mixed8
idx "$D/openclipart-s600" "$O/openclipart-s600-inception-v3-mixed8-max.dpl" --models-dir "$C/models-max"
idx "$D/openclipart-s600" "$O/openclipart-s600-inception-v3-mixed8-pm1.dpl" --models-dir "$C/models-pm1"
idx "$D/openclipart-s600-tfresize" "$O/openclipart-s600-tfresize-inception-v3-mixed8.dpl" --embedding-node mixed8
idx "$D/emoji-vendors-s600-tfresize" "$O/emoji-vendors-s600-tfresize-inception-v3-mixed8.dpl" --embedding-node mixed8
idx "$D/emoji-vendors-s600" "$O/emoji-vendors-s600-inception-v3-mixed8.dpl" --embedding-node mixed8

top1() { "$DP" eval "$1" --labels "$2" --json | $PY -c "import json,sys; j=json.load(sys.stdin); print('%.3f' % j['top1'] + (' inst-R@1 %.3f' % j['instance_recall1'] if 'instance_recall1' in j else ''))"; }
echo "variant: top-1 (75 classes) / top-1 (18 top-level folders)"
for v in mixed8 mixed8-max mixed8-pm1; do
  i=$O/openclipart-s600-inception-v3-$v.dpl
  echo "  $v: $(top1 "$i" "$D/openclipart-s600/manifest.tsv") / $(top1 "$i" "$C/openclipart-coarse.tsv")"
done
i=$O/openclipart-s600-tfresize-inception-v3-mixed8.dpl
echo "  mixed8 tf-resize: $(top1 "$i" "$D/openclipart-s600/manifest.tsv") / $(top1 "$i" "$C/openclipart-coarse.tsv")"
echo "  emoji mixed8: $(top1 "$O/emoji-vendors-s600-inception-v3-mixed8.dpl" "$D/emoji-vendors-s600/manifest.tsv")"
echo "  emoji mixed8 tf-resize: $(top1 "$O/emoji-vendors-s600-tfresize-inception-v3-mixed8.dpl" "$D/emoji-vendors-s600/manifest.tsv")"
for m in inception-v3 hist thumb8; do
  echo -n "  openclipart $m, seeds 1-8:"
  for s in 1 2 3 4 5 6 7 8; do
    echo -n " $("$DP" eval "$O/openclipart-$m.dpl" --labels "$D/openclipart/manifest.tsv" --sample 600 --seed $s --json |
      $PY -c "import json,sys; print('%.3f' % json.load(sys.stdin)['top1'])")"
  done
  echo
done

# Scoring variants on exported vectors.
for m in hist thumb8 inception-v3 mobilenet-v2-mid; do "$DP" export "$O/openclipart-$m.dpl" -o "$C/exp/oc-$m.npy"; done
"$DP" export "$O/openclipart-s600-inception-v3-mixed8.dpl" -o "$C/exp/oc-s600-mixed8.npy"
"$DP" export "$O/openclipart-s600-tfresize-inception-v3-mixed8.dpl" -o "$C/exp/oc-s600-tf-mixed8.npy"
"$DP" export "$O/emoji-vendors-s600-inception-v3-mixed8.dpl" -o "$C/exp/em-s600-mixed8.npy"
"$DP" export "$O/emoji-vendors-mobilenet-v2-mid.dpl" -o "$C/exp/em-mnv2.npy"
$PY "$HERE/metrics_variants.py"
$PY "$HERE/instance_variants.py"
$PY "$HERE/instance_full.py" em-mnv2
$PY "$HERE/thumb_variants.py" "$D/openclipart-s600"
