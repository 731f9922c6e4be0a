#!/usr/bin/env bash
# `doppel index DIR` on a folder of good and bad files: every bad file is
# listed with a reason, the run finishes, the good ones are searchable, and a
# second run is incremental. Usage: test_index_dir.sh DOPPEL_BINARY [MODEL]
set -euo pipefail
D=$1
MODEL=${2:-hist}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/make_bad_folder.py" "$tmp/imgs"

fail() { echo "FAIL: $*" >&2; exit 1; }

set +e
"$D" index "$tmp/imgs" -o "$tmp/t.dpl" --model "$MODEL" --json --failed-list "$tmp/failed.txt" \
    >"$tmp/run1.json" 2>"$tmp/run1.err"
rc=$?
set -e
cat "$tmp/run1.err" >&2
[[ $rc == 3 ]] || fail "first run: exit status $rc, expected 3 (some files skipped)"

python3 - "$tmp/run1.json" "$tmp/failed.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fails = {f["path"]: f["reason"] for f in r["failures"]}
print(json.dumps(fails, indent=1))
expect = {
    "bad/empty.png": None, "bad/truncated.jpg": None, "bad/corrupt.png": None,
    "bad/notes.jpg": None, "bad/bomb.png": "limit", "bad/dangling.jpg": "No such file",
}
for path, word in expect.items():
    assert path in fails, f"{path} not listed as skipped: {sorted(fails)}"
    assert fails[path].strip(), f"{path}: empty reason"
    if word:
        assert word in fails[path], f"{path}: reason {fails[path]!r} lacks {word!r}"
assert "bad/readme.txt" not in fails, "a .txt file is not an image and must be ignored"
good = 10  # 4 patterns (one in deep/), 4 noise, one copy, one without extension, one non-UTF-8
assert r["added"] == good + 1, r  # + café.png
assert r["found"] == good + 1 + 5, r  # the 5 bad regular files with image names
assert r["failed"] == len(fails) == 6, r
listed = [l.split("\t")[0] for l in open(sys.argv[2], "rb").read().decode("utf-8", "replace").splitlines()]
assert sorted(listed) == sorted(fails), (listed, sorted(fails))
PY

# Every good image finds itself first (exact match, distance 0).
for q in patterns/sines.png patterns/deep/eye.png noise/n2.png noise/noext; do
    "$D" search "$tmp/t.dpl" "$tmp/imgs/$q" -k 5 --json >"$tmp/q.json"
    python3 - "$tmp/q.json" "$q" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
res = r["queries"][0]["results"]
# Synthetic grey patterns can share a feature vector exactly (ties), so the
# query must be among the results at distance 0, not necessarily first.
assert abs(res[0]["distance"]) < 1e-4, res[0]
assert any(x["path"] == sys.argv[2] and abs(x["distance"]) < 1e-4 for x in res), (sys.argv[2], res)
PY
done

# Labels are the parent folder names.
"$D" search "$tmp/t.dpl" "$tmp/imgs/patterns/deep/eye.png" -k 1 --json >"$tmp/q.json"
grep -q '"label": *"deep"' "$tmp/q.json" || fail "label of patterns/deep/eye.png is not 'deep'"

# A second run over the unchanged folder embeds nothing.
"$D" index "$tmp/imgs" -o "$tmp/t.dpl" --model "$MODEL" --json >"$tmp/run2.json" 2>/dev/null || [[ $? == 3 ]]
python3 -c "
import json,sys; r=json.load(open('$tmp/run2.json'))
assert r['added']==0 and r['updated']==0 and r['removed']==0 and r['unchanged']==11, r"

# Change one file, delete another, add a third: exactly those are redone.
vips gaussnoise "$tmp/imgs/noise/n3.png" 96 96 --mean 10 --sigma 5 >/dev/null
rm "$tmp/imgs/noise/n2.png"
cp "$tmp/imgs/patterns/sines.png" "$tmp/imgs/noise/new.png"
"$D" index "$tmp/imgs" -o "$tmp/t.dpl" --model "$MODEL" --json >"$tmp/run3.json" 2>/dev/null || [[ $? == 3 ]]
python3 -c "
import json,sys; r=json.load(open('$tmp/run3.json'))
assert r['added']==1 and r['updated']==1 and r['removed']==1 and r['unchanged']==9, r"
"$D" search "$tmp/t.dpl" "$tmp/imgs/noise/n3.png" -k 5 --json | grep -q '"noise/n3.png"' \
    || fail "changed file not re-embedded"

# A missing folder and a non-index file are clear errors, not crashes.
set +e
"$D" index "$tmp/nope" -o "$tmp/x.dpl" --model "$MODEL" 2>"$tmp/err"; rc=$?
set -e
[[ $rc == 1 ]] && grep -q "nope" "$tmp/err" || fail "missing folder: rc=$rc $(cat "$tmp/err")"
echo "not an index" >"$tmp/junk.dpl"
set +e
"$D" index "$tmp/imgs" -o "$tmp/junk.dpl" --model "$MODEL" 2>"$tmp/err"; rc=$?
set -e
[[ $rc == 1 ]] && grep -q "junk.dpl" "$tmp/err" || fail "junk index: rc=$rc $(cat "$tmp/err")"
[[ "$(cat "$tmp/junk.dpl")" == "not an index" ]] || fail "a file that is not an index was overwritten"
echo "ok"
