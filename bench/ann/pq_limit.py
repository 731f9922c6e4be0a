#!/usr/bin/python3
"""How much recall can any code of B bytes per vector give on a data set?

The IVF-PQ goal of issue 5 asks for recall@10 >= 0.90 on clustered 1M x 100
from codes that fit in 1/10 of the raw f32 size (40 MB: about 36 code bytes
once ids and centroids are paid). This script bounds what any quantiser can
do at a rate, independently of doppel:

1. The same coarse step as IVF-PQ: k-means with NLIST cells, residual
   r = x - centroid.
2. Shannon's rate-distortion bound for a Gaussian source with the residuals'
   covariance (reverse water-filling over its eigenvalues): no code of B
   bytes can have a smaller mean squared error; a Gaussian is the hardest
   source of a given covariance, and this generator's residuals are nearly
   Gaussian.
3. The test channel that reaches the bound (per eigen-axis
   r_hat = beta r + noise, beta = 1 - theta / lambda): the vectors an ideal
   code of B bytes would decode to. Ranking the base by L2 to those (exactly
   what ADC does with PQ codes) gives the recall@10 of an ideal code, with
   ann-benchmarks' tie tolerance (1e-3 on the L2 distance).

Usage (the files `doppel bench --data-dir DIR` writes):
  /usr/bin/python3 bench/ann/pq_limit.py DIR/clustered-1000000-100-s42-q1000-g2 \
      [--bytes 29,32,36,38,44,50] [--nlist 4000] [--queries 300]
Needs numpy (Debian python3-numpy; libopenblas0-pthread for speed).
"""
import argparse
import sys

import numpy as np


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    if a.size == 0:
        sys.exit(f"pq_limit: {path} is empty")
    d = int(a[0])
    if d < 1 or a.size % (d + 1):
        sys.exit(f"pq_limit: {path} is not an .fvecs file")
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = int(a[0]) if a.size else 0
    if d < 1 or a.size % (d + 1):
        sys.exit(f"pq_limit: {path} is not an .ivecs file")
    return a.reshape(-1, d + 1)[:, 1:].copy()


def assign(x, c, bs=32768):
    cn = (c * c).sum(1)
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), bs):
        out[s:s + bs] = (cn[None, :] - 2 * x[s:s + bs] @ c.T).argmin(1)
    return out


def kmeans(x, k, iters, rs):
    c = x[rs.choice(len(x), k, replace=False)].copy()
    for _ in range(iters):
        a = assign(x, c)
        cnt = np.bincount(a, minlength=k)
        for j in range(x.shape[1]):
            s = np.bincount(a, weights=x[:, j], minlength=k)
            c[cnt > 0, j] = s[cnt > 0] / cnt[cnt > 0]
        empty = cnt == 0
        if empty.any():
            c[empty] = x[rs.choice(len(x), int(empty.sum()), replace=False)]
    return c


def top10_recall(X, Q, d10, Xh, k=10):
    """Recall@k of ranking the decoded base Xh by L2, tie-tolerant."""
    best_d, best_i = [], []
    for s in range(0, len(Xh), 100000):
        xb = Xh[s:s + 100000]
        dd = (xb * xb).sum(1)[None, :] - 2 * Q @ xb.T
        idx = np.argpartition(dd, k, axis=1)[:, :k]
        best_d.append(np.take_along_axis(dd, idx, 1))
        best_i.append(idx + s)
    dd, ii = np.concatenate(best_d, 1), np.concatenate(best_i, 1)
    top = np.take_along_axis(ii, np.argsort(dd, 1)[:, :k], 1)
    hit = 0
    for i in range(len(Q)):
        td = np.linalg.norm(X[top[i]] - Q[i], axis=1)
        hit += int((td <= d10[i] + 1e-3).sum())
    return hit / (len(Q) * k)


def water_level(w, bits):
    lo, hi = 1e-14, float(w.max())
    for _ in range(200):
        th = np.sqrt(lo * hi)
        rate = 0.5 * np.log2(np.maximum(w / th, 1)).sum()
        lo, hi = (th, hi) if rate > bits else (lo, th)
    return th


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="PREFIX.base.fvecs, PREFIX.query.fvecs, PREFIX.gt.ivecs")
    ap.add_argument("--bytes", default="29,32,36,38,44,50")
    ap.add_argument("--nlist", type=int, default=4000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    X = fvecs(a.prefix + ".base.fvecs")
    Q = fvecs(a.prefix + ".query.fvecs")[:a.queries]
    G = ivecs(a.prefix + ".gt.ivecs")[:a.queries]
    if Q.shape[1] != X.shape[1] or len(G) != len(Q):
        sys.exit("pq_limit: base, queries and ground truth do not fit together")
    rs = np.random.RandomState(a.seed)
    d10 = np.linalg.norm(X[G[:, 9]] - Q, axis=1)
    n, d = X.shape
    sample = X[rs.choice(n, min(n, 64 * a.nlist), replace=False)]
    C = kmeans(sample, a.nlist, 10, rs)
    cell = assign(X, C)
    R = X - C[cell]
    mu = R.mean(0)
    w, V = np.linalg.eigh(np.cov(R[::max(1, n // 250000)].T, bias=True))
    w = np.maximum(w, 1e-12)
    print(f"{n} x {d}, {a.nlist} cells, {len(Q)} queries; residual variance {w.sum():.4f}")
    print(f"coarse cells alone: recall@10 {top10_recall(X, Q, d10, C[cell]):.4f}")
    print("| code bytes | MSE bound | recall@10 of an ideal code |")
    print("|---|---|---|")
    Z = (R - mu) @ V
    for b in [int(v) for v in a.bytes.split(",")]:
        th = water_level(w, 8 * b)
        beta = np.maximum(1 - th / w, 0)
        Zh = Z * beta + rs.standard_normal(Z.shape) * np.sqrt(beta * th)
        Rh = (Zh @ V.T + mu).astype(np.float32)
        bound = float(np.minimum(w, th).sum())
        print(f"| {b} | {bound:.5f} | {top10_recall(X, Q, d10, C[cell] + Rh):.4f} |", flush=True)


if __name__ == "__main__":
    main()
