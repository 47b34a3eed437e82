"""ONNX export of the BN-folded completion network, written straight from the folded layer list.

One exporter serves onnxruntime (the CPU backend) and TensorRT's ONNX parser. The graph is:
``input`` float32 (batch, 4, height, width) -> Conv / ConvTranspose + Relu per layer ->
Sigmoid -> ``output`` float32 (batch, 3, height, width), with batch, height and width dynamic.

Precision: TensorRT 11 builds strongly typed networks, taking each layer's precision from the
graph's tensor types, so an fp16 / bf16 engine needs an fp16 / bf16 graph. For those we store
the weights in the low precision, cast the input down after it enters and cast the last conv's
pre-activation back to float32 before the sigmoid (where rounding the logit would cost the
most), so the I/O stays float32 for every precision.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .folding import FoldedLayer

OPSET = 17
# ONNX allows bfloat16 Conv / ConvTranspose only from opset 22 (IR version 10).
OPSET_BF16 = 22
INPUT_NAME = "input"
OUTPUT_NAME = "output"
PRECISIONS = ("fp32", "fp16", "bf16")


def _onnx_dtype(precision: str) -> int:
    from onnx import TensorProto

    return {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[precision]


def _initializer(name: str, array: np.ndarray, precision: str):
    from onnx import helper, numpy_helper

    array = np.ascontiguousarray(array, dtype=np.float32)
    if precision == "fp32":
        return numpy_helper.from_array(array, name)
    if precision == "fp16":
        return numpy_helper.from_array(array.astype(np.float16), name)
    # bfloat16: round-to-nearest-even on the top 16 bits of the float32 pattern
    bits = array.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return helper.make_tensor(name, _onnx_dtype("bf16"), array.shape, rounded.tobytes(), raw=True)


def build_onnx_model(layers: Sequence[FoldedLayer], precision: str = "fp32", metadata: dict | None = None):
    """An ``onnx.ModelProto`` of the folded network (checked with ``onnx.checker``)."""
    import onnx
    from onnx import TensorProto, helper

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    compute = _onnx_dtype(precision)
    nodes, inits = [], []
    x = INPUT_NAME
    if precision != "fp32":
        nodes.append(helper.make_node("Cast", [x], ["input_cast"], to=compute, name="cast_in"))
        x = "input_cast"
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        n = i + 1
        w, b = f"conv{n}.weight", f"conv{n}.bias"
        inits += [_initializer(w, layer.weight.numpy(), precision), _initializer(b, layer.bias.numpy(), precision)]
        k = layer.kernel
        p = layer.padding
        if layer.transposed:
            node = helper.make_node(
                "ConvTranspose", [x, w, b], [f"conv{n}"], name=f"conv{n}",
                kernel_shape=[k, k], strides=[layer.stride] * 2, pads=[p, p, p, p],
            )
        else:
            node = helper.make_node(
                "Conv", [x, w, b], [f"conv{n}"], name=f"conv{n}", kernel_shape=[k, k],
                strides=[layer.stride] * 2, dilations=[layer.dilation] * 2, pads=[p, p, p, p],
            )
        nodes.append(node)
        x = f"conv{n}"
        if layer.activation == "sigmoid":
            if precision != "fp32":
                nodes.append(helper.make_node("Cast", [x], [f"{x}_fp32"], to=TensorProto.FLOAT, name="cast_out"))
                x = f"{x}_fp32"
            out = OUTPUT_NAME if i == last else f"act{n}"
            nodes.append(helper.make_node("Sigmoid", [x], [out], name=f"sigmoid{n}"))
        else:
            out = f"act{n}"
            nodes.append(helper.make_node("Relu", [x], [out], name=f"relu{n}"))
        x = out
        if layer.post_scale is not None and layer.post_shift is not None:
            s, t = f"bn{n}.scale", f"bn{n}.shift"
            shape = (-1, 1, 1)
            inits += [
                _initializer(s, layer.post_scale.numpy().reshape(shape), precision),
                _initializer(t, layer.post_shift.numpy().reshape(shape), precision),
            ]
            nodes += [
                helper.make_node("Mul", [x, s], [f"bn{n}_mul"], name=f"bn{n}_mul"),
                helper.make_node("Add", [f"bn{n}_mul", t], [f"bn{n}"], name=f"bn{n}_add"),
            ]
            x = f"bn{n}"
    if x != OUTPUT_NAME:  # only if the last layer were not the sigmoid
        raise ValueError("the last folded layer must be the sigmoid output layer")
    dims = ["batch", None, "height", "width"]
    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [dims[0], 4, dims[2], dims[3]])
    outp = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [dims[0], 3, dims[2], dims[3]])
    graph = helper.make_graph(nodes, "glcic_completion", [inp], [outp], inits)
    opset = OPSET_BF16 if precision == "bf16" else OPSET
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="glcic-fast")
    # IR 8 (opset 17) is readable by onnxruntime >= 1.10 and every TensorRT we target.
    model.ir_version = 10 if precision == "bf16" else 8
    meta = {"precision": precision, **(metadata or {})}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(model)
    return model


def export_onnx(
    layers: Sequence[FoldedLayer], path: str | os.PathLike, precision: str = "fp32", metadata: dict | None = None
) -> None:
    """Write the ONNX model to ``path`` atomically."""
    from .checkpoint import atomic_write_bytes

    data = build_onnx_model(layers, precision, metadata).SerializeToString()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write_bytes(path, write)
