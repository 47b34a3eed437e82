"""``glcic-fast info``: devices, backends (and why any cannot run), versions, the default model."""

from __future__ import annotations

import importlib
import os
import platform

from .. import __version__, backends
from ..resolve import DEFAULT_MODEL


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser("info", help="devices, backends (and why any cannot run), versions")
    p.set_defaults(func=run)


def run(args) -> int:
    def version(module: str) -> str:
        try:
            return getattr(importlib.import_module(module), "__version__", "installed")
        except Exception:
            return "not installed"

    print(f"glcic-fast {__version__}  (Python {platform.python_version()}, {platform.machine()})")
    print("versions: " + ", ".join(f"{m} {version(m)}" for m in ("torch", "onnxruntime", "onnx", "triton", "tensorrt", "cv2")))
    devices = ["cpu"]
    try:
        import torch  # optional here: info also runs on an engine-only install

        if torch.cuda.is_available():
            devices.append("cuda")
            for i in range(torch.cuda.device_count()):
                prop = torch.cuda.get_device_properties(i)
                print(f"cuda:{i}: {prop.name}, compute capability {prop.major}.{prop.minor}, "
                      f"{prop.total_memory / 2**30:.0f} GiB")
        else:
            print("cuda: no GPU visible to PyTorch")
    except ImportError:
        print("cuda: PyTorch not installed")
    print(f"cpu: {os.cpu_count()} logical cores")
    print("backends:")
    for name in backends.REGISTRY:
        for device in ("cpu", "cuda"):
            reason = backends.unavailable_reason(name, device)
            print(f"  {name:12s} {device:5s} {'available' if reason is None else 'no: ' + reason}")
    for device in devices:
        try:
            print(f"auto on {device}: {backends.resolve('auto', device)}")
        except backends.BackendUnavailable as e:
            print(f"auto on {device}: {e}")
    print(f"default model: {DEFAULT_MODEL if DEFAULT_MODEL.is_file() else 'missing (' + str(DEFAULT_MODEL) + ')'}")
    return 0
