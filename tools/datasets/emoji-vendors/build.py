"""Build emoji-vendors: every emoji in emoji-datasource's emoji.json as drawn
by each vendor that has it, flattened onto white, in ROOT/<subcategory>/.

Called by tools/datasets/build.sh, which fetches the packages into CACHE
(CACHE/<vendor>/package/img/<vendor>/64/*.png and
CACHE/openmoji/package/color/svg/*.svg). Writes ROOT/manifest.tsv:
path, class, instance, source -- sorted by emoji order, then vendor.

OpenMoji names files by its own hexcode, which drops the FE0F variation
selector in places where emoji-datasource keeps it, so the lookup tries
the fully-qualified sequence, then without FE0F, then the non-qualified
one. An emoji is kept only when at least two vendors draw it (an instance
with one rendering can never be found by instance recall).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

VENDORS = ["apple", "google", "twitter", "facebook"]
SIZE = 64


def slug(s):
    s = s.lower().replace("&", "and")
    return re.sub(r"[^a-z0-9+]+", "-", s).strip("-")


def flatten(src, dst):
    """RGBA -> RGB on white, so every decoder sees the same pixels."""
    with Image.open(src) as im:
        im = im.convert("RGBA")
        if im.size != (SIZE, SIZE):
            im = im.resize((SIZE, SIZE), Image.LANCZOS)
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        Image.alpha_composite(bg, im).convert("RGB").save(dst, optimize=False)


def render_svg(svg, dst):
    with tempfile.NamedTemporaryFile(suffix=".png", dir=os.path.dirname(dst)) as t:
        subprocess.run(["rsvg-convert", "-w", str(SIZE), "-h", str(SIZE), "-b", "white",
                        "-o", t.name, svg], check=True)
        flatten(t.name, dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--openmoji-version", required=True)
    a = ap.parse_args()

    with open(os.path.join(a.cache, "google", "package", "emoji.json"), encoding="utf-8") as f:
        emoji = json.load(f)
    emoji = sorted((e for e in emoji if e["category"] != "Component"),
                   key=lambda e: e["sort_order"])
    svgdir = os.path.join(a.cache, "openmoji", "package", "color", "svg")
    svgs = set(os.listdir(svgdir))

    jobs = []  # (kind, src, relpath, class, instance, source)
    for e in emoji:
        cls = slug(e["subcategory"])
        inst = e["unified"]
        name = slug(e["short_name"])
        renders = []
        for v in VENDORS:
            src = os.path.join(a.cache, v, "package", "img", v, str(SIZE), e["image"])
            if e.get("has_img_" + v) and os.path.isfile(src):
                renders.append(("png", src, v, "emoji-datasource-%s@%s" % (v, a.version)))
        cands = [e["unified"], e["unified"].replace("-FE0F", ""), e.get("non_qualified") or ""]
        for c in cands:
            if c and c + ".svg" in svgs:
                renders.append(("svg", os.path.join(svgdir, c + ".svg"), "openmoji",
                                "openmoji@%s" % a.openmoji_version))
                break
        if len(renders) < 2:
            continue
        for kind, src, v, source in renders:
            rel = "%s/%s-%s.png" % (cls, name, v)
            jobs.append((kind, src, rel, cls, inst, source))

    for d in sorted({j[3] for j in jobs}):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)

    def run(j):
        kind, src, rel = j[0], j[1], j[2]
        dst = os.path.join(a.out, rel)
        try:
            if kind == "png":
                flatten(src, dst)
            else:
                render_svg(src, dst)
        except Exception as ex:  # name the file; the whole build fails
            raise RuntimeError("%s: %s" % (src, ex)) from ex

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, jobs))

    with open(os.path.join(a.out, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("path\tclass\tinstance\tsource\n")
        for j in jobs:
            f.write("%s\t%s\t%s\t%s\n" % (j[2], j[3], j[4], j[5]))
    per_vendor = {}
    for j in jobs:
        v = j[5].split("@")[0]
        per_vendor[v] = per_vendor.get(v, 0) + 1
    print("emoji-vendors: %d images of %d emoji in %d classes; %s" % (
        len(jobs), len({j[4] for j in jobs}), len({j[3] for j in jobs}),
        ", ".join("%s %d" % kv for kv in sorted(per_vendor.items()))), file=sys.stderr)


if __name__ == "__main__":
    main()
