#!/bin/sh
# ANN benchmark: doppel's HNSW and IVF-PQ against hnswlib (compiled here from
# Debian's libhnswlib-dev headers, -O3 -march=native), usearch (npm
# usearch@2.26.2, installed under $DATA by this script) and Faiss (Debian's
# python3-faiss) on the same data, the same ground truth, the same machine,
# in the same run. Each HNSW builds with M=16, ef_construction=200 on 2
# threads (usearch: connectivity 16, expansion_add 200); doppel's IVF-PQ and
# Faiss IndexIVFPQ build with the same nlist and m (doppel's defaults: 4
# sqrt(N) cells, m = D/4 bytes per vector), alone and with an exact rerank
# of the top 100 (Faiss: IndexRefineFlat, k_factor 10). All answer the
# queries one at a time on one thread over an ef (nprobe) sweep, then as
# one batch over all threads. Rounds alternate doppel and the peers so a
# burst of load from other jobs hits all of them. Every driver prints the
# columns of `doppel bench` (recall is ann-benchmarks' tie-tolerant one;
# see `doppel bench --help`); the end is a Markdown summary and one plot of
# recall against queries/s per dataset ($DATA/recall-DATASET.png).
#
#   bench/ann/run.sh                       # 100k x 100, both synthetic sets
#   SPECS="clustered:1000000:100" ROUNDS=1 bench/ann/run.sh
#   SPECS= HDF5=/data/glove-100-angular.hdf5 bench/ann/run.sh
#
# Environment: BUILD (doppel build dir, default build-ann), DATA (data and
# results, default /tmp/doppel-ann-bench), SPECS (synthetic sets), HDF5
# (ann-benchmarks files), ROUNDS (default 2), PEERS (default "hnswlib
# usearch faiss"), KINDS (doppel's, default "hnsw ivfpq"), FAISS_KINDS
# (default "hnsw,ivfflat,ivfpq").
#
#   KINDS=ivfpq PEERS=faiss FAISS_KINDS=ivfpq SPECS=clustered:100000:100 ROUNDS=1 \
#       bench/ann/run.sh                  # the IVF-PQ table of docs/benchmarks.md
#
# Extra `doppel bench` arguments for one kind: HNSW_ARGS, IVFPQ_ARGS,
# RPFOREST_ARGS (default empty; word-split, appended after the defaults so
# they win), e.g.
#   KINDS=ivfpq IVFPQ_ARGS="--opq" PEERS=faiss FAISS_KINDS=ivfpq-opq bench/ann/run.sh
#   KINDS=hnsw HNSW_ARGS="--storage int8" PEERS=hnswlib bench/ann/run.sh
#
# rpforest against Annoy (annoylib.h from Debian's r-cran-rcppannoy, compiled
# by bench/ann/annoy_driver.cc): both 40 trees on 2 threads, a search_k
# sweep (SEARCH_K; Annoy also runs its default, n_trees * k):
#   KINDS=rpforest PEERS=annoy SPECS=clustered:100000:100 ROUNDS=1 bench/ann/run.sh
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-ann}
DATA=${DATA:-/tmp/doppel-ann-bench}
SPECS=${SPECS-"clustered:100000:100 book-random:100000:100"}
HDF5=${HDF5:-}
ROUNDS=${ROUNDS:-2}
PEERS=${PEERS:-"hnswlib usearch faiss"}
KINDS=${KINDS:-"hnsw ivfpq"}
FAISS_KINDS=${FAISS_KINDS:-"hnsw,ivfflat,ivfpq"}
SEARCH_K=${SEARCH_K:-"100,200,400,1000,2000,4000,10000,20000,40000"}
TREES=${TREES:-40}
USEARCH_VERSION=2.26.2
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

# peers: installed by this script (Debian, npm), never linked into doppel
need=""
case " $PEERS " in *" hnswlib "*) [ -f /usr/include/hnswlib/hnswlib.h ] || need="$need libhnswlib-dev" ;; esac
case " $PEERS " in *" faiss "*) /usr/bin/python3 -c "import faiss" 2>/dev/null || need="$need python3-faiss" ;; esac
case " $PEERS " in *" annoy "*) dpkg -s r-cran-rcppannoy >/dev/null 2>&1 || need="$need r-cran-rcppannoy" ;; esac
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y $need; else sudo apt-get install -y $need; fi
fi
USEARCH_DIR="$DATA/npm-usearch/node_modules/usearch"
case " $PEERS " in
*" usearch "*)
    if ! grep -q "\"version\": \"$USEARCH_VERSION\"" "$USEARCH_DIR/package.json" 2>/dev/null; then
        echo "== npm install usearch@$USEARCH_VERSION into $DATA/npm-usearch" >&2
        mkdir -p "$DATA/npm-usearch"
        (cd "$DATA/npm-usearch" && npm install --no-audit --no-fund --silent "usearch@$USEARCH_VERSION" >&2)
    fi
    node -e "require('$USEARCH_DIR')" # the prebuilt addon loads here
    ;;
esac
cmake -S . -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j2 --target doppel_cli >/dev/null
case " $PEERS " in *" hnswlib "*)
    g++ -O3 -march=native -std=c++17 -pthread -w bench/ann/hnswlib_driver.cc -o "$DATA/hnswlib_driver" ;;
esac
case " $PEERS " in *" annoy "*)
    ANNOY_INC=$(dirname "$(dpkg -L r-cran-rcppannoy | grep '/annoylib.h$' | head -n 1)")
    g++ -O3 -march=native -std=c++17 -pthread -w -I"$ANNOY_INC" bench/ann/annoy_driver.cc \
        -o "$DATA/annoy_driver" ;;
esac

OUT="$DATA/results.csv"
echo "impl,dataset,params,search,recall,qps_cpu,qps_wall,p50_us,p99_us,build_s,build_cpu_s,bytes,recall_ids,qps_batch,batch_threads,peak_rss_mb" >"$OUT"
datasets=""
for src in $SPECS $HDF5; do
    case $src in
    *.hdf5 | *.h5)
        EFS=10,16,24,32,48,64,96,128,192,256,384,512,768
        set -- --hdf5 "$src"
        name=$(basename "$src")
        name=${name%.*}
        ;;
    *)
        if [ "${src%%:*}" = book-random ]; then
            EFS=10,16,32,64,128,256,512,768,1024,1536,2048
        else
            EFS=10,12,16,24,32,48,64,96,128,192,256
        fi
        set -- --synthetic "$src"
        name=$(echo "$src" | tr ':' '-')-s42-q1000-g2
        ;;
    esac
    datasets="$datasets $name"
    f="$DATA/$name"
    # the first run makes the data and the exact ground truth (cached in $DATA)
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for kd in $KINDS; do
            case $kd in
            hnsw) extra=${HNSW_ARGS:-} ;;
            ivfpq) extra=${IVFPQ_ARGS:-} ;;
            rpforest) extra=${RPFOREST_ARGS:-} ;;
            *) extra="" ;;
            esac
            echo "== $name round $r: doppel $kd $extra" >&2
            # $extra unquoted: several arguments in one variable
            # shellcheck disable=SC2086
            "$BUILD/doppel" bench "$@" --data-dir "$DATA" --kind "$kd" --ef "$EFS" \
                --nprobe 1,2,4,8,16,32,64,128 --rerank 0,100 --trees "$TREES" \
                --search-k "$SEARCH_K" $extra | tail -n +2 >>"$OUT"
        done
        metric=$(cat "$f.metric" 2>/dev/null || echo euclidean)
        for p in $PEERS; do
            case $p in
            hnswlib)
                echo "== $name round $r: hnswlib" >&2
                "$DATA/hnswlib_driver" "$f.base.fvecs" "$f.query.fvecs" "$f.gt.ivecs" "$name" \
                    16 200 2 "$EFS" "$metric" >>"$OUT"
                ;;
            usearch)
                echo "== $name round $r: usearch" >&2
                node bench/ann/usearch_peer.mjs "$USEARCH_DIR" "$f.base.fvecs" "$f.query.fvecs" \
                    "$f.gt.ivecs" "$name" 16 200 2 "$EFS" "$metric" "$(nproc)" "$DATA" >>"$OUT"
                ;;
            faiss)
                if [ $r = 1 ]; then
                    echo "== $name: faiss" >&2
                    /usr/bin/python3 bench/ann/faiss_peer.py "$f.base.fvecs" "$f.query.fvecs" \
                        "$f.gt.ivecs" "$name" "$FAISS_KINDS" 0 0 "$metric" >>"$OUT"
                fi
                ;;
            annoy)
                echo "== $name round $r: annoy" >&2
                "$DATA/annoy_driver" "$f.base.fvecs" "$f.query.fvecs" "$f.gt.ivecs" "$name" \
                    "$TREES" 2 "-1,$SEARCH_K" "$metric" >>"$OUT"
                ;;
            *)
                echo "run.sh: unknown peer '$p' (hnswlib, usearch, faiss, annoy)" >&2
                exit 2
                ;;
            esac
        done
        r=$((r + 1))
    done
done
/usr/bin/python3 bench/ann/summarize.py "$OUT"
for name in $datasets; do
    BUILD=$BUILD sh bench/ann/plot.sh "$OUT" "$DATA/recall-${name%-s42-q1000-g2}.png" "$name"
done
