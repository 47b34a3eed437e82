"""The training state file: safetensors tensors + one JSON document, nothing that can run code.

``train_state.safetensors`` holds everything a run needs to continue bit-for-bit (both
networks, both optimisers' state, the AMP scaler, RNG states, step, options, mean pixel).
Reading it never unpickles: safetensors is a flat header + raw tensor bytes, and the JSON
document describes the nesting. A state is a tree of dicts, lists, tuples, numbers, strings,
``None``, tensors and numpy arrays; in the JSON, tensors and arrays become references to
safetensors entries and the few shapes JSON cannot say are tagged:

* ``{"$tensor": KEY}``: the tensor stored under KEY;
* ``{"$array": KEY, "dtype": D}``: a numpy array (stored as a tensor; D restores its dtype);
* ``{"$tuple": [...]}``: a tuple (Python's RNG state is one);
* ``{"$dict": [[key, value], ...]}``: a dict with non-string keys (optimiser state uses ints).

Decoding accepts only these tags and plain JSON, so a crafted file can at worst be refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import TrainStateError

FORMAT = "glcic-fast-train-state"
VERSION = 2  # 1 was a pickle (train_state.pt), which glcic-fast no longer reads
METADATA_KEY = "glcic_fast_train_state"
LEGACY_FILE_SUFFIX = ".pt"


def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(value, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).astype(np.int64 if value.dtype.kind in "ui" else value.dtype))
        return {"$array": key, "dtype": value.dtype.str}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, tensors, f"{key}/{k}") for k, v in value.items()}
        return {"$dict": [[k, _encode(v, tensors, f"{key}/{k}")] for k, v in value.items()]}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"training state entry {key!r} has type {type(value).__name__}, which the state file cannot hold")


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TrainStateError(f"{where}: unexpected {type(value).__name__} in the state document")
    if "$tensor" in value or "$array" in value:
        key = value.get("$tensor", value.get("$array"))
        if not isinstance(key, str) or key not in tensors:
            raise TrainStateError(f"{where}: the state document names a tensor {key!r} the file does not hold")
        if "$tensor" in value:
            return tensors[key]
        try:
            dtype = np.dtype(str(value.get("dtype")))
        except TypeError:
            raise TrainStateError(f"{where}: bad array dtype {value.get('dtype')!r}") from None
        if dtype.kind not in "uifb":
            raise TrainStateError(f"{where}: array dtype {dtype} is not numeric")
        return tensors[key].numpy().astype(dtype)
    if "$tuple" in value:
        return tuple(_decode(v, tensors, where) for v in value["$tuple"])
    if "$dict" in value:
        pairs = value["$dict"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise TrainStateError(f"{where}: malformed $dict entry in the state document")
        out = {}
        for k, v in pairs:
            if not isinstance(k, (int, str)):
                raise TrainStateError(f"{where}: dict key {k!r} is neither int nor str")
            out[k] = _decode(v, tensors, where)
        return out
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def encode_state(state: dict[str, Any]) -> bytes:
    """The file's bytes for ``state`` (a tree as described above)."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    document = _encode(state, tensors, "s")
    return save(tensors, metadata={METADATA_KEY: json.dumps({"format": FORMAT, "version": VERSION, "state": document})})


def save_state(path: Union[str, os.PathLike], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (see ``glcic_fast.atomic``)."""
    return atomic_write(path, encode_state(state))


def load_state(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """Read a state written by ``save_state``; ``TrainStateError`` names the file and the problem."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise TrainStateError(f"{path}: no such training state file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80" or path.suffix == LEGACY_FILE_SUFFIX:
        raise TrainStateError(
            f"{path}: looks like a pickled training state (glcic-fast < 0.2 wrote train_state.pt). Pickles "
            "can run code when read, so glcic-fast no longer reads them; start the run again "
            "(the checkpoint model.safetensors beside it is still usable)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own types for garbage and truncation
        raise TrainStateError(f"{path}: not a readable training state (corrupt or truncated safetensors file: {e})") from None
    raw = meta.get(METADATA_KEY)
    if raw is None:
        raise TrainStateError(f"{path}: a safetensors file, but not a glcic-fast training state (no {METADATA_KEY} metadata)")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise TrainStateError(f"{path}: the training state's JSON document is corrupt ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TrainStateError(f"{path}: not a glcic-fast training state")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise TrainStateError(f"{path}: written by a newer glcic-fast (state version {doc.get('version')!r}); upgrade")
    state = _decode(doc.get("state"), tensors, str(path))
    if not isinstance(state, dict):
        raise TrainStateError(f"{path}: the training state document is not a mapping")
    return state
