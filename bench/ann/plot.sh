#!/bin/sh
# Plot recall (x) against queries/s (y, log scale) from a bench/ann/run.sh
# results CSV: one curve per implementation (doppel's kinds and the peers),
# each its Pareto frontier over all rounds, drawn with cairo by doppel itself.
#
#   bench/ann/plot.sh RESULTS.csv OUT.png [DATASET [QPS_COLUMN]]
#
# DATASET picks one set's rows when the CSV holds several (default: all,
# labelled by set); QPS_COLUMN is qps_cpu (default), qps_wall or qps_batch.
# BUILD names the doppel build dir (default build-ann).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 RESULTS.csv OUT.png [DATASET [QPS_COLUMN]]" >&2; exit 2; }
set -- "$(realpath -m "$1")" "$(realpath -m "$2")" "${3:-}" "${4:-qps_cpu}"
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-ann}
[ -x "$BUILD/doppel" ] || cmake --build "$BUILD" -j2 --target doppel_cli >/dev/null
if [ -n "$3" ]; then
    exec "$BUILD/doppel" bench --plot-csv "$1" --plot "$2" --plot-dataset "$3" --plot-qps "$4"
fi
exec "$BUILD/doppel" bench --plot-csv "$1" --plot "$2" --plot-qps "$4"
