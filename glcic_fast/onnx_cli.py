"""``glcic-fast export-onnx``: write the BN-folded completion network as an ONNX model.

The graph itself comes from ``glcic_fast.onnx_export`` (the one exporter, shared with the
onnxruntime backend and the TensorRT builder); this module resolves the model the user named,
records where it came from in the ONNX metadata, and writes the file atomically.

    glcic-fast export-onnx --model model.safetensors --precision fp16 -o model.onnx

``--precision fp16|bf16`` writes a typed low-precision graph (fp16/bf16 weights and
activations, float32 input, output and sigmoid), which is what TensorRT's strongly typed
builder needs to build an fp16/bf16 engine (``trtexec --onnx=model.onnx --stronglyTyped``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

NAME = "export-onnx"
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


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def resolve_export_model(model: Any = None) -> ExportModel:
    """Folded layers and provenance for a checkpoint path, a ``CompletionNetwork`` or None.

    None means the packaged default model. A list of ``FoldedLayer`` is accepted too (tests,
    benchmarks). Raises ``CheckpointError`` / ``FileNotFoundError`` with a message for the user.
    """
    from .api import resolve_model
    from .checkpoint import PLACES2_MEAN

    if isinstance(model, (list, tuple)) and model and hasattr(model[0], "weight"):
        # Post-activation BatchNorm means a GLCIC-PyTorch model, which fills holes with the mean.
        fill = "mean" if any(getattr(layer, "post_scale", None) is not None for layer in model) else "subtract-mean"
        return ExportModel(list(model), tuple(PLACES2_MEAN), fill, "in-memory folded layers", None)
    layers, mean, fill, meta = resolve_model(model)
    if model is None or isinstance(model, (str, os.PathLike)):
        from .api import DEFAULT_MODEL

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
    from .checkpoint import atomic_write_bytes
    from .onnx_export import build_onnx_model

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if plugins not in PLUGIN_CHOICES:
        raise ValueError(f"plugins must be one of {', '.join(PLUGIN_CHOICES)}, got {plugins!r}")
    resolved = resolve_export_model(model)
    onnx_model = build_onnx_model(resolved.layers, precision, onnx_metadata(resolved))
    if plugins == "triton":
        from .kernels import trt_plugins

        numbers = trt_plugins.plugin_layer_numbers(resolved.layers, plugin_layers)
        onnx_model = trt_plugins.replace_convs_with_plugins(onnx_model, numbers)
    data = onnx_model.SerializeToString()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write_bytes(output, write)
    return resolved


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="export the completion network to ONNX (for onnxruntime, TensorRT, other runtimes)",
        description=(
            "Write the BatchNorm-folded completion network as an ONNX model (opset 17): input 'input' "
            "float32 (batch, 4, height, width), output 'output' float32 (batch, 3, height, width), batch / "
            "height / width dynamic (height and width must be multiples of 4 when you run it). "
            "--precision fp16/bf16 stores weights and activations in that type (I/O stay float32), as "
            "TensorRT's strongly typed builder needs for an fp16/bf16 engine."
        ),
        epilog="example:\n  glcic-fast export-onnx --model model.safetensors --precision fp16 -o model.onnx",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="graph precision (default fp32)")
    p.add_argument("--plugins", default="none", choices=PLUGIN_CHOICES,
                   help="'triton': write the 3x3 layers as glcic::conv2d_nhwc TensorRT plugin nodes "
                   "(for trtexec with libglcic_trt_plugin.so; not runnable by onnxruntime)")
    p.add_argument("--plugin-layers", default="dilated", choices=("dilated", "h4"),
                   help="with --plugins triton: 'dilated' (layers 7-10, default) or 'h4' (5-12)")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.set_defaults(func=run)


def _error(message: str, code: int) -> int:
    print(f"glcic-fast {NAME}: error: {message}", file=sys.stderr)
    return code


def run(args) -> int:
    from .checkpoint import CheckpointError

    out = Path(args.output)
    if out.is_dir():
        return _error(f"{out} is a folder; give the ONNX file to write (e.g. {out / 'model.onnx'})", 2)
    if args.model is not None and not Path(args.model).is_file():
        return _error(f"{args.model}: no such checkpoint file", 2)
    try:
        resolved = export(args.model, out, args.precision, args.plugins, args.plugin_layers)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        return _error(str(e), 2)
    except ImportError as e:  # --plugins triton without Triton
        return _error(f"--plugins triton needs Triton (pip install triton): {e}", 1)
    print(f"wrote {out} ({args.precision}, {len(resolved.layers)} layers, model: {resolved.source})")
    return 0
