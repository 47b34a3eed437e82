"""The paper's optional post-processing (section 3.4), with OpenCV.

1. Fast marching (Telea, radius 1) fills the hole from the known pixels: the destination.
2. Poisson blending (``seamlessClone``, NORMAL_CLONE) pastes the network's completion into
   that destination, centred on the mask's bounding box, so the hole's colours follow the
   surrounding image while keeping the network's structure.
"""

from __future__ import annotations

import numpy as np

TELEA_RADIUS = 1
# seamlessClone needs the clone region to sit strictly inside the image; a hole touching
# the border would be rejected, so blend on a reflect-padded copy and crop back.
_BORDER = 2


def poisson_blend(known: np.ndarray, completed: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Post-process one uint8 HxWx3 RGB completion; returns uint8 HxWx3.

    ``known`` is the input image, ``completed`` the network's composited result, ``hole`` the
    bool mask. Pixels outside the hole are left to the caller to restore (OpenCV's blend can
    touch the hole's bounding box).
    """
    import cv2

    b = _BORDER
    pad = ((b, b), (b, b), (0, 0))
    known_p = np.pad(known, pad, mode="reflect")
    completed_p = np.pad(completed, pad, mode="reflect")
    mask_p = np.pad(hole, pad[:2], mode="constant").astype(np.uint8) * 255
    bgr_known = np.ascontiguousarray(known_p[..., ::-1])
    bgr_completed = np.ascontiguousarray(completed_p[..., ::-1])
    destination = cv2.inpaint(bgr_known, mask_p, TELEA_RADIUS, cv2.INPAINT_TELEA)
    ys, xs = np.nonzero(mask_p)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    # OpenCV places the mask's bounding box at centre - size // 2; this centre puts it back
    # exactly where it came from (the midpoint would shift even-sized boxes by one pixel).
    center = (int(x0 + (x1 - x0 + 1) // 2), int(y0 + (y1 - y0 + 1) // 2))
    blended = cv2.seamlessClone(bgr_completed, destination, mask_p, center, cv2.NORMAL_CLONE)
    return np.ascontiguousarray(blended[b:-b, b:-b, ::-1])
