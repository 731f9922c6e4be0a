#!/usr/bin/python3
"""Summarise bench/ann/run.sh's results.csv: per dataset and implementation,
the best single-thread queries/s (by CPU time, the machine being shared) at
recall@10 >= 0.90, 0.95, 0.99 (over all rounds: each round's sweep is
interpolated separately and the best round kept), and doppel's ratio to each
peer (doppel-hnsw against the graph peers, doppel-ivfpq[-rerank] against
faiss-ivfpq[-refine]). Recall is the `recall` column: ann-benchmarks'
tie-tolerant recall for the drivers that print recall_ids beside it
(doppel, hnswlib, usearch), the id overlap for the others. Peak RSS is the
largest any row of that implementation reports (each driver is its own
process). Markdown on stdout."""
import csv, re, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
data = defaultdict(list)  # (dataset, impl) -> rows
for r in rows:
    ds = re.sub(r"-s\d+-q\d+-g\d+$", "", r["dataset"])
    data[(ds, r["impl"])].append(r)


def best_at(rs, target):
    best = None
    for r in rs:
        if float(r["recall"]) >= target:
            q = float(r["qps_cpu"])
            best = q if best is None or q > best else best
    return best


TH = [0.50, 0.70, 0.90, 0.95, 0.99]
def rss(rs):
    v = [float(r["peak_rss_mb"]) for r in rs if r.get("peak_rss_mb")]
    return "%.0f" % max(v) if v else "-"


print("| dataset | implementation | build CPU-s | build wall s | MB | peak RSS MB | " +
      " | ".join("q/s @ %.2f" % t for t in TH) + " |")
print("|---|---|---|---|---|---|" + "---|" * len(TH))
res = {}
for (ds, impl), rs in sorted(data.items()):
    b = min(float(r["build_cpu_s"]) for r in rs)
    bw = min(float(r["build_s"]) for r in rs)
    mb = float(rs[0]["bytes"]) / 1e6
    q = [best_at(rs, t) for t in TH]
    res[(ds, impl)] = (q, b)
    print("| %s | %s | %.1f | %.1f | %.0f | %s | %s |" % (
        ds, impl, b, bw, mb, rss(rs), " | ".join("%.0f" % x if x else "-" for x in q)))
print()
print("| dataset | doppel / peer (q/s) | " + " | ".join("@ %.2f" % t for t in TH) + " | peer / doppel build CPU |")
print("|---|---|" + "---|" * len(TH) + "---|")
# Which doppel rows each peer is compared with: every doppel variant of the
# same family (e.g. doppel-hnsw, doppel-hnsw-int8 against hnswlib).
FAMILY = {"faiss-ivfpq": "doppel-ivfpq", "faiss-ivfpq-opq": "doppel-ivfpq",
          "faiss-ivfpq-refine": "doppel-ivfpq-rerank", "annoy": "doppel-rpforest"}
for (ds, impl), (q, b) in sorted(res.items()):
    if impl.startswith("doppel-"):
        continue
    fam = FAMILY.get(impl, "doppel-hnsw")
    for (ds2, mine_impl), mine in sorted(res.items()):
        if ds2 != ds or not (mine_impl == fam or mine_impl.startswith(fam + "-")):
            continue
        if fam == "doppel-ivfpq" and "rerank" in mine_impl:
            continue
        ratios = ["%.2fx" % (m / p) if m and p else "-" for m, p in zip(mine[0], q)]
        print("| %s | %s / %s | %s | %.2fx |" % (ds, mine_impl, impl, " | ".join(ratios),
                                               b / mine[1]))
