"""What the benchmark feeds the network: seeded images with the paper's hole size, their network
batch, and a seeded random network (latency does not depend on the weights' values)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..preprocess import network_input


def bench_inputs(batch: int, size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, H, W, 3), bool masks (N, H, W)): noise with one centred rectangular hole
    of about 3/8 of each side (96x96 at 256x256, the paper's hole sizes)."""
    h, w = size
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
    masks = np.zeros((batch, h, w), dtype=bool)
    hh, hw = max(1, h * 3 // 8), max(1, w * 3 // 8)
    top, left = (h - hh) // 2, (w - hw) // 2
    masks[:, top : top + hh, left : left + hw] = True
    return images, masks


def network_batch(images: np.ndarray, masks: np.ndarray, mean: Sequence[float], fill: str) -> np.ndarray:
    size = masks.shape[1:]
    return np.stack([network_input(img.astype(np.float32) / 255.0, m, mean, fill, size) for img, m in zip(images, masks)])


# ----------------------------------------------------------------------------- backends


def random_layers(seed: int = 0):
    """Folded layers of a seeded random ``CompletionNetwork`` (latency does not depend on values)."""
    # These import torch, which only the random-weights network needs (and importing the bench
    # package must stay light: `glcic-fast bench --help` loads it).
    import torch

    from ..folding import fold_batchnorm
    from ..model import CompletionNetwork

    torch.manual_seed(seed)
    net = CompletionNetwork().eval()
    return fold_batchnorm(net)
