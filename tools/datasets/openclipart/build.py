"""Build openclipart: Debian's openclipart-png clip art, one class per
category folder that directly holds at least --min images, at most --cap
per class.

Called by tools/datasets/build.sh. Only regular files count: Debian replaces
identical files by symlinks to one copy, and keeping them would put the same
picture under two classes. The cap keeps the images whose SHA-256 of their
path (relative to SRC) is smallest, so it is deterministic without taking
the alphabetically first names (which cluster by author). Files are copied
as they are, except the dozen whose longest side is above --max-side (2048):
those are downscaled with Pillow's Lanczos filter, alpha kept. Some are
10000 x 16000 (the largest 623 megapixels), past any sane decoder limit
and no more informative than 2048 px for a 224 px model. Class names are
the folder path with '/' replaced by '.', e.g. food.fruit. Instances are
empty: each drawing exists once.
"""
import argparse
import hashlib
import os
import shutil
import sys

from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--min", type=int, default=20)
    ap.add_argument("--cap", type=int, default=100)
    ap.add_argument("--max-side", type=int, default=2048)
    a = ap.parse_args()
    Image.MAX_IMAGE_PIXELS = None  # trusted Debian package; we shrink the giants

    groups = {}
    for dirpath, dirnames, filenames in os.walk(a.src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, a.src)
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            if not fn.lower().endswith(".png") or os.path.islink(p) or not os.path.isfile(p):
                continue
            if rel == ".":
                continue  # no category
            groups.setdefault(rel, []).append(fn)

    rows = []
    kept = shrunk = 0
    for rel in sorted(groups):
        files = groups[rel]
        if len(files) < a.min:
            continue
        kept += 1
        key = lambda fn: hashlib.sha256((rel + "/" + fn).encode()).hexdigest()
        pick = sorted(sorted(files, key=key)[: a.cap])
        cls = rel.replace(os.sep, ".")
        os.makedirs(os.path.join(a.out, cls))
        for fn in pick:
            src, dst = os.path.join(a.src, rel, fn), os.path.join(a.out, cls, fn)
            with Image.open(src) as im:
                big = max(im.size) > a.max_side
                if big:
                    s = a.max_side / max(im.size)
                    size = (max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s)))
                    im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info
                                    else "RGB")
                    im.resize(size, Image.LANCZOS).save(dst)
                    shrunk += 1
            if not big:
                shutil.copyfile(src, dst)
            rows.append((cls + "/" + fn, cls, "", "openclipart-png:" + rel + "/" + fn))

    with open(os.path.join(a.out, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("path\tclass\tinstance\tsource\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print("openclipart: %d images in %d classes (of %d folders; >= %d images each, capped at %d);"
          " %d downscaled to %d px" % (len(rows), kept, len(groups), a.min, a.cap, shrunk,
                                        a.max_side), file=sys.stderr)


if __name__ == "__main__":
    main()
