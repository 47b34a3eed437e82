"""PIL images in and out: the modes the completer takes, and how each comes back as it came in.

The network sees RGB; a PIL image comes back in its own mode and size, every pixel outside the
hole as it was. Per mode:

- ``RGB``: as is.
- ``L`` (8-bit grey), ``1`` (bilevel), ``I;16``/``I;16L``/``I;16B``/``I;16N`` (16-bit grey,
  0..65535), ``F`` (32-bit float grey in [0, 1], like float numpy images): the grey value is
  repeated into R, G and B for the network; the hole comes back as the fill's luma (ITU-R 601
  weights, PIL's own for RGB -> L), rounded into the mode's type (``1``: white from half scale
  up). 16-bit stays 16-bit and float stays float; outside the hole the values are the
  caller's, bit for bit.
- ``RGBA``, ``LA``: colour (or grey) as above. Alpha outside the hole is kept; in the hole it
  is filled from the alpha around it by fast marching (Telea, as the paper's post-processing
  fills colours), so a hole in an opaque region comes back opaque and one on a cut-out's edge
  continues that edge. Alpha is never premultiplied here: PIL's modes hold straight alpha.
- ``P`` (palette): the palette, the image's ``info`` (transparency included) and every index
  outside the hole are kept; each hole pixel gets the index of the opaque palette entry
  nearest (RGB distance) to its completed colour. A palette image cannot hold other colours,
  so the fill is quantised to the palette, as any edit of a palette image is.
- Refused with the conversion to make: ``I`` (32-bit integers have no fixed full scale),
  ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` (our RGB round trip would not give the caller's values
  back), and the rare premultiplied / padded / signed modes (``RGBa``, ``La``, ``PA``, ``RGBX``,
  ``I;16S``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .errors import InputError

GREY_MODES = ("L", "1", "I;16", "I;16L", "I;16B", "I;16N", "F")
ALPHA_MODES = ("RGBA", "LA")
SUPPORTED_MODES = ("RGB", "RGBA", "L", "LA", "1", "P", "I;16", "I;16L", "I;16B", "I;16N", "F")
# numpy dtype of each 16-bit mode's raw bytes, for writing the result back in the same layout
_RAW_DTYPES = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2", "F": "=f4"}
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2, what PIL uses for RGB -> L
# palette lookups compare this many hole pixels with every entry at once (bounds memory)
_PALETTE_CHUNK = 4096


@dataclass
class PilSource:
    """A PIL image's mode and what the RGB working copy does not hold (alpha, palette)."""

    image: Any  # the caller's image: its mode, palette and info are copied to the result
    alpha: Optional[np.ndarray] = None  # HxW uint8, RGBA / LA
    indices: Optional[np.ndarray] = None  # HxW uint8, P
    palette: Optional[np.ndarray] = None  # Kx3 uint8 colours of the opaque entries, P
    palette_index: Optional[np.ndarray] = None  # K palette indices of those entries, P

    @property
    def mode(self) -> str:
        return self.image.mode


def read_pil(image: Any, what: str) -> tuple[np.ndarray, PilSource]:
    """(HxWx3 pixels: uint8, uint16 or float32; the source) for one PIL image."""
    mode = image.mode
    if mode not in SUPPORTED_MODES:
        raise InputError(f"{what}: PIL mode {mode!r} is not supported ({_advice(mode)}); "
                         f"supported modes: {', '.join(SUPPORTED_MODES)}")
    arr = np.asarray(image)
    source = PilSource(image)
    if mode == "RGB":
        return arr, source
    if mode in ALPHA_MODES:
        source.alpha = np.ascontiguousarray(arr[..., -1])
        colour = arr[..., :3] if mode == "RGBA" else _repeat(arr[..., 0])
        return colour, source
    if mode == "P":
        source.indices = arr
        source.palette, source.palette_index = _opaque_palette(image, what)
        return np.asarray(image.convert("RGB")), source
    grey = arr.astype(np.uint8) * 255 if mode == "1" else arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return _repeat(grey), source


def to_pil(pixels: np.ndarray, hole: np.ndarray, source: PilSource) -> Any:
    """The completed HxWx3 pixels as a PIL image in the source's mode (see the module docstring)."""
    from PIL import Image

    mode = source.mode
    if mode == "RGB":
        return _same_kind(source, np.ascontiguousarray(pixels).tobytes())
    if mode == "P":
        assert source.indices is not None and source.palette is not None and source.palette_index is not None
        indices = source.indices.copy()
        indices[hole] = _nearest_entries(pixels[hole], source.palette, source.palette_index)
        return _same_kind(source, indices.tobytes())
    if mode == "RGBA":
        assert source.alpha is not None
        return _same_kind(source, np.dstack([pixels, _fill_alpha(source.alpha, hole)]).tobytes())
    # outside the hole R = G = B = the caller's value: take it as is, never through a weighted sum
    grey = pixels[..., 0].copy()
    grey[hole] = _luma(pixels[hole], pixels.dtype)
    if mode in ALPHA_MODES:
        assert source.alpha is not None
        return _same_kind(source, np.dstack([grey, _fill_alpha(source.alpha, hole)]).tobytes())
    if mode == "1":
        bits = Image.fromarray(grey >= 128)
        bits.info = dict(source.image.info)
        return bits
    raw = grey.astype(_RAW_DTYPES.get(mode, grey.dtype), copy=False)
    return _same_kind(source, np.ascontiguousarray(raw).tobytes())


def _same_kind(source: PilSource, raw: bytes) -> Any:
    """A copy of the caller's image (mode, size, palette, info such as an ICC profile) holding new raw pixel bytes."""
    out = source.image.copy()
    out.frombytes(raw)
    return out


def _repeat(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _luma(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Grey value of N x 3 pixels, in ``dtype`` (integers rounded and clipped to their range)."""
    grey = rgb.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(dtype)
    return np.clip(grey, 0.0, 1.0).astype(dtype)


def _fill_alpha(alpha: np.ndarray, hole: np.ndarray) -> np.ndarray:
    import cv2

    from .postprocess import TELEA_RADIUS

    filled = cv2.inpaint(np.ascontiguousarray(alpha), hole.astype(np.uint8) * 255, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return np.where(hole, filled, alpha)


def _opaque_palette(image: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(colours, indices) of the palette entries a filled pixel may take: the opaque ones."""
    raw = image.getpalette("RGB") or []
    colours = np.asarray(raw, dtype=np.uint8).reshape(-1, 3)
    alpha = np.full(len(colours), 255, dtype=np.int32)
    transparency = image.info.get("transparency")
    if isinstance(transparency, int) and transparency < len(alpha):
        alpha[transparency] = 0
    elif isinstance(transparency, (bytes, bytearray)):
        n = min(len(transparency), len(alpha))
        alpha[:n] = np.frombuffer(bytes(transparency[:n]), dtype=np.uint8)
    if image.palette is not None and image.palette.mode == "RGBA":
        alpha = np.minimum(alpha, np.asarray(image.getpalette("RGBA"), dtype=np.int32).reshape(-1, 4)[:, 3])
    opaque = np.flatnonzero(alpha == 255)
    if opaque.size == 0:
        raise InputError(f"{what}: its palette has no opaque colour to fill the hole with; convert it to RGBA first")
    return colours[opaque], opaque.astype(np.uint8)


def _nearest_entries(rgb: np.ndarray, colours: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Palette index of the entry nearest to each of N x 3 colours (squared RGB distance)."""
    pal = colours.astype(np.int32)
    out = np.empty(len(rgb), dtype=np.uint8)
    for start in range(0, len(rgb), _PALETTE_CHUNK):
        part = rgb[start : start + _PALETTE_CHUNK].astype(np.int32)
        dist = ((part[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2)
        out[start : start + len(part)] = indices[dist.argmin(axis=1)]
    return out


def _advice(mode: str) -> str:
    if mode == "I":
        return "32-bit integers have no fixed full scale: convert to 'I;16' (0..65535) or 'F' (0..1)"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return "convert it to RGB first: image.convert('RGB'); a round trip through RGB would not keep its values"
    return "convert it to RGB or RGBA first"
