"""The demo picture: a photo at the model's working scale with an object-sized hole.

    python -m glcic_fast.train.demo --model M --photo P [--size 256] -o demo.png

The photo is resized so its short side is ``size`` (the model's training size) and
centre-cropped square; the hole is a rectangle drawn like the paper's training holes (sides
96-128 px at 256, i.e. 37-50% of the side: the size of an object in the picture) near the
centre. The picture is input (hole in white) | mask | result, side by side with 4 px gaps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np

GAP = 4


def object_hole(size: int, seed: int = 0) -> np.ndarray:
    """A paper-sized rectangle (37-50% of the side) placed in the middle half of a ``size`` square."""
    rng = np.random.default_rng(seed)
    lo, hi = max(2, round(size * 96 / 256)), max(3, round(size * 128 / 256))
    h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    y = int(rng.integers((size - h) // 4, (size - h) * 3 // 4 + 1))
    x = int(rng.integers((size - w) // 4, (size - w) * 3 // 4 + 1))
    mask = np.zeros((size, size), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


def demo_panel(image: np.ndarray, hole: np.ndarray, result: np.ndarray) -> np.ndarray:
    """input with the hole in white | mask | result, as one uint8 RGB picture."""
    shown = image.copy()
    shown[hole] = 255
    mask = np.repeat((hole * 255).astype(np.uint8)[..., None], 3, axis=2)
    gap = np.full((image.shape[0], GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([shown, gap, mask, gap, result], axis=1)


def make_demo(model: Optional[str], photo: str, size: Optional[int], output: str, seed: int = 0,
              postprocess: bool = False, backend: str = "auto", device: str = "auto") -> Path:
    import glcic_fast

    from ..atomic import atomic_write
    from .data import open_rgb, resize_short_side

    completer = glcic_fast.load(model, backend=backend, device=device)
    size = size or int(completer.metadata.get("image_size", 256))
    img = resize_short_side(open_rgb(photo, size), size)
    x0, y0 = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    image = np.asarray(img.crop((x0, y0, x0 + size, y0 + size)), dtype=np.uint8)
    hole = object_hole(size, seed)
    result = np.asarray(completer.complete(image, hole, postprocess=postprocess))
    from PIL import Image

    panel = demo_panel(image, hole, result)
    return atomic_write(output, lambda tmp: Image.fromarray(panel).save(tmp, format="PNG"))


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m glcic_fast.train.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the packaged model)")
    p.add_argument("--photo", required=True)
    p.add_argument("--size", type=int, default=None, help="working scale (default: the model's training size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--postprocess", action="store_true")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    print(make_demo(a.model, a.photo, a.size, a.output, a.seed, a.postprocess, a.backend, a.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
