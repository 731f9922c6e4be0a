#!/usr/bin/python3
"""Turn bench/search results (JSON lines) into the "Exact search" section of
docs/benchmarks.md, replacing only that section.

usage: summarize.py RESULTS.jsonl docs/benchmarks.md"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
doc = sys.argv[2]


def best(system, threads, key, lower=True):
    vals = [r[key] for r in rows if r.get("system") == system and r.get("threads") == threads
            and key in r]
    if not vals:
        return None
    return min(vals) if lower else max(vals)


def rec(system, threads, key):
    """The whole record of the round with the best value of key."""
    rs = [r for r in rows if r.get("system") == system and r.get("threads") == threads and key in r]
    return min(rs, key=lambda r: r[key]) if rs else None


def f(x, nd=1):
    return "n/a" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


cpu = "unknown CPU"
try:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            cpu = line.split(":", 1)[1].strip()
except OSError:
    pass
isa = "avx2"
flags = open("/proc/cpuinfo").read()
if " avx512f" in flags:
    isa = "avx512"
elif " avx2" not in flags:
    isa = "scalar"
d = rec("doppel", 1, "single_ms")
n, dim = (d["n"], d["dim"]) if d else (1000000, 100)

lines = []
lines.append("## Exact search")
lines.append("")
lines.append(f"{n:,} x {dim} float32 vectors (i.i.d. normal rows, L2-normalised, seed 42), k = 10, "
             f"squared L2. {os.cpu_count()} cores ({cpu}), kernel variant used: {isa}. "
             f"Measured {datetime.date.today().isoformat()} on a machine shared with other jobs: "
             "systems alternate over the rounds and each keeps its best round.")
lines.append("")
lines.append("Reproduce: `bench/search/run.sh build /tmp/doppel-bench-search 2` "
             "(installs python3-faiss and python3-sklearn with apt if missing).")
lines.append("")
lines.append("Single query (median latency in ms over 100 queries for doppel, 50 numpy, "
             "30 Faiss, 10 scikit-learn). The bound is the bytes scanned divided by a "
             "STREAM-like read bandwidth measured in the same process, same threads:")
lines.append("")
lines.append("| threads | read GB/s | bound ms | doppel ms | doppel / bound | numpy+OpenBLAS ms "
             "| Faiss IndexFlatL2 ms | scikit-learn brute ms | vs numpy | vs Faiss |")
lines.append("|---|---|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    dr = rec("doppel", t, "single_ms")
    if not dr:
        continue
    # The bound from the same round's bandwidth, and the best bandwidth seen.
    bw = best("doppel", t, "read_gbs", lower=False)
    bound = dr["bytes"] / (bw * 1e9) * 1e3
    ds = dr["single_ms"]
    npy = best("numpy", t, "single_ms")
    fa = best("faiss", t, "single_ms")
    sk = best("sklearn", t, "single_ms")
    lines.append(f"| {t} | {f(bw, 2)} | {f(bound)} | {f(ds)} | {ratio(ds, bound)} | {f(npy)} | "
                 f"{f(fa)} | {f(sk)} | {ratio(npy, ds)} | {ratio(fa, ds)} |")
lines.append("")
lines.append("Batched: 1,000 queries in one call (queries per second; doppel's GEMM path and "
             "Faiss both call OpenBLAS sgemm, OPENBLAS_NUM_THREADS = threads):")
lines.append("")
lines.append("| threads | doppel q/s | Faiss q/s | doppel / Faiss |")
lines.append("|---|---|---|---|")
for t in (1, 2):
    dq = best("doppel", t, "batch_qps", lower=False)
    fq = best("faiss", t, "batch_qps", lower=False)
    if dq is None:
        continue
    lines.append(f"| {t} | {f(dq)} | {f(fq)} | {ratio(dq, fq)} |")
lines.append("")
rc = [r for r in rows if r.get("system") == "recall"]
if rc:
    lines.append(f"Agreement: doppel's top 10 equal Faiss's for "
                 f"{100 * rc[0]['doppel_vs_faiss_recall_at_10']:.1f} % of ids over 100 queries "
                 "(exact search on both sides; near-ties may swap).")
    lines.append("")
fv = [r.get("version") for r in rows if r.get("system") == "faiss" and r.get("version")]
sv = [r.get("version") for r in rows if r.get("system") == "sklearn" and r.get("version")]
lines.append(f"Peers: Faiss {fv[0] if fv else 'n/a'} (Debian, generic x86-64 build), "
             f"scikit-learn {sv[0] if sv else 'n/a'}, numpy with Debian's OpenBLAS "
             f"({platform.python_version()}). Raw results: `results.jsonl` in the data directory.")
lines.append("")
section = "\n".join(lines)

begin, end = "<!-- exact-search:begin -->", "<!-- exact-search:end -->"
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\n"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(doc, "w").write(text)
print(section)
