#!/usr/bin/env bash
# The main job on the built-in default: set up everything (Debian packages,
# build, default model, sample images), embed the sample images and find the
# nearest neighbours of one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh release >/dev/null
bash tools/fetch_models.sh "${DOPPEL_MODEL:-mobilenet-v2-mid}"
bash tools/make_samples.sh
exec bash scripts/demo_run.sh
