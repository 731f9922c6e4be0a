#!/usr/bin/python3
"""Write a copy of an ONNX model whose graph outputs include intermediate tensors.

Usage: onnx_outputs.py IN.onnx OUT.onnx TENSOR... [--only]

Runtimes such as ONNX Runtime only return graph outputs, so reading the
embedding node (e.g. `mixed6`) from them needs this variant. With --only the
outputs are exactly TENSOR... and the graph is pruned to what they need,
which is the graph doppel runs when asked for those tensors.
"""

import argparse
import sys

import onnx
from onnx import helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("tensors", nargs="+")
    ap.add_argument("--only", action="store_true", help="drop the original outputs and prune")
    a = ap.parse_args()

    m = onnx.load(a.input)
    g = m.graph
    infos = {vi.name: vi for vi in list(g.value_info) + list(g.output)}
    produced = {o for n in g.node for o in n.output}
    new = []
    for t in a.tensors:
        if t not in produced:
            sys.exit(f"onnx_outputs: {a.input}: no node produces tensor {t!r}")
        vi = infos.get(t) or helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
        new.append(vi)
    if a.only:
        del g.output[:]
        g.output.extend(new)
        # Prune: keep the nodes the outputs depend on.
        need = set(a.tensors)
        keep = []
        for n in reversed(g.node):
            if any(o in need for o in n.output):
                keep.append(n)
                need.update(n.input)
        keep.reverse()
        del g.node[:]
        g.node.extend(keep)
        inits = [t for t in g.initializer if t.name in need]
        del g.initializer[:]
        g.initializer.extend(inits)
        vis = [v for v in g.value_info if v.name in need]
        del g.value_info[:]
        g.value_info.extend(vis)
    else:
        have = {o.name for o in g.output}
        g.output.extend(v for v in new if v.name not in have)
    onnx.checker.check_model(m)
    onnx.save(m, a.output)


if __name__ == "__main__":
    main()
