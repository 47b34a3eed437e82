"""ONNX files of the completion network (``glcic-fast export-onnx``), with their provenance.

The graph itself comes from ``glcic_fast.onnx_graph`` (the one graph builder, shared with the
onnxruntime backend and the TensorRT builder); this module resolves the model the user named,
records where it came from in the ONNX metadata, and writes the file atomically.

    export("model.safetensors", "model.onnx", precision="fp16")

``--precision fp16|bf16`` writes a typed low-precision graph (fp16/bf16 weights and
activations, float32 input, output and sigmoid), which is what TensorRT's strongly typed
builder needs to build an fp16/bf16 engine (``trtexec --onnx=model.onnx --stronglyTyped``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..atomic import atomic_write_data
from ..layers import PLACES2_MEAN
from ..onnx_graph import build_onnx_model
from ..resolve import DEFAULT_MODEL, file_sha256, resolve_model

PRECISIONS = ("fp32", "fp16", "bf16")
PLUGIN_CHOICES = ("none", "triton")


@dataclass
class ExportModel:
    """A model ready to export: folded layers plus what identifies and describes it."""

    layers: Sequence[Any]  # FoldedLayer list
    mean: tuple[float, ...]
    input_fill: str
    source: str  # a path, or a description for in-memory models
    sha256: Optional[str]  # of the checkpoint file (None for an in-memory network)
    checkpoint_metadata: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """JSON-able description carried into the ONNX metadata and the engine sidecar."""
        meta = dict(self.checkpoint_metadata)
        meta.update(mean=list(self.mean), input_fill=self.input_fill)
        return meta


def resolve_export_model(model: Any = None) -> ExportModel:
    """Folded layers and provenance for a checkpoint path, a ``CompletionNetwork`` or None.

    None means the packaged default model. A list of ``FoldedLayer`` is accepted too (tests,
    benchmarks). Raises ``CheckpointError`` / ``FileNotFoundError`` with a message for the user.
    """
    if isinstance(model, (list, tuple)) and model and hasattr(model[0], "weight"):
        # Post-activation BatchNorm means a GLCIC-PyTorch model, which fills holes with the mean.
        fill = "mean" if any(getattr(layer, "post_scale", None) is not None for layer in model) else "subtract-mean"
        return ExportModel(list(model), tuple(PLACES2_MEAN), fill, "in-memory folded layers", None)
    layers, mean, fill, meta = resolve_model(model)
    if model is None or isinstance(model, (str, os.PathLike)):
        path = Path(DEFAULT_MODEL if model is None else model)
        return ExportModel(layers, tuple(mean), fill, str(path), file_sha256(path), dict(meta))
    return ExportModel(layers, tuple(mean), fill, meta.get("source", type(model).__name__), None, dict(meta))


def onnx_metadata(model: ExportModel) -> dict[str, str]:
    """ONNX ``metadata_props`` (string values; JSON where not a plain string)."""
    props = {"source": model.source, "glcic_fast_mean": json.dumps(list(model.mean)), "glcic_fast_input_fill": model.input_fill}
    if model.sha256:
        props["source_sha256"] = model.sha256
    for key in ("layer_order", "model_kind", "format_version"):
        if key in model.checkpoint_metadata:
            props[f"checkpoint_{key}"] = json.dumps(model.checkpoint_metadata[key])
    return props


def export(
    model: Any, output: str | os.PathLike, precision: str = "fp32", plugins: str = "none", plugin_layers: str = "dilated"
) -> ExportModel:
    """Export ``model`` (see ``resolve_export_model``) to ``output``; returns what was exported.

    plugins="triton" writes the graph ``build-engine --plugins triton`` builds: the chosen 3x3
    layers as ``glcic::conv2d_nhwc`` plugin nodes (for trtexec with the C++ plugin library;
    onnxruntime cannot run it).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if plugins not in PLUGIN_CHOICES:
        raise ValueError(f"plugins must be one of {', '.join(PLUGIN_CHOICES)}, got {plugins!r}")
    resolved = resolve_export_model(model)
    onnx_model = build_onnx_model(resolved.layers, precision, onnx_metadata(resolved))
    if plugins == "triton":
        from ..kernels import trt_plugins  # needs triton: imported only for plugin graphs

        numbers = trt_plugins.plugin_layer_numbers(resolved.layers, plugin_layers)
        onnx_model = trt_plugins.replace_convs_with_plugins(onnx_model, numbers)
    atomic_write_data(output, onnx_model.SerializeToString())
    return resolved
