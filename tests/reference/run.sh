#!/usr/bin/env bash
# Reference check of doppel's default models: the original TensorFlow.js model
# (tfjs 4.22, wasm backend), the converted ONNX model in onnxruntime-node 1.30
# and the converted model in doppel's engine must compute the same embedding
# node and classifier output on the same preprocessed tensors of real images.
#
#   tests/reference/run.sh --harness PATH/dp_run_tensors [--images N] [MODEL...]
#
# MODEL defaults to inception-v3 mobilenet-v2-mid. Tensors come from doppel's
# own image module (dp_run_tensors preprocess), and the same .npy goes to all
# three implementations. The npm packages are installed with `npm ci` into
# $DP_CACHE_DIR/node (default <repo>/.cache/node) from tests/reference's
# package-lock.json when missing. Exit 0 all agree, 1 a mismatch or error,
# 77 (ctest's skip) only when the npm packages cannot be installed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${DP_CACHE_DIR:-$ROOT/.cache}
PYTHON=${PYTHON:-/usr/bin/python3}
HARNESS=""
N_IMAGES=24
MODELS=()
THREADS=2

while (($#)); do
  case "$1" in
  --harness) HARNESS=$2; shift 2 ;;
  --images) N_IMAGES=$2; shift 2 ;;
  --threads) THREADS=$2; shift 2 ;;
  -*) echo "run.sh: unknown option $1" >&2; exit 1 ;;
  *) MODELS+=("$1"); shift ;;
  esac
done
((${#MODELS[@]})) || MODELS=(inception-v3 mobilenet-v2-mid)
[[ -x $HARNESS ]] || { echo "reference: --harness dp_run_tensors not found ($HARNESS)" >&2; exit 1; }

# ---- npm packages (the only reason to skip) ----------------------------------
rc=0
NODE_PATH=$(bash "$HERE/node_deps.sh") || rc=$?
((rc == 0)) || exit $rc
export NODE_PATH

# ---- images ------------------------------------------------------------------
list_images() {
  find "$@" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) -size +1k 2>/dev/null | sort
}
mapfile -t all < <(list_images "$ROOT/samples")
if ((${#all[@]} < N_IMAGES)) && [[ -f $ROOT/tools/make_samples.sh ]]; then
  bash "$ROOT/tools/make_samples.sh" >/dev/null 2>&1 || true
  mapfile -t all < <(list_images "$ROOT/samples")
fi
if ((${#all[@]} < N_IMAGES)); then
  mapfile -t all < <(list_images /usr/share/pixmaps /usr/share/icons /usr/share/doc /usr/share/backgrounds)
fi
((${#all[@]} >= N_IMAGES)) || { echo "reference: fewer than $N_IMAGES images found (run tools/make_samples.sh)" >&2; exit 1; }
# Spread the picks over the sorted list so every sample category is in.
images=()
for ((i = 0; i < N_IMAGES; i++)); do images+=("${all[$((i * ${#all[@]} / N_IMAGES))]}"); done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dp-reference.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

status=0
for name in "${MODELS[@]}"; do
  bash "$ROOT/tools/fetch_models.sh" "$name" >&2
  tfjs=$(bash "$ROOT/tools/fetch_models.sh" --tfjs-dir "$name")
  sidecar=$ROOT/models/$name.json
  read -r W H SCALE NODE OUT < <("$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
i = d["input"]
print(i["width"], i["height"], repr(i["scale"]), d["embedding"]["node"], d["outputs"][0]["name"])' "$sidecar")

  x=$TMP/$name.x.npy
  "$HARNESS" preprocess --size "${W}x${H}" --scale "$SCALE" "$x" "${images[@]}"
  # ORT only returns graph outputs: expose the embedding node as one.
  "$PYTHON" "$ROOT/tools/models/onnx_outputs.py" "$ROOT/models/$name.onnx" "$TMP/$name.ort.onnx" "$NODE"

  dp_args=()
  if "$HARNESS" run "$ROOT/models/$name.onnx" "$x" --threads "$THREADS" --batch 8 \
    --output "$NODE" "$TMP/$name.dp_emb.npy" --output "$OUT" "$TMP/$name.dp_out.npy"; then
    dp_args=(--doppel-embedding "$TMP/$name.dp_emb.npy" --doppel-output "$TMP/$name.dp_out.npy")
  else
    echo "FAIL: doppel could not run models/$name.onnx (tfjs vs ort still checked below)" >&2
    status=1
  fi
  node "$HERE/compare.cjs" --sidecar "$sidecar" --tfjs "$tfjs" --onnx "$TMP/$name.ort.onnx" \
    --tensors "$x" --threads "$THREADS" "${dp_args[@]}" || status=1
done
if ((status == 0)); then
  echo "reference: all implementations agree on ${MODELS[*]} (${N_IMAGES} images)"
fi
exit $status
