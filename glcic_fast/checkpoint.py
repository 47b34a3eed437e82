"""Checkpoints: one safetensors file holding a completion network's weights and its metadata.

Metadata (safetensors stores str -> str; we store JSON values) always has ``format``,
``format_version``, ``model_kind``, ``layer_order``, ``mean`` (the mean pixel, RGB in [0, 1])
and ``input_fill`` (how holes are blanked, see ``preprocess``), plus whatever the caller adds
(source, training steps, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .atomic import atomic_write
from .errors import CheckpointError
from .layers import PLACES2_MEAN
from .model import LAYER_ORDERS, CompletionNetwork

FORMAT = "glcic-fast-checkpoint"
FORMAT_VERSION = 1
INPUT_FILLS = ("subtract-mean", "mean")


def save_checkpoint(
    network: CompletionNetwork,
    path: str | os.PathLike,
    mean: Sequence[float] = PLACES2_MEAN,
    dtype: torch.dtype = torch.float32,
    input_fill: str = "subtract-mean",
    **metadata: Any,
) -> None:
    """Write ``network`` (its weights and BatchNorm statistics) and metadata to ``path``.

    ``dtype=torch.float16`` halves the file (the shipped default model); loading always gives
    float32 weights.
    """
    from safetensors.torch import save

    if len(mean) != 3:
        raise ValueError(f"mean must have 3 values (RGB), got {list(mean)}")
    if input_fill not in INPUT_FILLS:
        raise ValueError(f"input_fill must be one of {INPUT_FILLS}, got {input_fill!r}")
    tensors = {}
    for name, t in network.state_dict().items():
        t = t.detach().cpu()
        tensors[name] = (t.to(dtype) if t.is_floating_point() else t).contiguous()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_kind": "completion",
        "layer_order": network.order,
        "mean": [float(m) for m in mean],
        "input_fill": input_fill,
        **metadata,
    }
    encoded = {k: json.dumps(v) for k, v in meta.items()}
    # Serialised in memory and written by our helper: safetensors' save_file would write its
    # own 0600 temporary file without fsync.
    atomic_write(path, save(tensors, metadata=encoded))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint, without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for garbage
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        meta = {k: json.loads(v) for k, v in raw.items()}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata is not JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a glcic-fast checkpoint (metadata format={meta.get('format')!r}); "
            "Torch7 or GLCIC-PyTorch files are converted with `glcic-fast import-weights`"
        )
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer glcic-fast (format {meta['format_version']}); upgrade glcic-fast"
        )
    if meta.get("model_kind") != "completion":
        raise CheckpointError(f"{path}: holds a {meta.get('model_kind')!r} model, not a completion network")
    if meta.get("layer_order") not in LAYER_ORDERS:
        raise CheckpointError(f"{path}: unknown layer_order {meta.get('layer_order')!r}")
    mean = meta.get("mean")
    if not (isinstance(mean, list) and len(mean) == 3 and all(isinstance(m, (int, float)) for m in mean)):
        raise CheckpointError(f"{path}: metadata mean must be 3 numbers, got {mean!r}")
    if meta.get("input_fill", "subtract-mean") not in INPUT_FILLS:
        raise CheckpointError(f"{path}: unknown input_fill {meta.get('input_fill')!r}")
    meta.setdefault("input_fill", "subtract-mean")
    return meta


def load_checkpoint(path: str | os.PathLike) -> tuple[CompletionNetwork, dict[str, Any]]:
    """Read a checkpoint: returns ``(network in eval mode, float32, CPU; metadata)``.

    Raises ``CheckpointError`` naming the file and the problem; a fresh network is built
    and only returned once every tensor has been checked, so nothing is half-loaded.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"{path}: tensor data is corrupt ({e})") from None
    network = CompletionNetwork(order=meta["layer_order"])
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: tensors do not match a GLCIC completion network "
            f"(missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''})"
        )
    state = {}
    for name, ref in expected.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values")
        state[name] = t.to(ref.dtype)
    network.load_state_dict(state)
    network.eval()
    return network, meta
