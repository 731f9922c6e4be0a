#!/usr/bin/python3
"""Write models/<name>.json, the sidecar that tells doppel how to use <name>.onnx.

Usage: sidecar.py ONNX JSON [--file NAME.onnx] --name N --node TENSOR --source-node TFNAME
                  --package P --version V --path P --license L [--tarball-sha256 HEX]
                  [--alt TENSOR ...] [--scale S]

The embedding dim and the input size are read from the converted model (the
node's declared channel count), so the sidecar cannot disagree with the file.
"""

import argparse
import hashlib
import json
import os
import sys

import onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tfjs2onnx  # noqa: E402


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("json")
    ap.add_argument("--name", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--source-node", required=True)
    ap.add_argument("--alt", action="append", default=[])
    ap.add_argument("--package", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--license", required=True)
    ap.add_argument("--tarball-sha256", default="")
    ap.add_argument("--file", help="file name to record (default: the ONNX file's)")
    ap.add_argument("--scale", type=float, default=1.0 / 255.0)
    a = ap.parse_args()

    m = onnx.load(a.onnx, load_external_data=False)
    shapes = {vi.name: dims(vi) for vi in list(m.graph.value_info) + list(m.graph.output)}
    inp = m.graph.input[0]
    n, c, h, w = dims(inp)

    def emb(node):
        if node not in shapes:
            sys.exit(f"sidecar: {a.onnx}: no tensor named {node!r}")
        s = shapes[node]
        if len(s) != 4:
            sys.exit(f"sidecar: {a.onnx}: {node} is {len(s)}-D, expected a 4-D feature map")
        return {"node": node, "pool": "avg", "dim": s[1], "shape": s[1:]}

    with open(a.onnx, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    e = emb(a.node)
    e["source_node"] = a.source_node
    if a.alt:
        e["alternatives"] = [emb(x) for x in a.alt]
    doc = {
        "name": a.name,
        "file": a.file or os.path.basename(a.onnx),
        "sha256": sha,
        "input": {"name": inp.name, "width": w, "height": h, "layout": "NCHW", "color": "RGB",
                  "resize": "squash", "scale": a.scale, "mean": [0.0, 0.0, 0.0],
                  "std": [1.0, 1.0, 1.0]},
        "embedding": e,
        "outputs": [{"name": o.name, "shape": dims(o)[1:]} for o in m.graph.output],
        "source": {"package": a.package, "version": a.version, "path": a.path,
                   "license": a.license, "tarball_sha256": a.tarball_sha256},
        "converter": "tools/tfjs2onnx.py",
        "converter_version": tfjs2onnx.VERSION,
    }
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
