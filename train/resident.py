"""Training data that lives on the GPU: photos decoded once, crops, flips and holes drawn there.

A ``PhotoBank`` decodes every photo once (in threads) and keeps it as uint8 in one padded
``(N, 3, H, W)`` tensor on the device: ~0.5 GB for a thousand photos with a 384 px short side,
nothing for an H200. ``sample(step)`` then makes a whole batch with a handful of kernels and
no host work: for each sample an image, a scale, a window and a flip are drawn, and one
``grid_sample`` call resamples every window to ``image_size`` (bilinear; the windows are at
most 1.5x the crop, so no anti-aliasing is needed), followed by the paper's holes (one
rectangle inside a local region, an independent region for the discriminator's real
samples). No data loader, no stalls, nothing to pin or copy.

The paper's augmentation with one rule kept strictly: photos are never enlarged. The short
side is drawn from [image_size, min(scale_max, the photo's short side)], so a photo whose short
side is below ``image_size`` is skipped when the bank is built (and counted).

Every batch is a pure function of ``(seed, step)`` on a given device (a generator reseeded per
step), so a resumed run sees the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import UnreadableImage, open_rgb, resize_short_side
from .holes import check_sizes


class PhotoBank:
    """Every usable photo as uint8 on ``device``; ``sample(step, batch)`` draws a training batch."""

    def __init__(
        self,
        files: Sequence[Path],
        image_size: int,
        local_size: int,
        hole_min: int,
        hole_max: int,
        scale_max: Optional[int] = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        max_aspect: float = 2.0,
        threads: int = 8,
        log: Callable[[str], None] = print,
    ):
        check_sizes(image_size, local_size, hole_min, hole_max)
        self.image_size, self.local_size, self.hole_min, self.hole_max = image_size, local_size, hole_min, hole_max
        self.scale_max = scale_max if scale_max is not None else (image_size * 3) // 2
        self.device = torch.device(device)
        self.seed = seed
        store_short = self.scale_max  # larger is never used: every crop is at most this scale

        def load(path: Path):
            try:
                img = open_rgb(path, store_short)
            except UnreadableImage as e:
                return None, f"unreadable ({e.reason})"
            if min(img.size) < image_size:
                return None, f"short side {min(img.size)} < {image_size} (would need enlarging)"
            if min(img.size) > store_short:
                img = resize_short_side(img, store_short)
            w, h = img.size
            long_cap = int(min(w, h) * max_aspect)  # panoramas: keep the centre
            if max(w, h) > long_cap:
                x0, y0 = (w - min(w, long_cap)) // 2, (h - min(h, long_cap)) // 2
                img = img.crop((x0, y0, x0 + min(w, long_cap), y0 + min(h, long_cap)))
            return np.array(img, dtype=np.uint8), None  # a writable copy

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL decodes without the GIL
            loaded = list(pool.map(load, files))
        self.files = [f for f, (arr, _) in zip(files, loaded) if arr is not None]
        self.skipped = {str(f): why for f, (arr, why) in zip(files, loaded) if arr is None}
        for name, why in self.skipped.items():
            log(f"warning: skipping {name}: {why}")
        arrays = [arr for arr, _ in loaded if arr is not None]
        if not arrays:
            raise ValueError(f"none of the {len(files)} photo(s) can be used for {image_size}px crops")
        height = max(a.shape[0] for a in arrays)
        width = max(a.shape[1] for a in arrays)
        bank = torch.zeros((len(arrays), 3, height, width), dtype=torch.uint8)
        for i, a in enumerate(arrays):
            bank[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(a).permute(2, 0, 1)
        self.images = bank.to(self.device)
        self.sizes = torch.tensor([[a.shape[0], a.shape[1]] for a in arrays], dtype=torch.float32, device=self.device)
        self.generator = torch.Generator(device=self.device)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device)

    def _integers(self, low, high_inclusive, n: int) -> torch.Tensor:
        """Uniform integers in [low, high] per sample (bounds may be tensors)."""
        span = torch.as_tensor(high_inclusive, device=self.device, dtype=torch.float32) - low + 1
        return (low + torch.floor(self._uniform(n) * span)).long()

    def sample(self, step: int, batch: int, rank: int = 0):
        """Batch ``step`` (of process ``rank``): (images N,3,S,S in [0,1], masks N,1,S,S, Mc corners, Md corners, skipped).

        The last item is a tensor of -1 (every bank photo is readable), matching ``PhotoCropDataset``.
        """
        self.generator.manual_seed(int(np.random.SeedSequence([self.seed, step, rank]).generate_state(1)[0]))
        s, n = self.image_size, batch
        index = self._integers(0, len(self) - 1, n)
        hw = self.sizes[index]  # (n, 2) stored height, width
        short = hw.min(1).values
        scale = s + self._uniform(n) * (torch.clamp(short, max=self.scale_max) - s)  # new short side, >= s
        window = s * short / scale  # source pixels covered by the crop (>= s: only shrinking)
        y0 = self._uniform(n) * (hw[:, 0] - window)
        x0 = self._uniform(n) * (hw[:, 1] - window)
        flip = self._uniform(n) < 0.5
        ramp = (torch.arange(s, device=self.device, dtype=torch.float32) + 0.5) / s
        xs = torch.where(flip[:, None], 1.0 - ramp[None], ramp[None])
        gx = (x0[:, None] + xs * window[:, None]) / self.images.shape[3] * 2 - 1  # align_corners=False
        gy = (y0[:, None] + ramp[None] * window[:, None]) / self.images.shape[2] * 2 - 1
        grid = torch.stack([gx[:, None, :].expand(n, s, s), gy[:, :, None].expand(n, s, s)], dim=-1)
        images = F.grid_sample(self.images[index].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        images = (images / 255.0).clamp_(0, 1).contiguous(memory_format=torch.channels_last)

        local, lo, hi = self.local_size, self.hole_min, self.hole_max
        ly, lx = self._integers(0, s - local, n), self._integers(0, s - local, n)
        hh, ww = self._integers(lo, hi, n), self._integers(lo, hi, n)
        hy = ly + self._integers(0, local - hh, n)
        hx = lx + self._integers(0, local - ww, n)
        pos = torch.arange(s, device=self.device)
        rows = (pos[None] >= hy[:, None]) & (pos[None] < (hy + hh)[:, None])
        cols = (pos[None] >= hx[:, None]) & (pos[None] < (hx + ww)[:, None])
        masks = (rows[:, :, None] & cols[:, None, :]).float()[:, None]
        corners_c = torch.stack([ly, lx], 1)
        corners_d = torch.stack([self._integers(0, s - local, n), self._integers(0, s - local, n)], 1)
        # "skipped" stays on the CPU: the training loop reads it every step, and a GPU tensor would sync
        return images, masks, corners_c, corners_d, torch.full((n,), -1, dtype=torch.long)

    def batches(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1):
        """Batches for steps [start, stop) of process ``rank``: what ``Trainer.make_loader`` yields."""
        for step in range(start, stop):
            yield self.sample(step * world + rank, batch)
