"""The authors' released inference script, reproduced step by step: ``authors_mode``.

satoshiiizuka/siggraph2017_inpainting's ``inpaint.lua`` (with its ``utils.lua`` and torch/image's
``image.load``, ``image.scale``, ``image.rgb2y`` and ``image.save``) completes an image as below;
this module does the same, in the same float32 arithmetic, so that given the same network
output it writes the same bytes. The spec, with line references, is docs/authors-mode.md.

1. the image as ``image.load`` holds it: bytes * (float)(1/255);
2. the mask as ``load_image_gray`` reads it: grey; colour through ``rgb2y``; grey+alpha
   through its first channel;
3. if the long side exceeds ``maxdim``: both scaled by maxdim/long side (sizes truncated);
4. both scaled to round(W/4)*4 x round(H/4)*4 (round half away from zero), whatever the size;
5. the hole: scaled mask >= 0.2, at network resolution;
6. network input: image - mean, hole pixels 0, plus the hole channel;
7. the result: the scaled image outside the hole, the network inside;
8. optionally (``--postproc``): bytes (truncated), Telea (radius 1) and Poisson blending over
   the whole image, as OpenCV 3.1 did it;
9. ``image.save``: clamp to [0, 1], * 255, truncated to bytes. The result keeps the network's
   resolution.

Two versions of the script are known: the 2020 one (maxdim 600, post-processing only with
``--postproc``) and the 2018 one (maxdim 500, post-processing unless ``--nopostproc``).

``image.scale``'s "bilinear" mode resamples one axis at a time, widths first: an axis that
shrinks averages the source pixels each output pixel covers (a box filter with fractional end
weights), an axis that grows interpolates linearly with the end pixels aligned; an axis that
keeps its length is copied. The port below keeps its float32 operations and their order.

One concept, one module (~430 lines): exactness needs three ports that live nowhere else --
``image.scale``, ``load_image_gray`` and OpenCV 3.1's seamlessClone -- each short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .errors import InputError
from .layers import SIZE_MULTIPLE
from .postprocess import TELEA_RADIUS
from .preprocess import (
    AUTHORS_MASK_THRESHOLD,
    ImageRecord,
    from_unit,
    is_pil_image,
    is_torch_tensor,
    read_image,
    to_callers_type,
    to_unit,
)

F32 = np.float32


@dataclass(frozen=True)
class ScriptVersion:
    """A release's defaults: ``--maxdim`` and whether it post-processes unless told otherwise."""

    maxdim: int
    postprocess: bool


SCRIPT_VERSIONS = {
    "2020": ScriptVersion(600, False),  # inpaint.lua of 2020-09-17 (commit 15c5519): --postproc opts in
    "2018": ScriptVersion(500, True),  # inpaint.lua of 2018-02-23 (commit d25cd7b): --nopostproc opts out
}
DEFAULT_VERSION = "2020"


@dataclass(frozen=True)
class AuthorsOptions:
    """Which run of the script to reproduce."""

    version: str = DEFAULT_VERSION
    maxdim: int = SCRIPT_VERSIONS[DEFAULT_VERSION].maxdim
    postprocess: bool = SCRIPT_VERSIONS[DEFAULT_VERSION].postprocess

    @classmethod
    def for_version(cls, version: str = DEFAULT_VERSION, postprocess: Optional[bool] = None,
                    maxdim: Optional[int] = None) -> "AuthorsOptions":
        if version not in SCRIPT_VERSIONS:
            raise ValueError(f"authors_version must be one of {sorted(SCRIPT_VERSIONS)}, got {version!r}")
        script = SCRIPT_VERSIONS[version]
        maxdim = script.maxdim if maxdim is None else maxdim
        if isinstance(maxdim, bool) or not isinstance(maxdim, (int, np.integer)) or maxdim < 2:
            raise ValueError(f"authors_maxdim must be an integer >= 2, got {maxdim!r}")
        return cls(version, int(maxdim), script.postprocess if postprocess is None else bool(postprocess))


def options_for_load(authors_mode: bool, version: Optional[str], authors_postprocess: Optional[bool],
                     maxdim: Optional[int], **default_mode: Any) -> Optional[AuthorsOptions]:
    """``load()``'s authors options, or None outside authors mode; refuses settings that clash.

    ``default_mode`` holds load()'s default-mode settings (postprocess, mask_threshold, resize),
    which the script fixes for itself.
    """
    if not authors_mode:
        if (version, authors_postprocess, maxdim) != (None, None, None):
            raise ValueError("authors_version, authors_postprocess and authors_maxdim need authors_mode=True")
        return None
    clashes = {"postprocess": False, "mask_threshold": None, "resize": "pad"}
    for name, neutral in clashes.items():
        if default_mode.get(name, neutral) != neutral:
            raise ValueError(
                f"authors_mode follows the script, which fixes what {name}= sets "
                "(threshold 0.2, its own resizing); its post-processing is authors_postprocess="
            )
    return AuthorsOptions.for_version(version or DEFAULT_VERSION, authors_postprocess, maxdim)


# ---------------------------------------------------------------- torch/image, ported

def rgb2y(rgb: np.ndarray) -> np.ndarray:
    """``image.rgb2y`` on float channels (..., 3): 0.299 r + 0.587 g + 0.114 b in double, stored as float."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return (0.299 * r + 0.587 * g + 0.114 * b).astype(F32)


def _scale_axis(a: np.ndarray, n: int) -> np.ndarray:
    """Resample the last axis of float32 ``a`` to ``n`` samples (torch/image scaleLinear_rowcol).

    Vectorised over every output sample at once; where the C code accumulates a sum pixel by
    pixel, the loop below walks the same taps in the same order, so every float32 rounding
    happens as it did there.
    """
    length = a.shape[-1]
    if n == length:
        return a.copy()
    if n > length:  # enlarge: linear interpolation, first and last samples aligned
        out = np.empty(a.shape[:-1] + (n,), F32)
        if length == 1:
            out[...] = a
            return out
        step = F32(length - 1) / F32(n - 1)
        pos = np.arange(n - 1, dtype=F32) * step
        left = pos.astype(np.int64)  # C's (long) cast truncates
        frac = pos - left.astype(F32)
        out[..., :-1] = (F32(1) - frac) * a[..., left] + frac * a[..., left + 1]
        out[..., -1] = a[..., -1]
        return out
    # shrink: output sample d averages source [d*step, (d+1)*step), the end pixels weighted by
    # the fraction of them the interval covers
    step = F32(length) / F32(n)
    end = np.arange(1, n + 1, dtype=F32) * step
    end_i = end.astype(np.int64)
    end_f = end - end_i.astype(F32)
    start_i = np.concatenate(([0], end_i[:-1]))
    start_f = np.concatenate(([F32(0)], end_f[:-1])).astype(F32)
    weight = F32(1) - start_f
    acc = weight * a[..., start_i]
    count = weight
    inner = end_i - start_i - 1  # whole source pixels between the two ends
    for t in range(int(inner.max(initial=0))):
        live = t < inner
        tap = a[..., np.minimum(start_i + 1 + t, length - 1)]
        acc = np.where(live, acc + tap, acc)
        count = np.where(live, count + F32(1), count)
    has_end = end_i < length
    tap = a[..., np.minimum(end_i, length - 1)]
    acc = np.where(has_end, acc + end_f * tap, acc)
    count = np.where(has_end, count + end_f, count)
    return (acc / count).astype(F32, copy=False)


def scale_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image.scale(img, width, height)`` (mode "bilinear") for float32 (..., H, W) arrays."""
    a = np.asarray(img, dtype=F32)
    rows = _scale_axis(a, width)  # widths first (the C code's row pass), into a float temporary
    cols = _scale_axis(np.swapaxes(rows, -1, -2), height)
    return np.ascontiguousarray(np.swapaxes(cols, -1, -2))


def save_bytes(x: np.ndarray) -> np.ndarray:
    """``image.save``: clamp to [0, 1], times 255 in float32, truncated to bytes."""
    return (np.clip(x.astype(F32, copy=False), F32(0), F32(1)) * F32(255)).astype(np.uint8)


# ---------------------------------------------------------------- the script's sizes

def script_sizes(height: int, width: int, maxdim: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((H, W) after the maxdim step, (H, W) the network sees), as inpaint.lua computes them.

    ``image.scale(I, '*maxdim/long')`` sizes each side as side*maxdim/long in Lua's doubles,
    at least 1, and the tensor constructor truncates it; then each side is rounded to a
    multiple of 4 (torch.round: half away from zero).
    """
    long_side = max(height, width)
    if long_side > maxdim:
        height, width = (max(1, side * maxdim // long_side) for side in (height, width))
    m = SIZE_MULTIPLE
    # torch.round(side / 4) * 4: side / 4 is exact, and round(q) = floor(q + 1/2) for q >= 0
    return (height, width), ((height + m // 2) // m * m, (width + m // 2) // m * m)


# ---------------------------------------------------------------- inputs as the script reads them

def script_image(record: ImageRecord) -> np.ndarray:
    """3xHxW float32 RGB as ``image.load`` gives it: k * (float)(1/255) for 8-bit files,
    (float)(1/65535) for 16-bit ones, which is ``to_unit``'s arithmetic (float32 times the
    float32 of the double 1/full scale); floats as given."""
    return np.ascontiguousarray(to_unit(record.pixels).transpose(2, 0, 1))


def script_mask(mask: Any, shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    """HxW float32 in [0, 1] as utils.lua's ``load_image_gray`` reads the mask file.

    An HxW array is grey; HxWx2 is grey + alpha (the grey channel is used); HxWx3 is RGB and
    HxWx4 RGBA (rgb2y of the colour channels). uint8 is an 8-bit file, uint16 a 16-bit one,
    floats must lie in [0, 1]; bool and integer masks holding only 0 and 1 mean hole = 1 (a
    1-bit file). PIL images are read by mode the same way (palette images as their RGB).
    """
    if is_pil_image(mask):
        mask = _pil_mask_array(mask, what)
    elif is_torch_tensor(mask):
        mask = mask.detach().cpu().numpy()
        if mask.ndim == 3 and mask.shape[0] in (1, 2, 3, 4) and mask.shape[2] not in (1, 2, 3, 4):
            mask = mask.transpose(1, 2, 0)  # channels first, as torch holds images
    if not isinstance(mask, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, PIL image or torch tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim == 3 and mask.shape[2] not in (2, 3, 4) or mask.ndim not in (2, 3):
        raise InputError(f"{what}: expected HxW, HxWx2 (grey+alpha), HxWx3 or HxWx4, got shape {mask.shape}")
    if mask.shape[:2] != tuple(shape):
        raise InputError(f"{what}: size {mask.shape[0]}x{mask.shape[1]} does not match the image's {shape[0]}x{shape[1]}")
    values = _mask_values(mask, what)
    if values.ndim == 2:
        return values
    if values.shape[2] == 2:
        return np.ascontiguousarray(values[..., 0])  # grey + alpha: the grey channel
    return rgb2y(values[..., :3])  # RGB(A): luma of the colour channels


def _mask_values(mask: np.ndarray, what: str) -> np.ndarray:
    if mask.dtype == np.bool_:
        return mask.astype(F32)
    if np.issubdtype(mask.dtype, np.integer):
        lo, hi = int(mask.min()), int(mask.max())
        if lo < 0 or hi > 65535:
            raise InputError(f"{what}: integer values must lie in [0, 65535], got [{lo}, {hi}]")
        if hi <= 1:
            return mask.astype(F32)  # a 0/1 mask: hole = 1
        # uint8: an 8-bit file; uint16: a 16-bit one; wider integer types by their range (the
        # values fit the file's type exactly, and image.load scales as to_unit does)
        sixteen_bit = mask.dtype == np.uint16 or (mask.dtype != np.uint8 and hi > 255)
        return to_unit(mask.astype(np.uint16 if sixteen_bit else np.uint8, copy=False))
    if np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all() or float(mask.min()) < 0 or float(mask.max()) > 1:
            raise InputError(f"{what}: float values must be finite and lie in [0, 1]")
        return mask.astype(F32)
    raise InputError(f"{what}: unsupported mask type {mask.dtype}")


def _pil_mask_array(image: Any, what: str) -> np.ndarray:
    mode = image.mode
    if mode == "1":
        return np.asarray(image.convert("L"))  # libpng expands 1-bit grey to 0/255
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    if mode == "P":
        return np.asarray(image.convert("RGB"))  # libpng expands the palette to RGB
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.uint16) if mode != "I" else _uint16(np.asarray(image), what)
    raise InputError(f"{what}: PIL mode {mode!r} is not a mask mode the script reads (use L, LA, RGB, RGBA, P, 1 or I;16)")


def _uint16(a: np.ndarray, what: str) -> np.ndarray:
    if a.min() < 0 or a.max() > 65535:
        raise InputError(f"{what}: a PIL 'I' mask must hold 16-bit values (0-65535)")
    return a.astype(np.uint16)


# ---------------------------------------------------------------- the script's steps

@dataclass
class ScriptInput:
    """One image at network resolution, as inpaint.lua holds it before the network."""

    image: np.ndarray  # 3xHxW float32: ``Ip``, the scaled image
    hole: np.ndarray  # HxW bool: ``M``, scaled mask >= 0.2
    record: ImageRecord  # the caller's image, to hand the result back in its type


def prepare(image: Any, mask: Any, options: AuthorsOptions, what: str = "image") -> ScriptInput:
    """Steps 1-5 (inpaint.lua lines 48-75): load, scale, round to a multiple of 4, threshold."""
    record = read_image(image, what)
    h, w = record.pixels.shape[:2]
    mask_what = what.replace("image", "mask")
    grey = script_mask(mask, (h, w), mask_what)
    (h1, w1), (hn, wn) = script_sizes(h, w, options.maxdim)
    if hn == 0 or wn == 0:
        raise InputError(
            f"{what}: {h}x{w} is {h1}x{w1} after the maxdim step and rounds to {hn}x{wn} (a side of 1 "
            "pixel rounds to 0), which the script cannot complete"
        )
    rgb = script_image(record)
    if (h1, w1) != (h, w):  # lines 67-71
        rgb, grey = scale_bilinear(rgb, h1, w1), scale_bilinear(grey, h1, w1)
    rgb, grey = scale_bilinear(rgb, hn, wn), scale_bilinear(grey, hn, wn)  # lines 74-75
    hole = grey >= F32(AUTHORS_MASK_THRESHOLD)  # inpaint.lua's M:ge(0.2): the float tensor against (float)0.2
    if not hole.any():
        raise InputError(f"{mask_what}: no pixel reaches {AUTHORS_MASK_THRESHOLD} at the network's {hn}x{wn}, so there is no hole to complete")
    if hole.all():
        raise InputError(f"{mask_what}: every pixel is a hole at the network's {hn}x{wn}, so there is no context to complete from")
    return ScriptInput(rgb, hole, record)


def network_input(prepared: ScriptInput, mean: Sequence[float], fill: str = "subtract-mean") -> np.ndarray:
    """Step 6 (lines 76-82): 4xHxW float32 -- image minus the mean, hole pixels 0, then the hole.

    ``fill="mean"`` (GLCIC-PyTorch models, which the script never ran) puts the mean pixel in
    the hole instead, as those models expect.
    """
    mean_px = np.asarray(mean, dtype=F32)[:, None, None]
    hole = prepared.hole[None]
    if fill == "subtract-mean":
        rgb = np.where(hole, F32(0), prepared.image - mean_px)  # add(-mean), then maskedFill(0)
    else:
        rgb = np.where(hole, mean_px, prepared.image)
    return np.concatenate([rgb, hole.astype(F32)]).astype(F32, copy=False)


def composite(prepared: ScriptInput, network_output: np.ndarray) -> np.ndarray:
    """Step 7 (line 86): HxWx3 float32, the scaled image outside the hole, the network inside."""
    out = np.where(prepared.hole[None], network_output.astype(F32, copy=False), prepared.image)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def finish(prepared: ScriptInput, network_output: np.ndarray, options: AuthorsOptions) -> np.ndarray:
    """Steps 7-9: the bytes the script writes to out.png (HxWx3 uint8 RGB, network resolution)."""
    out = composite(prepared, network_output)
    if options.postprocess:
        return postprocess(out, prepared.hole)
    return save_bytes(out)


def complete_many(backend: Any, mean: Sequence[float], fill: str, images: list, masks: list,
                  options: AuthorsOptions) -> list:
    """The script on each image/mask pair; images reaching the same network size share a call."""
    if len(images) != len(masks):
        raise InputError(f"got {len(images)} images but {len(masks)} masks")
    prepared = [
        prepare(image, mask, options, "image" if len(images) == 1 else f"image {i}")
        for i, (image, mask) in enumerate(zip(images, masks))
    ]  # every input checked before the network runs
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.image.shape, []).append(i)
    results: list[Any] = [None] * len(prepared)
    for members in groups.values():
        out = backend(np.stack([network_input(prepared[i], mean, fill) for i in members]))
        for j, i in enumerate(members):
            results[i] = _in_callers_type(finish(prepared[i], out[j], options), prepared[i].record)
    return results


def _in_callers_type(pixels: np.ndarray, record: ImageRecord) -> Any:
    """The saved bytes as the caller's type: uint8 as they are, float types as k / 255."""
    if record.pixels.dtype != np.uint8:  # k / 255 in the caller's type (16-bit: 257 k)
        pixels = from_unit(pixels.astype(F32) / F32(255), record.pixels.dtype)  # type: ignore[assignment]
    return to_callers_type(pixels, record)


# ---------------------------------------------------------------- --postproc (lines 89-117)

def postprocess(out: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The script's post-processing of the composited HxWx3 float result; returns RGB bytes.

    ``tensor2cvimg`` truncates to bytes (no clamp, values are in [0, 1]); Telea (radius 1)
    fills the hole of that image; ``seamlessClone`` (NORMAL_CLONE) blends it back and the
    whole blended image is kept. ``cvimg2tensor`` / ``image.save`` turn bytes k into k/255
    and back to k, so the blend's bytes are the file's.
    """
    import cv2  # only post-processing needs OpenCV: keep it off the import of the API

    src = np.ascontiguousarray((out * F32(255)).astype(np.uint8)[..., ::-1])  # RGB -> BGR, as utils.lua swaps
    mask = hole.astype(np.uint8) * 255
    destination = cv2.inpaint(src, mask, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return np.ascontiguousarray(clone_as_opencv31(src, destination, mask)[..., ::-1])


def clone_as_opencv31(src: np.ndarray, destination: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cv.seamlessClone(src, dst, mask, p, NORMAL_CLONE)`` as OpenCV 3.1 ran it with the
    script's centre p = floor(min + (max - min) / 2) - 1 (1-based min/max of the hole).

    3.1 took a box of (max - min) pixels per axis from the source -- the hole's last row and
    column fall out -- and put it at p - (max - min) // 2, which is where it came from; then it
    solved the Poisson equation over the whole image, the image's edge held fixed. OpenCV >= 4
    (the one installed) takes the whole bounding box, puts it at p - (max - min + 1) // 2 (the
    script's p would shift boxes of even size by a pixel: the in-place centre there is
    min + (max - min + 1) // 2) and solves over the box only, after clearing the mask's
    outer frame. Its function can be made to solve 3.1's problem, except that it then erodes a
    hole touching the image's edge from the edge too (docs/authors-mode.md); so this runs
    3.1's solver itself, on OpenCV's primitives, with 3.1's geometry.
    """
    ys, xs = np.nonzero(mask == 255)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    box = (slice(y0, y1), slice(x0, x1))  # 3.1's off-by-one box, in place
    clone_mask = np.zeros_like(mask)
    clone_mask[box] = mask[box]
    patch = np.zeros_like(src)
    patch[box] = np.where(mask[box][..., None] != 0, src[box], 0)
    return poisson_clone(destination, patch, clone_mask)


def poisson_clone(destination: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Cloning::normalClone (NORMAL_CLONE) over a whole HxWx3 uint8 image.

    The guidance field is the patch's forward differences inside the mask eroded three times
    (3x3), the destination's outside; its divergence, less the fixed edge's contribution, is
    solved with a discrete sine transform (two real DFTs of 2N + 2 samples per axis); results
    are clamped to [0, 255] and truncated; the image's outermost rows and columns stay the
    destination's. Same primitives and float32 steps as OpenCV, so the same bytes.
    """
    import cv2  # as in postprocess(): OpenCV only when post-processing

    h, w = mask.shape
    eroded = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=3)
    inside = (eroded.astype(F32) * F32(1 / 255))[..., None]
    outside = ((255 - eroded).astype(F32) * F32(1 / 255))[..., None]
    forward_x = np.array([[0, -1, 1]], F32)
    backward_x = np.array([[-1, 1, 0]], F32)

    def div(img: np.ndarray, weight: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        return cv2.filter2D(img, cv2.CV_32F, kernel) * weight

    gx = div(destination, outside, forward_x) + div(patch, inside, forward_x)
    gy = div(destination, outside, forward_x.T) + div(patch, inside, forward_x.T)
    lap = cv2.filter2D(gx, cv2.CV_32F, backward_x) + cv2.filter2D(gy, cv2.CV_32F, backward_x.T)
    eig_x = (2.0 * np.cos(np.pi / (w - 1) * np.arange(1, w - 1))).astype(F32)
    eig_y = (2.0 * np.cos(np.pi / (h - 1) * np.arange(1, h - 1))).astype(F32)
    denominator = (eig_x[None, :] + eig_y[:, None]) - F32(4)
    result = destination.copy()
    for c in range(3):
        edge = np.ascontiguousarray(destination[..., c])
        edge[1:-1, 1:-1] = 0
        rhs = (lap[..., c] - cv2.Laplacian(edge, cv2.CV_32F))[1:-1, 1:-1]
        solved = _sine_transform(_sine_transform(np.ascontiguousarray(rhs), False) / denominator, True)
        result[1:-1, 1:-1, c] = np.clip(solved, 0, 255).astype(np.uint8)  # clamp, then truncate
    return result


def _sine_transform(a: np.ndarray, inverse: bool) -> np.ndarray:
    """OpenCV's Cloning::dst: a 2D sine transform of ``a`` (rows, then the transposed rows)."""
    import cv2  # as in postprocess()

    flags = cv2.DFT_ROWS | cv2.DFT_SCALE | cv2.DFT_INVERSE if inverse else cv2.DFT_ROWS
    for _ in range(2):
        n = a.shape[1]
        odd = np.zeros((a.shape[0], 2 * n + 2), F32)  # 0, a, 0, -reversed(a)
        odd[:, 1:n + 1] = a
        odd[:, n + 2:] = -a[:, ::-1]
        spectrum = cv2.dft(cv2.merge([odd, np.zeros_like(odd)]), flags=flags)
        a = np.ascontiguousarray(spectrum[..., 1][:, 1:n + 1].T)  # imaginary part, transposed
    return a
