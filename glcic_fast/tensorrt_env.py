"""Is TensorRT installed, and which GPU is this? (The builder and the backend both ask.)

Nothing here imports tensorrt at module level; ``import_tensorrt`` does, and turns a missing
package into ``TensorRTNotInstalled`` with install instructions.
"""

from __future__ import annotations

from typing import Any, Optional

from .engine_format import GpuInfo
from .errors import TensorRTNotInstalled

TENSORRT_DOCS = "https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/installing.html"
INSTALL_HINT = (
    "TensorRT is not installed (the Python package `tensorrt` cannot be imported). Install it with "
    "`pip install tensorrt` (TensorRT >= 10.8; or `pip install 'glcic-fast[tensorrt]'`, which adds "
    "cuda-python); it needs an NVIDIA GPU and driver. Instructions: " + TENSORRT_DOCS
)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or ``TensorRTNotInstalled`` with install instructions."""
    try:
        import tensorrt
    except ImportError:
        raise TensorRTNotInstalled(INSTALL_HINT) from None
    return tensorrt


def tensorrt_version(trt: Any) -> str:
    return str(getattr(trt, "__version__", "unknown"))


def cuda_runtime() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # type: ignore[no-redef]
    return runtime


def current_gpu(index: int = 0) -> Optional[GpuInfo]:
    """Name and compute capability of CUDA device ``index``, or None without a usable GPU.

    Asks PyTorch when it is installed, else cuda-python.
    """
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None:
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return None
        props = torch.cuda.get_device_properties(index)
        return GpuInfo(props.name, f"{props.major}.{props.minor}", index)
    try:
        cudart = cuda_runtime()
    except ImportError:
        return None
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or index >= count:
        return None
    err, props = cudart.cudaGetDeviceProperties(index)
    if err != cudart.cudaError_t.cudaSuccess:
        return None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.rstrip("\x00"), f"{props.major}.{props.minor}", index)


def device_runtime_reason() -> Optional[str]:
    """None if GPU memory can be managed here (PyTorch with CUDA, or cuda-python), else why not."""
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    try:
        cuda_runtime()
    except ImportError:
        return "neither PyTorch with CUDA nor cuda-python is installed (pip install cuda-python)"
    return None


