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
    for candidate in AUTO_ORDER[device]:
        if unavailable_reason(candidate, device) is None and (
            precision in (None, "auto") or precision in backend_class(candidate).precisions
        ):
            return candidate
    reasons = "; ".join(f"{n}: {unavailable_reason(n, device)}" for n in AUTO_ORDER[device])
    raise BackendUnavailable(f"no backend can run on {device}: {reasons}")


__all__ = [
    "Backend", "BackendUnavailable", "REGISTRY", "backend_class", "default_device", "default_precision", "resolve",
    "unavailable_reason",
]
