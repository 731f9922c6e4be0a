#!/usr/bin/env python3
"""kill -9 `doppel index` at random moments; the index must survive each one.

After every kill: `doppel info` opens the index, `doppel check` finds it
intact, every stored vector equals a fresh `doppel embed` of its file, and no
path is stored twice. Every few kills the run is completed and must then hold
exactly the folder's images. The model is `hist` so 20 kills fit in a few
minutes; the commit path under test is the same for every model.

usage: test_kill9.py DOPPEL IMAGE_DIR [--kills 20] [--seed 1] [--model hist]
"""
import argparse, os, random, shutil, signal, subprocess, sys, tempfile, time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("doppel")
ap.add_argument("images")
ap.add_argument("--kills", type=int, default=20)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--model", default="hist")
ap.add_argument("--min-images", type=int, default=2000)
a = ap.parse_args()

IMG_EXT = (".png", ".jpg", ".jpeg")
files = sorted(os.path.relpath(os.path.join(d, f), a.images)
               for d, _, fs in os.walk(a.images) for f in fs if f.lower().endswith(IMG_EXT))
if len(files) < a.min_images:
    sys.exit(f"{a.images}: {len(files)} images, the test needs {a.min_images}")
tmp = tempfile.mkdtemp()
ix = os.path.join(tmp, "k.dpl")
rng = random.Random(a.seed)


def run(*args, **kw):
    return subprocess.run([a.doppel, *args], capture_output=True, text=True, **kw)


def index_cmd():
    return [a.doppel, "index", a.images, "-o", ix, "--model", a.model, "--quiet",
            "--commit-every", "64", "--threads", "2"]


def verify(tag, complete=False):
    r = run("info", ix)
    assert r.returncode == 0, f"{tag}: doppel info failed: {r.stderr}"
    r = run("check", ix)
    assert r.returncode == 0, f"{tag}: doppel check failed: {r.stdout}{r.stderr}"
    out = os.path.join(tmp, "v.npy")
    r = run("export", ix, "-o", out)
    assert r.returncode == 0, f"{tag}: export failed: {r.stderr}"
    stored = np.load(out)
    rows = [l.split("\t") for l in open(out[:-4] + ".tsv", encoding="utf-8").read().splitlines()]
    paths = [r[1] for r in rows]
    assert len(paths) == len(set(paths)), f"{tag}: a path is stored twice"
    assert len(paths) == stored.shape[0]
    if complete:
        assert sorted(paths) == files, f"{tag}: after a full run {len(paths)} of {len(files)} stored"
    if paths:
        fresh_out = os.path.join(tmp, "f.npy")
        lst = [os.path.join(a.images, p) for p in paths]
        r = run("embed", "--model", a.model, "--quiet", "-o", fresh_out, *lst)
        assert r.returncode == 0, f"{tag}: embed failed: {r.stderr}"
        fresh = np.load(fresh_out)
        err = np.abs(fresh - stored).max()
        assert err <= 1e-6, f"{tag}: stored vectors differ from fresh embeddings by {err}"
    return len(paths)


# How long does a whole run take? Kill moments are drawn across it.
t0 = time.time()
subprocess.run(index_cmd(), check=True)
full = time.time() - t0
print(f"full run: {len(files)} images in {full:.1f} s")
verify("full run", complete=True)
os.remove(ix)

for i in range(a.kills):
    if i % 5 == 0 and os.path.exists(ix):
        os.remove(ix)  # start over now and then, so kills land early in a build too
    p = subprocess.Popen(index_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delay = rng.uniform(0.05, full)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    if not os.path.exists(ix):
        print(f"kill {i + 1}: after {delay:.2f} s, before the first commit (no index yet)")
        continue
    n = verify(f"kill {i + 1}")
    print(f"kill {i + 1}: after {delay:.2f} s, {n} images committed and intact")
    if i % 5 == 4:
        r = subprocess.run(index_cmd(), capture_output=True, text=True)
        assert r.returncode in (0, 3), r.stderr
        verify(f"rerun after kill {i + 1}", complete=True)
        print(f"  rerun completed: all {len(files)} images, none twice")

r = subprocess.run(index_cmd(), capture_output=True, text=True)
assert r.returncode in (0, 3), r.stderr
verify("final rerun", complete=True)
print(f"ok: {a.kills} kills, index intact after each, final rerun complete")
shutil.rmtree(tmp)
