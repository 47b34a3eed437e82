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
from .preprocess import check_input_fill, check_mean

FORMAT = "glcic-fast-checkpoint"
FORMAT_VERSION = 1


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
    float32 weights. ``mean`` and ``input_fill`` pass the checks the loader applies, so a
    file that is written can be loaded (``ValueError`` otherwise, nothing written).
    """
    from safetensors.torch import save

    mean = check_mean(mean)
    input_fill = check_input_fill(input_fill)
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
    check_metadata(meta, str(path))
    meta.setdefault("input_fill", "subtract-mean")
    return meta


def check_metadata(meta: dict[str, Any], where: str) -> None:
    """Raise ``CheckpointError`` unless every field the package uses holds a usable value.

    Each of these reaches the pixels: a bad mean or fill shifts every input (the hole comes
    back black, white or off-colour), so nothing is left for ``complete`` to trip over.
    """
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: format_version must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where}: written by a newer glcic-fast (format {version}); upgrade glcic-fast")
    if meta.get("model_kind") != "completion":
        raise CheckpointError(f"{where}: holds a {meta.get('model_kind')!r} model, not a completion network")
    if not isinstance(meta.get("layer_order"), str) or meta["layer_order"] not in LAYER_ORDERS:
        raise CheckpointError(f"{where}: unknown layer_order {meta.get('layer_order')!r} (expected one of {LAYER_ORDERS})")
    try:
        check_mean(meta.get("mean"), "metadata mean")
        check_input_fill(meta.get("input_fill", "subtract-mean"), "metadata input_fill")
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None


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
    state = {name: _checked_tensor(path, name, tensors[name], ref) for name, ref in expected.items()}
    network.load_state_dict(state)
    network.eval()
    return network, meta


def _checked_tensor(path, name: str, t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` as ``ref``'s dtype, or ``CheckpointError`` if it cannot be that tensor's value."""
    if tuple(t.shape) != tuple(ref.shape):
        raise CheckpointError(f"{path}: tensor {name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
    if ref.is_floating_point():
        # integer or boolean weights would load (and silently compute something else)
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: tensor {name} holds {str(t.dtype).replace('torch.', '')} values; "
                                  "weights and BatchNorm statistics must be floating point")
        t = t.to(ref.dtype)  # checked after the cast: float64 values beyond float32's range become inf
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values (after conversion to {ref.dtype})")
        if name.endswith("running_var") and (t < 0).any():
            raise CheckpointError(f"{path}: tensor {name} holds negative variances (the network would compute NaN)")
        return t
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise CheckpointError(f"{path}: tensor {name} holds {str(t.dtype).replace('torch.', '')} values, expected integers")
    return t.to(ref.dtype)
