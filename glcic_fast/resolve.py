"""What a user names as a model -> the folded layers every backend and exporter consumes.

A model is named as None (the packaged default), a checkpoint path, or an in-memory
``CompletionNetwork``; ``resolve_model`` turns each into BatchNorm-folded layers plus the input
convention the network was trained with (mean pixel, how holes are blanked) and the
checkpoint's metadata. The completion API, the exporters and the benchmarks all start here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .errors import CheckpointError
from .layers import PLACES2_MEAN

if TYPE_CHECKING:
    from .folding import FoldedLayer

DEFAULT_MODEL = Path(__file__).parent / "data" / "glcic_default.safetensors"
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def is_engine_path(model: Any) -> bool:
    """True for a path that names a TensorRT engine (run by the tensorrt backend, not folded)."""
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() in ENGINE_SUFFIXES


def resolve_model(
    model: Any, mean: Optional[Sequence[float]] = None
) -> tuple[list["FoldedLayer"], tuple[float, ...], str, dict[str, Any]]:
    """(folded layers, mean, input_fill, metadata) for a checkpoint path, a network, or None."""
    # These import torch: here, not at the top, so an engine-only deployment (which imports
    # this module through the API) runs without it.
    from .checkpoint import load_checkpoint
    from .folding import fold_batchnorm
    from .model import CompletionNetwork

    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise FileNotFoundError(
                f"the packaged default model is missing ({DEFAULT_MODEL}); this install has no trained "
                "weights, so pass a checkpoint: glcic_fast.load('model.safetensors') / --model"
            )
        model = DEFAULT_MODEL
    if isinstance(model, CompletionNetwork):
        fill = "subtract-mean" if model.order == "glcic" else "mean"
        return fold_batchnorm(model), tuple(PLACES2_MEAN if mean is None else mean), fill, {"source": "in-memory CompletionNetwork"}
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix.lower() == ".t7":
            raise CheckpointError(f"{path}: a Torch7 file; convert it first: glcic-fast import-weights {path} -o model.safetensors")
        network, meta = load_checkpoint(path)
        return fold_batchnorm(network), tuple(meta["mean"] if mean is None else mean), meta["input_fill"], meta
    raise TypeError(f"model must be a checkpoint path, a CompletionNetwork or None, got {type(model).__name__}")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a model file: how checkpoints, engines and exports record what they came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
