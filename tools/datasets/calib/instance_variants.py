# Emoji instance recall@1 under several definitions, on the 600-image
# sample (--sample 600 --seed 1), self excluded.
import numpy as np
import os
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
d = ROOT + "/out/eval/calib/exp/"
man = {r[0]: r for r in (l.rstrip("\n").split("\t") for l in open(ROOT + "/out/datasets/emoji-vendors/manifest.tsv"))}
sample = set(l.strip() for l in open(ROOT + "/out/eval/emoji-vendors-s600.txt"))
def run(name, restrict):
    X = np.load(d + name + ".npy")
    rows = [l.rstrip("\n").split("\t") for l in open(d + name + ".tsv")]
    keep = [i for i, r in enumerate(rows) if not restrict or r[1] in sample]
    X = X[keep]; paths = [rows[i][1] for i in keep]
    inst = np.array([man[p][2] for p in paths]); cls = np.array([man[p][1] for p in paths])
    vend = np.array([p.rsplit("-", 1)[1] for p in paths])
    D = ((X[:, None] - X[None]) ** 2).sum(-1); np.fill_diagonal(D, np.inf)
    has = np.array([(inst == inst[i]).sum() > 1 for i in range(len(inst))])
    nn = D.argmin(1)
    r_ours = (inst[nn] == inst)[has].mean()
    Dv = D.copy(); Dv[vend[:, None] == vend[None]] = np.inf   # other vendors only
    r_xv = (inst[Dv.argmin(1)] == inst)[has].mean()
    r_all = (inst[nn] == inst).mean()
    top1_noskip = (cls[nn] == cls).mean()
    print("%-22s n=%d partners=%d  R@1 ours %.3f | other vendors only %.3f | over all 600 %.3f | class top-1 without skipping %.3f" % (name, len(paths), has.sum(), r_ours, r_xv, r_all, top1_noskip))
run("em-s600-mixed8", False)
run("em-mnv2", True)
