#!/bin/bash
# Exact-search benchmark: 1,000,000 x 100 float32 (i.i.d. normal rows,
# L2-normalised), k = 10, 1 and 2 threads. doppel's single-query latency
# beside a STREAM-like read bandwidth measured in the same process, numpy +
# OpenBLAS, Faiss IndexFlatL2 and scikit-learn brute force; batched
# throughput over 1,000 queries against Faiss. Rounds alternate the systems
# (the machine is shared) and the table keeps each system's best round; the
# bound comes from read passes interleaved with doppel's queries.
# Writes the "Exact search" section of docs/benchmarks.md.
#
# usage: bench/search/run.sh [BUILD_DIR] [DATA_DIR] [ROUNDS]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath -m "${1:-$SRC/build}")
DATA=$(realpath -m "${2:-/tmp/doppel-bench-search}")
ROUNDS=${3:-3}
HERE="$SRC/bench/search"
PY=/usr/bin/python3

need=()
for pkg in python3-numpy python3-faiss python3-sklearn; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 ||
        echo "warning: could not install ${need[*]}; those peers are skipped" >&2
fi

cmake --build "$BUILD" --target doppel doppel_cli bench_f16 -j2 >&2
mkdir -p "$DATA"
cc -O3 -march=native -fopenmp -Wall -I"$SRC/include" "$HERE/bench_search.c" -L"$BUILD" -ldoppel \
    -lm -Wl,-rpath,"$BUILD" -o "$DATA/bench_search"
[ -f "$DATA/base.npy" ] || $PY "$HERE/make_data.py" "$DATA"
[ -f "$DATA/base.dpl" ] || "$BUILD/doppel" index --vectors "$DATA/base.npy" -o "$DATA/base.dpl"

RES="$DATA/results.jsonl"
: >"$RES"
for round in $(seq "$ROUNDS"); do
    for T in 1 2; do
        echo "round $round, $T thread(s)" >&2
        echo "{\"system\": \"load\", \"round\": $round, \"threads\": $T, \"loadavg\": $(cut -d' ' -f1 /proc/loadavg)}" >>"$RES"
        OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T \
            "$DATA/bench_search" "$DATA/base.dpl" "$DATA/queries.npy" "$T" >>"$RES"
        extra=()
        [ "$round" = 1 ] && extra=("$BUILD/doppel" "$DATA/base.dpl")
        OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T \
            $PY "$HERE/peers.py" "$DATA" "$T" "${extra[@]}" >>"$RES"
    done
done
# Half-float storage, prototype (converted in memory): latency, its own
# read bound and recall@10 for a few re-rank depths.
echo "half-float prototype" >&2
OMP_NUM_THREADS=1 "$BUILD/tests/bench_f16" "$DATA/base.dpl" "$DATA/queries.npy" 100 10 20 40 100 >>"$RES"
$PY "$HERE/summarize.py" "$RES" "$SRC/docs/benchmarks.md"
