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
    from ..cpu_isa import detect

    isa = detect()
    print(f"cpu: {isa.model or platform.processor() or 'unknown'}, {os.cpu_count()} logical cores, {isa.summary()}")
    print("backends:")
    for name in backends.REGISTRY:
        for device in ("cpu", "cuda"):
            reason = backends.unavailable_reason(name, device)
            print(f"  {name:12s} {device:5s} {'available' if reason is None else 'no: ' + reason}")
    for device in devices:
        try:
            print(f"auto on {device} (backend, for an explicit precision): {backends.resolve('auto', device)}")
        except backends.BackendUnavailable as e:
            print(f"auto on {device}: {e}")
    print(f"default model: {DEFAULT_MODEL if DEFAULT_MODEL.is_file() else 'missing (' + str(DEFAULT_MODEL) + ')'}")
    if DEFAULT_MODEL.is_file():
        print(cpu_auto_line(isa))
    return 0


def cpu_auto_line(isa) -> str:
    """What precision="auto" picks on this CPU for the default model, from cached verdicts only
    (measuring takes a minute: the first load or ``glcic-fast quantize`` does it)."""
    from ..backends import cpu_auto
    from ..photo_samples import InputConvention
    from ..resolve import resolve_model

    layers, mean, fill, meta = resolve_model(None)
    choice = cpu_auto.choose(layers, InputConvention.from_metadata(mean, fill, meta), isa=isa, measure=False)
    if choice is None:
        order = ", ".join(f"{b} {p}" for b, p in cpu_auto.candidates(isa))
        return (f"precision='auto' on cpu (default model): not measured on this CPU yet; the first load (or "
                f"`glcic-fast quantize`) runs the accuracy gate in this order, fastest first: {order}")
    return "precision='auto' on cpu (default model): " + choice.describe()
