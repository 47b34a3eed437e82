"""Backend registry: names -> classes, imported lazily so a missing optional dependency only
matters to the backend that needs it."""

from __future__ import annotations

import importlib
from typing import Optional

from .base import Backend, BackendUnavailable

# name -> (module, class). Order is the "auto" preference on a GPU.
REGISTRY: dict[str, tuple[str, str]] = {
    "tensorrt": ("glcic_fast.backends.tensorrt_backend", "TensorRTBackend"),
    "triton": ("glcic_fast.backends.triton_backend", "TritonBackend"),
    "torch": ("glcic_fast.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("glcic_fast.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("glcic_fast.backends.openvino_backend", "OpenVINOBackend"),
}
# "auto" from a checkpoint: TensorRT needs an engine built first, so it is never picked here.
# On a CPU with precision="auto", backends.cpu_auto picks backend and precision together; this
# order serves an explicit precision (the first backend here that has it: onnxruntime for fp32
# and int8, openvino for bf16).
AUTO_ORDER = {"cuda": ("triton", "torch", "onnxruntime"), "cpu": ("onnxruntime", "openvino", "torch")}
# Every precision some backend runs (each backend's ``precisions`` says which it has); "auto"
# lets load() pick one.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def check_precision(precision: object) -> str:
    """``precision`` if it is "auto" or one of ``PRECISIONS``; ``ValueError`` listing them otherwise."""
    if not isinstance(precision, str) or precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision must be 'auto' or one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)} or 'auto'")
    module, cls = REGISTRY[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise BackendUnavailable(f"the {name} backend cannot be imported: {e}") from None


def unavailable_reason(name: str, device: str) -> Optional[str]:
    try:
        cls = backend_class(name)
    except BackendUnavailable as e:
        return str(e)
    if device not in cls.devices:
        return f"runs on {'/'.join(cls.devices)} only"
    return cls.unavailable_reason(device)


def default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def default_precision(backend: str, device: str) -> str:
    """What precision="auto" means: fp16 for the GPU backends that run it, fp32 elsewhere."""
    return "fp16" if device == "cuda" and backend in ("torch", "triton") else "fp32"


def resolve(name: str, device: str, precision: Optional[str] = None) -> str:
    """The concrete backend name for ``name`` ("auto" or a backend) on ``device``; for "auto"
    with a ``precision``, the first available backend that runs it."""
    if name != "auto":
        backend_class(name)  # unknown names fail here with the list of choices
        return name
    reasons = []
    for candidate in AUTO_ORDER[device]:  # in order, importing no backend past the one picked
        reason = _why_not(candidate, device, precision)
        if reason is None:
            return candidate
        reasons.append(f"{candidate}: {reason}")
    wanted = "" if precision in (None, "auto") else f" at precision {precision}"
    raise BackendUnavailable(f"no backend can run{wanted} on {device}: {'; '.join(reasons)}")


def _why_not(name: str, device: str, precision: Optional[str]) -> Optional[str]:
    """None if backend ``name`` runs ``precision`` on ``device`` here, else why not."""
    reason = unavailable_reason(name, device)
    if reason is None and precision not in (None, "auto") and precision not in backend_class(name).precisions:
        return f"runs {'/'.join(backend_class(name).precisions)} only"
    return reason


__all__ = [
    "PRECISIONS", "Backend", "BackendUnavailable", "REGISTRY", "backend_class", "check_precision", "default_device",
    "default_precision", "resolve", "unavailable_reason",
]
