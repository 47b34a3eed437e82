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
