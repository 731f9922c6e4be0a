#!/usr/bin/python3
"""Summarise bench/ann/run.sh's results.csv: per dataset and implementation,
the best single-thread queries/s (by CPU time, the machine being shared) at
recall@10 >= 0.90, 0.95, 0.99 (over all rounds: each round's sweep is
interpolated separately and the best round kept), and doppel's ratio to each
peer (doppel-hnsw against the graph peers, doppel-ivfpq[-rerank] against
faiss-ivfpq[-refine]). Markdown on stdout."""
import csv, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
data = defaultdict(list)  # (dataset, impl) -> rows
for r in rows:
    ds = r["dataset"].replace("-s42-q1000-g2", "")
    data[(ds, r["impl"])].append(r)


def best_at(rs, target):
    best = None
    for r in rs:
        if float(r["recall"]) >= target:
            q = float(r["qps_cpu"])
            best = q if best is None or q > best else best
    return best


TH = [0.50, 0.70, 0.90, 0.95, 0.99]
print("| dataset | implementation | build CPU-s | build wall s | MB | " +
      " | ".join("q/s @ %.2f" % t for t in TH) + " |")
print("|---|---|---|---|---|" + "---|" * len(TH))
res = {}
for (ds, impl), rs in sorted(data.items()):
    b = min(float(r["build_cpu_s"]) for r in rs)
    bw = min(float(r["build_s"]) for r in rs)
    mb = float(rs[0]["bytes"]) / 1e6
    q = [best_at(rs, t) for t in TH]
    res[(ds, impl)] = (q, b)
    print("| %s | %s | %.1f | %.1f | %.0f | %s |" % (
        ds, impl, b, bw, mb, " | ".join("%.0f" % x if x else "-" for x in q)))
print()
print("| dataset | doppel / peer (q/s) | " + " | ".join("@ %.2f" % t for t in TH) + " | peer / doppel build CPU |")
print("|---|---|" + "---|" * len(TH) + "---|")
PAIR = {"faiss-ivfpq": "doppel-ivfpq", "faiss-ivfpq-refine": "doppel-ivfpq-rerank"}
for (ds, impl), (q, b) in sorted(res.items()):
    if impl.startswith("doppel-"):
        continue
    mine = res.get((ds, PAIR.get(impl, "doppel-hnsw")))
    if not mine:
        continue
    ratios = ["%.2fx" % (m / p) if m and p else "-" for m, p in zip(mine[0], q)]
    print("| %s | %s | %s | %.2fx |" % (ds, impl, " | ".join(ratios), b / mine[1]))
