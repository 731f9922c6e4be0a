# doppel bench end to end (the benchmark tool of issue 5): a tiny synthetic
# set through the sweep, CSV columns and recall floors, the plot; TEXMEX
# .bvecs/.ivecs inputs, a doppel index as input; ann-benchmarks HDF5 files
# written here with the HDF5 C API (tests/bench/make_hdf5.c), good ones and
# malformed ones that must be refused with a clear message.
#
# Floors: book-random:4000:32, 100 queries, seed 42 (the HNSW build is
# deterministic for a seed whatever the thread count, so these are exact
# reruns): measured recall 0.685 / 0.961 / 1.000 at ef 10 / 40 / 160.
find_program(DP_BASH bash)
find_program(DP_PY3 NAMES python3)
if(DP_BASH AND DP_PY3)
  add_test(NAME bench_ann_cli COMMAND ${DP_BASH} -c "
set -eu
D=$(mktemp -d); trap 'rm -rf $D' EXIT
B=$<TARGET_FILE:doppel_cli>
$B bench --synthetic book-random:4000:32 --nq 100 --data-dir $D --ef 10,40,160 --batch-threads 2 \
    --csv $D/o.csv --plot $D/o.png > $D/stdout.csv
cmp $D/o.csv $D/stdout.csv
head -1 $D/o.csv | grep -qx 'impl,dataset,params,search,recall,qps_cpu,qps_wall,p50_us,p99_us,build_s,build_cpu_s,bytes,recall_ids,qps_batch,batch_threads,peak_rss_mb'
test $(grep -c '^doppel-hnsw,book-random-4000-32-s42-q100-g2,M=16 efc=200,ef=' $D/o.csv) = 3
# recall floors; the tie-tolerant recall is never below the id overlap;
# every timing, size and memory column is positive
awk -F, 'NR > 1 {
  floor = ($4 == \"ef=10\") ? 0.66 : ($4 == \"ef=40\") ? 0.94 : 0.99
  if ($5 < floor) { print \"recall\", $5, \"below\", floor, \"at\", $4; bad = 1 }
  if ($5 + 1e-9 < $13) { print \"tie recall\", $5, \"below id recall\", $13; bad = 1 }
  for (c = 6; c <= 16; c++) if (c != 10 && c != 11 && !($c > 0)) { print \"column\", c, \"is\", $c; bad = 1 }
  if ($15 != 2) { print \"batch threads\", $15; bad = 1 }
} END { exit bad }' $D/o.csv
head -c 8 $D/o.png | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'
# the cached data and ground truth are reused, and the answers do not change
$B bench --synthetic book-random:4000:32 --nq 100 --data-dir $D --ef 10,40,160 --batch-threads 0 > $D/again.csv 2> $D/err
! grep -q 'ground truth:' $D/err
test \"$(cut -d, -f5,13 $D/again.csv)\" = \"$(cut -d, -f5,13 $D/o.csv)\"
# plotting a CSV alone; a CSV without the columns is refused
$B bench --plot-csv $D/o.csv --plot $D/p.png --plot-qps qps_batch 2> $D/err
grep -q '1 curves from 3 rows' $D/err
printf 'a,b\\n1,2\\n' > $D/bad.csv
! $B bench --plot-csv $D/bad.csv --plot $D/q.png 2> $D/err
grep -q 'needs columns impl, dataset, recall' $D/err
test ! -e $D/q.png
# TEXMEX bytes and ints: the same rows as .bvecs and .ivecs give the same answers
${DP_PY3} - $D <<'PY'
import random, struct, sys
d = sys.argv[1]
random.seed(5)
rows = [[random.randrange(256) for _ in range(24)] for _ in range(3000)]
qs = [[random.randrange(256) for _ in range(24)] for _ in range(60)]
for name, rs, fmt in (('b.bvecs', rows, 'B'), ('q.bvecs', qs, 'B'), ('b.ivecs', rows, 'i'), ('q.ivecs', qs, 'i')):
    with open(d + '/' + name, 'wb') as f:
        for r in rs:
            f.write(struct.pack('<i', 24) + struct.pack('<%d%s' % (24, fmt), *r))
with open(d + '/cut.bvecs', 'wb') as f:
    f.write(open(d + '/b.bvecs', 'rb').read()[:-5])
PY
$B bench --base $D/b.bvecs --queries $D/q.bvecs --ef 400 --batch-threads 0 > $D/bv.csv
$B bench --base $D/b.ivecs --queries $D/q.ivecs --ef 400 --batch-threads 0 > $D/iv.csv
test \"$(cut -d, -f2,5,13 $D/bv.csv | tail -1)\" = \"b,1.0000,1.0000\"
test \"$(cut -d, -f5,13 $D/bv.csv)\" = \"$(cut -d, -f5,13 $D/iv.csv)\"
! $B bench --base $D/cut.bvecs --queries $D/q.bvecs 2> $D/err
grep -q 'cut.bvecs: .* not a whole number of 28-byte rows' $D/err
! $B bench --base $D/b.bvecs --queries $D/q.fvecs-missing 2> $D/err
grep -q 'q.fvecs-missing' $D/err
# a doppel index as the data: its rows, queries sampled from them
$B index --vectors $D/book-random-4000-32-s42-q100-g2.base.fvecs -o $D/x.dpl -q
$B bench --index $D/x.dpl --nq 40 --ef 200 --batch-threads 0 --data-dir $D > $D/ix.csv
test \"$(cut -d, -f2,5,13 $D/ix.csv | tail -1)\" = \"x-q40-s42,1.0000,1.0000\"
test -s $D/x-q40-s42.gt.ivecs
test \"$(cat $D/x-q40-s42.metric)\" = euclidean
! $B bench --synthetic book-random:100:8 --index $D/x.dpl 2> $D/err
grep -q 'give one of' $D/err
")
  set_tests_properties(bench_ann_cli PROPERTIES TIMEOUT 600 LABELS "ann;bench")
endif()

if(DP_BASH AND DP_HDF5_FOUND)
  add_executable(bench_make_hdf5 ${CMAKE_CURRENT_SOURCE_DIR}/bench/make_hdf5.c)
  target_link_libraries(bench_make_hdf5 PRIVATE PkgConfig::DP_HDF5 m)
  add_test(NAME bench_ann_hdf5 COMMAND ${DP_BASH} -c "
set -eu
D=$(mktemp -d); trap 'rm -rf $D' EXIT
B=$<TARGET_FILE:doppel_cli>
$<TARGET_FILE:bench_make_hdf5> $D
# the file's own neighbours are the ground truth: with ef 400 over 2000 rows
# the graph finds all of them, so a misread train/test/neighbors shows up in
# the strict id recall (column 13)
for m in euclidean angular; do
  $B bench --hdf5 $D/$m.hdf5 --ef 400 --batch-threads 0 --data-dir $D/out > $D/$m.csv
  test \"$(cut -d, -f2,5,13 $D/$m.csv | tail -1)\" = \"$m,1.0000,1.0000\"
  test \"$(cat $D/out/$m.metric)\" = $m
  test $(stat -c %s $D/out/$m.gt.ivecs) = $((50 * 404))
  test $(stat -c %s $D/out/$m.base.fvecs) = $((2000 * 68))
done
# malformed files: a clear message naming the file and the problem
check() { ! $B bench --hdf5 $D/$1 2> $D/err; grep -q \"$D/$1: $2\" $D/err || { cat $D/err; exit 1; }; }
check not-hdf5.hdf5 'not an HDF5 file'
check no-neighbors.hdf5 \"no dataset 'neighbors'\"
check bad-dim.hdf5 \"'test' rows have 8 dimensions, 'train' rows 16\"
check bad-id.hdf5 \"'neighbors' row 7 names row 2005\"
check hamming.hdf5 \"distance 'hamming' is not supported\"
check rank3.hdf5 \"dataset 'train' has 3 dimensions\"
check missing.hdf5 'No such file'
")
  set_tests_properties(bench_ann_hdf5 PROPERTIES TIMEOUT 300 LABELS "ann;bench")
endif()
