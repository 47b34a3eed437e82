"""GLCIC-PyTorch checkpoints (github otenim/GLCIC-PyTorch, MIT).

Names ``conv1``/``bn1`` ... ``conv12``/``bn12``, ``deconv13``/``bn13``, ``conv14``/``bn14``,
``deconv15``/``bn15``, ``conv16``/``bn16``, ``conv17``; it runs Conv -> ReLU -> BN and fills holes
with the mean pixel without subtracting it, so it becomes
``CompletionNetwork(order="glcic-pytorch")`` with ``input_fill="mean"``. The checkpoints do not
hold that mean pixel (GLCIC-PyTorch keeps it as ``mpv`` in the run's ``config.json``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

from ..errors import WeightsImportError
from ..layers import COMPLETION_IN_CHANNELS, COMPLETION_LAYERS
from ..model import CompletionNetwork
from .common import check_mean, load_into, source_record

# Where a wrapped checkpoint may keep the state_dict.
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "model_cn", "net")


def glcic_pytorch_names() -> dict[str, str]:
    """Our state_dict name -> GLCIC-PyTorch's, for every tensor of the completion network."""
    names: dict[str, str] = {}
    last = len(COMPLETION_LAYERS) - 1
    for i, spec in enumerate(COMPLETION_LAYERS):
        conv = f"{'deconv' if spec.transposed else 'conv'}{i + 1}"
        names[f"layers.{i}.conv.weight"] = f"{conv}.weight"
        names[f"layers.{i}.conv.bias"] = f"{conv}.bias"
        if i != last:
            for t in ("weight", "bias", "running_mean", "running_var"):
                names[f"layers.{i}.bn.{t}"] = f"bn{i + 1}.{t}"
    return names


def _load_state_dict(source: Any) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, Mapping):
        state, origin = source, "state_dict"
    else:
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise WeightsImportError(f"{path}: no such file")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsImportError(
                f"{path}: not a loadable PyTorch state_dict ({first}); a checkpoint holding a "
                "pickled model is not unpickled for safety: load it in GLCIC-PyTorch and "
                "torch.save(model.state_dict(), file)"
            ) from None
    if not isinstance(state, Mapping):
        raise WeightsImportError(f"{origin}: holds a {type(state).__name__}, not a state_dict")
    # Wrapped checkpoints ({"state_dict": ...}); DataParallel's "module." prefix.
    if not any(str(k).endswith("conv1.weight") for k in state):
        for key in _STATE_DICT_WRAPPERS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    keys = [str(k) for k in state]
    if keys and all(k.startswith("module.") for k in keys):
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    return state, origin


def import_glcic_pytorch(
    path_or_state_dict: Any,
    mean: Optional[Sequence[float]] = None,
    config: Optional[str | os.PathLike] = None,
):
    """Read a GLCIC-PyTorch completion-network state_dict: returns ``(CompletionNetwork, metadata)``.

    ``path_or_state_dict``: a ``torch.save``d file (``.pth``, ``.pt`` or GLCIC-PyTorch's
    extension-less ``model_cn_step...``; loaded with ``weights_only=True``) or the state_dict
    itself. The mean pixel is not in these files: give ``mean`` or ``config`` (the training
    run's ``config.json``, whose ``mpv`` is that mean); otherwise ``metadata["mean"]`` is None
    and ``import_weights`` refuses to write a checkpoint.
    """
    state, origin = _load_state_dict(path_or_state_dict)
    names = glcic_pytorch_names()
    theirs = set(names.values())
    present = {str(k) for k in state}
    # Parameter-free keys GLCIC-PyTorch may save: BatchNorm's batch counters.
    ignored = {k for k in present if k.endswith(".num_batches_tracked")}
    missing = sorted(theirs - present, key=_natural_key)
    extra = sorted(present - theirs - ignored, key=_natural_key)
    if missing or extra:
        hint = ""
        if any(k.startswith(("model_ld.", "model_gd.", "linear")) for k in extra):
            hint = " (a context discriminator checkpoint? import the completion network's model_cn file)"
        raise WeightsImportError(
            f"{origin}: not a GLCIC-PyTorch completion network: "
            f"missing {_short_list(missing)}, unexpected {_short_list(extra)}{hint}"
        )
    network = CompletionNetwork(order="glcic-pytorch")
    expected = network.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for ours, their in names.items():
        value = state[their]
        if not isinstance(value, torch.Tensor):
            raise WeightsImportError(f"{origin}: {their} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(expected[ours].shape):
            if their == "conv1.weight" and value.dim() == 4 and value.shape[1] != COMPLETION_IN_CHANNELS:
                raise WeightsImportError(
                    f"{origin}: conv1 takes {value.shape[1]} input channels, expected "
                    f"{COMPLETION_IN_CHANNELS} (RGB + mask); early GLCIC-PyTorch versions without "
                    "the mask channel are not supported"
                )
            raise WeightsImportError(
                f"{origin}: {their} has shape {tuple(value.shape)}, expected {tuple(expected[ours].shape)}"
            )
        converted[ours] = value.detach().to("cpu", torch.float32).clone()
    load_into(network, converted, origin)

    mean_values: Optional[list[float]] = None
    mean_from: Optional[str] = None
    if mean is not None:
        mean_values, mean_from = check_mean(mean, origin), "given by the user"
    elif config is not None:
        mean_values, mean_from = _mean_from_config(config), f"'mpv' of {Path(config).name}"
    if isinstance(path_or_state_dict, Mapping):
        source: dict[str, Any] = {"format": "glcic-pytorch", "file": None, "sha256": None, "note": "in-memory state_dict"}
    else:
        source = source_record(Path(path_or_state_dict), "glcic-pytorch")
    meta = {
        "mean": mean_values,
        "mean_from": mean_from,
        "input_fill": "mean",
        "layer_order": "glcic-pytorch",
        "source": source,
        "notes": [],
    }
    return network, meta


def _mean_from_config(config: str | os.PathLike) -> list[float]:
    path = Path(config)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsImportError(f"{path}: cannot read the GLCIC-PyTorch config ({e})") from None
    if not isinstance(data, dict) or "mpv" not in data:
        raise WeightsImportError(f"{path}: no 'mpv' (mean pixel value) in this config; pass --mean R G B")
    mpv = data["mpv"]
    if not isinstance(mpv, list):
        raise WeightsImportError(f"{path}: 'mpv' is {mpv!r}, expected 3 numbers")
    return check_mean(mpv, f"{path}: mpv")


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _short_list(items: list[str], limit: int = 6) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > limit else ''}]"
