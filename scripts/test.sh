#!/usr/bin/env bash
# Set up and run every test: release build + ctest, then the same tests under
# ASan+UBSan, then a short run of each fuzz target.
# Env: DP_SKIP_ASAN=1, DP_SKIP_FUZZ=1, DP_FUZZ_SECONDS (default 60 per target).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash tools/fetch_models.sh
bash tools/make_samples.sh >/dev/null
bash tools/make_samples.sh --out samples-eval --count 1000 --label emoji >/dev/null
jobs=$(nproc 2>/dev/null || echo 2)
# Idle OpenMP threads sleep instead of spinning: tests run several processes
# at once on few cores (the doppel CLI sets this for itself too).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

echo "== release build + tests"
bash scripts/build.sh release >/dev/null
ctest --test-dir build --output-on-failure -j"$jobs"

if [[ "${DP_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== ASan+UBSan build + tests"
  bash scripts/build.sh asan >/dev/null
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow
fi

if [[ "${DP_SKIP_FUZZ:-0}" != 1 ]]; then
  echo "== fuzz (${DP_FUZZ_SECONDS:-60}s per target)"
  DP_FUZZ_ADVISORY=${DP_FUZZ_ADVISORY:-1} bash fuzz/run.sh "${DP_FUZZ_SECONDS:-60}"
fi
echo "== all tests passed"
