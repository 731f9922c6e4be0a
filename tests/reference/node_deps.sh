#!/usr/bin/env bash
# Make sure the npm packages of tests/reference/package.json (tfjs, the wasm
# backend, onnxruntime-node) are installed in $DP_CACHE_DIR/node and print the
# node_modules path for NODE_PATH. Installs with `npm ci` from the lock file
# when missing or at other versions. Exit 77 when they cannot be installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NODE_DIR=${DP_CACHE_DIR:-$ROOT/.cache}/node

deps_ok() {
  [[ -d $NODE_DIR/node_modules ]] || return 1
  (cd "$NODE_DIR" && node -e '
    const want = require(process.argv[1]).dependencies;
    for (const [k, v] of Object.entries(want)) {
      if (require(k + "/package.json").version !== v) process.exit(1);
    }' "$HERE/package.json") 2>/dev/null
}

mkdir -p "$NODE_DIR"
# One installer at a time: a bench reading node_modules while another run's
# `npm ci` rewrites it fails with "Cannot find module".
exec 9>"$NODE_DIR.lock"
flock 9
if ! deps_ok; then
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "SKIP: node/npm not installed; cannot install @tensorflow/tfjs and onnxruntime-node" >&2
    exit 77
  fi
  mkdir -p "$NODE_DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
  echo "node_deps: npm ci in $NODE_DIR" >&2
  # onnxruntime-node's install script only fetches optional GPU binaries from
  # outside the npm registry; the CPU binaries are in the package itself.
  if ! (cd "$NODE_DIR" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >&2) ||
    ! deps_ok; then
    echo "SKIP: cannot install the npm packages of tests/reference/package.json (npm registry unreachable?)" >&2
    exit 77
  fi
fi
echo "$NODE_DIR/node_modules"
