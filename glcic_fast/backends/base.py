"""The one small interface every backend implements.

A backend is built once from the BN-folded layer list (or, for TensorRT, an engine) and then
called many times: ``backend(x)`` maps a float32 numpy array (N, 4, H, W) to float32
(N, 3, H, W) in [0, 1]. Everything shape-dependent (buffers, CUDA graphs, sessions) is
prepared on the first call for a shape and reused after. Pre/post-processing lives outside
(``glcic_fast.preprocess``), so every backend is compared with the reference on the same
arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable

if TYPE_CHECKING:  # folding imports torch; a TensorRT deployment runs without it
    from ..folding import FoldedLayer

DEVICES = ("cpu", "cuda")


class Backend(ABC):
    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(self, layers: "Sequence[FoldedLayer]", device: str = "cpu", precision: str = "fp32"):
        if device not in self.devices:
            raise BackendUnavailable(f"the {self.name} backend runs on {'/'.join(self.devices)}, not {device}")
        if precision not in self.precisions:
            raise ValueError(f"the {self.name} backend supports precision {'/'.join(self.precisions)}, not {precision}")
        reason = self.unavailable_reason(device)
        if reason:
            raise BackendUnavailable(f"the {self.name} backend is not available: {reason}")
        self.device = device
        self.precision = precision

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        """None if the backend can run on ``device`` here, else why not."""
        return None

    @abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, 4, H, W) float32 -> (N, 3, H, W) float32 in [0, 1]."""

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks call this); a no-op on the CPU."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} device={self.device} precision={self.precision}>"
