#!/usr/bin/env bash
# doppel eval end to end on the hand-made set of test_eval.c's
# test_instances (numbers worked out there): --labels with instances, the
# metric table, --sample, --json, and clear errors for bad input.
# usage: test_eval_cli.sh DOPPEL
set -euo pipefail
DP=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# x1a 0, x1b 0.5 (X, x1); x2 3 (X, x2); y1a 1.2, y1b 6.5 (Y, y1); extra 100.
printf '0 0\n0.5 0\n3 0\n1.2 0\n6.5 0\n100 0\n' >"$T/v.txt"
/usr/bin/python3 -c "import numpy as n,sys; n.save(sys.argv[2], n.loadtxt(sys.argv[1], dtype='<f4'))" \
  "$T/v.txt" "$T/v.npy"
printf 'a/x1a.png\twrong\na/x1b.png\twrong\na/x2.png\twrong\nb/y1a.png\twrong\nb/y1b.png\twrong\nc/extra.png\twrong\n' >"$T/names.tsv"
printf 'path\tclass\tinstance\tsource\na/x1a.png\tX\tx1\tv1\na/x1b.png\tX\tx1\tv2\na/x2.png\tX\tx2\tv1\nb/y1a.png\tY\ty1\tv1\nb/y1b.png\tY\ty1\tv2\n' >"$T/m.tsv"
"$DP" index --vectors "$T/v.npy" --names "$T/names.tsv" --raw -o "$T/x.dpl" >/dev/null

out=$("$DP" eval "$T/x.dpl" -k 1 --labels "$T/m.tsv")
echo "$out"
grep -q "5 queries over 2 labels; database 5; 1 unlabelled left out" <<<"$out" || fail "header"
grep -q "top-1               0.0000" <<<"$out" || fail "top-1"
grep -q "instance recall@1   0.5000" <<<"$out" || fail "recall@1"
grep -q "instance recall@5   1.0000   (4 queries" <<<"$out" || fail "recall@5"
grep -q "skip neighbours sharing the query's instance" <<<"$out" || fail "skip note"
grep -q "X  *-> Y  *3" <<<"$out" || fail "confusion"

out=$("$DP" eval "$T/x.dpl" -k 1 --labels "$T/m.tsv" --metric l2,l1,minkowski:2,weighted-l2)
echo "$out"
[[ $(grep -c "^l2 \|^l1 \|^minkowski:2 " <<<"$out") == 3 ]] || fail "table rows"
grep -q "^weighted-l2 *skipped: .*PCA" <<<"$out" || fail "weighted-l2 skipped"

json=$("$DP" eval "$T/x.dpl" -k 1 --labels "$T/m.tsv" --sample 4 --seed 2 --json)
/usr/bin/python3 -c "
import json,sys; j=json.loads(sys.argv[1])
assert j['database']==4 and j['queries']==4 and j['sample']==4, j
assert 'instance_recall1' in j and j['same_instance_neighbours_skipped'] is True, j
" "$json" || fail "json"

# Bad input: clear messages, no crash.
printf 'a/x1a.png\tX\nb/y1a.png\n' >"$T/bad.tsv"
set +e
err=$("$DP" eval "$T/x.dpl" --labels "$T/bad.tsv" 2>&1); rc=$?
[[ $rc == 1 && $err == *"bad.tsv:2"* ]] || fail "bad manifest: rc $rc: $err"
err=$("$DP" eval "$T/x.dpl" --metric hamming 2>&1); rc=$?
[[ $rc == 2 && $err == *"unknown metric 'hamming'"* ]] || fail "bad metric: rc $rc: $err"
err=$("$DP" eval "$T/x.dpl" --sample 1 2>&1); rc=$?
[[ $rc == 2 ]] || fail "sample 1: rc $rc"
err=$("$DP" eval "$T/nope.dpl" 2>&1); rc=$?
[[ $rc == 1 && $err == *"nope.dpl"* ]] || fail "missing index: rc $rc: $err"
echo "test_eval_cli: all passed"
