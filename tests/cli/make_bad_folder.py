#!/usr/bin/env python3
"""Build a folder of good and bad images for the `doppel index DIR` tests.

Good images are made with the vips CLI (libvips-tools); the bad ones cover
what a real photo folder throws at an indexer: corrupt, truncated, empty,
a text file named .jpg, a decompression bomb, a symlink loop, a dangling
link, a non-UTF-8 file name.  Prints nothing; the caller inspects the tree.
"""
import os, struct, subprocess, sys, zlib

root = sys.argv[1]
os.makedirs(os.path.join(root, "patterns", "deep"), exist_ok=True)
os.makedirs(os.path.join(root, "noise"), exist_ok=True)


def vips(*args):
    subprocess.run(["vips", *args], check=True, stdout=subprocess.DEVNULL)


# Distinct, real images in two labelled folders.
vips("sines", os.path.join(root, "patterns", "sines.png"), "160", "120")
vips("zone", os.path.join(root, "patterns", "zone.jpg"), "128", "128")
vips("eye", os.path.join(root, "patterns", "deep", "eye.png"), "150", "100")
vips("xyz", os.path.join(root, "patterns", "xyz.tif"), "64", "64")
for i in range(4):
    vips("gaussnoise", os.path.join(root, "noise", f"n{i}.png"), "96", "96",
         "--mean", str(60 + 40 * i), "--sigma", "30")
vips("copy", os.path.join(root, "noise", "n0.png"), os.path.join(root, "noise", "n0_copy.jpg"))

# An image without an extension is taken by its signature.
with open(os.path.join(root, "noise", "n1.png"), "rb") as f:
    png = f.read()
with open(os.path.join(root, "noise", "noext"), "wb") as f:
    f.write(png)

bad = os.path.join(root, "bad")
os.makedirs(bad, exist_ok=True)
with open(os.path.join(root, "patterns", "zone.jpg"), "rb") as f:
    jpg = f.read()
open(os.path.join(bad, "empty.png"), "wb").close()
with open(os.path.join(bad, "truncated.jpg"), "wb") as f:
    f.write(jpg[: len(jpg) // 3])
with open(os.path.join(bad, "corrupt.png"), "wb") as f:
    f.write(png[:16] + bytes((b * 7 + 3) & 255 for b in png[16:200]) + png[200:])
with open(os.path.join(bad, "notes.jpg"), "w") as f:
    f.write("this is a text file, not a JPEG\n" * 20)
with open(os.path.join(bad, "readme.txt"), "w") as f:
    f.write("not an image and not named like one: ignored\n")


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


# 20000 x 20000 1-bit PNG whose rows are all zero: about 50 KB on disk,
# 400 megapixels if decoded.
w = h = 20000
raw = zlib.compressobj(9)
row = b"\x00" + b"\x00" * (w // 8)
idat = b"".join(raw.compress(row) for _ in range(h)) + raw.flush()
with open(os.path.join(bad, "bomb.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))

# A symlink loop and a dangling link.
os.symlink("..", os.path.join(root, "patterns", "deep", "loop"))
os.symlink("does-not-exist.jpg", os.path.join(bad, "dangling.jpg"))

# A non-UTF-8 file name holding a good image.
with open(os.path.join(root.encode(), b"noise", b"caf\xe9.png"), "wb") as f:
    f.write(png)
