"""Training data: a folder of photographs, the paper's augmentation, and holes.

The paper resizes each image so its short side is random in [256, 384] and takes a random
256x256 crop; every size here is an option so small runs scale it (e.g. 64-pixel crops from a
short side in [64, 96]).

Reproducibility is by construction: sample number ``k`` of a run (counting across steps,
processes and workers) is a pure function of ``(seed, k)``: which image (a seeded permutation
per epoch), the scale, the crop and the holes. The data-loader's state is therefore just the
step counter, so a resumed run sees exactly the batches the uninterrupted run would have seen,
however many worker processes load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .holes import check_sizes, sample_training_masks

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def list_images(root: str | Path) -> list[Path]:
    """Every jpg/png/webp under ``root`` (recursive), sorted so the list is the same everywhere."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root}: no .jpg/.jpeg/.png/.webp images found (searched recursively)")
    return files


class UnreadableImage(OSError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: cannot read image ({reason})")
        self.path = path
        self.reason = reason


def open_rgb(path: str | Path, min_side: Optional[int] = None):
    """A decoded PIL RGB image; JPEGs are decoded at a reduced scale when ``min_side`` allows (fast).

    Raises ``UnreadableImage`` for anything that is not a readable image (PIL reports broken
    files as OSError, SyntaxError, ValueError, ... depending on the format).
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if min_side is not None and img.format == "JPEG":
                # draft() picks the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides >= the request.
                w, h = img.size
                f = min_side / min(w, h)
                img.draft("RGB", (max(1, int(w * f) + 1), max(1, int(h * f) + 1)))
            return img.convert("RGB")  # decodes the whole file: truncation shows here
    except Exception as e:  # noqa: BLE001 - any decoder failure means "this file is unusable"
        raise UnreadableImage(path, f"{type(e).__name__}: {e}") from None


def resize_short_side(img, short: int):
    """Resize a PIL image so its short side is ``short`` pixels (keeping the aspect ratio)."""
    from PIL import Image

    w, h = img.size
    f = short / min(w, h)
    size = (max(short, round(w * f)), max(short, round(h * f)))
    return img.resize(size, Image.BILINEAR, reducing_gap=2.0)


def load_square_crops(
    folder: str | Path, size: int, limit: Optional[int] = None, on_skip: Optional[Callable[[str, Exception], None]] = None
) -> tuple[list[np.ndarray], list[str]]:
    """The photos of ``folder`` as uint8 RGB squares: short side resized to ``size``, centre crop.

    What evaluation and validation look at. Unreadable files are passed to ``on_skip(name,
    error)`` and left out; ``ValueError`` if none is readable. Names are relative to ``folder``.
    """
    files = list_images(folder)
    if limit is not None:
        files = files[:limit]
    images, names = [], []
    for f in files:
        name = f.relative_to(Path(folder)).as_posix()
        try:
            img = resize_short_side(open_rgb(f, size), size)
        except UnreadableImage as e:
            if on_skip is not None:
                on_skip(name, e)
            continue
        w, h = img.size
        x0, y0 = (w - size) // 2, (h - size) // 2
        images.append(np.asarray(img.crop((x0, y0, x0 + size, y0 + size)), dtype=np.uint8))
        names.append(name)
    if not images:
        raise ValueError(f"{folder}: none of the {len(files)} image file(s) can be read")
    return images, names


def compute_mean_pixel(files: Sequence[Path], thumb_side: int = 64, skipped: Optional[list] = None) -> list[float]:
    """The training set's mean RGB in [0, 1] (each image weighted equally, from a thumbnail).

    Computed once per run and stored in every checkpoint: the network's input is
    ``image - mean`` with the hole set to 0, so the same mean must be used at inference.
    Unreadable files are left out and appended to ``skipped`` (as ``UnreadableImage``); if no
    file is readable, ``ValueError``.
    """
    total = np.zeros(3, dtype=np.float64)
    used = 0
    for f in files:
        try:
            img = resize_short_side(open_rgb(f, thumb_side), thumb_side)
        except UnreadableImage as e:
            if skipped is not None:
                skipped.append(e)
            continue
        total += np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(0) / 255.0
        used += 1
    if not used:
        raise ValueError(f"none of the {len(files)} image(s) can be read (e.g. {files[0] if files else '-'}); nothing to train on")
    return [float(v) for v in total / used]


class PhotoCropDataset(Dataset):
    """Sample ``k`` -> (image 3xSxS in [0,1], mask 1xSxS, Mc local box (y, x), Md local box (y, x), skipped).

    Indexed by the global sample number ``k`` (any non-negative integer): epoch ``k // N``
    visits the N images in a permutation seeded by ``(seed, epoch)``.
    """

    def __init__(
        self,
        files: Sequence[Path],
        image_size: int,
        local_size: int,
        hole_min: int,
        hole_max: int,
        scale_min: Optional[int] = None,
        scale_max: Optional[int] = None,
        seed: int = 0,
    ):
        check_sizes(image_size, local_size, hole_min, hole_max)
        self.files = list(files)
        if not self.files:
            raise ValueError("no training images")
        self.image_size = image_size
        self.local_size = local_size
        self.hole_min = hole_min
        self.hole_max = hole_max
        # The paper's [256, 384] for 256 crops, i.e. [1, 1.5] x the crop size.
        self.scale_min = scale_min if scale_min is not None else image_size
        self.scale_max = scale_max if scale_max is not None else (image_size * 3) // 2
        if not image_size <= self.scale_min <= self.scale_max:
            raise ValueError(
                f"need image_size <= scale_min <= scale_max, got {image_size}, {self.scale_min}, {self.scale_max}"
            )
        self.seed = seed
        self._perm_epoch = -1
        self._perm = np.arange(0)

    def __len__(self) -> int:  # one epoch; indices beyond it are valid too (later epochs)
        return len(self.files)

    def image_index(self, k: int) -> int:
        epoch, pos = divmod(k, len(self.files))
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(self.files))
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def __getitem__(self, k: int):
        """Sample ``k``, plus the index of an unreadable image it had to skip (-1 if none).

        An image that cannot be decoded is replaced by the next one in the epoch's order (a
        pure function of ``k`` and which files are readable, so resume stays bit-for-bit); the
        caller reports the skipped file.
        """
        rng = np.random.default_rng([self.seed, int(k)])
        n = len(self.files)
        epoch, pos = divmod(int(k), n)
        first_bad = -1
        for attempt in range(n):
            index = self.image_index(epoch * n + (pos + attempt) % n)
            try:
                img = open_rgb(self.files[index], self.scale_min)
                break
            except UnreadableImage:
                first_bad = index if first_bad < 0 else first_bad
        else:
            raise ValueError(f"none of the {n} training images can be read any more (e.g. {self.files[0]})")
        img = resize_short_side(img, int(rng.integers(self.scale_min, self.scale_max + 1)))
        w, h = img.size
        s = self.image_size
        x0 = int(rng.integers(0, w - s + 1))
        y0 = int(rng.integers(0, h - s + 1))
        crop = np.asarray(img.crop((x0, y0, x0 + s, y0 + s)), dtype=np.float32) / 255.0
        mask, local_c, local_d = sample_training_masks(rng, s, self.local_size, self.hole_min, self.hole_max)
        return (
            torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            torch.from_numpy(mask)[None],
            torch.tensor([local_c.y, local_c.x], dtype=torch.int64),
            torch.tensor([local_d.y, local_d.x], dtype=torch.int64),
            torch.tensor(first_bad, dtype=torch.int64),
        )


class StepBatchSampler(Sampler):
    """Yields the sample numbers of each step's batch for one process, from ``start_step`` on.

    Step ``b`` of process ``rank`` (of ``world``) takes samples
    ``(b * world + rank) * batch_size + i``: processes never share a sample, and resuming at
    step ``b`` just starts the count there.
    """

    def __init__(self, batch_size: int, start_step: int = 0, stop_step: Optional[int] = None, rank: int = 0, world: int = 1):
        self.batch_size = batch_size
        self.start_step = start_step
        self.stop_step = stop_step
        self.rank = rank
        self.world = world

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start_step
        while self.stop_step is None or b < self.stop_step:
            first = (b * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            b += 1

    def __len__(self) -> int:
        if self.stop_step is None:
            raise TypeError("an open-ended sampler has no length")
        return max(0, self.stop_step - self.start_step)


def crop_boxes(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Stack the ``size`` x ``size`` patches of ``images`` (N,C,H,W) at ``corners`` (N, 2: y, x)."""
    return torch.stack(
        [images[i, :, int(y) : int(y) + size, int(x) : int(x) + size] for i, (y, x) in enumerate(corners.tolist())]
    )
