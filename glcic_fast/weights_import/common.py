"""What both importers share: the source record, the mean-pixel check, loading a state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import WeightsImportError
from ..resolve import file_sha256

# PyTorch's BatchNorm eps: our networks (and checkpoints, which do not store eps) use it.
TORCH_BN_EPS = 1e-5


def source_record(path: Path, fmt: str) -> dict[str, Any]:
    return {"format": fmt, "file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size}


def check_mean(mean: Sequence[float], origin: str) -> list[float]:
    values = [float(m) for m in mean]
    if len(values) != 3:
        raise WeightsImportError(f"{origin}: the mean pixel must have 3 values (R G B), got {len(values)}")
    if not all(math.isfinite(v) and -0.5 <= v <= 1.5 for v in values):
        raise WeightsImportError(
            f"{origin}: mean pixel {values} is not in the [0, 1] pixel scale GLCIC uses "
            "(a 0-255 mean? divide by 255)"
        )
    return values


def load_into(network, state: dict, origin: str) -> None:
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise WeightsImportError(f"{origin}: {name} holds NaN or infinite values")
    full = network.state_dict()
    full.update(state)  # keeps num_batches_tracked etc. at their defaults
    network.load_state_dict(full)
    network.eval()
