"""The paper's hole sampler: one rectangular hole inside a local region.

GLCIC trains with one hole per image whose width and height are each drawn from
[hole_min, hole_max] (the paper: [96, 128]), lying inside a ``local_size`` square (the
paper: 128) that the local discriminator looks at. We first place the local region uniformly
inside the image, then the hole uniformly inside the local region, so the region always
contains the whole hole (and is "centred on the completed area" up to the hole's slack).

Real samples for the discriminator use an independent region ``Md``: a second local box
drawn the same way from a different random stream, so the discriminator cannot tell real
from fake by where the patch sits.

Everything takes a ``numpy.random.Generator`` so callers control seeding (the data pipeline
derives one per sample so that training resumes bit-for-bit).

The seeded hole sets of ``glcic-fast eval`` and of a budgeted run's validation are here too:
``paper`` (the rectangle above, scaled to the image) and ``free-form`` (brush strokes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """A rectangle: top-left (y, x) and size (h, w), in pixels."""

    y: int
    x: int
    h: int
    w: int

    def contains(self, other: "Box") -> bool:
        return (
            self.y <= other.y
            and self.x <= other.x
            and other.y + other.h <= self.y + self.h
            and other.x + other.w <= self.x + self.w
        )


def check_sizes(image_size: int, local_size: int, hole_min: int, hole_max: int) -> None:
    """Raise ``ValueError`` unless hole <= local region <= image."""
    if not 0 < hole_min <= hole_max:
        raise ValueError(f"need 0 < hole_min <= hole_max, got {hole_min}..{hole_max}")
    if hole_max > local_size:
        raise ValueError(f"hole_max {hole_max} does not fit in the local region {local_size}")
    if local_size > image_size:
        raise ValueError(f"local region {local_size} does not fit in the image {image_size}")


def sample_local_box(rng: np.random.Generator, image_size: int, local_size: int) -> Box:
    """A ``local_size`` square placed uniformly inside an ``image_size`` square."""
    y = int(rng.integers(0, image_size - local_size + 1))
    x = int(rng.integers(0, image_size - local_size + 1))
    return Box(y, x, local_size, local_size)


def sample_hole(
    rng: np.random.Generator, image_size: int, local_size: int, hole_min: int, hole_max: int
) -> tuple[np.ndarray, Box, Box]:
    """One training hole: ``(mask, hole box, local box)``.

    ``mask`` is float32 ``(image_size, image_size)``, 1 inside the hole. The hole's height
    and width are independent draws from [hole_min, hole_max] (inclusive), and the hole lies
    inside the local box.
    """
    check_sizes(image_size, local_size, hole_min, hole_max)
    local = sample_local_box(rng, image_size, local_size)
    h = int(rng.integers(hole_min, hole_max + 1))
    w = int(rng.integers(hole_min, hole_max + 1))
    y = local.y + int(rng.integers(0, local_size - h + 1))
    x = local.x + int(rng.integers(0, local_size - w + 1))
    mask = np.zeros((image_size, image_size), dtype=np.float32)
    mask[y : y + h, x : x + w] = 1.0
    return mask, Box(y, x, h, w), local


def sample_training_masks(
    rng: np.random.Generator, image_size: int, local_size: int, hole_min: int, hole_max: int
) -> tuple[np.ndarray, Box, Box]:
    """What one training sample needs: ``(Mc mask, Mc's local box, Md's local box)``.

    ``Mc`` is the hole the completion network fills; ``Md`` is the independent region the
    discriminator sees on the real image. Only Md's local box matters (the real image has no
    hole), so only the box is drawn, from the same distribution as Mc's.
    """
    mask, _, local_c = sample_hole(rng, image_size, local_size, hole_min, hole_max)
    local_d = sample_local_box(rng, image_size, local_size)
    return mask, local_c, local_d


# ---- the seeded hole sets of evaluation and validation -----------------------------------------
HOLE_SETS = ("paper", "free-form")


def default_hole_sizes(image_size: int) -> tuple[int, int, int]:
    """The paper's (local 128, holes 96..128 at 256) scaled to ``image_size``: (local, min, max)."""
    local = max(4, round(image_size * 128 / 256))
    return local, max(1, round(image_size * 96 / 256)), max(1, min(local, round(image_size * 128 / 256)))


def paper_hole(rng: np.random.Generator, size: int, local: int, hole_min: int, hole_max: int) -> np.ndarray:
    mask, _, _ = sample_hole(rng, size, local, hole_min, hole_max)
    return mask > 0


def free_form_hole(rng: np.random.Generator, size: int) -> np.ndarray:
    """1-4 brush strokes: polylines of 2-5 segments, random direction and length, thick round pen."""
    import cv2

    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        y, x = rng.uniform(0, size, 2)
        width = int(rng.integers(max(2, size // 24), max(3, size // 8) + 1))
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(size / 10, size / 3)
            ny = float(np.clip(y + length * np.sin(angle), 0, size - 1))
            nx = float(np.clip(x + length * np.cos(angle), 0, size - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, width)
            y, x = ny, nx
    mask = canvas > 0
    if not mask.any():  # cannot happen with width >= 2, but keep every sample valid
        mask[size // 2, size // 2] = True
    return mask


def make_holes(kind: str, count: int, size: int, local: int, hole_min: int, hole_max: int, seed: int) -> list[np.ndarray]:
    """``count`` seeded masks (bool, size x size); the same arguments give the same holes."""
    tag = HOLE_SETS.index(kind)
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, tag, i])
        out.append(paper_hole(rng, size, local, hole_min, hole_max) if kind == "paper" else free_form_hole(rng, size))
    return out
