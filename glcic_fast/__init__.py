"""glcic-fast: fast, trustworthy image completion with GLCIC (Iizuka et al., SIGGRAPH 2017).

    import glcic_fast
    completer = glcic_fast.load()            # once
    result = completer.complete(image, mask) # many times

Names are imported lazily (PEP 562) so that ``glcic-fast --help`` and light tools do not pay
for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "api",
    "Completer": "api",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_metadata": "checkpoint",
    "CheckpointError": "errors",
    "BackendUnavailable": "errors",
    "FoldedLayer": "folding",
    "fold_batchnorm": "folding",
    "COMPLETION_LAYERS": "layers",
    "ConvSpec": "layers",
    "macs_per_pixel": "layers",
    "CompletionNetwork": "model",
    "ContextDiscriminator": "model",
    "InputError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glcic_fast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
