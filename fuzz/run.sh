#!/usr/bin/env bash
# Build every libFuzzer target (clang, ASan+UBSan) and run each for N seconds.
#   fuzz/run.sh [seconds] [target...]      (default 60 s, all fuzz/fuzz_*.c)
# Seeds: fuzz_onnx starts from the ONNX node-test models when Debian's
# libonnx-testdata is installed; fuzz_index and fuzz_ann from small index
# files (plain, PCA, HNSW f32/int8/f16, IVF-PQ with and without OPQ,
# rpforest) made by a doppel CLI (DP_CLI, default build/doppel, built by
# scripts/build.sh release; without it they start empty and rarely get past
# the header); fuzz_image from sample images (samples/, made by
# tools/make_samples.sh) in several formats. Corpora live in a temp dir,
# never the repo.
set -euo pipefail
secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DP_FUZZ_BUILD:-$root/build-fuzz}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DDP_FUZZ=ON -DDP_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$build" -j2 --target "${targets[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
# First every input that once crashed a target (fuzz/regressions/<target>/):
# a deterministic check, so a failure here always fails the run.
for t in "${targets[@]}"; do
  reg="$root/fuzz/regressions/$t"
  [ -d "$reg" ] || continue
  echo "== $t: replaying $(ls "$reg" | wc -l) regression input(s)"
  if ! ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/$t" "$reg"/* >"$work/replay.log" 2>&1; then
    tail -40 "$work/replay.log"
    echo "$t: a regression input crashes again"
    exit 1
  fi
done
# Then explore for secs per target. Exploration is not reproducible (timing,
# threads), so with DP_FUZZ_ADVISORY=1 (set by scripts/test.sh) a new finding
# is reported and its input kept in build-fuzz/crashes/ for a regression
# file, without failing the run; without it, a finding fails the run.
# Seed index files: without them a mutation almost never forms a valid
# header, slot and directory, and coverage stays at the magic check.
cli=${DP_CLI:-$root/build/doppel}
seeds="$work/seeds"
mkdir -p "$seeds"
if [ -x "$cli" ]; then
  (
    set -e
    cd "$seeds"
    "$cli" bench --synthetic clustered:300:8 --nq 10 --data-dir . --ef 10 >/dev/null
    "$cli" bench --synthetic clustered:4200:4 --nq 10 --data-dir . --ef 10 >/dev/null
    small=$(ls clustered-300-8*.base.fvecs | head -1)
    big=$(ls clustered-4200-4*.base.fvecs | head -1)
    "$cli" index --vectors "$small" -o plain.dpl -q
    cp plain.dpl pca.dpl && "$cli" pca pca.dpl --dims 4 -q
    for st in f32 int8 f16; do
      cp plain.dpl "hnsw-$st.dpl" && "$cli" ann build "hnsw-$st.dpl" --kind hnsw --M 4 \
        --storage "$st" -q
    done
    cp plain.dpl rpforest.dpl && "$cli" ann build rpforest.dpl --kind rpforest --trees 3 --leaf 8 -q
    "$cli" index --vectors "$big" -o big.dpl -q
    cp big.dpl ivfpq.dpl && "$cli" ann build ivfpq.dpl --kind ivfpq --nlist 8 --m 2 -q
    cp big.dpl ivfpq-opq.dpl && "$cli" ann build ivfpq-opq.dpl --kind ivfpq --nlist 8 --m 2 --opq -q
    rm -f big.dpl ./*.fvecs ./*.ivecs ./*.metric
  ) >"$work/seeds.log" 2>&1 || { echo "fuzz: could not make the index seeds:"; tail -5 "$work/seeds.log"; }
else
  echo "fuzz: no doppel CLI at $cli: fuzz_index and fuzz_ann start without seeds"
fi
for t in "${targets[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  case $t in
  fuzz_index | fuzz_ann) cp "$seeds"/*.dpl "$corpus"/ 2>/dev/null || true ;;
  fuzz_image)
    # a few sample emoji, and one of them in every other format libvips writes
    i=0
    for img in $(find -L "$root/samples" -name '*.png' 2>/dev/null | sort | head -4); do
      cp "$img" "$corpus/seed$i.png"; i=$((i + 1))
    done
    if [ -f "$corpus/seed0.png" ] && command -v vips >/dev/null; then
      for ext in jpg webp gif tif; do vips copy "$corpus/seed0.png" "$corpus/seed0.$ext" 2>/dev/null || true; done
    fi
    ;;
  esac
  if [ "$t" = fuzz_onnx ] && [ -d /usr/share/libonnx-testdata/data/node ]; then
    i=0
    for mdl in /usr/share/libonnx-testdata/data/node/*/model.onnx; do
      cp "$mdl" "$corpus/seed$i.onnx"; i=$((i + 1))
    done
  fi
  echo "== $t for ${secs}s"
  # ASAN_OPTIONS: oneDNN's JIT and OpenMP keep allocations alive on purpose
  # A fixed seed (DP_FUZZ_SEED, default 1) makes a CI run replayable; set
  # DP_FUZZ_SEED=0 for a fresh random seed in longer exploratory runs.
  if ! ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/$t" -seed="${DP_FUZZ_SEED:-1}" \
      -max_total_time="$secs" -rss_limit_mb=4096 \
      -max_len=1048576 -artifact_prefix="$work/$t-" "$corpus"; then
    status=1
    mkdir -p "$root/build-fuzz/crashes"
    cp "$work/$t"-* "$root/build-fuzz/crashes/" 2>/dev/null || true
    echo "$t: crash; inputs copied to build-fuzz/crashes/"
  fi
done
if [ "$status" != 0 ] && [ "${DP_FUZZ_ADVISORY:-0}" = 1 ]; then
  echo "fuzz: NEW FINDINGS (advisory): see build-fuzz/crashes/; add them to fuzz/regressions/ once fixed"
  exit 0
fi
exit $status
