"""Import published GLCIC weights into glcic-fast checkpoints (``glcic-fast import-weights``).

Two sources are understood, and anything else is refused with a message saying what was found:

- **The authors' Torch7 models** (``completionnet_places2.t7``, ``..._freeform.t7``,
  ``completionnet_celeba.t7``): a table ``{model = nn.Sequential of 50 modules, mean = tensor
  of 3}``, read without Lua through the ``torchfile`` package. Layer i (0..15) is module 3i (a
  convolution), 3i+1 (``nn.SpatialBatchNormalization``), 3i+2 (``nn.ReLU``); module 48 is the
  output convolution and 49 ``nn.Sigmoid``. The module classes are checked first, then each
  layer against ``layers.COMPLETION_LAYERS`` (kernel, stride, padding, dilation, tensor
  shapes) as it is copied; nothing is written unless everything matches. The result is the paper's Conv -> BN -> ReLU network,
  inputs blanked by subtracting the stored mean (``input_fill="subtract-mean"``).
- **GLCIC-PyTorch state_dicts** (github otenim/GLCIC-PyTorch, MIT): names ``conv1``/``bn1`` ...
  ``conv12``/``bn12``, ``deconv13``/``bn13``, ``conv14``/``bn14``, ``deconv15``/``bn15``,
  ``conv16``/``bn16``, ``conv17``; it runs Conv -> ReLU -> BN and fills holes with the mean
  pixel without subtracting it, so it becomes ``CompletionNetwork(order="glcic-pytorch")`` with
  ``input_fill="mean"``. Such checkpoints do not hold that mean pixel (GLCIC-PyTorch keeps it
  as ``mpv`` in the training run's ``config.json``), so the caller must supply it: ``--mean R G
  B`` or ``--config config.json``. There is no default: a wrong mean silently degrades every
  completion.

The checkpoint's metadata records the source (file name, sha256, format), the mean and where
it came from, and any conversion applied on the way (see ``notes``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..checkpoint import read_metadata, save_checkpoint
from ..errors import WeightsImportError
from ..resolve import file_sha256
from .glcic_pytorch import import_glcic_pytorch
from .torch7 import import_torch7

FORMATS = ("auto", "torch7", "glcic-pytorch")

__all__ = ["FORMATS", "WeightsImportError", "detect_format", "file_sha256", "import_glcic_pytorch", "import_torch7",
           "import_weights"]


def detect_format(path: str | os.PathLike) -> str:
    """"torch7" or "glcic-pytorch", from the file's first bytes (not its name: GLCIC-PyTorch
    snapshots are called ``model_cn_step400000``, without extension)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return "glcic-pytorch"  # torch.save's zip container
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "glcic-pytorch"  # torch.save's legacy pickle format
    if len(head) == 8:
        tag = int.from_bytes(head[:4], "little")
        index = int.from_bytes(head[4:], "little")
        if tag in (3, 4) and index == 1:  # Torch7: a table / torch object, object index 1
            return "torch7"
    if head[:2] in (b"3\n", b"4\n"):
        raise WeightsImportError(
            f"{path}: looks like an ASCII Torch7 file; only binary ones can be read "
            "(in Lua: torch.save(file, torch.load(file, 'ascii')) writes a binary copy)"
        )
    raise WeightsImportError(
        f"{path}: neither a Torch7 file nor a PyTorch checkpoint (first bytes {head!r}); "
        "import-weights reads the authors' .t7 models and GLCIC-PyTorch state_dicts"
    )


def import_weights(
    src: Any,
    dst: str | os.PathLike,
    format: str = "auto",
    *,
    mean: Optional[Sequence[float]] = None,
    config: Optional[str | os.PathLike] = None,
) -> dict[str, Any]:
    """Convert ``src`` (a Torch7 file, a GLCIC-PyTorch file, or a state_dict) to the checkpoint
    ``dst`` (written atomically); returns the checkpoint's metadata as read back.

    ``format``: "auto" (from the file's first bytes), "torch7" or "glcic-pytorch". ``mean``
    overrides / supplies the mean pixel; ``config`` is GLCIC-PyTorch's ``config.json``.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(src, Mapping):
        fmt = "glcic-pytorch" if format == "auto" else format
        if fmt != "glcic-pytorch":
            raise WeightsImportError("an in-memory state_dict can only be a GLCIC-PyTorch one")
    else:
        src = Path(src)
        if not src.is_file():
            raise WeightsImportError(f"{src}: no such file")
        if Path(dst).exists() and src.resolve() == Path(dst).resolve():
            raise WeightsImportError(f"{dst}: the output would overwrite the input")
        fmt = detect_format(src) if format == "auto" else format
    if fmt == "torch7":
        if config is not None:
            raise WeightsImportError("--config is GLCIC-PyTorch's config.json; a Torch7 file carries its own mean")
        network, meta = import_torch7(src, mean=mean)
    else:
        network, meta = import_glcic_pytorch(src, mean=mean, config=config)
        if meta["mean"] is None:
            raise WeightsImportError(
                f"{meta['source']['file'] or 'state_dict'}: GLCIC-PyTorch checkpoints do not store the "
                "mean pixel their holes were filled with; pass --mean R G B (the 'mpv' of the "
                "training run's config.json) or --config config.json"
            )
    save_checkpoint(
        network,
        dst,
        mean=meta["mean"],
        input_fill=meta["input_fill"],
        source=meta["source"],
        mean_from=meta["mean_from"],
        import_notes=meta["notes"],
        imported_by="glcic-fast import-weights",
    )
    return read_metadata(dst)
