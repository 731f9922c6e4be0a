#!/usr/bin/python3
"""The chapter's synthetic set: N x D i.i.d. standard normal float32 rows,
L2-normalised, plus Q queries drawn the same way. Fixed seed.

usage: make_data.py OUT_DIR [N=1000000] [D=100] [Q=1000]"""
import os
import sys

import numpy as np

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
d = int(sys.argv[3]) if len(sys.argv) > 3 else 100
nq = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(42)
for name, rows in (("base", n), ("queries", nq)):
    x = rng.standard_normal((rows, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(os.path.join(out, f"{name}.npy"), x)
print(f"wrote {out}/base.npy ({n}x{d}) and queries.npy ({nq}x{d})")
