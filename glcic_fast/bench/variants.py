"""What a benchmark run covers: backend variants ("torch-fp16", "triton-nograph", ...), sizes,
batch sizes and modes, parsed from what a user types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from ..backends import REGISTRY, default_precision
from ..layers import SIZE_MULTIPLE

# The variants run when --backends is not given, in this order. torch-compile goes last
# because its first call (max-autotune compilation) is the slowest thing in the run.
# "auto" is what ``load()`` runs with the default backend and precision (on a CPU: the fastest
# variant that passes the accuracy gate there, backends.cpu_auto).
DEFAULT_VARIANTS = ("torch-fp32", "torch-fp16", "torch-bf16", "onnxruntime", "openvino-fp32", "openvino-bf16",
                    "openvino-int8", "onnxruntime-int8", "auto", "triton", "tensorrt", "torch-compile")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
AUTO = "auto"
# Modifiers a variant label may carry after the backend name: backend -> {token: (option, value)}.
MODIFIERS: dict[str, dict[str, tuple[str, Any]]] = {
    "torch": {
        "compile": ("compile", True),  # torch.compile(mode="max-autotune")
        "nchw": ("channels_last", False),  # plain NCHW instead of channels-last
        "nograph": ("cuda_graphs", False),  # no CUDA-graph capture
    },
    "triton": {
        "nograph": ("cuda_graphs", False),
        "tf32": ("allow_tf32", True),  # fp32 layers on TF32 tensor cores
        "smallbatch": ("plan", "small-batch"),  # the small-batch launch plan (kernels/plan.py)
    },
    "tensorrt": {
        "nograph": ("cuda_graphs", False),
        "plugins": ("plugins", "triton"),  # our Triton kernels inside the engine as plugins
    },
}
MODES = ("network", "end-to-end", "device")
MODE_CHOICES = {
    "network": ("network",),
    "end-to-end": ("end-to-end",),
    "device": ("device",),
    "both": ("network", "end-to-end"),
    "all": MODES,
}
DEFAULT_BASELINE = "torch-fp32"
# Default grid per device: the GPU grid of the project's targets; on a CPU one 512x512 batch-32
# call alone takes minutes, so the CPU default is the batch-1 target case and a small batch.
DEFAULT_SIZES = {"cuda": "256x256,512x512", "cpu": "256x256"}
DEFAULT_BATCH_SIZES = {"cuda": "1,8,32", "cpu": "1,4"}


@dataclass(frozen=True)
class Variant:
    """One backend configuration to time: a registry backend, a precision, backend options."""

    label: str
    backend: str
    precision: Optional[str]  # None: the device's default for this backend
    options: tuple[tuple[str, Any], ...] = ()

    def resolved_precision(self, device: str) -> str:
        if self.precision is not None:  # "auto" for the auto variant: resolved when it is built
            return self.precision
        if self.backend == "tensorrt":
            return "fp16"
        return default_precision(self.backend, device)


def parse_variant(label: str) -> Variant:
    """"torch-fp16", "torch-compile", "torch-fp32-nchw", "onnxruntime", "triton-bf16" ... -> Variant."""
    # "small-batch" (the launch plan's own name) is one modifier, spelled with its hyphen.
    tokens = label.strip().lower().replace("small-batch", "smallbatch").split("-")
    backend, rest = tokens[0], tokens[1:]
    if backend == AUTO and not rest:
        return Variant(AUTO, AUTO, AUTO)
    if backend not in REGISTRY:
        raise ValueError(f"unknown backend {label!r}: the name starts with one of {', '.join(REGISTRY)} (or is 'auto')")
    precision, options = None, {}
    for token in rest:
        if token in PRECISIONS and precision is None:
            precision = token
        elif token in MODIFIERS.get(backend, {}):
            key, value = MODIFIERS[backend][token]
            options[key] = value
        else:
            allowed = list(PRECISIONS) + list(MODIFIERS.get(backend, {}))
            raise ValueError(f"backend variant {label!r}: unknown part {token!r} (allowed after '{backend}-': {', '.join(allowed)})")
    return Variant(label.strip().lower(), backend, precision, tuple(sorted(options.items())))


def parse_variants(text: Optional[str | Sequence[str]]) -> list[Variant]:
    if text is None or text == "all":
        labels: Sequence[str] = DEFAULT_VARIANTS
    elif isinstance(text, str):
        labels = [t for t in text.split(",") if t.strip()]
    else:
        labels = list(text)
    if not labels:
        raise ValueError("no backends given")
    variants, seen = [], set()
    for label in labels:
        v = parse_variant(label)
        if v.label not in seen:
            seen.add(v.label)
            variants.append(v)
    return variants


def parse_sizes(text: str | Iterable) -> list[tuple[int, int]]:
    """"256x256,512x384" (or "256" for 256x256) -> [(256, 256), (512, 384)] as (H, W); multiples of 4."""
    items = text.split(",") if isinstance(text, str) else list(text)
    sizes = []
    for item in items:
        if isinstance(item, str):
            m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", item)  # "256" means 256x256
            if not m:
                raise ValueError(f"size {item!r} is not HxW (for example 256x256, or 256 for a square)")
            h, w = int(m.group(1)), int(m.group(2) or m.group(1))
        else:
            h, w = (int(v) for v in item)
        if h <= 0 or w <= 0 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"size {h}x{w}: height and width must be positive multiples of {SIZE_MULTIPLE}")
        sizes.append((h, w))
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


def parse_batch_sizes(text: str | Iterable) -> list[int]:
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        try:
            b = int(str(item).strip())
        except ValueError:
            raise ValueError(f"batch size {item!r} is not an integer") from None
        if b <= 0:
            raise ValueError(f"batch size must be positive, got {b}")
        out.append(b)
    if not out:
        raise ValueError("no batch sizes given")
    return out
