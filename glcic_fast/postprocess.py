"""The paper's optional post-processing (section 3.4), with OpenCV.

1. Fast marching (Telea, radius 1) fills the hole from the known pixels: the destination.
2. Poisson blending (``seamlessClone``, NORMAL_CLONE) pastes the network's completion into
   that destination, so the hole's colours follow the surrounding image while keeping the
   network's structure.

``poisson_blend`` does both; ``seamless_clone`` is step 2 alone, for callers with their own
destination (the authors-mode path). Both take any hole: one pixel, thin lines, the border.

How OpenCV's ``seamlessClone`` (4.x/5.x, modules/photo/src/seamless_cloning*.cpp) works, and
why we hand it a slightly larger mask than the hole:

- It zeroes the mask's outermost pixel ring, takes the mask's bounding box and solves the
  Poisson equation on that box alone. The box's own outermost ring is the fixed (Dirichlet)
  boundary: those pixels are copied from the destination, only the ``(w-2) x (h-2)`` inside is
  solved (a sine transform per axis, ``filter_X.resize(w - 2)``, ``filter_Y.resize(h - 2)``).
- A box 1 px thin makes ``w - 2 = -1``, which ``std::vector::resize`` reads as a huge size:
  ``vector::_M_default_append``. A box 2 px thin leaves an empty inside, and the sine
  transform's ``split`` of an empty matrix into a fixed two-element array fails
  ``_OutputArray::release``'s ``!fixedSize()``. So 1x1, 1xN, 2x2, 2xN holes crashed.
- Even for larger holes, the box's ring lies *in* the hole: those hole pixels were never
  blended, they kept Telea's fill.

We mark, besides the hole, the two pixels diagonally outside its bounding box's corners. The
box grows by one pixel on every side, so its fixed ring is known pixels (the boundary condition
Poisson blending is defined with), every hole pixel is solved, and every box is at least 3x3.
The two extra pixels change nothing else: OpenCV erodes the mask three times before choosing
where the source's gradients apply, and isolated pixels vanish in the first pass. (In a hole
thinner than that erosion, 7 px, no source gradient survives: the blend there follows the
destination, i.e. Telea's fill, as OpenCV's blend always has for thin parts of a hole.)
"""

from __future__ import annotations

import numpy as np

TELEA_RADIUS = 1
# Images are mirrored this far on every side: seamlessClone ignores the mask's outermost ring
# and we mark one pixel outside the hole's box, so a hole touching the border needs 2.
_BORDER = 2


def poisson_blend(known: np.ndarray, completed: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Post-process one uint8 HxWx3 RGB completion; returns uint8 HxWx3.

    ``known`` is the input image (its hole pixels are never read), ``completed`` the network's
    composited result, ``hole`` the bool mask. Only hole pixels of the result are meaningful:
    callers restore the rest from ``known`` (OpenCV's solver rewrites the hole's box).
    """
    import cv2

    if not hole.any():
        return completed.copy()
    # Telea must not read the caller's hole pixels, mirrored ones included: the mirrored hole
    # is a hole for it too.
    unknown = _pad(hole).astype(np.uint8) * 255
    destination = cv2.inpaint(_pad(known), unknown, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return seamless_clone(completed, destination[_BORDER:-_BORDER, _BORDER:-_BORDER], hole)


def seamless_clone(source: np.ndarray, destination: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's NORMAL_CLONE of ``source``'s hole into ``destination`` at the same place.

    uint8 HxWx3 arrays (any channel order: OpenCV treats the three alike); any hole, see the
    module docstring. Returns uint8 HxWx3; pixels outside the hole's box are ``destination``'s.
    """
    import cv2

    if not hole.any():
        return destination.copy()
    b = _BORDER
    clone = np.pad(hole, b, mode="constant").astype(np.uint8) * 255
    ys, xs = np.nonzero(clone)
    y0, y1, x0, x1 = int(ys.min()) - 1, int(ys.max()) + 1, int(xs.min()) - 1, int(xs.max()) + 1
    clone[y0, x0] = clone[y1, x1] = 255  # grow the box by one pixel (see the module docstring)
    # OpenCV places the mask's box at centre - size // 2; this centre puts it back exactly
    # where it came from (the midpoint would shift even-sized boxes by one pixel).
    center = (x0 + (x1 - x0 + 1) // 2, y0 + (y1 - y0 + 1) // 2)
    blended = cv2.seamlessClone(_pad(source), _pad(destination), clone, center, cv2.NORMAL_CLONE)
    return np.ascontiguousarray(blended[b:-b, b:-b])


def _pad(a: np.ndarray) -> np.ndarray:
    """Mirror ``_BORDER`` pixels on every side (repeat the edge where the image is thinner)."""
    widths = ((_BORDER, _BORDER), (_BORDER, _BORDER)) + ((0, 0),) * (a.ndim - 2)
    if min(a.shape[:2]) > _BORDER:
        return np.ascontiguousarray(np.pad(a, widths, mode="reflect"))
    return np.ascontiguousarray(np.pad(a, widths, mode="edge"))
