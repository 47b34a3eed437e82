"""Image and mask in, network input out; network output in, image of the caller's type out.

The completion network wants (N, 4, H, W) float32: RGB in [0, 1] with the hole blanked, and
the binary mask (1 = hole), with H and W multiples of 4. This module turns whatever the
caller has (numpy uint8/uint16/float HxWx3, PIL images in the modes ``pil_modes`` lists,
torch CHW tensors; masks as bool, 0/1, 0/255 or thresholded greyscale) into that, and turns the
network output back into the caller's type and size, composited so that every pixel outside
the hole is the input's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .errors import InputError
from .layers import SIZE_MULTIPLE
from .pil_modes import PilSource, read_pil, to_pil

# The authors' inference script: a grey mask counts as hole where >= 0.2, and images are
# shrunk so the long side is at most 600 before rounding to a multiple of 4.
AUTHORS_MASK_THRESHOLD = 0.2
AUTHORS_MAX_SIDE = 600
RESIZE_MODES = ("pad", "authors")
# How the hole is blanked in the network input (see ``network_input``).
INPUT_FILLS = ("subtract-mean", "mean")


def check_mean(mean: Any, what: str = "mean") -> tuple[float, float, float]:
    """The mean pixel as 3 floats in [0, 1]; ``ValueError`` saying what is wrong otherwise.

    A wrong mean does not fail later: it shifts every input, and the hole comes back black,
    white or off-colour. So it is checked where it enters (checkpoint, engine, argument).
    """
    shown = mean.tolist() if isinstance(mean, np.ndarray) else mean
    values = list(mean) if isinstance(mean, (list, tuple, np.ndarray)) else None
    if values is None or len(values) != 3:
        raise ValueError(f"{what} must be 3 numbers (the mean pixel, RGB in [0, 1]), got {shown!r}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{what} must be 3 numbers (the mean pixel, RGB in [0, 1]), got {shown!r}")
        if not (np.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{what} must lie in [0, 1] (RGB as fractions of full scale), got {shown!r}")
    return float(values[0]), float(values[1]), float(values[2])


def check_input_fill(fill: Any, what: str = "input_fill") -> str:
    if not isinstance(fill, str) or fill not in INPUT_FILLS:
        raise ValueError(f"{what} must be one of {INPUT_FILLS}, got {fill!r}")
    return fill


def check_resize(resize: Any) -> str:
    if not isinstance(resize, str) or resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    return resize


def check_threshold(threshold: Any, what: str = "mask_threshold") -> Optional[float | np.integer | np.floating]:
    """None (binary masks only) or a fraction in (0, 1] of full scale; ``ValueError`` otherwise.

    Checked where it enters (``load``, ``Completer``, ``complete``'s override), for every mask
    type: a bool mask never reads it, so a bad value would otherwise pass unnoticed there.
    """
    if threshold is None:
        return None
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number in (0, 1] or None, got {threshold!r}")
    if not 0.0 < threshold <= 1.0:  # NaN fails this too
        raise ValueError(f"{what} must be in (0, 1] (a fraction of full scale, the authors use "
                         f"{AUTHORS_MASK_THRESHOLD}), got {threshold!r}")
    return threshold  # as given: read_mask compares the caller's own number


@dataclass
class ImageRecord:
    """One image in working form, and what is needed to hand it back as the caller gave it."""

    pixels: np.ndarray  # HxWx3, uint8, uint16 or float (the caller's values, untouched; grey repeated)
    kind: str  # "numpy" | "pil" | "torch"
    dtype: Any = None  # numpy / torch dtype to return
    device: Any = None  # torch device to return to
    pil: Optional[PilSource] = None  # a PIL image's mode, alpha, palette


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float pixels -> float32 in [0, 1] (integers: value / full scale)."""
    if np.issubdtype(pixels.dtype, np.integer):
        return pixels.astype(np.float32) * np.float32(1.0 / np.iinfo(pixels.dtype).max)
    return pixels.astype(np.float32)


def from_unit(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> ``dtype`` (integers: rounded to the nearest level of their full scale)."""
    if np.issubdtype(dtype, np.integer):
        full = np.iinfo(dtype).max
        return np.clip(np.rint(rgb * np.float32(full)), 0, full).astype(dtype)
    return rgb.astype(dtype)


def is_torch_tensor(x: Any) -> bool:
    """A torch tensor, told without importing torch (an engine-only deployment has none)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def is_pil_image(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert")


def _numpy_float_types() -> tuple:
    import torch

    return (torch.float16, torch.float32, torch.float64)


def check_torch_storage(t: Any, what: str) -> None:
    """A clear error for tensors whose values cannot be read as pixels (meta, sparse, ...)."""
    import torch

    if t.is_meta:
        raise InputError(f"{what}: a tensor on the meta device has no values (only a shape); "
                         "create it on the CPU or a GPU")
    if t.layout != torch.strided:
        raise InputError(f"{what}: {str(t.layout).replace('torch.', '')} tensors are not supported; "
                         "pass a dense tensor (tensor.to_dense())")
    if t.is_quantized or t.is_complex():
        raise InputError(f"{what}: unsupported tensor type {t.dtype} (use uint8 or float in [0, 1])")


def read_image(image: Any, what: str = "image") -> ImageRecord:
    """Normalise one image (numpy HxWx3, PIL, torch 3xHxW) to an ``ImageRecord``."""
    if is_pil_image(image):
        pixels, source = read_pil(image, what)
        record = _check_pixels(pixels, "pil", None, None, what)
        record.pil = source
        return record
    if is_torch_tensor(image):
        t = image.detach()
        check_torch_storage(t, what)
        if t.dim() != 3 or t.shape[0] != 3:
            raise InputError(f"{what}: a torch image must be 3xHxW (RGB, channels first), got {tuple(t.shape)}")
        if t.is_floating_point() and t.dtype not in _numpy_float_types():
            t = t.float()  # bfloat16 has no numpy twin; results go back as the caller's dtype
        arr = t.cpu().permute(1, 2, 0).numpy()
        return _check_pixels(arr, "torch", image.dtype, image.device, what)
    if isinstance(image, np.ndarray):
        return _check_pixels(image, "numpy", image.dtype, None, what)
    raise InputError(f"{what}: expected a numpy array, PIL image or torch tensor, got {type(image).__name__}")


def _check_pixels(arr: np.ndarray, kind: str, dtype: Any, device: Any, what: str) -> ImageRecord:
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"{what}: expected HxWx3 RGB pixels, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{what}: image is empty ({arr.shape[0]}x{arr.shape[1]})")
    if arr.dtype in (np.uint8, np.uint16):
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{what}: contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"{what}: float pixels must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                "(pass uint8 for 0-255 images)"
            )
    else:
        raise InputError(f"{what}: unsupported pixel type {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    return ImageRecord(np.ascontiguousarray(arr), kind, dtype, device)


def read_mask(mask: Any, shape: tuple[int, int], threshold: Optional[float] = None, what: str = "mask") -> np.ndarray:
    """A bool HxW hole mask (True = hole) from bool / 0-1 / 0-255 / greyscale input.

    Without ``threshold`` the mask must be binary (two values: 0 and 1, 0 and 255, or
    False/True); a greyscale mask (JPEG-compressed, anti-aliased) needs ``threshold``,
    a fraction of full scale (the authors use 0.2), as ``check_threshold`` returns it (the
    API checks it once, where it enters).
    """
    if is_pil_image(mask):
        mask = np.asarray(mask.convert("L"))
    elif is_torch_tensor(mask):
        check_torch_storage(mask, what)
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, PIL image or torch tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]  # torch 1xHxW
    elif mask.ndim == 3 and mask.shape[2] in (1, 3, 4):
        channels = mask[..., :3] if mask.shape[2] != 1 else mask
        if not (channels == channels[..., :1]).all():
            raise InputError(f"{what}: a mask must be greyscale; its colour channels differ")
        mask = channels[..., 0]
    if mask.ndim != 2:
        raise InputError(f"{what}: expected an HxW mask, got shape {mask.shape}")
    if mask.shape != tuple(shape):
        raise InputError(f"{what}: size {mask.shape[0]}x{mask.shape[1]} does not match the image's {shape[0]}x{shape[1]}")
    if mask.dtype == np.bool_:
        hole = mask
    else:
        if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
            raise InputError(f"{what}: contains NaN or infinite values")
        if not (np.issubdtype(mask.dtype, np.floating) or np.issubdtype(mask.dtype, np.integer)):
            raise InputError(f"{what}: unsupported mask type {mask.dtype}")
        full = 1.0 if float(mask.max()) <= 1.0 else 255.0  # 0-1 or 0-255 encoding
        if float(mask.min()) < 0 or float(mask.max()) > full:
            raise InputError(f"{what}: values must lie in [0, 1] or [0, 255], got [{mask.min()}, {mask.max()}]")
        if threshold is None:
            hole = mask > 0
            stray_px = hole & (mask != full)  # one linear pass on the per-call path
            if stray_px.any():
                stray = np.unique(mask[stray_px])  # only to word the error
                raise InputError(
                    f"{what}: not binary (holds {stray.size} values besides 0 and {full:g}, e.g. {stray[0]}); "
                    f"pass a threshold (mask_threshold={AUTHORS_MASK_THRESHOLD} / --mask-threshold "
                    f"{AUTHORS_MASK_THRESHOLD} as the authors do) "
                    "to use a greyscale mask"
                )
        else:
            hole = mask.astype(np.float32) >= threshold * full
    if not hole.any():
        raise InputError(f"{what}: has no hole pixels, so there is nothing to complete")
    if hole.all():
        raise InputError(f"{what}: every pixel is a hole, so there is no context to complete from")
    return np.ascontiguousarray(hole)


def padded_size(h: int, w: int) -> tuple[int, int]:
    m = SIZE_MULTIPLE
    return (h + m - 1) // m * m, (w + m - 1) // m * m


def authors_size(h: int, w: int, max_side: int = AUTHORS_MAX_SIDE) -> tuple[int, int]:
    """The authors' script: shrink so the long side <= max_side, then round to a multiple of 4."""
    scale = min(1.0, max_side / max(h, w))
    m = SIZE_MULTIPLE
    return max(m, int(h * scale / m + 0.5) * m), max(m, int(w * scale / m + 0.5) * m)


def network_size(h: int, w: int, resize: str) -> tuple[int, int]:
    """The network's input size for an h x w image; ``resize`` as ``check_resize`` accepted it."""
    return padded_size(h, w) if resize == "pad" else authors_size(h, w)


def _resize(arr: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    import cv2

    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    flag = {"area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}[interpolation]
    return cv2.resize(arr, (w, h), interpolation=flag)


def network_input(
    rgb: np.ndarray, hole: np.ndarray, mean: Sequence[float], fill: str, size: tuple[int, int],
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """(4, H', W') float32 network input for one image at network size ``size``.

    ``fill="subtract-mean"`` (the paper and the authors' models): RGB minus the mean pixel,
    hole pixels 0. ``fill="mean"`` (GLCIC-PyTorch models): RGB with hole pixels set to the
    mean pixel, no subtraction. Padding (resize="pad") reflects the image and marks the pad as
    known, so the network sees plausible context and nothing to fill there. ``out``: a
    (4, H', W') float32 array to write into (one slot of a batch), else a new one.
    """
    h, w = hole.shape
    H, W = size
    if (H, W) != (h, w) and H >= h and W >= w and (H - h) < SIZE_MULTIPLE and (W - w) < SIZE_MULTIPLE:
        pad = ((0, H - h), (0, W - w), (0, 0))
        # reflect needs the image to be larger than the pad; a tiny one repeats its edge
        rgb = np.pad(rgb, pad, mode="reflect") if min(h, w) > max(H - h, W - w) else np.pad(rgb, pad, mode="edge")
        hole = np.pad(hole, ((0, H - h), (0, W - w)), mode="constant")
    else:
        rgb = _resize(rgb, size, "area" if H * W < h * w else "cubic")
        hole = _resize(hole.astype(np.uint8), size, "nearest").astype(bool)
    m = hole.astype(np.float32)[..., None]
    mean_px = np.asarray(mean, dtype=np.float32)
    if fill == "subtract-mean":
        blanked = (rgb - mean_px) * (1.0 - m)
    else:
        blanked = rgb * (1.0 - m) + mean_px * m
    if out is None:
        out = np.empty((4, H, W), np.float32)
    out[:3] = blanked.transpose(2, 0, 1)
    out[3] = m[..., 0]
    return out


def composite(out: np.ndarray, known: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``known`` (HxWx3) with its hole pixels taken from the network output (3, H', W').

    Pixels outside ``hole`` are copied from ``known``, so they are byte-identical to it.
    """
    h, w = hole.shape
    rgb = out.transpose(1, 2, 0)
    if rgb.shape[:2] != (h, w):
        if rgb.shape[0] >= h and rgb.shape[1] >= w and rgb.shape[0] - h < SIZE_MULTIPLE and rgb.shape[1] - w < SIZE_MULTIPLE:
            rgb = rgb[:h, :w]  # crop the padding back off
        else:
            rgb = np.clip(_resize(np.ascontiguousarray(rgb), (h, w), "cubic"), 0.0, 1.0)
    result = known.copy()
    result[hole] = from_unit(rgb[hole], known.dtype)  # only the hole's pixels are converted
    return result


def to_callers_type(pixels: np.ndarray, record: ImageRecord, hole: Optional[np.ndarray] = None) -> Any:
    """HxWx3 pixels (same dtype as the record's) -> the type the caller passed in.

    ``hole`` is needed for what the RGB pixels do not hold: a PIL image's grey values, alpha
    or palette indices in the hole (``pil_modes``). Without it (a result that is not the
    caller's image with its hole filled, e.g. authors mode's, at the script's resolution) a PIL
    image comes back as 8-bit RGB.
    """
    if record.kind == "pil" and hole is None:
        from PIL import Image

        return Image.fromarray(pixels if pixels.dtype == np.uint8 else from_unit(to_unit(pixels), np.dtype(np.uint8)))
    if record.kind == "pil":
        assert record.pil is not None and hole is not None
        return to_pil(pixels, hole, record.pil)
    if record.kind == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).to(device=record.device, dtype=record.dtype)
    return pixels.astype(record.dtype, copy=False)
