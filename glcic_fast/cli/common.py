"""What several commands share: the usage error, the model/backend options, image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from ..atomic import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class UsageError(Exception):
    """Bad command-line input: reported as ``glcic-fast CMD: error: ...``, exit status 2."""


def error(command: str, message: str, code: int = 2) -> int:
    """Print ``glcic-fast COMMAND: error: MESSAGE`` and return the exit status."""
    print(f"glcic-fast {command}: error: {message}", file=sys.stderr)
    return code


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (.safetensors) or TensorRT engine (.plan); default: the packaged model")
    p.add_argument(
        "--backend", default="auto",
        help="auto (default: triton/torch on a GPU; on a CPU the runtime of the precision picked), torch, "
        "onnxruntime, openvino, triton, tensorrt",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--precision", default="auto",
                   help="auto (fp16 on a GPU; on a CPU the fastest of int8/bf16/fp32 that passes the accuracy gate "
                   "here, checked once and cached: see glcic-fast info), fp32 (exact), fp16, bf16 or int8")


def write_image_atomic(path: Path, pixels) -> None:
    """Save an RGB uint8 array; a failure leaves no partial file."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    kind = fmt[path.suffix.lower()]
    options = {"quality": 95} if kind in ("JPEG", "WEBP") else {}
    atomic_write_bytes(path, lambda tmp: Image.fromarray(pixels).save(tmp, format=kind, **options))
