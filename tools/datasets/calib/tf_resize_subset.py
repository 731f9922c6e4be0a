# Copy a dataset folder with every image flattened onto white and resized to
# 299x299 the way tf.image.resizeBilinear does it (no antialiasing,
# alignCorners=false, halfPixelCenters=false), saved as PNG, so that
# doppel's own squash to 299x299 is the identity and the CNN sees the
# calibration run's pixels.  usage: tf_resize_subset.py SRC DST
import os, shutil, sys, numpy as np
from PIL import Image
src, dst = sys.argv[1:3]
N = 299
def tf_bilinear(a, n):
    h, w = a.shape[:2]
    ys, xs = np.arange(n) * h / n, np.arange(n) * w / n
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy
rows = [l.rstrip("\n").split("\t") for l in open(src + "/manifest.tsv")]
os.makedirs(dst, exist_ok=True)
shutil.copy(src + "/manifest.tsv", dst + "/manifest.tsv")
for r in rows[1:]:
    a = np.asarray(Image.open(src + "/" + r[0]).convert("RGBA")).astype(np.float64)
    al = a[..., 3:] / 255
    rgb = a[..., :3] * al + 255 * (1 - al)
    out = np.clip(np.rint(tf_bilinear(rgb, N)), 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(dst + "/" + r[0]), exist_ok=True)
    Image.fromarray(out).save(dst + "/" + r[0])
print(len(rows) - 1, "images")
