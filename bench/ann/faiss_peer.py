#!/usr/bin/python3
"""Peer: Faiss as Debian packages it (python3-faiss, a generic x86-64 build)
on the same .fvecs data and ground truth as `doppel bench`. HNSWFlat (M=16,
efConstruction=200) with an efSearch sweep and IVFFlat (nlist = 4 sqrt(N))
with an nprobe sweep, IVFPQ (the same nlist and m as doppel's defaults or
as given: argv[6] nlist, argv[7] m; 8-bit codes; kind ivfpq-opq puts
Faiss's OPQMatrix in front) alone and inside IndexRefineFlat (exact rerank
of the top 100, k_factor 10); builds on 2 threads, queries one at a time on
one thread, then all queries as one batch on all cores.

Prints the CSV columns of doppel bench: recall is ann-benchmarks' (a
returned id counts if its exact distance, recomputed in double from the
base rows, is within the k-th true distance + 1e-3; Euclidean, or 1 - cos
when argv[8] is "angular"), recall_ids the strict id overlap, peak_rss_mb
this process's ru_maxrss. Each query goes through Python, which adds a few
microseconds per call.

  faiss_peer.py BASE QUERY GT NAME [kinds [nlist [m [euclidean|angular]]]]"""
import os, resource, sys, time
import numpy as np
import faiss


def fvecs(p):
    a = np.fromfile(p, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def ivecs(p):
    a = np.fromfile(p, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def exact_dist(X, q, ids, angular):
    """ann-benchmarks' distances of q to rows ids of X, in double."""
    v = X[ids].astype(np.float64)
    q = q.astype(np.float64)
    if not angular:
        return np.sqrt(((v - q) ** 2).sum(axis=1))
    nn = np.sqrt((v * v).sum(axis=1) * (q @ q))
    return np.where(nn > 0, 1 - (v @ q) / np.where(nn > 0, nn, 1), 1.0)


def tie_threshold(X, Q, G, k, angular):
    return np.array([exact_dist(X, Q[i], G[i, k - 1:k], angular)[0] for i in range(len(Q))]) + 1e-3


BATCH_THREADS = len(os.sched_getaffinity(0))


def sweep(impl, name, params, index, setp, values, X, Q, G, thr, angular, k, build_s, build_cpu,
          nbytes):
    for v in values:
        faiss.omp_set_num_threads(1)
        setp(v)
        for i in range(min(50, len(Q))):
            index.search(Q[i:i + 1], k)
        lat = np.empty(len(Q))
        res = np.empty((len(Q), k), dtype=np.int64)
        c0, w0 = time.thread_time(), time.perf_counter()
        for i in range(len(Q)):
            t = time.perf_counter()
            _, I = index.search(Q[i:i + 1], k)
            lat[i] = time.perf_counter() - t
            res[i] = I[0]
        ct, wt = time.thread_time() - c0, time.perf_counter() - w0
        # scored outside the timed loop, as the C drivers' scoring is too cheap to matter
        hit = tie = 0
        for i in range(len(Q)):
            ids = res[i][res[i] >= 0]  # Faiss pads short answers with -1
            hit += len(set(ids.tolist()) & set(G[i, :k].tolist()))
            tie += int((exact_dist(X, Q[i], ids, angular) <= thr[i]).sum())
        faiss.omp_set_num_threads(BATCH_THREADS)
        bs = time.perf_counter()
        index.search(Q, k)
        qb = len(Q) / (time.perf_counter() - bs)
        lat.sort()
        print("%s,%s,%s,%s,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%d,%.4f,%.0f,%d,%.1f" % (
            impl, name, params, ("ef=%d" if "hnsw" in impl else "nprobe=%d") % v, tie / (len(Q) * k),
            len(Q) / ct, len(Q) / wt, lat[len(Q) // 2] * 1e6, lat[int(0.99 * (len(Q) - 1))] * 1e6,
            build_s, build_cpu, nbytes, hit / (len(Q) * k), qb, BATCH_THREADS, peak_rss_mb()),
            flush=True)


def main():
    base, query, gt, name = sys.argv[1:5]
    kinds = sys.argv[5].split(",") if len(sys.argv) > 5 else ["hnsw", "ivfflat"]
    angular = len(sys.argv) > 8 and sys.argv[8] == "angular"
    X, Q, G = fvecs(base), fvecs(query), ivecs(gt)
    n, d = X.shape
    k = 10
    if Q.shape[1] != d or len(G) != len(Q) or G.shape[1] < k or G.min() < 0 or G.max() >= n:
        sys.exit("faiss_peer: base %d x %d, queries %d x %d, ground truth %d x %d do not fit" %
                 (n, d, Q.shape[0], Q.shape[1], G.shape[0], G.shape[1]))
    thr = tie_threshold(X, Q, G, k, angular)
    if "hnsw" in kinds:
        faiss.omp_set_num_threads(2)
        ix = faiss.IndexHNSWFlat(d, 16)
        ix.hnsw.efConstruction = 200
        w0, c0 = time.perf_counter(), time.process_time()
        ix.add(X)
        bw, bc = time.perf_counter() - w0, time.process_time() - c0
        nbytes = n * d * 4 + ix.hnsw.neighbors.size() * 4 + ix.hnsw.levels.size() * 4 + ix.hnsw.offsets.size() * 8
        print("faiss hnsw built in %.1f s (%.1f CPU-s)" % (bw, bc), file=sys.stderr)

        def setp(v):
            ix.hnsw.efSearch = v
        sweep("faiss-hnsw", name, "M=16 efc=200", ix, setp, [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512],
              X, Q, G, thr, angular, k, bw, bc, nbytes)
        del ix
    if "ivfflat" in kinds:
        faiss.omp_set_num_threads(2)
        nlist = int(4 * np.sqrt(n))
        q = faiss.IndexFlatL2(d)
        ix = faiss.IndexIVFFlat(q, d, nlist)
        w0, c0 = time.perf_counter(), time.process_time()
        ntrain = min(n, 64 * nlist)
        ix.train(X[np.random.RandomState(42).choice(n, ntrain, replace=False)])
        ix.add(X)
        bw, bc = time.perf_counter() - w0, time.process_time() - c0
        print("faiss ivfflat built in %.1f s (%.1f CPU-s)" % (bw, bc), file=sys.stderr)

        def setp(v):
            ix.nprobe = v
        sweep("faiss-ivfflat", name, "nlist=%d" % nlist, ix, setp, [1, 2, 4, 8, 16, 32, 64, 128],
              X, Q, G, thr, angular, k, bw, bc, n * d * 4 + n * 8 + nlist * d * 4)
    for kind in ("ivfpq", "ivfpq-opq"):
        if kind in kinds:
            ivfpq_peer(kind == "ivfpq-opq", X, Q, G, thr, angular, name, k)


def ivfpq_peer(opq, X, Q, G, thr, angular, name, k):
    """IndexIVFPQ (8-bit codes on residuals) alone and inside IndexRefineFlat;
    with opq, behind faiss.OPQMatrix in an IndexPreTransform (Faiss's own OPQ:
    trained on the raw vectors, d2 = m * ceil(d / m) so m need not divide d)."""
    n, d = X.shape
    faiss.omp_set_num_threads(2)
    # doppel's defaults: nlist = 4 sqrt(N) (at most N/32), m = the divisor of d nearest d/4
    nlist = int(sys.argv[6]) if len(sys.argv) > 6 and int(sys.argv[6]) else \
        max(1, int(min(round(4 * np.sqrt(n)), n / 32)))
    divs = [m for m in range(1, d + 1) if d % m == 0]
    m = int(sys.argv[7]) if len(sys.argv) > 7 and int(sys.argv[7]) else \
        min(divs, key=lambda v: (abs(v - d / 4), -v))
    d2 = m * ((d + m - 1) // m) if opq else d
    q = faiss.IndexFlatL2(d2)
    ivf = faiss.IndexIVFPQ(q, d2, nlist, m, 8)
    ix = ivf
    if opq:
        ix = faiss.IndexPreTransform(faiss.OPQMatrix(d, m, d2), ivf)
    w0, c0 = time.perf_counter(), time.process_time()
    # the same training sample size as doppel (coarse: 40 per cell, at least 65,536)
    ntrain = min(n, max(40 * nlist, 65536))
    ix.train(X[np.random.RandomState(42).choice(n, ntrain, replace=False)])
    ix.add(X)
    bw, bc = time.perf_counter() - w0, time.process_time() - c0
    tag = "faiss-ivfpq-opq" if opq else "faiss-ivfpq"
    print("%s nlist=%d m=%d built in %.1f s (%.1f CPU-s)" % (tag, nlist, m, bw, bc), file=sys.stderr)
    # codes + ids + coarse centroids + PQ codebooks (+ rotation): what doppel counts
    nbytes = n * (m + 8) + nlist * d2 * 4 + m * 256 * (d2 // m) * 4 + (nlist + 1) * 8 + \
        (d2 * d * 4 if opq else 0)
    nps = [1, 2, 4, 8, 16, 32, 64, 128]
    params = "nlist=%d m=%d%s" % (nlist, m, " opq" if opq else "")

    def setp(v):
        ivf.nprobe = v
    sweep(tag, name, params, ix, setp, nps, X, Q, G, thr, angular, k, bw, bc, nbytes)
    rf = faiss.IndexRefineFlat(ix, faiss.swig_ptr(X))
    rf.k_factor = 10
    sweep(tag + "-refine", name, params + " +raw", rf, setp, nps, X, Q, G, thr, angular, k, bw, bc,
          nbytes + n * d * 4)

main()
