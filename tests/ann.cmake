# ANN module: the unit test (tests/unit/test_ann.c) registers itself; here the
# whole-program path: index with --ann, search through the graph and exactly,
# info, check, update after adding rows, and a damaged graph refused.
find_program(DP_BASH bash)
if(DP_BASH)
  add_test(NAME ann_cli COMMAND ${DP_BASH} -c "
set -e
D=$(mktemp -d); trap 'rm -rf $D' EXIT
B=$<TARGET_FILE:doppel_cli>
$B bench --synthetic clustered:3000:24 --nq 40 --data-dir $D --ef 40 --build-threads 2 > $D/bench.csv
grep -q '^doppel-hnsw,clustered-3000-24' $D/bench.csv
$B index --vectors $D/clustered-3000-24-s42-q40-g2.base.fvecs -o $D/x.dpl --ann hnsw -q
$B ann info $D/x.dpl --verify | grep -q '3000 nodes'
$B check $D/x.dpl
$B search $D/x.dpl --vectors $D/clustered-3000-24-s42-q40-g2.query.fvecs -k 5 --ef 200 > $D/a.txt
$B search $D/x.dpl --vectors $D/clustered-3000-24-s42-q40-g2.query.fvecs -k 5 --exact > $D/e.txt
# ids only (the exact path's GEMM distances differ in the last digit); with
# ef=200 on 3000 rows at most 10 of the 200 neighbours may differ
awk '{print $1, $3}' $D/a.txt > $D/a.ids
awk '{print $1, $3}' $D/e.txt > $D/e.ids
n=$(diff $D/a.ids $D/e.ids | grep -c '^<' || true)
test $n -le 10
$B ann build $D/x.dpl --M 8 --ef-construction 50 --threads 1 -q
$B ann info $D/x.dpl | grep -q 'M=8'
# int8 walk records, reranked exactly: the same neighbours as the f32 graph
$B ann build $D/x.dpl --storage int8 --threads 2 -q
$B ann info $D/x.dpl --verify | grep -q 'storage=int8'
$B check $D/x.dpl
$B search $D/x.dpl --vectors $D/clustered-3000-24-s42-q40-g2.query.fvecs -k 5 --ef 200 > $D/q8.txt
awk '{print $1, $3}' $D/q8.txt > $D/q8.ids
n=$(diff $D/q8.ids $D/e.ids | grep -c '^<' || true)
test $n -le 10
! $B ann build $D/x.dpl --storage int4 2>$D/err
grep -q 'int4' $D/err
$B ann drop $D/x.dpl
! $B ann info $D/x.dpl 2>/dev/null
")
  set_tests_properties(ann_cli PROPERTIES TIMEOUT 600)
endif()

# IVF-PQ: libgomp's idle threads spin between parallel regions and, on a
# shared 2-core machine, steal the core of the thread doing the serial work
# (measured: 54 CPU-s spinning of 65); passive waiting keeps the test short.
if(TEST test_ann_ivfpq)
  set_tests_properties(test_ann_ivfpq PROPERTIES ENVIRONMENT OMP_WAIT_POLICY=passive TIMEOUT 900)
endif()
if(DP_BASH)
  add_test(NAME ann_ivfpq_cli COMMAND ${DP_BASH} -c "
set -e
D=$(mktemp -d); trap 'rm -rf $D' EXIT
B=$<TARGET_FILE:doppel_cli>
$B bench --synthetic clustered:12000:32 --nq 50 --data-dir $D --kind ivfpq --nprobe 4,32 --rerank 0,50 > $D/bench.csv
grep -q '^doppel-ivfpq,clustered-12000-32' $D/bench.csv
grep -q '^doppel-ivfpq-rerank,clustered-12000-32' $D/bench.csv
Q=$D/clustered-12000-32-s42-q50-g2.query.fvecs
$B index --vectors $D/clustered-12000-32-s42-q50-g2.base.fvecs -o $D/x.dpl -q
$B ann build $D/x.dpl --kind ivfpq --nlist 100 --m 8 --seed 3 | grep -q 'nlist=100 m=8'
$B ann info $D/x.dpl --verify | grep -q '12000 nodes'
$B check $D/x.dpl
# all cells and a deep rerank give the exact neighbours
$B search $D/x.dpl --vectors $Q -k 5 --nprobe 100 --rerank 400 > $D/a.txt
$B search $D/x.dpl --vectors $Q -k 5 --exact > $D/e.txt
awk '{print $1, $3}' $D/a.txt > $D/a.ids
awk '{print $1, $3}' $D/e.txt > $D/e.ids
n=$(diff $D/a.ids $D/e.ids | grep -c '^<' || true)
test $n -le 2
! $B ann build $D/x.dpl --kind ivfpq --m 5 2>$D/err
grep -q 'divide' $D/err
# OPQ: any m (5 does not divide 32), the rotation section verified and reopened
$B ann build $D/x.dpl --kind ivfpq --nlist 100 --m 5 --opq | grep -q 'm=5 opq'
$B ann info $D/x.dpl --verify | grep -q 'm=5 opq'
$B search $D/x.dpl --vectors $Q -k 5 --nprobe 100 --rerank 400 > $D/o.txt
awk '{print $1, $3}' $D/o.txt > $D/o.ids
n=$(diff $D/o.ids $D/e.ids | grep -c '^<' || true)
test $n -le 2
$B ann drop $D/x.dpl
! $B ann info $D/x.dpl 2>/dev/null
")
  set_tests_properties(ann_ivfpq_cli PROPERTIES TIMEOUT 600 ENVIRONMENT OMP_WAIT_POLICY=passive)
endif()

# rpforest: bench rows, build/info/check, every leaf gathered = the exact
# neighbours, bad parameters refused, drop.
if(DP_BASH)
  add_test(NAME ann_rpforest_cli COMMAND ${DP_BASH} -c "
set -e
D=$(mktemp -d); trap 'rm -rf $D' EXIT
B=$<TARGET_FILE:doppel_cli>
$B bench --synthetic clustered:5000:24 --nq 40 --data-dir $D --kind rpforest --trees 8 --search-k 50,400 --batch-threads 0 > $D/bench.csv
grep -q '^doppel-rpforest,clustered-5000-24-s42-q40-g2,trees=8 leaf=128' $D/bench.csv
Q=$D/clustered-5000-24-s42-q40-g2.query.fvecs
$B index --vectors $D/clustered-5000-24-s42-q40-g2.base.fvecs -o $D/x.dpl -q
$B ann build $D/x.dpl --kind rpforest --trees 10 --leaf 16 --seed 3 | grep -q 'trees=10 leaf=16'
$B ann info $D/x.dpl --verify | grep -q 'rpforest, 5000 nodes'
$B check $D/x.dpl
# 10 trees x 5000 items: search_k 50000 gathers every leaf
$B search $D/x.dpl --vectors $Q -k 5 --search-k 50000 > $D/a.txt
$B search $D/x.dpl --vectors $Q -k 5 --exact > $D/e.txt
awk '{print $1, $3}' $D/a.txt > $D/a.ids
awk '{print $1, $3}' $D/e.txt > $D/e.ids
n=$(diff $D/a.ids $D/e.ids | grep -c '^<' || true)
test $n -le 2
! $B ann build $D/x.dpl --kind rpforest --trees 0 2>$D/err
grep -q 'trees must be in' $D/err
$B ann drop $D/x.dpl
! $B ann info $D/x.dpl 2>/dev/null
")
  set_tests_properties(ann_rpforest_cli PROPERTIES TIMEOUT 600 ENVIRONMENT OMP_WAIT_POLICY=passive)
endif()
if(TEST test_ann_rpforest)
  set_tests_properties(test_ann_rpforest PROPERTIES ENVIRONMENT OMP_WAIT_POLICY=passive TIMEOUT 900)
endif()
