#!/usr/bin/env bash
# doppel pca end to end on the sample images with a classic featuriser:
# reduce, then an image query and a --vectors query of the model's
# dimension are projected like the stored vectors (a stored image finds
# itself at distance 0, both queries give the same neighbours), doppel index
# adds new images in the reduced space, weighted-l2 and --pca-sweep run,
# undo restores the original search, and a corrupt PCA section is refused
# by name.
# usage: test_pca_cli.sh DOPPEL SAMPLES MODEL
set -euo pipefail
DP=$1
SAMPLES=$2
MODEL=${3:-hist}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
PY=/usr/bin/python3

# Two folders of the samples now, one more later.
mkdir -p "$T/imgs"
cp -r "$SAMPLES/animals-and-nature" "$SAMPLES/food-and-drink" "$T/imgs/"
"$DP" index "$T/imgs" -o "$T/x.dpl" --model "$MODEL" -q
dim0=$("$DP" info "$T/x.dpl" | awk '$1 == "dim" {print $2}')
q=animals-and-nature/$(ls "$T/imgs/animals-and-nature" | head -1)
before=$("$DP" search "$T/x.dpl" "$T/imgs/$q" -k 5 --json)

out=$("$DP" pca "$T/x.dpl" --dims 12 --plot "$T/var.png")
echo "$out"
grep -q "projected from $dim0 to 12 dimensions, renormalised" <<<"$out" || fail "pca summary"
grep -q "^  20  " <<<"$out" || fail "20 variance rows"
head -c 8 "$T/var.png" | od -c | grep -q "P   N   G" || fail "variance plot"
[[ $("$DP" info "$T/x.dpl" | awk '$1 == "dim" {print $2}') == 12 ]] || fail "dim after pca"
"$DP" check "$T/x.dpl" >/dev/null || fail "check after pca"

# An image query: embedded with the model, projected with the stored PCA.
j=$("$DP" search "$T/x.dpl" "$T/imgs/$q" -k 5 --json)
"$DP" embed "$T/imgs/$q" --model "$MODEL" -o "$T/q.npy" -q
jv=$("$DP" search "$T/x.dpl" --vectors "$T/q.npy" -k 5 --json)
$PY - "$j" "$jv" "$q" <<'PY' || fail "image query after pca"
import json, sys
a, b, q = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
ra, rb = a["queries"][0]["results"], b["queries"][0]["results"]
assert ra[0]["path"] == q and ra[0]["distance"] < 1e-5, ra[0]
assert [r["id"] for r in ra] == [r["id"] for r in rb], (ra, rb)
assert all(abs(x["distance"] - y["distance"]) < 1e-5 for x, y in zip(ra, rb))
PY

# doppel index adds new images in the reduced space.
cp -r "$SAMPLES/flags" "$T/imgs/"
"$DP" index "$T/imgs" -o "$T/x.dpl" --model "$MODEL" -q
[[ $("$DP" info "$T/x.dpl" | awk '$1 == "dim" {print $2}') == 12 ]] || fail "dim after adding"
f=flags/$(ls "$T/imgs/flags" | head -1)
j=$("$DP" search "$T/x.dpl" "$T/imgs/$f" -k 1 --json)
$PY -c "
import json,sys; r=json.loads(sys.argv[1])['queries'][0]['results'][0]
assert r['path']==sys.argv[2] and r['distance']<1e-5, r" "$j" "$f" || fail "added image not found as itself"

# weighted-l2 now has its weights; the sweep runs in memory.
out=$("$DP" eval "$T/x.dpl" --metric l2,weighted-l2)
echo "$out"
grep -q "^weighted-l2 *[0-9]" <<<"$out" || fail "weighted-l2 row"
out=$("$DP" eval "$T/x.dpl" --pca-sweep 1,2,5,12,99 --plot "$T/sweep.png" --repeats 1)
echo "$out"
grep -q "^ *12\* " <<<"$out" || fail "reference row"
grep -q "^ *99 skipped" <<<"$out" || fail "skipped row"
head -c 8 "$T/sweep.png" | od -c | grep -q "P   N   G" || fail "sweep plot"

# Undo: the original vectors, the original answers (the flags, added
# after the fit, are rebuilt from their projection: not compared).
out=$("$DP" pca "$T/x.dpl" --undo)
echo "$out"
grep -q "restored (.* added after the fit were rebuilt" <<<"$out" || fail "undo summary"
[[ $("$DP" info "$T/x.dpl" | awk '$1 == "dim" {print $2}') == "$dim0" ]] || fail "dim after undo"
rm -rf "$T/imgs/flags"
"$DP" index "$T/imgs" -o "$T/x.dpl" --model "$MODEL" -q
after=$("$DP" search "$T/x.dpl" "$T/imgs/$q" -k 5 --json)
$PY -c "
import json,sys; a,b=(json.loads(x)['queries'][0]['results'] for x in sys.argv[1:3])
assert [r['path'] for r in a]==[r['path'] for r in b], (a,b)" "$before" "$after" || fail "undo answers"

# Refusals: no PCA to undo; a corrupt PCA section is named.
set +e
err=$("$DP" pca "$T/x.dpl" --undo 2>&1); rc=$?
[[ $rc == 1 && $err == *"has no PCA to undo"* ]] || fail "undo twice: rc $rc: $err"
err=$("$DP" pca "$T/x.dpl" --dims 99999 2>&1); rc=$?
[[ $rc == 2 ]] || fail "dims range: rc $rc"
err=$("$DP" pca "$T/x.dpl" --dims $((dim0 + 1)) 2>&1); rc=$?
[[ $rc == 1 && $err == *"not in 1..$dim0"* ]] || fail "dims above dim: rc $rc: $err"
set -e
"$DP" pca "$T/x.dpl" --dims 8 -q
$PY - "$T/x.dpl" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"DPPCA\0\0\0")          # the PCA data, after its section head
assert i > 0
b[i + 64 + 8] ^= 0x55                # a variance byte
open(sys.argv[1], "wb").write(b)
PY
set +e
err=$("$DP" search "$T/x.dpl" "$T/imgs/$q" 2>&1); rc=$?
[[ $rc == 1 && $err == *"checksum mismatch in section 'pca'"* ]] || fail "corrupt search: rc $rc: $err"
err=$("$DP" pca "$T/x.dpl" --dims 4 2>&1); rc=$?
[[ $rc == 1 && $err == *"section 'pca'"* ]] || fail "corrupt refit: rc $rc: $err"
err=$("$DP" check "$T/x.dpl" 2>&1); rc=$?
[[ $rc != 0 && $err == *"pca"* ]] || fail "check: rc $rc: $err"
set -e
echo "test_pca_cli: all passed"
