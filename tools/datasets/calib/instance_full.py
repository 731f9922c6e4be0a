# Instance recall@1 on the full emoji set: ours, and other vendors only.
import sys, numpy as np
import os
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
d = ROOT + "/out/eval/calib/exp/"
man = {r[0]: r for r in (l.rstrip("\n").split("\t") for l in open(ROOT + "/out/datasets/emoji-vendors/manifest.tsv"))}
name = sys.argv[1]
X = np.load(d + name + ".npy").astype(np.float32)
paths = [l.split("\t")[1] for l in open(d + name + ".tsv")]
inst = np.array([man[p][2] for p in paths]); vend = np.array([p.rsplit("-", 1)[1] for p in paths])
sq = (X * X).sum(1)
hit, hitx = 0, 0
for b in range(0, len(X), 1000):
    D = sq[b:b+1000, None] - 2 * X[b:b+1000] @ X.T + sq[None]
    for i in range(D.shape[0]):
        D[i, b + i] = np.inf
    hit += (inst[D.argmin(1)] == inst[b:b+1000]).sum()
    D[vend[b:b+1000, None] == vend[None]] = np.inf
    hitx += (inst[D.argmin(1)] == inst[b:b+1000]).sum()
print("%s: full set R@1 ours %.3f, other vendors only %.3f (n=%d)" % (name, hit / len(X), hitx / len(X), len(X)))
