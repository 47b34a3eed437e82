"""The ONNX graph of the BN-folded completion network, built straight from the folded layer list.

One graph builder serves the onnxruntime backend (which builds its graph in memory), the
``export-onnx`` command and TensorRT's ONNX parser (``glcic_fast.export``, which add provenance
and write files). The graph is:
``input`` float32 (batch, 4, height, width) -> Conv / ConvTranspose + Relu per layer ->
Sigmoid -> ``output`` float32 (batch, 3, height, width), with batch, height and width dynamic.

Precision: TensorRT 11 builds strongly typed networks, taking each layer's precision from the
graph's tensor types, so an fp16 / bf16 engine needs an fp16 / bf16 graph. For those we store
the weights in the low precision, cast the input down after it enters and cast the last conv's
pre-activation back to float32 before the sigmoid (where rounding the logit would cost the
most), so the I/O stays float32 for every precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # folding imports torch; building a graph needs only the tensors' .numpy()
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


def subpixel_phase_weight(weight: np.ndarray, py: int, px: int) -> np.ndarray:
    """The 2x2 conv weight (out, in, 2, 2) computing output phase (py, px) of a 4x4, stride-2,
    padding-1 transposed conv with weight (in, out, 4, 4).

    Output row 2a + py receives input rows a - 1 + py + t (t = 0, 1) through kernel row
    3 - py - 2t; the same holds for columns.
    """
    rows = [3 - py - 2 * t for t in (0, 1)]
    cols = [3 - px - 2 * t for t in (0, 1)]
    return np.ascontiguousarray(weight[:, :, rows][:, :, :, cols].transpose(1, 0, 2, 3))


def _subpixel_transposed(n: int, x: str, layer: FoldedLayer, precision: str, nodes: list, inits: list):
    """A 4x4 stride-2 transposed conv as four 2x2 convs (one per output phase) interleaved by
    DepthToSpace: the same arithmetic as plain convolutions, which CPU runtimes run in their
    fast blocked kernels (onnxruntime's CPU ConvTranspose is about 2.5x slower per FLOP).
    Returns (output name, whether the activation was applied)."""
    from onnx import helper

    if (layer.kernel, layer.stride, layer.padding) != (4, 2, 1):
        raise ValueError("sub-pixel export handles only 4x4, stride-2, padding-1 transposed convs")
    weight = layer.weight.numpy()
    relu = layer.activation == "relu"
    bias = f"conv{n}.bias"
    inits.append(_initializer(bias, layer.bias.numpy(), precision))
    phases = []
    for py in (0, 1):
        for px in (0, 1):
            w = f"conv{n}.phase{py}{px}.weight"
            inits.append(_initializer(w, subpixel_phase_weight(weight, py, px), precision))
            out = f"conv{n}_phase{py}{px}"
            # pads [top, left, bottom, right]: phase 0 reaches one row/column back, phase 1 one on
            nodes.append(helper.make_node(
                "Conv", [x, w, bias], [out], name=out, kernel_shape=[2, 2], pads=[1 - py, 1 - px, py, px],
            ))
            if relu:  # ReLU commutes with the interleave; applied here it fuses into the conv
                nodes.append(helper.make_node("Relu", [out], [f"{out}_relu"], name=f"relu{n}_phase{py}{px}"))
                out = f"{out}_relu"
            phases.append(out)
    nodes.append(helper.make_node("Concat", phases, [f"conv{n}_phases"], name=f"concat{n}", axis=1))
    # DCR: output (c, 2a + py, 2b + px) = input channel (2 py + px) * C + c
    nodes.append(helper.make_node("DepthToSpace", [f"conv{n}_phases"], [f"act{n}"], name=f"interleave{n}",
                                  blocksize=2, mode="DCR"))
    return f"act{n}", relu


def build_onnx_model(
    layers: Sequence[FoldedLayer],
    precision: str = "fp32",
    metadata: dict | None = None,
    subpixel_transposed: bool = False,
):
    """An ``onnx.ModelProto`` of the folded network (checked with ``onnx.checker``).

    ``subpixel_transposed`` writes each transposed conv as four 2x2 convs + DepthToSpace (what
    the onnxruntime backend runs on a CPU); the default keeps ConvTranspose, which TensorRT
    runs well and which is the plain reading of the layer table.
    """
    import onnx
    from onnx import TensorProto, helper

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    compute = _onnx_dtype(precision)
    nodes: list = []
    inits: list = []
    x = INPUT_NAME
    if precision != "fp32":
        nodes.append(helper.make_node("Cast", [x], ["input_cast"], to=compute, name="cast_in"))
        x = "input_cast"
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        n = i + 1
        activated = False
        if layer.transposed and subpixel_transposed:
            x, activated = _subpixel_transposed(n, x, layer, precision, nodes, inits)
        else:
            w, b = f"conv{n}.weight", f"conv{n}.bias"
            inits += [_initializer(w, layer.weight.numpy(), precision), _initializer(b, layer.bias.numpy(), precision)]
            k, p = layer.kernel, layer.padding
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
        if activated:
            out = x
        elif layer.activation == "sigmoid":
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
