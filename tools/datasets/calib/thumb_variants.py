# Which 8x8-thumbnail definition reproduces the calibration's 0.36 top-1 on
# the openclipart 600 sample? Variants: resampling (area average vs
# TF.js-style bilinear without antialiasing), alpha (white vs dropped),
# distance (raw l2 vs cosine). Top-1 with self excluded, as doppel eval.
import sys, numpy as np
from PIL import Image
root = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(root + "/manifest.tsv")][1:]
paths, cls = [r[0] for r in rows], np.array([r[1] for r in rows])

def tf_bilinear(a, n):
    # tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false):
    # src = dst * in/out, then 2x2 bilinear; no antialiasing.
    h, w = a.shape[:2]
    ys, xs = np.arange(n) * h / n, np.arange(n) * w / n
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy

def load(p, alpha):
    im = Image.open(root + "/" + p)
    im = im.convert("RGBA")
    a = np.asarray(im).astype(np.float64)
    if alpha == "white":
        al = a[..., 3:] / 255
        rgb = a[..., :3] * al + 255 * (1 - al)
    else:
        rgb = a[..., :3]  # PNG RGBA: colour under transparent pixels as stored
    return rgb

def top1(X, metric):
    if metric == "cos":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    return (cls[D.argmin(1)] == cls).mean()

imgs = {a: [load(p, a) for p in paths] for a in ("white", "dropped")}
for alpha in ("white", "dropped"):
    for rs in ("area", "tf-bilinear"):
        if rs == "area":
            X = np.array([np.asarray(Image.fromarray(r.astype(np.uint8)).resize((8, 8), Image.BOX)).ravel() for r in imgs[alpha]], float) / 255
        else:
            X = np.array([tf_bilinear(r, 8).ravel() for r in imgs[alpha]]) / 255
        for m in ("l2", "cos"):
            print("alpha %-7s resize %-11s %-3s top-1 %.3f" % (alpha, rs, m, top1(X, m)))
