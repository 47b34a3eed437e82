"""Which part of an image the network must see to fill a hole, and why that part is enough.

A 12-megapixel photo with a small hole should not cost a 12-megapixel network pass (about
9 GiB and minutes on a CPU). Every output pixel of the completion network depends only on the
input pixels within its receptive field, so the hole's bounding box plus that field's reach on
each side, processed at its own size and pasted back, gives the hole the same values.

The reach, from the layer table (``receptive_reach``): walking the layers back from one
output pixel, a conv with kernel k, dilation d, stride s, padding p maps output indices
[a, b] to input indices [a*s - p, b*s - p + (k-1)*d]; a transposed conv (stride s, padding p,
kernel k) to [ceil((a + p - k + 1) / s), floor((b + p) / s)]. For GLCIC an output pixel at x
reads input columns x - 153 .. x + 150 at most, depending on x's position on the stride grid
(the four dilated convs at quarter resolution give most of it: 2 * (2 + 4 + 8 + 16) * 4 = 240
px of the 303).

Why the window's result is the full image's, and what exactly is guaranteed:

- The network is translation-equivariant only for shifts that are multiples of 4 (two
  stride-2 convs), so windows start at multiples of 4 from the image's corner.
- An intermediate feature outside the window is zero padding in the window's pass but a
  real value in the full pass. Any such position in an output pixel's dependency cone maps
  back to input indices outside the window (the interval walk above never clamps), so a
  window that holds every hole pixel's input interval also holds its whole cone: no padding
  ever reaches a hole pixel.
- Where a window meets the image's edge, the full pass pads the image (reflect, to a multiple
  of 4) and zero-pads its features there too; the window pads the same pixels the same way.

With the windows made of whole 4x4 cells, that takes 152 px before the first hole cell and
148 px after the last (``window_context``). So the hole's network output is the same function
of the same numbers. It is bit-identical
when the backend sums in the same order for both sizes; backends may pick other conv
algorithms for another size, which changes float rounding (about 1e-6 in [0, 1]); after
rounding to 8 bits a pixel can then differ by one level, rarely. ``tests/test_regions.py``
checks it exactly in float64 on a network with the real layer table, and that a window one
step smaller does change the result.

Several holes far apart get several windows: the work is the area the holes need, not the
image's (two holes in opposite corners of a photo would otherwise cost the whole photo).
Holes whose windows would overlap share one window (the bounding box of both), so no pixel
is computed twice and every window's mask is simply the image's mask cut to it: windows never
overlap, and each hole pixel lies in exactly one. When the windows together are as large as
the image, the image is one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .layers import COMPLETION_LAYERS, SIZE_MULTIPLE, ConvSpec


@dataclass(frozen=True)
class Window:
    """Rows ``top:bottom`` and columns ``left:right`` of an image (half-open)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def area(self) -> int:
        return self.height * self.width

    def overlaps(self, other: "Window") -> bool:
        return (self.top < other.bottom and other.top < self.bottom
                and self.left < other.right and other.left < self.right)

    def union(self, other: "Window") -> "Window":
        return Window(min(self.top, other.top), max(self.bottom, other.bottom),
                      min(self.left, other.left), max(self.right, other.right))


def input_interval(lo: int, hi: int, layers: Sequence[ConvSpec] = COMPLETION_LAYERS) -> tuple[int, int]:
    """Input indices (inclusive) that output indices ``lo..hi`` of the network depend on, along one axis."""
    for spec in reversed(layers):
        k, s, p, d = spec.kernel, spec.stride, spec.padding, spec.dilation
        if spec.transposed:  # output o = i*s - p + t, t in 0..k-1
            lo, hi = -((-(lo + p - (k - 1))) // s), (hi + p) // s
        else:  # output o reads i = o*s - p + t*d, t in 0..k-1
            lo, hi = lo * s - p, hi * s - p + (k - 1) * d
    return lo, hi


def receptive_reach(layers: Sequence[ConvSpec] = COMPLETION_LAYERS) -> tuple[int, int]:
    """(before, after): an output pixel at x depends on inputs x - before .. x + after.

    The largest over the SIZE_MULTIPLE positions an output pixel can have relative to the
    stride grid ((153, 150) for GLCIC).
    """
    origin = 16 * SIZE_MULTIPLE  # any multiple of the total stride: the walk is shift-invariant by it
    before = after = 0
    for x in range(origin, origin + SIZE_MULTIPLE):
        lo, hi = input_interval(x, x, layers)
        before, after = max(before, x - lo), max(after, hi - x)
    return before, after


def window_context(layers: Sequence[ConvSpec] = COMPLETION_LAYERS) -> tuple[int, int]:
    """(before, after): the context a window needs around its holes' SIZE_MULTIPLE-pixel cells.

    Windows are made of whole cells (they must start on the stride grid), so what matters is
    the reach measured from the first hole cell's start and past the last one's end, at every
    position in the cell, rounded up to whole cells: (152, 148) for GLCIC. It is the exact
    minimum: a cell less on either side changes some hole pixel (tests/test_regions.py).
    """
    m = SIZE_MULTIPLE
    origin = 16 * m
    before = after = 0
    for r in range(m):
        lo, hi = input_interval(origin + r, origin + r, layers)
        before, after = max(before, origin - lo), max(after, hi + 1 - (origin + m))
    return _round_up(before), _round_up(after)


def _round_up(v: int, m: int = SIZE_MULTIPLE) -> int:
    return -(-v // m) * m


CONTEXT_BEFORE, CONTEXT_AFTER = window_context()


def hole_windows(
    hole: np.ndarray, min_size: tuple[int, int] = (0, 0), context: tuple[int, int] = (CONTEXT_BEFORE, CONTEXT_AFTER)
) -> list[Window]:
    """The windows the network must see to fill ``hole`` (bool HxW), largest first.

    Each starts at a multiple of SIZE_MULTIPLE and ends at one or at the image's edge, holds
    the bounding box of its holes' SIZE_MULTIPLE-pixel cells plus ``context`` (before, after)
    px on each side where the image has them, and is at least ``min_size`` (a backend's
    smallest input) where the image is. Windows never overlap. ``context`` is a parameter for
    the tests that show it is needed.
    """
    import cv2

    h, w = hole.shape
    m = SIZE_MULTIPLE
    before, after = context
    # Group holes on the grid of m x m cells (windows are made of whole cells anyway): cells
    # closer than two contexts apart end up in one group, which the merging below would do.
    reach = -(-max(before, after) // m)
    # The grid covers only the holes' cells and ``reach`` cells around them (where the image
    # has them), everything the dilation below can touch, so a 12 MP photo's cells are not all
    # built. It starts on an even cell: OpenCV labels components in the order it meets them
    # scanning 2x2 blocks, so the groups come out in the same order as over the whole image.
    rows = np.flatnonzero(hole.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(hole[rows[0] : rows[-1] + 1].any(axis=0))
    y0, x0 = (max(0, first // m - reach) // 2 * 2 for first in (rows[0], cols[0]))
    y1, x1 = min(-(-h // m), rows[-1] // m + 1 + reach), min(-(-w // m), cols[-1] // m + 1 + reach)
    cells = np.zeros(((y1 - y0) * m, (x1 - x0) * m), dtype=bool)
    box = hole[y0 * m : y1 * m, x0 * m : x1 * m]  # short of whole cells at the image's edge
    cells[: box.shape[0], : box.shape[1]] = box
    cells = cells.reshape(y1 - y0, m, x1 - x0, m).any(axis=(1, 3))
    grown = cv2.dilate(cells.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    _, labels = cv2.connectedComponents(grown, connectivity=8)
    ys, xs = np.nonzero(cells)
    order = np.argsort(labels[ys, xs], kind="stable")
    ys, xs, group = ys[order], xs[order], labels[ys, xs][order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])  # each group's first cell
    ys, xs = ys + y0, xs + x0  # cells of the whole image from here on
    boxes = zip(*(f.reduceat(v, starts) for f, v in ((np.minimum, ys), (np.maximum, ys), (np.minimum, xs), (np.maximum, xs))))
    windows = [_window(top * m, (bottom + 1) * m, left * m, (right + 1) * m, h, w, before, after, min_size)
               for top, bottom, left, right in boxes]
    windows = _merge_overlapping(windows)
    if sum(_padded_area(win) for win in windows) >= _padded_area(Window(0, h, 0, w)):
        return [Window(0, h, 0, w)]
    return sorted(windows, key=lambda win: -win.area)


def _window(top, bottom, left, right, h, w, before, after, min_size) -> Window:
    """Cells' box plus context, clamped to the image, grown to ``min_size`` where possible."""
    m = SIZE_MULTIPLE
    top, left = max(0, top - _round_up(before)), max(0, left - _round_up(before))
    bottom, right = min(h, bottom + _round_up(after)), min(w, right + _round_up(after))
    min_h, min_w = min_size
    if bottom - top < min_h:
        bottom = min(h, top + _round_up(min_h))
        top = max(0, min(top, (bottom - min_h) // m * m))
    if right - left < min_w:
        right = min(w, left + _round_up(min_w))
        left = max(0, min(left, (right - min_w) // m * m))
    return Window(top, bottom, left, right)


def _merge_overlapping(windows: list[Window]) -> list[Window]:
    merged = True
    while merged:
        merged = False
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                if windows[i].overlaps(windows[j]):
                    windows[i] = windows[i].union(windows.pop(j))
                    merged = True
                    break
            if merged:
                break
    return windows


def _padded_area(win: Window) -> int:
    return _round_up(win.height) * _round_up(win.width)
