#!/bin/sh
# ANN benchmark: doppel's HNSW and IVF-PQ against hnswlib (compiled here from Debian's
# libhnswlib-dev headers, -O3 -march=native) and Faiss (Debian's
# python3-faiss) on the same data, the same ground truth, the same machine,
# in the same run. Each HNSW builds with M=16, ef_construction=200 on 2
# threads; doppel's IVF-PQ and Faiss IndexIVFPQ build with the same nlist and
# m (doppel's defaults: 4 sqrt(N) cells, m = D/4 bytes per vector), alone
# and with an exact rerank of the top 100 (Faiss: IndexRefineFlat,
# k_factor 10). All answer the queries one at a time on one thread over an
# ef (nprobe) sweep. Rounds alternate doppel and hnswlib so a burst of load
# from other jobs hits both.
#
#   bench/ann/run.sh                       # 100k x 100, both synthetic sets
#   SPECS="clustered:1000000:100" ROUNDS=1 bench/ann/run.sh
#
# Environment: BUILD (doppel build dir, default build-ann), DATA (data and
# results, default /tmp/doppel-ann-bench), SPECS, ROUNDS (default 2),
# PEERS (default "hnswlib faiss"), KINDS (doppel's, default "hnsw ivfpq"),
# FAISS_KINDS (default "hnsw,ivfflat,ivfpq").
#
#   KINDS=ivfpq PEERS=faiss FAISS_KINDS=ivfpq SPECS=clustered:100000:100 ROUNDS=1 \
#       bench/ann/run.sh                  # the IVF-PQ table of docs/benchmarks.md
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-ann}
DATA=${DATA:-/tmp/doppel-ann-bench}
SPECS=${SPECS:-"clustered:100000:100 book-random:100000:100"}
ROUNDS=${ROUNDS:-2}
PEERS=${PEERS:-"hnswlib faiss"}
KINDS=${KINDS:-"hnsw ivfpq"}
FAISS_KINDS=${FAISS_KINDS:-"hnsw,ivfflat,ivfpq"}
mkdir -p "$DATA"

# peers: installed from Debian by this script, never linked into doppel
need=""
[ -f /usr/include/hnswlib/hnswlib.h ] || need="$need libhnswlib-dev"
/usr/bin/python3 -c "import faiss" 2>/dev/null || need="$need python3-faiss"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y $need; else sudo apt-get install -y $need; fi
fi
cmake -S . -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j2 --target doppel_cli >/dev/null
g++ -O3 -march=native -std=c++17 -pthread -w bench/ann/hnswlib_driver.cc -o "$DATA/hnswlib_driver"

OUT="$DATA/results.csv"
echo "impl,dataset,params,search,recall,qps_cpu,qps_wall,p50_us,p99_us,build_s,build_cpu_s,bytes" >"$OUT"
for spec in $SPECS; do
    kind=${spec%%:*}
    if [ "$kind" = book-random ]; then
        EFS=10,16,32,64,128,256,512,768,1024,1536,2048
    else
        EFS=10,12,16,24,32,48,64,96,128,192,256
    fi
    # first run makes the data and the exact ground truth (cached in $DATA)
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for kd in $KINDS; do
            echo "== $spec round $r: doppel $kd" >&2
            "$BUILD/doppel" bench --synthetic "$spec" --data-dir "$DATA" --kind "$kd" --ef "$EFS" \
                --nprobe 1,2,4,8,16,32,64,128 --rerank 0,100 | tail -n +2 >>"$OUT"
        done
        name="$DATA/$(echo "$spec" | tr ':' '-')-s42-q1000-g2"
        for p in $PEERS; do
            case $p in
            hnswlib)
                echo "== $spec round $r: hnswlib" >&2
                "$DATA/hnswlib_driver" "$name.base.fvecs" "$name.query.fvecs" "$name.gt.ivecs" \
                    "$(basename "$name")" 16 200 2 "$EFS" >>"$OUT"
                ;;
            faiss)
                if [ $r = 1 ]; then
                    echo "== $spec: faiss" >&2
                    /usr/bin/python3 bench/ann/faiss_peer.py "$name.base.fvecs" "$name.query.fvecs" \
                        "$name.gt.ivecs" "$(basename "$name")" "$FAISS_KINDS" >>"$OUT"
                fi
                ;;
            esac
        done
        r=$((r + 1))
    done
done
/usr/bin/python3 bench/ann/summarize.py "$OUT"
