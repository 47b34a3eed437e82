"""How close a filled hole is to the photo: the scores ``glcic-fast eval``, the CPU accuracy gate
and a budgeted training run's validation share, so that their numbers mean the same thing.

``psnr``: peak signal-to-noise ratio (dB, peak 255) of uint8-valued images, over a hole's
pixels or the whole image, capped at ``PSNR_CAP``. ``opencv_inpaint``: OpenCV's Telea or
Navier-Stokes fill, the untrained baseline every model is compared with.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# PSNR of identical images is infinite; cap it so that an exactly recovered hole (a flat
# white background, say) does not turn the mean over images into infinity.
PSNR_CAP = 60.0
INPAINT_RADIUS = 3


def psnr(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None, peak: float = 255.0,
         cap: Optional[float] = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio in dB over ``mask``'s pixels (all if None), at most ``cap``
    (``cap=None``: ``inf`` for identical images)."""
    sq = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = float(sq.mean() if mask is None else sq[np.asarray(mask, bool)].mean())
    value = float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
    return value if cap is None else min(value, cap)


def opencv_inpaint(image: np.ndarray, hole: np.ndarray, method: str = "telea") -> np.ndarray:
    """``image`` (uint8 HxWx3 RGB) with ``hole`` (bool HxW) filled by OpenCV's ``method``
    (radius ``INPAINT_RADIUS``); the pixels outside the hole are the input's."""
    import cv2

    flag = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[method]
    bgr = np.ascontiguousarray(image[..., ::-1])
    filled = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, INPAINT_RADIUS, flag)[..., ::-1]
    return np.where(hole[..., None], filled, image)


__all__ = ["INPAINT_RADIUS", "PSNR_CAP", "opencv_inpaint", "psnr"]
