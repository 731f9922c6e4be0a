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

# doppel viz on 60 vectors in 3 clusters (no image folder: scatter only).
/usr/bin/python3 - "$T" <<'PY'
import numpy as np, sys
t = sys.argv[1]
rng = np.random.default_rng(5)
c = rng.normal(size=(3, 16)) * 6
X = np.vstack([c[i % 3] + rng.normal(size=16) for i in range(60)]).astype('<f4')
np.save(t + "/c.npy", X)
open(t + "/c.tsv", "w").write("".join("k%d/%02d.png\tk%d\n" % (i % 3, i, i % 3) for i in range(60)))
PY
"$DP" index --vectors "$T/c.npy" --names "$T/c.tsv" -o "$T/c.dpl" >/dev/null
"$DP" viz tsne "$T/c.dpl" --out "$T/viz" --iters 1000 --perplexity 10 -q 2>"$T/viz.err" || fail "viz tsne: $(cat "$T/viz.err")"
grep -q "records no image folder" "$T/viz.err" || fail "no-root message"
[[ $(wc -l <"$T/viz/tsne.tsv") == 61 ]] || fail "tsne.tsv rows"
/usr/bin/python3 - "$T" <<'PY' || fail "t-SNE clusters"
import numpy as np, sys, json
t = sys.argv[1]
rows = [l.split("\t") for l in open(t + "/viz/tsne.tsv").read().split("\n")[1:] if l]
lab = np.array([r[2] for r in rows]); Y = np.array([[float(r[3]), float(r[4])] for r in rows])
D = ((Y[:, None] - Y[None]) ** 2).sum(-1); np.fill_diagonal(D, np.inf)
purity = (lab[D.argmin(1)] == lab).mean()
assert purity == 1.0, purity
j = json.load(open(t + "/viz/tsne.json"))
assert j["points"] == 60 and j["iters"] == 1000, j
PY
head -c 8 "$T/viz/tsne_scatter.png" | od -c | grep -q "P   N   G" || fail "scatter PNG"
"$DP" viz projector "$T/c.dpl" --out "$T/proj" -q || fail "projector"
/usr/bin/python3 - "$T" <<'PY' || fail "projector files"
import json, sys
t = sys.argv[1]
c = json.load(open(t + "/proj/projector_config.json"))["embeddings"][0]
assert c["tensorShape"] == [60, 16] and "sprite" not in c, c
v = open(t + "/proj/vectors.tsv").read().split("\n")
assert len([l for l in v if l]) == 60 and len(v[0].split("\t")) == 16
m = open(t + "/proj/metadata.tsv").read().split("\n")
assert m[0] == "path\tlabel" and len([l for l in m if l]) == 61
PY
set +e
"$DP" viz tsne "$T/c.dpl" >/dev/null 2>&1; [[ $? == 2 ]] || fail "viz without --out"
"$DP" viz bogus "$T/c.dpl" --out "$T/x" >/dev/null 2>&1; [[ $? == 2 ]] || fail "viz bogus"
err=$("$DP" viz tsne "$T/nope.dpl" --out "$T/x" 2>&1); [[ $? == 1 && $err == *nope.dpl* ]] || fail "viz missing index"
echo "test_eval_cli: all passed"
