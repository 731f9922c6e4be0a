#!/usr/bin/python3
"""Exact search checked against an independent brute force in numpy.

Builds indexes with `doppel index --vectors`, queries them with
`doppel search --vectors --json` (few queries: the SIMD scan; many: the BLAS
GEMM path) and `@ID` queries, and compares every rank with numpy (float64,
argsort) for each metric. Near-ties may swap places, so each rank's distance
must match numpy's at that rank and each returned id's own distance must match
what doppel reported. Also: .fvecs input, names/labels, the corrupted-file
path of `doppel check`.

usage: oracle.py /path/to/doppel
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

DOPPEL = sys.argv[1]
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def run(*args, ok=True):
    p = subprocess.run([DOPPEL, *map(str, args)], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise SystemExit(f"doppel {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def brute(x, q, metric):
    x = x.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "l2":
        return ((x[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    if metric == "ip":
        return -(q @ x.T)
    if metric == "cosine":
        return 1 - (q @ x.T) / np.linalg.norm(q, axis=1)[:, None]
    if metric == "l1":
        return np.abs(x[None, :, :] - q[:, None, :]).sum(-1)
    raise ValueError(metric)


def compare(tag, x, q, metric, got, k, exclude=None):
    d = brute(x, q, metric)
    if exclude is not None:
        for i, e in enumerate(exclude):
            if e is not None:
                d[i, e] = np.inf
    order = np.argsort(d, axis=1, kind="stable")
    for i, res in enumerate(got["queries"]):
        res = res["results"]
        want = min(k, int(np.isfinite(d[i]).sum()))
        if len(res) != want:
            fail(f"{tag} q{i}: {len(res)} results, expected {want}")
            continue
        ids = [r["id"] for r in res]
        if len(set(ids)) != len(ids):
            fail(f"{tag} q{i}: duplicate ids {ids}")
        for r, item in enumerate(res):
            ref = d[i, order[i, r]]
            own = d[i, item["id"]]
            tol = 3e-5 * (1 + abs(ref))
            if abs(item["distance"] - ref) > tol or abs(own - item["distance"]) > tol:
                fail(f"{tag} q{i} rank {r + 1}: doppel id {item['id']} dist {item['distance']:.7f} "
                     f"(true {own:.7f}), numpy id {order[i, r]} dist {ref:.7f}")
                break
        # Outside near-ties the id sets are identical.
        kth = d[i, order[i, want - 1]]
        sure = set(order[i, :want][d[i, order[i, :want]] < kth - 1e-4].tolist())
        if not sure <= set(ids):
            fail(f"{tag} q{i}: missing clear neighbours {sorted(sure - set(ids))}")


def main():
    rng = np.random.default_rng(20240611)
    tmp = tempfile.mkdtemp(prefix="dp_oracle_")
    cases = [
        # n, dim, metric, raw
        (5000, 100, "l2", False),
        (3000, 37, "l2", True),
        (3000, 64, "ip", True),
        (2000, 48, "cosine", False),
        (2000, 19, "l1", True),
    ]
    for n, dim, metric, raw in cases:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x[7] = x[3]  # an exact duplicate: a guaranteed tie
        vpath = os.path.join(tmp, f"x_{metric}_{dim}.npy")
        np.save(vpath, x)
        ipath = os.path.join(tmp, f"x_{metric}_{dim}.dpl")
        args = ["index", "--vectors", vpath, "-o", ipath, "--metric", metric, "-q"]
        if raw:
            args.append("--raw")
        run(*args)
        stored = x if raw else x / np.linalg.norm(x, axis=1, keepdims=True)
        for nq, k in ((5, 10), (40, 7), (3, n + 10)):
            q = rng.standard_normal((nq, dim)).astype(np.float32)
            q[0] = x[11]  # a query equal to a stored row
            qpath = os.path.join(tmp, "q.npy")
            np.save(qpath, q)
            got = json.loads(run("search", ipath, "--vectors", qpath, "-k", k, "--json").stdout)
            qs = q if raw else q / np.linalg.norm(q, axis=1, keepdims=True)
            compare(f"{metric} d={dim} nq={nq} k={k}", stored, qs.astype(np.float32), metric, got, k)
        # @ID queries use the stored vector and leave the entry out.
        ids = [0, 3, 11, n - 1]
        got = json.loads(run("search", ipath, *[f"@{i}" for i in ids], "-k", 5, "--json").stdout)
        compare(f"{metric} @ID", stored, stored[ids], metric, got, 5, exclude=ids)
        if metric in ("l2", "cosine"):
            hit3 = [r["id"] for r in got["queries"][1]["results"]]
            if hit3[:1] != [7]:
                fail(f"{metric}: the duplicate of @3 (id 7) should come first, got {hit3}")

    # .fvecs input with names and labels.
    n, dim = 500, 24
    x = rng.standard_normal((n, dim)).astype(np.float32)
    rec = np.empty((n, dim + 1), dtype=np.float32)
    rec[:, 0] = np.frombuffer(np.int32(dim).tobytes(), dtype=np.float32)[0]
    rec[:, 1:] = x
    fpath = os.path.join(tmp, "x.fvecs")
    rec.tofile(fpath)
    names = os.path.join(tmp, "names.txt")
    with open(names, "w") as f:
        for i in range(n):
            f.write(f"cat{i % 4}/img{i}.png\tcat{i % 4}\n")
    ipath = os.path.join(tmp, "fv.dpl")
    run("index", "--vectors", fpath, "--names", names, "-o", ipath, "-q")
    got = json.loads(run("search", ipath, "cat2/img6.png", "-k", 3, "--json").stdout)
    xs = x / np.linalg.norm(x, axis=1, keepdims=True)
    compare("fvecs path query", xs, xs[[6]], "l2", got, 3, exclude=[6])
    for r in got["queries"][0]["results"]:
        i = r["id"]
        if r["path"] != f"cat{i % 4}/img{i}.png" or r["label"] != f"cat{i % 4}":
            fail(f"names: id {i} has path {r['path']} label {r['label']}")
    info = json.loads(run("info", ipath, "--json").stdout)
    if info["count"] != n or info["dim"] != dim or info["metric"] != "l2":
        fail(f"info: {info['count']} {info['dim']} {info['metric']}")

    # A names file with the wrong number of lines is refused.
    with open(names, "a") as f:
        f.write("extra.png\n")
    p = run("index", "--vectors", fpath, "--names", names, "-o", ipath, ok=False)
    if p.returncode == 0 or "lines" not in p.stderr:
        fail(f"names mismatch accepted: {p.stderr}")

    # check: a flipped byte in the vectors is found and named.
    with open(ipath, "rb") as f:
        b = bytearray(f.read())
    sec = [s for s in info["sections"] if s["name"] == "vectors"][0]
    b[sec["offset"] + 100] ^= 0x20
    bad = os.path.join(tmp, "bad.dpl")
    with open(bad, "wb") as f:
        f.write(b)
    if run("check", ipath).returncode != 0:
        fail("check on a good file")
    p = run("check", bad, ok=False)
    if p.returncode != 1 or "checksum mismatch in section 'vectors'" not in p.stderr:
        fail(f"check on a bad file: {p.returncode} {p.stderr}")

    if failures:
        print(f"{failures} failure(s); files in {tmp}")
        return 1
    subprocess.run(["rm", "-rf", tmp])
    print("oracle: doppel search equals numpy brute force on every case")
    return 0


if __name__ == "__main__":
    sys.exit(main())
