"""Network inputs made from real photos with holes drawn as in use: int8 calibration and the
accuracy gate's held-out set.

A sample is a square crop of a photo (the photo first scaled so its short side is random in
[size, 1.5 size], as in training) with the paper's hole scaled to the crop: one rectangle with
sides in [3/8, 1/2] of the crop inside a local region of 1/2 of it (96-128 px holes in a
128 px region at 256, 24-32 px in 32 px at 64: what the packaged model was trained and is
evaluated on). Everything is a pure function of (folder, sizes, seed), so a calibration or a
gate run is the same on every machine.

The packaged photos (``data/photos``) are two disjoint sets: ``calibration`` for quantization,
``heldout`` for the gate (see data/photos/README.md). Calibration never reads ``heldout``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .layers import PLACES2_MEAN
from .preprocess import network_input

PHOTOS = Path(__file__).parent / "data" / "photos"
CALIBRATION_PHOTOS = PHOTOS / "calibration"
HELDOUT_PHOTOS = PHOTOS / "heldout"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class InputConvention:
    """How a model's input is made (mean pixel, hole fill) and the image size it was trained at."""

    mean: tuple[float, ...] = tuple(PLACES2_MEAN)
    fill: str = "subtract-mean"
    trained_size: int = 256

    @classmethod
    def from_metadata(cls, mean: Sequence[float], fill: str, metadata: dict) -> "InputConvention":
        size = metadata.get("image_size")
        return cls(tuple(float(m) for m in mean), fill, int(size) if isinstance(size, (int, float)) and size >= 16 else 256)


@dataclass
class Sample:
    rgb: np.ndarray  # (S, S, 3) float32 in [0, 1]: the ground truth
    hole: np.ndarray  # (S, S) bool
    x: np.ndarray = field(repr=False)  # (1, 4, S, S) float32 network input


def photo_files(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no .jpg/.png photos found")
    return files


def paper_hole(rng: np.random.Generator, size: int) -> np.ndarray:
    """The paper's rectangular hole scaled to a ``size`` crop, as a bool mask."""
    region = max(2, size // 2)
    lo, hi = max(1, (3 * size) // 8), region
    top, left = (int(v) for v in rng.integers(0, size - region + 1, 2))
    h, w = (int(v) for v in rng.integers(lo, hi + 1, 2))
    y = top + int(rng.integers(0, region - h + 1))
    x = left + int(rng.integers(0, region - w + 1))
    hole = np.zeros((size, size), bool)
    hole[y : y + h, x : x + w] = True
    return hole


def photo_samples(
    folder: str | os.PathLike, sizes: Sequence[int], per_photo: int, convention: InputConvention, seed: int = 0
) -> list[Sample]:
    """``per_photo`` crops of every photo in ``folder``, cycling through ``sizes``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    samples = []
    for path in photo_files(folder):
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        for k in range(per_photo):
            s = int(sizes[k % len(sizes)])
            short = int(rng.integers(s, (3 * s) // 2 + 1))
            f = short / min(photo.size)
            scaled = photo.resize((max(s, round(photo.width * f)), max(s, round(photo.height * f))), Image.BILINEAR)
            x0 = int(rng.integers(0, scaled.width - s + 1))
            y0 = int(rng.integers(0, scaled.height - s + 1))
            rgb = np.asarray(scaled.crop((x0, y0, x0 + s, y0 + s)), np.float32) / 255.0
            hole = paper_hole(rng, s)
            x = network_input(rgb, hole, convention.mean, convention.fill, (s, s))[None]
            samples.append(Sample(rgb, hole, x))
    return samples


def calibration_sizes(convention: InputConvention) -> list[int]:
    """Crop sizes to calibrate at: the trained size, twice it and 256 (the benchmark size)."""
    t = convention.trained_size
    return sorted({t, min(2 * t, 512), 256})


__all__ = [
    "CALIBRATION_PHOTOS", "HELDOUT_PHOTOS", "InputConvention", "Sample", "calibration_sizes", "paper_hole", "photo_files",
    "photo_samples",
]
