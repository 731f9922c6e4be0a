#!/usr/bin/env bash
# Install the Debian packages doppel needs to build, test and benchmark.
# Idempotent: only packages that are missing are installed.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libdnnl-dev libvips-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libonnx-testdata libopenblas-dev liblapacke-dev libmicrohttpd-dev
  libjansson-dev libcairo2-dev fonts-dejavu-core libvips-tools python3 python3-numpy python3-onnx
  libhdf5-dev
  nodejs npm
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# node/npm may come from elsewhere on a dev box; do not fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do
    [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
