"""Uploaded photos and masks: decoded and checked in memory, kept in memory, never on disk.

A photo is sent once per page session and held here under a random id, so each completion
request carries only the mask. The store keeps the most recent few photos (and each one's
latest result) and forgets the oldest; the page uploads again if its photo was forgotten.
"""

from __future__ import annotations

import io
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

# What browsers send and Pillow decodes; anything else is refused before decoding.
PHOTO_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# What Pillow raises on damaged data (its plugins use all of these).
DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)
KINDS = "PNG, JPEG, WebP, GIF, BMP or TIFF"
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7,700 x 5,200 photo; stops decompression bombs early


class UploadError(Exception):
    """A request the page must be told about: ``status`` is the HTTP status, the text is shown."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Photo:
    id: str
    name: str
    pixels: np.ndarray  # HxWx3 uint8: what the next hole is cut from
    latest_seq: int = -1  # the newest completion request seen for this photo
    result: Optional[np.ndarray] = None
    result_seq: int = -1


def _open_image(data: bytes, name: str, max_pixels: int, what: str):
    """A loaded PIL image from ``data``, or an UploadError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError(400, f"{name}: the file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UploadError(415, f"{name}: not an image this app can read (it accepts {KINDS} {what}s)") from None
    except Image.DecompressionBombError:
        raise UploadError(413, f"{name}: far too many pixels; the limit is {max_pixels:,}") from None
    except DECODING_ERRORS as e:  # a known format whose header is already broken
        raise UploadError(422, f"{name}: the image data is damaged or cut short ({e})") from None
    if image.format not in PHOTO_FORMATS:
        raise UploadError(415, f"{name}: {image.format} files are not accepted; use PNG, JPEG or WebP")
    w, h = image.size
    if w * h > max_pixels:
        raise UploadError(413, f"{name}: {w}x{h} has {w * h:,} pixels; the limit is {max_pixels:,}")
    try:
        image.load()
    except DECODING_ERRORS as e:
        raise UploadError(422, f"{name}: the {image.format} data is damaged or cut short ({e})") from None
    return image


def decode_photo(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB, upright (EXIF orientation applied, as browsers show it)."""
    from PIL import ImageOps

    image = _open_image(data, name, max_pixels, "photo")
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError):
        pass  # a broken orientation tag: show the photo as stored, like a browser does
    if image.mode == "F":
        raise UploadError(415, f"{name}: floating-point pixels are not accepted; save it with 8 or 16 bits")
    if image.mode.startswith("I"):  # 16-bit greyscale (PNG, TIFF): convert("RGB") would clip it
        wide = np.asarray(image).astype(np.int64)
        if wide.min() < 0 or wide.max() > 65535:
            raise UploadError(415, f"{name}: 32-bit pixels are not accepted; save it with 8 or 16 bits")
        return np.repeat((wide >> 8).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def decode_mask(data: bytes, shape: tuple[int, int], x: int = 0, y: int = 0) -> np.ndarray:
    """HxW uint8 mask (0 = keep, 255 = hole) from the page's PNG of the brushed box at (x, y).

    The page sends only the box around its strokes; the rest of the photo is not hole. The
    Completer checks that the mask is binary."""
    image = _open_image(data, "mask", shape[0] * shape[1], "mask")
    if image.format != "PNG":
        raise UploadError(415, f"mask: must be a PNG (lossless), got {image.format}")
    w, h = image.size
    if x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise UploadError(
            422, f"mask: a {w}x{h} box at ({x}, {y}) does not fit in the {shape[1]}x{shape[0]} photo"
        )
    mask = np.zeros(shape, np.uint8)
    mask[y : y + h, x : x + w] = np.asarray(image.convert("L"))
    if not mask.any():
        raise UploadError(422, "mask: there is no hole; brush over what to remove")
    return mask


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array. Low compression: this goes over loopback, time matters more."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def changed_region(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the smallest box holding every pixel that differs; (0, 0, 0, 0) if none."""
    diff = (before != after).any(axis=2)
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


class PhotoStore:
    """The most recent ``capacity`` photos by id, in memory (least recently used goes first)."""

    def __init__(self, capacity: int = 8):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._photos: OrderedDict[str, Photo] = OrderedDict()

    def add(self, name: str, pixels: np.ndarray) -> Photo:
        photo = Photo(secrets.token_urlsafe(12), name, pixels)
        self._photos[photo.id] = photo
        while len(self._photos) > self.capacity:
            self._photos.popitem(last=False)
        return photo

    def get(self, photo_id: str) -> Photo:
        photo = self._photos.get(photo_id)
        if photo is None:
            raise UploadError(
                404, f"the server no longer holds this photo (it keeps the {self.capacity} most recent); open it again"
            )
        self._photos.move_to_end(photo_id)
        return photo

    def __len__(self) -> int:
        return len(self._photos)
