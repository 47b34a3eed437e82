"""How much memory a network pass needs, how much is free, and the error when it does not fit.

A pass over an H x W input holds a few full-resolution 64-channel activations at once, so
its peak memory grows with H x W. Measured on the CPU (fp32, 2-core AMD EPYC, 2026-11):
onnxruntime about 1,000 bytes per input pixel at 0.25 and 1 MP, torch 650-970; a 12 MP
photo took 8.0-8.5 GiB. ``BYTES_PER_PIXEL`` is that, rounded up; 16-bit precisions halve
the activations.

What is free is the smallest of what the system says is available and the limits set on
this process (an address-space ``ulimit -v``, a cgroup's ``memory.max``); on a GPU, for the
backends that allocate through PyTorch (torch, triton), the device's free memory plus what
PyTorch's cache holds unused; for the others, unknown. The estimate only decides
whether to refuse before starting; an allocator failure during the pass is turned into the
same clear error (``is_out_of_memory``), never shown raw.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import InputError
from .preprocess import AUTHORS_MAX_SIDE

BYTES_PER_PIXEL = {"fp32": 1024, "fp16": 512, "bf16": 512}
# Backends whose GPU memory is PyTorch's (its caching allocator): the only ones whose free
# memory PyTorch can tell.
TORCH_ALLOCATED = ("torch", "triton")
GIB = 2**30
# what allocators say when they fail (torch CPU/CUDA, onnxruntime, numpy, the C++ runtime)
_OOM_MARKERS = ("can't allocate memory", "out of memory", "failed to allocate", "bad_alloc", "bad allocation",
                "unable to allocate", "cannot allocate memory")


class ImageTooLargeError(InputError):
    """A network pass would need more memory than is free; the message gives the limit and what to do."""


def bytes_per_pixel(precision: str) -> int:
    return BYTES_PER_PIXEL.get(precision, BYTES_PER_PIXEL["fp32"])


def free_bytes(device: str, backend: str) -> Optional[int]:
    """Bytes a new allocation by ``backend`` (its name) can still get on ``device`` (None where it cannot be told)."""
    if device == "cuda":
        # Another runtime (TensorRT, onnxruntime's CUDA provider) has its own allocator and
        # pool, which PyTorch's numbers know nothing of, and asking would start a PyTorch CUDA
        # context in a process that may not use torch at all: unknown, and the pass decides.
        return _free_cuda(device) if backend in TORCH_ALLOCATED else None
    limits = [v for v in (_meminfo_available(), _cgroup_free(), _address_space_free()) if v is not None]
    return min(limits) if limits else None


def too_large(
    what: str, size: tuple[int, int], limit: Optional[int], precision: str, free: Optional[int],
    max_pixels: Optional[int] = None, failed: bool = False,
) -> ImageTooLargeError:
    """The error for a network input of ``size`` (H, W) over ``limit`` pixels, or that ran out of memory."""
    h, w = size
    need = f"a {h}x{w} region ({h * w / 1e6:.1f} MP, about {h * w * bytes_per_pixel(precision) / GIB:.1f} GiB)"
    if failed:
        problem = f"ran out of memory completing {need}" + (f"; {free / GIB:.1f} GiB was free before" if free else "")
    elif max_pixels is not None:
        problem = f"the hole needs {need} through the network, more than max_pixels={max_pixels} allows"
    else:
        problem = (f"the hole needs {need} through the network, more than the {(free or 0) / GIB:.1f} GiB free "
                   f"here allows (about {(limit or 0) / 1e6:.1f} MP per pass)")
    return ImageTooLargeError(
        f"{what}: {problem}. Downscale the image (resize='authors' / --resize authors shrinks it to a long side "
        f"of {AUTHORS_MAX_SIDE} px, or resize it yourself), fill fewer or smaller holes at a time, or free memory"
    )


def is_out_of_memory(error: BaseException, short: bool = False) -> bool:
    """True for an allocator failure, whatever type the library raises it as (onnxruntime's
    ``Fail`` is not even a RuntimeError). ``short``: the pass was expected to need more than
    was free; then oneDNN's "could not create a primitive" (what torch's CPU convolutions say
    when they cannot map memory for a kernel) counts too."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return any(marker in text for marker in _OOM_MARKERS) or (short and "could not create a primitive" in text)


def _meminfo_available() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_free() -> Optional[int]:
    """memory.max - memory.current of this process's cgroup (v2), where a limit is set."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        base = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text()))
    except (OSError, ValueError, IndexError):
        return None


def _address_space_free() -> Optional[int]:
    """What ``ulimit -v`` (RLIMIT_AS) still allows this process to map."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, limit - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _free_cuda(device: str) -> Optional[int]:
    """Free memory on the backend's torch device plus what PyTorch's cache holds unused there."""
    try:
        import torch

        dev = torch.device(device)  # "cuda": the current device, where the backend allocates
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))
    except Exception:  # noqa: BLE001 - no torch, no CUDA context: no estimate, the pass decides
        return None
