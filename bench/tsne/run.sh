#!/usr/bin/env bash
# t-SNE: doppel's Barnes-Hut t-SNE vs scikit-learn's TSNE on the same 4,000
# vectors, in the same run, on 2 threads: wall time and trustworthiness
# (sklearn.manifold.trustworthiness, k = 10).
#
#   bench/tsne/run.sh [INDEX] [--reps N]
#
# INDEX defaults to out/eval/emoji-vendors-mobilenet-v2-mid.dpl (build it with
# tools/datasets/build.sh emoji-vendors and doppel index; see
# docs/evaluation.md). Both engines get the identical input: 4,000 rows drawn
# with a fixed seed, reduced to 50 dims by one numpy PCA (doppel then runs with
# --pca 0). Same settings on both sides: perplexity 30, 1000 iterations, early
# exaggeration 12 for 250, learning rate max(n / 48, 50), PCA initialisation,
# theta / angle 0.5. OMP_NUM_THREADS=2 and OMP_WAIT_POLICY=passive for both
# (doppel's CLI default; spinning OpenMP threads on a shared 2-core machine
# distort both). Runs alternate doppel / sklearn so load drift hits both;
# the table gives the best and the median of each.
# Installs python3-sklearn with apt-get when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INDEX=$ROOT/out/eval/emoji-vendors-mobilenet-v2-mid.dpl
REPS=3
while (($#)); do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) INDEX=$1; shift ;;
  esac
done
DP=${DOPPEL:-$ROOT/build/doppel} # scripts/build.sh makes it
PY=/usr/bin/python3
[[ -x $DP ]] || { echo "bench/tsne: no doppel at $DP (set DOPPEL=...)" >&2; exit 1; }
[[ -f $INDEX ]] || { echo "bench/tsne: no index $INDEX (see docs/evaluation.md)" >&2; exit 1; }
if ! $PY -c 'import sklearn' 2>/dev/null; then
  echo "bench/tsne: installing python3-sklearn" >&2
  sudo=; ((EUID == 0)) || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-sklearn >&2
fi
W=$ROOT/out/bench-tsne
mkdir -p "$W"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=2

"$DP" export "$INDEX" -o "$W/all.npy" >/dev/null
$PY - "$W" <<'PY'
import sys, numpy as np
w = sys.argv[1]
X = np.load(w + "/all.npy").astype(np.float64)
rng = np.random.default_rng(0)
idx = np.sort(rng.choice(len(X), size=min(4000, len(X)), replace=False))
X = X[idx]
Xc = X - X.mean(axis=0)
U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
X50 = (Xc @ Vt[:50].T).astype(np.float32)
np.save(w + "/x.npy", X.astype(np.float32))
np.save(w + "/x50.npy", X50)
print("bench/tsne: %d x %d -> %d x 50 (PCA keeps %.1f%% of the variance)" % (
    X.shape[0], X.shape[1], X50.shape[0], 100 * (S[:50] ** 2).sum() / (S ** 2).sum()), file=sys.stderr)
PY
rm -f "$W/x50.dpl"
"$DP" index --vectors "$W/x50.npy" --raw -o "$W/x50.dpl" >/dev/null

: >"$W/times.tsv"
for ((r = 1; r <= REPS; r++)); do
  t0=$(date +%s.%N)
  "$DP" viz tsne "$W/x50.dpl" --pca 0 --sample 0 --no-images --threads 2 -q --out "$W/dp" 2>/dev/null
  t1=$(date +%s.%N)
  s=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$W/dp/tsne.json")
  echo -e "doppel\t$r\t$s\t$(echo "$t1 - $t0" | bc)\t$(uptime | sed 's/.*average: //; s/,.*//')" >>"$W/times.tsv"
  $PY - "$W" "$r" <<'PY' >>"$W/times.tsv"
import sys, time, os, numpy as np
from sklearn.manifold import TSNE
w, r = sys.argv[1], sys.argv[2]
X50 = np.load(w + "/x50.npy")
t0 = time.time()
Y = TSNE(n_components=2, perplexity=30, n_iter=1000, early_exaggeration=12, init="pca",
         learning_rate="auto", angle=0.5, method="barnes_hut", random_state=0,
         n_jobs=2).fit_transform(X50)
t = time.time() - t0
np.save(w + "/sk_y.npy", Y)
print("sklearn\t%s\t%.3f\t%.3f\t%s" % (r, t, t, os.getloadavg()[0]))
PY
done

$PY - "$W" <<'PY'
import sys, json, numpy as np, sklearn
from sklearn.manifold import trustworthiness
w = sys.argv[1]
X, X50 = np.load(w + "/x.npy"), np.load(w + "/x50.npy")
dp = np.loadtxt(w + "/dp/tsne.tsv", skiprows=1, usecols=(0, 3, 4), delimiter="\t")
# tsne.tsv rows are in sample order (sorted by path = row number here); map back by id
ids = dp[:, 0].astype(int) - int(dp[:, 0].min())
Ydp = np.zeros((len(dp), 2)); Ydp[ids] = dp[:, 1:]
Ysk = np.load(w + "/sk_y.npy")
rows = [l.split("\t") for l in open(w + "/times.tsv").read().split("\n") if l]
def stats(name):
    t = sorted(float(r[2]) for r in rows if r[0] == name)
    return t[0], t[len(t) // 2]
bd, md = stats("doppel"); bs, ms = stats("sklearn")
tw = {k: (trustworthiness(X, Y, n_neighbors=10), trustworthiness(X50, Y, n_neighbors=10))
      for k, Y in (("doppel", Ydp), ("sklearn", Ysk))}
info = json.load(open(w + "/dp/tsne.json"))
out = []
out.append("| engine | best s | median s | trustworthiness k=10 (input 816-d) | (50-d PCA input) |")
out.append("|---|---|---|---|---|")
out.append("| doppel (dp_tsne, C, 2 threads) | %.2f | %.2f | %.4f | %.4f |" % (bd, md, *tw["doppel"]))
out.append("| scikit-learn %s TSNE (barnes_hut, n_jobs=2) | %.2f | %.2f | %.4f | %.4f |" % (
    sklearn.__version__, bs, ms, *tw["sklearn"]))
out.append("")
out.append("doppel / sklearn time (best): %.2fx; trustworthiness difference: %+.4f; doppel KL %.4f; "
           "%d runs each, load average during runs %s" % (
    bd / bs, tw["doppel"][0] - tw["sklearn"][0], info["kl_divergence"], len(rows) // 2,
    ", ".join("%.1f" % float(r[4]) for r in rows)))
open(w + "/results.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
