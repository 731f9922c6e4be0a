#!/usr/bin/python3
"""Convert a TensorFlow.js model (Keras layers-model or graph-model) to ONNX.

Usage: /usr/bin/python3 tools/tfjs2onnx.py MODEL_DIR OUT.onnx [--strip-prefix RE]

MODEL_DIR holds the standard TFJS layout: model.json (topology + weightsManifest)
and the binary weight shards it names. (nsfwjs ships its models as JS bundles;
tools/models/unbundle.cjs turns those back into this layout.)

The output is ONNX opset 13 in NCHW layout throughout, so a CPU engine that
prefers NCHW (oneDNN) runs it without a single Transpose:
  * the input is [N,3,H,W] float32 with a dynamic batch dim "N";
  * conv kernels HWIO -> OIHW, depthwise HWCM -> grouped conv [C*M,1,kh,kw];
  * TF 'same' padding becomes explicit, possibly asymmetric, ONNX pads (the
    extra pixel goes after, as in TF), so no auto_pad is ever emitted;
  * a zero Pad feeding only a Conv is folded into that Conv's pads;
  * channel axes of Concat/BatchNorm/BiasAdd are remapped from NHWC.
Weights quantised to uint8/uint16 (w = min + scale*q, per tensor) or stored
as float16 are dequantised to float32 exactly as tfjs does it (q*scale+min
in double precision, rounded once to float32), so the ONNX model computes
the same function as the TFJS model the weights came from.

Every ONNX tensor is named after the TF layer (Keras) or node (graph model)
that produces it, so intermediate embeddings are addressable, e.g. the output
of Keras layer `mixed6`. When one TF op becomes several ONNX nodes, the last
one carries the TF name and the others get a "/suffix".

Only Debian's python3-onnx (1.12) and python3-numpy are needed.
"""

import argparse
import base64
import json
import math
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VERSION = "1.0"
OPSET = 13


class ConvertError(Exception):
    pass


# ----------------------------------------------------------------------------
# Weights


_QDTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16}


def load_weights(model_dir, manifest):
    """name -> float32/int32 ndarray, dequantised like tfjs-core decodeWeights."""
    out = {}
    for group in manifest:
        chunks = []
        for p in group["paths"]:
            path = os.path.join(model_dir, p)
            try:
                with open(path, "rb") as f:
                    chunks.append(f.read())
            except OSError as e:
                raise ConvertError(f"{path}: cannot read weight shard: {e.strerror}")
        buf = b"".join(chunks)
        off = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], [int(d) for d in w["shape"]], w["dtype"]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qd = _QDTYPES.get(q["dtype"])
                if qd is None:
                    raise ConvertError(f"weight {name}: unknown quantization dtype {q['dtype']}")
                size = n * np.dtype(qd).itemsize
                if off + size > len(buf):
                    raise ConvertError(f"weight {name}: shards too short ({len(buf)} bytes)")
                raw = np.frombuffer(buf, dtype=qd, count=n, offset=off)
                if q["dtype"] == "float16":
                    vals = raw.astype(np.float32)
                else:
                    if "min" not in q or "scale" not in q:
                        raise ConvertError(f"weight {name}: quantization without min/scale")
                    vals = raw.astype(np.float64) * float(q["scale"]) + float(q["min"])
                    vals = vals.astype(np.float32 if dtype == "float32" else np.int32)
            else:
                dt = _DTYPES.get(dtype)
                if dt is None:
                    raise ConvertError(f"weight {name}: unsupported dtype {dtype}")
                size = n * np.dtype(dt).itemsize
                if off + size > len(buf):
                    raise ConvertError(f"weight {name}: shards too short ({len(buf)} bytes)")
                vals = np.frombuffer(buf, dtype=dt, count=n, offset=off)
                if dt == np.float16:
                    vals = vals.astype(np.float32)
            off += size
            out[name] = np.array(vals).reshape(shape)
        if off != len(buf):
            raise ConvertError(
                f"weight group {group['paths']}: manifest covers {off} bytes, shards hold {len(buf)}")
    return out


# ----------------------------------------------------------------------------
# ONNX graph builder with NCHW shape tracking


def same_pads(size, k, s, d):
    """TF 'SAME': output ceil(size/s), the odd padding pixel goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return out, total // 2, total - total // 2


def valid_out(size, k, s, d):
    out = (size - (k - 1) * d - 1) // s + 1
    if out <= 0:
        raise ConvertError(f"window {k} (dilation {d}) larger than input {size}")
    return out


def window(shape, ksize, strides, dilations, padding, explicit=None):
    """Output (H, W) and ONNX pads [t, l, b, r] for a TF window op."""
    hw, pads_b, pads_a = [], [], []
    for i in range(2):
        size, k, s, d = shape[2 + i], ksize[i], strides[i], dilations[i]
        if padding == "SAME":
            o, b, a = same_pads(size, k, s, d)
        elif padding == "VALID":
            o, b, a = valid_out(size, k, s, d), 0, 0
        elif padding == "EXPLICIT":
            b, a = explicit[i]
            o = valid_out(size + b + a, k, s, d)
        else:
            raise ConvertError(f"padding {padding!r} not supported")
        hw.append(o)
        pads_b.append(b)
        pads_a.append(a)
    return hw, pads_b + pads_a


class Builder:
    def __init__(self):
        self.nodes = []
        self.inits = {}
        self.shapes = {}  # tensor -> tuple, None for the dynamic batch
        self.alias = {}  # TF name -> ONNX tensor (Identity, Dropout)
        self.inputs = []
        self.outputs = []

    def t(self, name):
        return self.alias.get(name, name)

    def shape(self, name):
        name = self.t(name)
        if name not in self.shapes:
            raise ConvertError(f"tensor {name}: used before it is produced")
        return self.shapes[name]

    def _fresh(self, name):
        if name in self.shapes or name in self.inits:
            raise ConvertError(f"tensor name {name!r} produced twice")
        return name

    def const(self, name, arr):
        arr = np.ascontiguousarray(arr)
        if name in self.inits:
            if self.inits[name].shape == arr.shape and np.array_equal(self.inits[name], arr):
                return name
            raise ConvertError(f"initializer {name!r} defined twice")
        self._fresh(name)
        self.inits[name] = arr
        self.shapes[name] = tuple(arr.shape)
        return name

    def add_input(self, name, shape):
        self._fresh(name)
        self.shapes[name] = tuple(shape)
        self.inputs.append(name)

    def node(self, op, inputs, output, shape, **attrs):
        self._fresh(output)
        self.nodes.append(helper.make_node(op, [self.t(i) for i in inputs], [output], name=output,
                                           **attrs))
        self.shapes[output] = tuple(shape)
        return output

    # ---- composite ops --------------------------------------------------

    def conv(self, x, w_hwio, bias, out, strides, dilations, padding, depthwise=False,
             explicit=None):
        xs = self.shape(x)
        if len(xs) != 4:
            raise ConvertError(f"{out}: conv input must be 4-D, got {xs}")
        kh, kw, cin, cout = w_hwio.shape
        if depthwise:
            if cin != xs[1]:
                raise ConvertError(f"{out}: depthwise kernel for {cin} channels, input has {xs[1]}")
            w = w_hwio.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw)
            group, cout = cin, cin * cout
        else:
            if cin != xs[1]:
                raise ConvertError(f"{out}: kernel for {cin} input channels, input has {xs[1]}")
            w = w_hwio.transpose(3, 2, 0, 1)
            group = 1
        hw, pads = window(xs, (kh, kw), strides, dilations, padding, explicit)
        ins = [x, self.const(out + "/weights", w.astype(np.float32))]
        if bias is not None:
            ins.append(self.const(out + "/bias", np.asarray(bias, np.float32).reshape(cout)))
        attrs = dict(kernel_shape=[kh, kw], strides=list(strides), dilations=list(dilations),
                     pads=pads)
        if group != 1:
            attrs["group"] = group
        return self.node("Conv", ins, out, (xs[0], cout, hw[0], hw[1]), **attrs)

    def pool(self, op, x, out, ksize, strides, padding):
        xs = self.shape(x)
        hw, pads = window(xs, ksize, strides, (1, 1), padding)
        attrs = dict(kernel_shape=list(ksize), strides=list(strides), pads=pads)
        # TF average pooling divides by the number of real (unpadded) pixels,
        # which is ONNX's count_include_pad=0 (the default, stated anyway).
        if op == "AveragePool":
            attrs["count_include_pad"] = 0
        return self.node(op, [x], out, (xs[0], xs[1], hw[0], hw[1]), **attrs)

    def batchnorm(self, x, out, gamma, beta, mean, var, eps):
        xs = self.shape(x)
        c = xs[1]
        args = []
        for nm, v, default in (("scale", gamma, 1.0), ("bias", beta, 0.0), ("mean", mean, None),
                               ("var", var, None)):
            if v is None:
                v = np.full(c, default, np.float32)
            v = np.asarray(v, np.float32).reshape(-1)
            if v.shape[0] != c:
                raise ConvertError(f"{out}: batchnorm {nm} has {v.shape[0]} values for {c} channels")
            args.append(self.const(f"{out}/{nm}", v))
        return self.node("BatchNormalization", [x] + args, out, xs, epsilon=float(eps))

    def activation(self, kind, x, out, max_value=None, alpha=None):
        xs = self.shape(x)
        if kind in ("linear", None):
            self.alias[out] = self.t(x)
            return self.t(x)
        if kind == "relu" and max_value is None and not alpha:
            return self.node("Relu", [x], out, xs)
        if kind == "relu6" or (kind == "relu" and max_value is not None and not alpha):
            lo = self.const("const/zero", np.array(0.0, np.float32))
            hi = self.const(f"const/{float(max_value or 6.0):g}",
                            np.array(float(max_value or 6.0), np.float32))
            return self.node("Clip", [x, lo, hi], out, xs)
        if kind in ("relu", "leakyrelu") and alpha and max_value is None:
            return self.node("LeakyRelu", [x], out, xs, alpha=float(alpha))
        simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "softplus": "Softplus"}
        if kind in simple:
            return self.node(simple[kind], [x], out, xs)
        if kind == "softmax":
            if len(xs) != 2:
                raise ConvertError(f"{out}: softmax over a {len(xs)}-D tensor not supported")
            return self.node("Softmax", [x], out, xs, axis=1)
        if kind == "hard_sigmoid":
            return self.node("HardSigmoid", [x], out, xs, alpha=0.2, beta=0.5)
        raise ConvertError(f"{out}: activation {kind!r} not supported")

    def dense(self, x, kernel, bias, out):
        xs = self.shape(x)
        if len(xs) != 2 or xs[1] != kernel.shape[0]:
            raise ConvertError(f"{out}: dense kernel {kernel.shape} on input {xs}")
        w = self.const(out + "/weights", np.ascontiguousarray(kernel.T.astype(np.float32)))
        ins = [x, w]
        if bias is not None:
            ins.append(self.const(out + "/bias", np.asarray(bias, np.float32)))
        return self.node("Gemm", ins, out, (xs[0], kernel.shape[1]), transB=1)

    def flatten(self, x, out):
        xs = self.shape(x)
        if len(xs) == 4 and (xs[2] != 1 or xs[3] != 1):
            # TF flattens in NHWC order; go back to it first so the features
            # that follow (Dense weights) see the order they were trained on.
            t = self.node("Transpose", [x], out + "/nhwc", (xs[0], xs[2], xs[3], xs[1]),
                          perm=[0, 2, 3, 1])
            x = t
        flat = int(np.prod(xs[1:]))
        return self.node("Flatten", [x], out, (xs[0], flat), axis=1)

    def pad(self, x, out, hw_pads, value=0.0):
        """hw_pads = [[top, bottom], [left, right]]."""
        xs = self.shape(x)
        (t, b), (l, r) = hw_pads
        pads = self.const(out + "/pads", np.array([0, 0, t, l, 0, 0, b, r], np.int64))
        ins = [x, pads]
        if value:
            ins.append(self.const(out + "/value", np.array(value, np.float32)))
        return self.node("Pad", ins, out, (xs[0], xs[1], xs[2] + t + b, xs[3] + l + r),
                         mode="constant")

    def binary(self, op, a, b, out):
        """Elementwise op with NHWC-style broadcasting of a constant operand."""
        ins = []
        shapes = []
        for v in (a, b):
            v = self.t(v)
            if v in self.inits:
                arr = self.inits[v]
                other = self.shape(b if v == self.t(a) else a)
                if arr.ndim == 1 and len(other) == 4 and arr.shape[0] == other[1] and arr.shape[0] > 1:
                    v = self.const(v + "/nchw", arr.reshape(-1, 1, 1))
            ins.append(v)
            shapes.append(self.shape(v))
        shape = broadcast(shapes[0], shapes[1], out)
        return self.node(op, ins, out, shape)


def broadcast(a, b, where):
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif x is None or y is None:
            out.append(None)
        else:
            raise ConvertError(f"{where}: cannot broadcast {a} with {b}")
    return tuple(out)


def axis_nhwc_to_nchw(axis, rank, where):
    if axis < 0:
        axis += rank
    if rank == 4:
        return {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    if rank == 2 and axis in (0, 1):
        return axis
    raise ConvertError(f"{where}: axis {axis} of a {rank}-D tensor not supported")


# ----------------------------------------------------------------------------
# Keras layers-model


def keras_layers(topology):
    mc = topology.get("model_config", topology)
    cls = mc.get("class_name")
    cfg = mc["config"]
    if cls in ("Model", "Functional"):
        return cfg["layers"], cfg["input_layers"], cfg["output_layers"]
    if cls == "Sequential":
        layers = cfg["layers"] if isinstance(cfg, dict) else cfg
        chained, prev = [], None
        for i, l in enumerate(layers):
            l = dict(l)
            l.setdefault("name", l["config"].get("name", f"layer_{i}"))
            if prev is None:
                shape = l["config"].get("batch_input_shape")
                if l["class_name"] != "InputLayer":
                    if shape is None:
                        raise ConvertError("Sequential model without batch_input_shape")
                    chained.append({"name": "input_1", "class_name": "InputLayer",
                                    "config": {"batch_input_shape": shape}, "inbound_nodes": []})
                    prev = "input_1"
            l["inbound_nodes"] = [[[prev, 0, 0, {}]]] if prev else []
            chained.append(l)
            prev = l["name"]
        return chained, [[chained[0]["name"], 0, 0]], [[prev, 0, 0]]
    raise ConvertError(f"Keras model class {cls!r} not supported")


def convert_keras(model, weights, b):
    layers, input_layers, output_layers = keras_layers(model["modelTopology"])
    by_name = {l["name"]: l for l in layers}
    # Fold ZeroPadding2D into the one Conv that consumes it.
    consumers = {}
    for l in layers:
        for node in l.get("inbound_nodes", []):
            for src in node:
                consumers.setdefault(src[0], []).append(l["name"])
    pending_pad = {}

    def W(layer, key, required=True):
        for k in (f"{layer}/{key}", f"{layer}/{key}:0"):
            if k in weights:
                return weights.pop(k)
        if required:
            raise ConvertError(f"layer {layer}: weight {key} missing from the manifest")
        return None

    for l in layers:
        name, cls, cfg = l["name"], l["class_name"], l["config"]
        inb = l.get("inbound_nodes", [])
        if len(inb) > 1:
            raise ConvertError(f"layer {name}: shared layers (called {len(inb)} times) not supported")
        srcs = [s[0] for s in inb[0]] if inb else []
        for s in (inb[0] if inb else []):
            if s[1] != 0 or s[2] != 0:
                raise ConvertError(f"layer {name}: input {s[:3]} from a shared layer not supported")
        fmt = cfg.get("data_format", "channels_last")
        if fmt != "channels_last":
            raise ConvertError(f"layer {name}: data_format {fmt} not supported")
        x = srcs[0] if srcs else None
        act = cfg.get("activation", "linear")
        pre = name + "/preact" if act not in ("linear", None) else name

        if cls == "InputLayer":
            shp = cfg["batch_input_shape"]
            if len(shp) != 4 or shp[3] != 3:
                raise ConvertError(f"input {name}: expected [N,H,W,3], got {shp}")
            b.add_input(name, (None, 3, shp[1], shp[2]))
        elif cls in ("Conv2D", "DepthwiseConv2D"):
            dw = cls == "DepthwiseConv2D"
            k = W(name, "depthwise_kernel" if dw else "kernel")
            bias = W(name, "bias") if cfg.get("use_bias", True) else None
            padding = cfg["padding"].upper()
            explicit = None
            if x in pending_pad:
                if padding != "VALID":
                    raise ConvertError(f"layer {name}: padded input and padding={padding}")
                x, explicit = pending_pad.pop(x)
                padding = "EXPLICIT"
            b.conv(x, k, bias, pre, cfg["strides"], cfg.get("dilation_rate", [1, 1]), padding,
                   depthwise=dw, explicit=explicit)
            b.activation(act, pre, name)
        elif cls == "ZeroPadding2D":
            p = cfg["padding"]
            if isinstance(p, int):
                p = [[p, p], [p, p]]
            elif isinstance(p[0], int):
                p = [[p[0], p[0]], [p[1], p[1]]]
            users = consumers.get(name, [])
            if len(users) == 1 and by_name[users[0]]["class_name"] in ("Conv2D", "DepthwiseConv2D"):
                pending_pad[name] = (x, p)
            else:
                b.pad(x, name, p)
        elif cls == "BatchNormalization":
            axis = cfg.get("axis", -1)
            axis = axis[0] if isinstance(axis, list) else axis
            rank = len(b.shape(x))
            if axis_nhwc_to_nchw(axis, rank, name) != 1:
                raise ConvertError(f"layer {name}: batchnorm over axis {axis} not supported")
            gamma = W(name, "gamma") if cfg.get("scale", True) else None
            beta = W(name, "beta") if cfg.get("center", True) else None
            b.batchnorm(x, name, gamma, beta, W(name, "moving_mean"), W(name, "moving_variance"),
                        cfg.get("epsilon", 1e-3))
        elif cls == "Activation":
            b.activation(cfg["activation"], x, name)
        elif cls == "ReLU":
            mv = cfg.get("max_value")
            if cfg.get("threshold", 0):
                raise ConvertError(f"layer {name}: ReLU threshold not supported")
            b.activation("relu", x, name, max_value=mv, alpha=cfg.get("negative_slope", 0))
        elif cls == "LeakyReLU":
            b.activation("leakyrelu", x, name, alpha=cfg.get("alpha", 0.3))
        elif cls in ("Add", "Multiply", "Subtract"):
            op = {"Add": "Add", "Multiply": "Mul", "Subtract": "Sub"}[cls]
            acc = srcs[0]
            for i, s in enumerate(srcs[1:]):
                acc = b.binary(op, acc, s, name if i == len(srcs) - 2 else f"{name}/{i}")
        elif cls == "Concatenate":
            rank = len(b.shape(srcs[0]))
            axis = axis_nhwc_to_nchw(cfg.get("axis", -1), rank, name)
            shp = list(b.shape(srcs[0]))
            shp[axis] = sum(b.shape(s)[axis] for s in srcs)
            b.node("Concat", srcs, name, shp, axis=axis)
        elif cls in ("MaxPooling2D", "AveragePooling2D"):
            op = "MaxPool" if cls.startswith("Max") else "AveragePool"
            ks = cfg["pool_size"]
            st = cfg.get("strides") or ks
            b.pool(op, x, name, ks, st, cfg["padding"].upper())
        elif cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            op = "GlobalAveragePool" if "Average" in cls else "GlobalMaxPool"
            xs = b.shape(x)
            if cfg.get("keepdims"):
                b.node(op, [x], name, (xs[0], xs[1], 1, 1))
            else:
                g = b.node(op, [x], name + "/pool", (xs[0], xs[1], 1, 1))
                b.node("Flatten", [g], name, (xs[0], xs[1]), axis=1)
        elif cls == "Flatten":
            b.flatten(x, name)
        elif cls == "Dense":
            k = W(name, "kernel")
            bias = W(name, "bias") if cfg.get("use_bias", True) else None
            b.dense(x, k, bias, pre)
            b.activation(act, pre, name)
        elif cls in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
                     "AlphaDropout"):
            b.alias[name] = b.t(x)
        elif cls == "Softmax":
            b.activation("softmax", x, name)
        else:
            raise ConvertError(f"layer {name}: Keras layer class {cls} not supported")

    if pending_pad:
        raise ConvertError(f"padding layers without a conv consumer: {sorted(pending_pad)}")
    if weights:
        raise ConvertError(f"weights not used by any layer: {sorted(weights)[:5]}...")
    if len(input_layers) != 1:
        raise ConvertError(f"{len(input_layers)} model inputs; only one image input supported")
    return [b.t(o[0]) for o in output_layers]


# ----------------------------------------------------------------------------
# Graph model (GraphDef nodes as JSON)


def attr(node, key, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        return []
    if "type" in a:
        return a["type"]
    if "shape" in a:
        return a["shape"]
    return a


DEFAULT_STRIP = r"^(?:.*StatefulPartitionedCall/)(?:predict/)?"


def convert_graph(model, weights, b, strip):
    nodes = model["modelTopology"]["node"]
    if model["modelTopology"].get("library", {}).get("function"):
        raise ConvertError("graph models with control flow functions are not supported")
    rx = re.compile(strip) if strip else None
    rename = {}
    for n in nodes:
        new = rx.sub("", n["name"]) if rx else n["name"]
        rename[n["name"]] = new or n["name"]
    if len(set(rename.values())) != len(rename):
        rename = {n["name"]: n["name"] for n in nodes}  # prefix strip collides: keep full names

    def src(s):
        s = s.split(":")[0]
        if s.startswith("^"):
            return None  # control dependency
        return rename.get(s, s)

    consts = {}
    for n in nodes:
        if n["op"] == "Const":
            if n["name"] in weights:
                consts[rename[n["name"]]] = weights.pop(n["name"])
            else:
                t = n.get("attr", {}).get("value", {}).get("tensor", {})
                raise ConvertError(f"const {n['name']}: value not in the weights manifest ({t.get('dtype')})")
    consumers = {}
    for n in nodes:
        for i in n.get("input", []):
            s = src(i)
            if s:
                consumers.setdefault(s, []).append(n)
    pending_pad = {}
    outputs = []

    def C(name, where):
        if name not in consts:
            raise ConvertError(f"{where}: input {name} must be a constant")
        return consts[name]

    def const_in(name):
        """Register a TF constant as an ONNX initializer on first use."""
        if name not in b.inits:
            b.const(name, consts[name])
        return name

    for n in nodes:
        op = n["op"]
        name = rename[n["name"]]
        ins = [s for s in (src(i) for i in n.get("input", [])) if s]
        fmt = attr(n, "data_format", "NHWC")
        if fmt not in ("NHWC",):
            raise ConvertError(f"node {name}: data_format {fmt} not supported")
        if op == "Const":
            continue
        if op == "Placeholder":
            dims = [int(d.get("size", -1)) for d in attr(n, "shape", {}).get("dim", [])]
            if len(dims) != 4 or dims[3] != 3:
                raise ConvertError(f"input {name}: expected [N,H,W,3], got {dims}")
            b.add_input(name, (None, 3, dims[1], dims[2]))
        elif op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative",
                    "FusedDepthwiseConv2dNative"):
            dw = "Depthwise" in op
            st, dl = attr(n, "strides"), attr(n, "dilations", [1, 1, 1, 1])
            if st[0] != 1 or st[3] != 1 or dl[0] != 1 or dl[3] != 1:
                raise ConvertError(f"node {name}: strides/dilations over N or C not supported")
            padding = attr(n, "padding")
            explicit = None
            x = ins[0]
            if padding == "EXPLICIT":
                e = attr(n, "explicit_paddings")
                explicit = [e[2:4], e[4:6]]
            if x in pending_pad:
                if padding != "VALID":
                    raise ConvertError(f"node {name}: Pad input and padding={padding}")
                x, explicit = pending_pad.pop(x)
                padding = "EXPLICIT"
            fused = attr(n, "fused_ops", []) if op.startswith(("_Fused", "Fused")) else []
            bias = None
            acts = []
            k = C(ins[1], name)
            cout = k.shape[2] * k.shape[3] if dw else k.shape[3]
            bn = None
            for f in fused:
                if f == "BiasAdd":
                    bias = C(ins[2], name)
                elif f == "FusedBatchNorm":
                    bn = [C(i, name) for i in ins[2:6]]
                elif f in ("Relu", "Relu6", "Elu", "LeakyRelu", "Sigmoid", "Tanh"):
                    acts.append(f)
                else:
                    raise ConvertError(f"node {name}: fused op {f} not supported")
            last = name if not acts else name + "/conv"
            if bn is None:
                b.conv(x, k, bias, last, st[1:3], dl[1:3], padding, depthwise=dw, explicit=explicit)
            else:
                c = b.conv(x, k, None, name + "/conv_nobn", st[1:3], dl[1:3], padding,
                           depthwise=dw, explicit=explicit)
                b.batchnorm(c, last, bn[0], bn[1], bn[2], bn[3], attr(n, "epsilon", 1e-3))
            for i, a in enumerate(acts):
                out = name if i == len(acts) - 1 else f"{name}/{a.lower()}"
                kind = {"Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Sigmoid": "sigmoid",
                        "Tanh": "tanh", "LeakyRelu": "leakyrelu"}[a]
                b.activation(kind, last, out, alpha=attr(n, "leakyrelu_alpha", 0.2)
                             if a == "LeakyRelu" else None)
                last = out
        elif op in ("MatMul", "_FusedMatMul"):
            if attr(n, "transpose_a", False):
                raise ConvertError(f"node {name}: transpose_a not supported")
            k = C(ins[1], name)
            if attr(n, "transpose_b", False):
                k = k.T
            fused = attr(n, "fused_ops", []) if op == "_FusedMatMul" else []
            bias = None
            acts = []
            for f in fused:
                if f == "BiasAdd":
                    bias = C(ins[2], name)
                elif f in ("Relu", "Relu6", "Sigmoid", "Tanh"):
                    acts.append(f.lower())
                else:
                    raise ConvertError(f"node {name}: fused op {f} not supported")
            last = b.dense(ins[0], k, bias, name if not acts else name + "/matmul")
            for i, a in enumerate(acts):
                out = name if i == len(acts) - 1 else f"{name}/{a}"
                last = b.activation(a, last, out)
        elif op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
            g, be, m, v = (C(i, name) for i in ins[1:5])
            b.batchnorm(ins[0], name, g, be, m, v, attr(n, "epsilon", 1e-3))
        elif op == "BiasAdd":
            b.binary("Add", ins[0], const_in(ins[1]), name)
        elif op in ("Add", "AddV2", "Mul", "Sub", "RealDiv", "Maximum", "Minimum"):
            onnx_op = {"Add": "Add", "AddV2": "Add", "Mul": "Mul", "Sub": "Sub", "RealDiv": "Div",
                       "Maximum": "Max", "Minimum": "Min"}[op]
            a0, a1 = (const_in(i) if i in consts else i for i in ins[:2])
            b.binary(onnx_op, a0, a1, name)
        elif op in ("Relu", "Relu6", "Sigmoid", "Tanh", "Elu"):
            b.activation(op.lower(), ins[0], name)
        elif op == "LeakyRelu":
            b.activation("leakyrelu", ins[0], name, alpha=attr(n, "alpha", 0.2))
        elif op == "Softmax":
            b.activation("softmax", ins[0], name)
        elif op in ("MaxPool", "AvgPool"):
            ks, st = attr(n, "ksize"), attr(n, "strides")
            if ks[0] != 1 or ks[3] != 1 or st[0] != 1 or st[3] != 1:
                raise ConvertError(f"node {name}: pooling over N or C not supported")
            b.pool("MaxPool" if op == "MaxPool" else "AveragePool", ins[0], name, ks[1:3],
                   st[1:3], attr(n, "padding"))
        elif op in ("ConcatV2", "Concat"):
            axis_src = ins[-1] if op == "ConcatV2" else ins[0]
            data = ins[:-1] if op == "ConcatV2" else ins[1:]
            rank = len(b.shape(data[0]))
            axis = axis_nhwc_to_nchw(int(C(axis_src, name)), rank, name)
            shp = list(b.shape(data[0]))
            shp[axis] = sum(b.shape(s)[axis] for s in data)
            b.node("Concat", data, name, shp, axis=axis)
        elif op == "Pad" or op == "PadV2":
            p = C(ins[1], name).astype(np.int64)
            if p.shape != (4, 2) or p[0].any() or p[3].any():
                raise ConvertError(f"node {name}: only spatial padding supported, got {p.tolist()}")
            value = float(C(ins[2], name)) if op == "PadV2" else 0.0
            users = consumers.get(name, [])
            if (value == 0.0 and len(users) == 1 and "Conv" in users[0]["op"]
                    and attr(users[0], "padding") == "VALID"):
                pending_pad[name] = (ins[0], p[1:3].tolist())
            else:
                b.pad(ins[0], name, p[1:3].tolist(), value)
        elif op == "Mean":
            axes = sorted(int(a) % 4 for a in np.atleast_1d(C(ins[1], name)))
            if axes != [1, 2]:
                raise ConvertError(f"node {name}: Mean over axes {axes} not supported")
            xs = b.shape(ins[0])
            if attr(n, "keep_dims", False):
                b.node("GlobalAveragePool", [ins[0]], name, (xs[0], xs[1], 1, 1))
            else:
                g = b.node("GlobalAveragePool", [ins[0]], name + "/pool", (xs[0], xs[1], 1, 1))
                b.node("Flatten", [g], name, (xs[0], xs[1]), axis=1)
        elif op == "Squeeze":
            xs = b.shape(ins[0])
            dims = sorted(int(d) % len(xs) for d in attr(n, "squeeze_dims", []))
            if len(xs) == 4 and dims == [1, 2] and xs[2] == 1 and xs[3] == 1:
                b.node("Flatten", [ins[0]], name, (xs[0], xs[1]), axis=1)
            else:
                raise ConvertError(f"node {name}: Squeeze {dims} of {xs} not supported")
        elif op == "Reshape":
            xs = b.shape(ins[0])
            target = [int(v) for v in C(ins[1], name).reshape(-1)]
            flat = int(np.prod(xs[1:]))
            if len(target) == 2 and target[1] in (-1, flat):
                b.flatten(ins[0], name)
            else:
                raise ConvertError(f"node {name}: Reshape {xs} -> {target} not supported")
        elif op in ("Identity", "StopGradient", "NoOp"):
            if ins:
                b.alias[name] = b.t(ins[0])
        else:
            raise ConvertError(f"node {name}: TF op {op} not supported")
        if not consumers.get(name) and op not in ("Const", "NoOp") and b.t(name) not in outputs:
            outputs.append(b.t(name))
    if pending_pad:
        raise ConvertError(f"Pad nodes without a conv consumer: {sorted(pending_pad)}")
    if weights:
        raise ConvertError(f"weights not used by any node: {sorted(weights)[:5]}...")
    return outputs


# ----------------------------------------------------------------------------


def elem_type(arr):
    return {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
            np.dtype(np.int32): TensorProto.INT32}[arr.dtype]


def value_info(b, name):
    shape = ["N" if d is None else int(d) for d in b.shapes[name]]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def load_model_json(model_dir):
    path = os.path.join(model_dir, "model.json")
    try:
        with open(path) as f:
            model = json.load(f)
    except OSError as e:
        raise ConvertError(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}: not JSON: {e}")
    if not isinstance(model, dict) or "modelTopology" not in model or "weightsManifest" not in model:
        raise ConvertError(f"{path}: not a TFJS model (needs modelTopology and weightsManifest)")
    return model


def convert(model_dir, strip=DEFAULT_STRIP, doc=""):
    model = load_model_json(model_dir)
    weights = load_weights(model_dir, model["weightsManifest"])
    b = Builder()
    topo = model["modelTopology"]
    if "node" in topo:
        kind = "graph-model"
        outputs = convert_graph(model, weights, b, strip)
    else:
        kind = "layers-model"
        outputs = convert_keras(model, weights, b)

    used = {i for n in b.nodes for i in n.input}
    inits = [numpy_helper.from_array(v, k) for k, v in b.inits.items() if k in used]
    graph = helper.make_graph(
        b.nodes, os.path.basename(os.path.normpath(model_dir)),
        [value_info(b, i) for i in b.inputs], [value_info(b, o) for o in outputs], inits,
        value_info=[value_info(b, n.output[0]) for n in b.nodes if n.output[0] not in outputs])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="tfjs2onnx", producer_version=VERSION,
                          doc_string=doc or f"converted from a TFJS {kind} by tools/tfjs2onnx.py")
    m.ir_version = 7  # opset 13's IR version; readable by every runtime that reads opset 13
    onnx.checker.check_model(m, full_check=True)
    return m, kind


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="directory with model.json and its weight shards")
    ap.add_argument("output", help="ONNX file to write")
    ap.add_argument("--strip-prefix", default=DEFAULT_STRIP,
                    help="regex removed from graph-model node names (default: TF-Hub wrappers)")
    ap.add_argument("--doc", default="", help="doc_string stored in the model")
    ap.add_argument("--summary", action="store_true", help="print op counts and outputs")
    args = ap.parse_args(argv)
    try:
        m, kind = convert(args.model_dir, args.strip_prefix, args.doc)
    except ConvertError as e:
        print(f"tfjs2onnx: {args.model_dir}: {e}", file=sys.stderr)
        return 1
    except onnx.checker.ValidationError as e:
        print(f"tfjs2onnx: {args.model_dir}: converted model fails onnx.checker: {e}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, IndexError) as e:
        print(f"tfjs2onnx: {args.model_dir}: malformed or unsupported model.json "
              f"({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(m.SerializeToString())
    os.replace(tmp, args.output)
    if args.summary:
        ops = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        print(f"{args.output}: {kind}, {len(m.graph.node)} nodes, "
              f"{sum(int(np.prod(t.dims)) for t in m.graph.initializer)} params")
        print("  ops: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
        print("  outputs: " + ", ".join(o.name for o in m.graph.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
