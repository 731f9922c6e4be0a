#!/usr/bin/env bash
# doppel dedup finds exactly the planted copies (resized, re-encoded) among
# distinct images. Usage: test_dedup.sh DOPPEL SAMPLES_DIR MODEL
set -euo pipefail
D=$1 S=$2 MODEL=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/a"
# 16 distinct originals from different categories, flattened onto white.
i=0
for f in $(find "$S/" -name '*-google.png' | sort | awk 'NR % 9 == 1' | head -16); do
    vips flatten "$f" "$tmp/a/o$i.png" --background 255
    i=$((i + 1))
done
# Copies: enlarged PNG, enlarged high-quality JPEG, and a copy of a copy.
vips resize "$tmp/a/o1.png" "$tmp/a/o1_big.png" 2
vips resize "$tmp/a/o5.png" "$tmp/a/o5_big.jpg[Q=92]" 2
vips resize "$tmp/a/o9.png" "$tmp/a/o9_x15.png" 1.5
cp "$tmp/a/o9_x15.png" "$tmp/a/o9_copy.png"
"$D" index "$tmp/a" -o "$tmp/i.dpl" --model "$MODEL" -q
"$D" dedup "$tmp/i.dpl" --json >"$tmp/d.json"
python3 - "$tmp/d.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
groups = sorted(sorted(m["path"] for m in g) for g in r["groups"])
want = sorted([["o1.png", "o1_big.png"], ["o5.png", "o5_big.jpg"],
               ["o9.png", "o9_copy.png", "o9_x15.png"]])
assert groups == want, f"threshold {r['threshold']}: got {groups}"
PY
# Against a second index: each copy finds its original.
mkdir -p "$tmp/b"
cp "$tmp/a/o1_big.png" "$tmp/b/"
vips resize "$tmp/a/o3.png" "$tmp/b/o3_small.png" 0.8
"$D" index "$tmp/b" -o "$tmp/j.dpl" --model "$MODEL" -q
"$D" dedup "$tmp/j.dpl" --against "$tmp/i.dpl" --json >"$tmp/p.json"
python3 - "$tmp/p.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pairs = sorted((p["path"], p["match"]) for p in r["pairs"])
assert ("o1_big.png", "o1_big.png") in pairs and ("o1_big.png", "o1.png") in pairs, pairs
assert ("o3_small.png", "o3.png") in pairs, pairs
assert all(p[1].split("_")[0].split(".")[0] == p[0].split("_")[0].split(".")[0] for p in pairs), pairs
PY
echo ok
