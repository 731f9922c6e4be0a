#!/usr/bin/python3
"""The peers of bench_search on the same data: numpy + OpenBLAS (X @ q, then
argpartition), Faiss IndexFlatL2 (Debian python3-faiss) single and batched,
scikit-learn brute-force NearestNeighbors. Run with OPENBLAS_NUM_THREADS set
to THREADS. Prints one JSON object per system.

usage: peers.py DATA_DIR THREADS [DOPPEL_BINARY INDEX]"""
import json
import os
import subprocess
import sys
import time

import numpy as np

data, threads = sys.argv[1], int(sys.argv[2])
X = np.load(os.path.join(data, "base.npy"))
Q = np.load(os.path.join(data, "queries.npy"))
K = 10


def lat(fn, n, warm=2):
    for i in range(warm):
        fn(Q[i])
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(Q[i])
        ts.append(time.perf_counter() - t0)
    ts = np.array(ts) * 1e3
    return {"single_ms": float(np.median(ts)), "single_mean_ms": float(ts.mean()),
            "single_p90_ms": float(np.percentile(ts, 90))}


def np_query(q):
    d = X @ q  # unit vectors: largest inner product = smallest L2
    i = np.argpartition(-d, K)[:K]
    return i[np.argsort(-d[i])]


out = [dict(system="numpy", threads=threads, **lat(np_query, 50))]

try:
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    r = dict(system="faiss", threads=threads, version=faiss.__version__,
             **lat(lambda q: index.search(q[None, :], K), 30))
    best = best_cpu = 1e30
    for _ in range(3):  # as bench_search: best of 3, wall and process CPU time
        t0, c0 = time.perf_counter(), time.process_time()
        _, fi = index.search(Q, K)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    r["batch_qps"] = len(Q) / best
    r["batch_cpu_qps"] = len(Q) / best_cpu
    r["batch_n"] = len(Q)
    out.append(r)
    if len(sys.argv) > 4:  # recall of doppel's exact search against Faiss's
        qp = os.path.join(data, "q100.npy")
        np.save(qp, Q[:100])
        res = json.loads(subprocess.run([sys.argv[3], "search", sys.argv[4], "--vectors", qp,
                                         "-k", str(K), "--json"], capture_output=True,
                                        text=True, check=True).stdout)
        hits = sum(len({x["id"] for x in q["results"]} & set(fi[i].tolist()))
                   for i, q in enumerate(res["queries"]))
        out.append({"system": "recall", "threads": threads,
                    "doppel_vs_faiss_recall_at_10": hits / (100 * K)})
    del index
except ImportError:
    out.append({"system": "faiss", "error": "python3-faiss not installed"})

try:
    from sklearn.neighbors import NearestNeighbors
    import sklearn
    nn = NearestNeighbors(n_neighbors=K, algorithm="brute", n_jobs=threads).fit(X)
    out.append(dict(system="sklearn", threads=threads, version=sklearn.__version__,
                    **lat(lambda q: nn.kneighbors(q[None, :]), 10, warm=1)))
except ImportError:
    out.append({"system": "sklearn", "error": "python3-sklearn not installed"})

for r in out:
    print(json.dumps(r))
