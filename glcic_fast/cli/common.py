"""What several commands share: the usage error, the model/backend options, image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "F")


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


def write_image_atomic(path: Path, image) -> None:
    """Save a PIL image (or an RGB uint8 array) in the format ``path``'s suffix names; a failure
    leaves no partial file.

    PNG, BMP, TIFF and WebP (written lossless, ``exact``: even invisible pixels' colours kept)
    hold the pixels exactly; JPEG (quality 95) re-compresses them, so it takes RGB or grey and
    other modes are converted for it. A mode a format cannot hold exactly is refused
    (``ValueError``) rather than converted.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    kind = IMAGE_FORMATS[path.suffix.lower()]
    options: dict = {}
    if kind == "JPEG":
        image, options = _for_jpeg(image), {"quality": 95}
    elif kind == "WEBP":
        options = {"lossless": True, "exact": True}
    if image.mode in HIGH_DEPTH_MODES and (kind in ("WEBP", "BMP") or (kind == "PNG" and image.mode == "F")):
        raise ValueError(f"{kind} cannot hold {image.mode} pixels exactly; write "
                         f"{'.tif' if image.mode == 'F' else '.png or .tif'}")
    atomic_write_bytes(path, lambda tmp: image.save(tmp, format=kind, **options))


def _for_jpeg(image):
    """JPEG holds 8-bit RGB or grey: 16-bit and float grey are scaled to 8 bits, the rest made RGB."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in HIGH_DEPTH_MODES:
        grey = np.asarray(image).astype(np.float64)
        scale = 255.0 if image.mode == "F" else 255.0 / 65535.0
        return Image.fromarray(np.clip(np.rint(grey * scale), 0, 255).astype(np.uint8))
    return image.convert("RGB")
