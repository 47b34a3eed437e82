"""``glcic-fast export-onnx``: write the completion network as an ONNX model (``glcic_fast.export.onnx``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CheckpointError
from ..export.onnx import PLUGIN_CHOICES, PRECISIONS, export
from .common import error

NAME = "export-onnx"


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
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def run(args) -> int:

    out = Path(args.output)
    if out.is_dir():
        return error(NAME, f"{out} is a folder; give the ONNX file to write (e.g. {out / 'model.onnx'})", 2)
    if args.model is not None and not Path(args.model).is_file():
        return error(NAME, f"{args.model}: no such checkpoint file", 2)
    try:
        resolved = export(args.model, out, args.precision, args.plugins, args.plugin_layers)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        return error(NAME, str(e), 2)
    except ImportError as e:  # --plugins triton without Triton
        return error(NAME, f"--plugins triton needs Triton (pip install triton): {e}", 1)
    print(f"wrote {out} ({args.precision}, {len(resolved.layers)} layers, model: {resolved.source})")
    return 0
