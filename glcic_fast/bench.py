"""Latency benchmarks: ``glcic-fast bench`` and ``run_benchmark``.

Every backend x precision variant ("torch-fp16", "onnxruntime", ...) is timed side by side in
one run, over the batch sizes and resolutions asked for, in up to three modes:

- ``network``: ``backend(x)`` on a prepared float32 numpy array (N, 4, H, W); on a GPU this
  includes the host <-> device copies, as a caller of the backend sees it;
- ``end-to-end``: uint8 images and masks in, uint8 images out, through
  ``Completer.complete`` (pre-processing, network, compositing);
- ``device``: the network on a tensor already on the device (``backend.run_tensor``), for
  backends that have that entry point: the number to compare with kernel timings.

Each case gets a first call (timed apart: graph capture, autotuning, compilation happen
there), warm-up calls, then timed calls with device synchronisation (CUDA events on a GPU,
``perf_counter`` + ``backend.synchronize()`` on a CPU). Rows report min / p50 / p90 / p99 /
mean latency in ms, images/s, achieved GFLOP/s (FLOPs = 2 x MACs per pixel x H x W x batch,
from ``layers.macs_per_pixel``) and % of the device's peak where it is known. Variants that
cannot run here are kept as rows with ``status`` "unavailable" and the reason, never dropped.

Random weights are fine for latency: by default the network is a seeded ``CompletionNetwork``
folded with ``fold_batchnorm``; ``--model`` takes a checkpoint instead.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

NAME = "bench"
SCHEMA = "glcic-fast-bench/1"

# The variants run when --backends is not given, in this order. torch-compile goes last
# because its first call (max-autotune compilation) is the slowest thing in the run.
DEFAULT_VARIANTS = ("torch-fp32", "torch-fp16", "torch-bf16", "onnxruntime", "triton", "tensorrt", "torch-compile")
PRECISIONS = ("fp32", "fp16", "bf16")
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

# Dense peak TFLOP/s by GPU name (no sparsity). "fp32" is the non-tensor-core rate: PyTorch
# lets cuDNN use TF32 tensor cores for fp32 convolutions by default (recorded in the header
# as cudnn_allow_tf32), so fp32 rows can exceed 100% of it. First match wins.
GPU_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"fp16": 756.5, "bf16": 756.5, "fp32": 51.2}),
    ("H100 NVL", {"fp16": 835.5, "bf16": 835.5, "fp32": 59.8}),
    ("H100", {"fp16": 989.4, "bf16": 989.4, "fp32": 66.9}),  # SXM (e.g. "H100 80GB HBM3")
    ("H200", {"fp16": 989.4, "bf16": 989.4, "fp32": 66.9}),
    ("A100", {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5}),
)


# Set by the CLI's SIGTERM handler; checked before every case.
STOP_REQUESTED: dict[str, Optional[str]] = {"reason": None}


@dataclass(frozen=True)
class Variant:
    """One backend configuration to time: a registry backend, a precision, backend options."""

    label: str
    backend: str
    precision: Optional[str]  # None: the device's default for this backend
    options: tuple[tuple[str, Any], ...] = ()

    def resolved_precision(self, device: str) -> str:
        if self.precision is not None:
            return self.precision
        if self.backend == "tensorrt":
            return "fp16"
        from .api import default_precision

        return default_precision(self.backend, device)


def parse_variant(label: str) -> Variant:
    """"torch-fp16", "torch-compile", "torch-fp32-nchw", "onnxruntime", "triton-bf16" ... -> Variant."""
    from .backends import REGISTRY

    tokens = label.strip().lower().split("-")
    backend, rest = tokens[0], tokens[1:]
    if backend not in REGISTRY:
        raise ValueError(f"unknown backend {label!r}: the name starts with one of {', '.join(REGISTRY)}")
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
    """"256x256,512x384" -> [(256, 256), (512, 384)] as (H, W); each a multiple of 4."""
    from .layers import SIZE_MULTIPLE

    items = text.split(",") if isinstance(text, str) else list(text)
    sizes = []
    for item in items:
        if isinstance(item, str):
            m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", item)
            if not m:
                raise ValueError(f"size {item!r} is not HxW (for example 256x256)")
            h, w = int(m.group(1)), int(m.group(2))
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


# ----------------------------------------------------------------------------- machine info


def _package_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _git_commit() -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the checkout this package runs from; (None, None) outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def gpu_peak_tflops(gpu_name: Optional[str]) -> Optional[dict[str, float]]:
    if not gpu_name:
        return None
    for key, peaks in GPU_PEAK_TFLOPS:
        if key.lower() in gpu_name.lower():
            return dict(peaks)
    return None


def machine_info(device: str) -> dict[str, Any]:
    """What the numbers were measured on: hardware, library versions, date, git commit."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "glcic_fast": _package_version("glcic-fast"),
        "numpy": np.__version__,
        "torch": _package_version("torch"),
        "onnxruntime": _package_version("onnxruntime") or _package_version("onnxruntime-gpu"),
        "triton": _package_version("triton"),
        "tensorrt": _package_version("tensorrt") or _package_version("tensorrt-cu12"),
        "triton_interpret": os.environ.get("TRITON_INTERPRET"),
        "gpu_name": None,
        "peak_tflops": None,
    }
    info["git_commit"], info["git_dirty"] = _git_commit()
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_cuda"] = torch.version.cuda
        if device == "cuda" and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            info["gpu_name"] = props.name
            info["gpu_compute_capability"] = f"{props.major}.{props.minor}"
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            info["gpu_count"] = torch.cuda.device_count()
            info["cudnn"] = torch.backends.cudnn.version()
            info["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
            info["peak_tflops"] = gpu_peak_tflops(props.name)
    except ImportError:
        pass
    info["device_name"] = info["gpu_name"] if device == "cuda" and info["gpu_name"] else info["cpu_model"]
    return info


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def results_stem(device: str, info: Optional[dict] = None, date: Optional[str] = None) -> str:
    """File name stem for bench/results/: "<gpu-name-slug>-<date>" or "cpu-<cpu-slug>-<date>"."""
    info = info or machine_info(device)
    date = date or _dt.date.today().isoformat()
    if device == "cuda" and info.get("gpu_name"):
        return f"{_slug(info['gpu_name'])}-{date}"
    return f"cpu-{_slug(info.get('cpu_model') or 'unknown')}-{date}"


# ----------------------------------------------------------------------------- timing


def _cuda_events_available(device: str) -> bool:
    if device != "cuda":
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


class Timer:
    """Times one call (plus synchronisation) in ms: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: str):
        self.use_events = _cuda_events_available(device)
        if self.use_events:
            import torch

            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def once(self, fn: Callable[[], Any], synchronize: Callable[[], None]) -> float:
        if self.use_events:
            self._start.record()
            fn()
            synchronize()
            self._end.record()
            self._end.synchronize()
            return float(self._start.elapsed_time(self._end))
        t0 = time.perf_counter()
        fn()
        synchronize()
        return (time.perf_counter() - t0) * 1e3


def enough_iterations(n: int, iters: int, min_time: Optional[float], elapsed: float, max_iters: int) -> bool:
    """Stop after ``iters`` calls and, with ``min_time``, ``min_time`` seconds; never past ``max_iters``."""
    return n >= max_iters or (n >= iters and (min_time is None or elapsed >= min_time))


def time_calls(
    fn: Callable[[], Any],
    synchronize: Callable[[], None],
    device: str,
    warmup: int,
    iters: int,
    min_time: Optional[float] = None,
    max_iters: int = 10_000,
) -> list[float]:
    """Latencies in ms of ``fn`` (each call followed by ``synchronize``).

    Runs ``warmup`` untimed calls, then timed calls until ``iters`` are done and, when
    ``min_time`` is given, at least ``min_time`` seconds have passed (at most ``max_iters``).
    On CUDA each call is bracketed by CUDA events on the current stream.
    """
    for _ in range(warmup):
        fn()
        synchronize()
    timer = Timer(device)
    times: list[float] = []
    begin = time.perf_counter()
    while not times or not enough_iterations(len(times), iters, min_time, time.perf_counter() - begin, max_iters):
        times.append(timer.once(fn, synchronize))
    return times


def latency_stats(times_ms: Sequence[float], batch: int, flops: float, peak_tflops: Optional[float]) -> dict[str, Any]:
    a = np.asarray(times_ms, dtype=np.float64)
    mean = float(a.mean())
    stats: dict[str, Any] = {
        "iters": int(a.size),
        "min_ms": float(a.min()),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": mean,
        "std_ms": float(a.std()),
        "images_per_s": batch * 1e3 / mean,
        "gflops": flops / (mean * 1e-3) / 1e9,
    }
    stats["peak_tflops"] = peak_tflops
    stats["pct_peak"] = 100.0 * stats["gflops"] / (peak_tflops * 1e3) if peak_tflops else None
    return stats


# ----------------------------------------------------------------------------- inputs


def bench_inputs(batch: int, size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, H, W, 3), bool masks (N, H, W)): noise with one centred rectangular hole
    of about 3/8 of each side (96x96 at 256x256, the paper's hole sizes)."""
    h, w = size
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
    masks = np.zeros((batch, h, w), dtype=bool)
    hh, hw = max(1, h * 3 // 8), max(1, w * 3 // 8)
    top, left = (h - hh) // 2, (w - hw) // 2
    masks[:, top : top + hh, left : left + hw] = True
    return images, masks


def network_batch(images: np.ndarray, masks: np.ndarray, mean: Sequence[float], fill: str) -> np.ndarray:
    from .preprocess import network_input

    size = masks.shape[1:]
    return np.stack([network_input(img.astype(np.float32) / 255.0, m, mean, fill, size) for img, m in zip(images, masks)])


# ----------------------------------------------------------------------------- backends


def random_layers(seed: int = 0):
    """Folded layers of a seeded random ``CompletionNetwork`` (latency does not depend on values)."""
    import torch

    from .folding import fold_batchnorm
    from .model import CompletionNetwork

    torch.manual_seed(seed)
    net = CompletionNetwork().eval()
    return fold_batchnorm(net)


def _build_tensorrt(layers, device: str, precision: str, sizes, batch_sizes, workdir: str, options: dict):
    """Build one engine covering every benchmarked shape, then load it as a backend.

    The profile's opt shape (what TensorRT tunes its tactics for) is the first size at the
    smallest batch: the latency-critical case.
    """
    try:
        from . import tensorrt_build
    except ImportError as e:
        from .backends import BackendUnavailable

        raise BackendUnavailable(f"the TensorRT engine builder cannot be imported: {e}") from None
    from .backends.tensorrt_backend import TensorRTBackend

    engine = os.path.join(workdir, f"bench-{precision}.plan")
    hs = [h for h, _ in sizes]
    ws = [w for _, w in sizes]
    opt_h, opt_w = sizes[0]
    options = dict(options)
    tensorrt_build.build_engine(
        layers,
        engine,
        precision=precision,
        batch=(min(batch_sizes), min(batch_sizes), max(batch_sizes)),
        height=(min(hs), opt_h, max(hs)),
        width=(min(ws), opt_w, max(ws)),
        plugins=options.pop("plugins", "none"),
    )
    shapes = len(set(sizes)) * len(set(batch_sizes))
    return TensorRTBackend.from_engine(engine, device=device, max_shapes=max(8, shapes), **options)


def build_backend(variant: Variant, layers, device: str, precision: str, sizes, batch_sizes, workdir: str):
    """A ready backend, or raises BackendUnavailable / ValueError with the reason it cannot run."""
    from . import backends
    from .api import load_folded

    reason = backends.unavailable_reason(variant.backend, device)
    if reason:
        raise backends.BackendUnavailable(reason)
    cls = backends.backend_class(variant.backend)
    if precision not in cls.precisions:
        raise backends.BackendUnavailable(f"supports precision {'/'.join(cls.precisions)} only, not {precision}")
    if variant.backend == "tensorrt":
        return _build_tensorrt(layers, device, precision, sizes, batch_sizes, workdir, dict(variant.options))
    return load_folded(layers, variant.backend, device, precision, **dict(variant.options))


def _free_device_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        try:
            import torch

            torch.cuda.empty_cache()
        except ImportError:
            pass


# ----------------------------------------------------------------------------- the run


@dataclass
class _Case:
    size: tuple[int, int]
    batch: int
    mode: str


def _base_row(variant: Variant, device: str, precision: str, case: _Case, macs: int) -> dict[str, Any]:
    h, w = case.size
    return {
        "backend": variant.label,
        "backend_name": variant.backend,
        "precision": precision,
        "options": dict(variant.options),
        "device": device,
        "mode": case.mode,
        "height": h,
        "width": w,
        "size": f"{h}x{w}",
        "batch": case.batch,
        "flops": 2.0 * macs * h * w * case.batch,
        "status": "ok",
        "reason": None,
    }


def _short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return first[:500]


def run_benchmark(
    device: str = "auto",
    backends: Optional[str | Sequence[str]] = None,
    sizes: str | Sequence = ((256, 256),),
    batch_sizes: str | Sequence = (1,),
    warmup: int = 2,
    iters: int = 10,
    end_to_end: bool = True,
    *,
    network: bool = True,
    device_resident: bool = False,
    min_time: Optional[float] = None,
    max_iters: int = 10_000,
    interleave: bool = False,
    model: Any = None,
    baseline: Optional[str] = DEFAULT_BASELINE,
    time_budget: Optional[float] = None,
    progress: bool = True,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time every variant x size x batch x mode; one dict per case (see the module docstring).

    ``backends``: variant labels (comma-separated or a list; None = DEFAULT_VARIANTS).
    ``sizes``: "256x256,512x512" or [(H, W), ...]. Modes: ``network`` (backend(x) on a float32
    array), ``end_to_end`` (uint8 through ``Completer.complete``), ``device_resident`` (the
    network on a device tensor). ``interleave``: build every backend first, then for each case
    take turns (one timed call per variant per round, rotating who goes first), so load from
    other processes on a shared machine hits every variant alike; otherwise each variant is
    timed in one stretch. ``model``: a checkpoint path or ``CompletionNetwork`` (None: seeded
    random weights). ``time_budget`` (s): cases not started within it are kept as "skipped"
    rows. A KeyboardInterrupt (or SIGTERM under the CLI) stops timing early and likewise marks
    the rest "skipped".

    Rows have ``status`` "ok" (with min_ms, p50_ms, p90_ms, p99_ms, mean_ms, std_ms, iters,
    images_per_s, gflops, pct_peak, first_call_ms, setup_s), or "unavailable" / "error" /
    "skipped" with ``reason``. ``speedup`` is the baseline variant's p50 over this row's, for
    the same size, batch and mode.
    """
    from .api import resolve_device, resolve_model

    dev = resolve_device(device)
    variants = parse_variants(backends)
    size_list = parse_sizes(sizes)
    batch_list = parse_batch_sizes(batch_sizes)
    modes = [m for m, on in (("network", network), ("end-to-end", end_to_end), ("device", device_resident)) if on]
    if not modes:
        raise ValueError("no mode selected: enable network, end_to_end or device_resident")
    if warmup < 0 or iters < 1 or max_iters < 1:
        raise ValueError("warmup must be >= 0, iters and max_iters >= 1")
    if model is None:
        from .checkpoint import PLACES2_MEAN

        layers, mean, fill = random_layers(seed), PLACES2_MEAN, "subtract-mean"
    else:
        layers, mean, fill, _meta = resolve_model(model)
    run = _Run(dev, variants, size_list, batch_list, modes, layers, mean, fill, seed,
               warmup, iters, min_time, max_iters, time_budget, progress)
    with tempfile.TemporaryDirectory(prefix="glcic-bench-") as workdir:
        run.workdir = workdir
        if interleave:
            run.interleaved()
        else:
            run.sequential()
    run.bar.close()
    order = {v.label: i for i, v in enumerate(variants)}
    case_order = {(c.size, c.batch, c.mode): i for i, c in enumerate(run.cases)}
    rows = sorted(run.rows, key=lambda r: (order[r["backend"]], case_order[((r["height"], r["width"]), r["batch"], r["mode"])]))
    add_speedups(rows, baseline)
    return rows


class _Unsupported(Exception):
    """This backend cannot run this mode (e.g. no device-tensor entry point)."""


@dataclass
class _Built:
    variant: Variant
    precision: str
    backend: Any
    completer: Any
    setup_s: float


class _Run:
    """State of one benchmark run: the grid, the inputs, the rows so far, the time budget."""

    def __init__(self, dev, variants, sizes, batches, modes, layers, mean, fill, seed,
                 warmup, iters, min_time, max_iters, time_budget, progress):
        from .layers import macs_per_pixel

        self.dev, self.variants, self.sizes, self.batches = dev, variants, sizes, batches
        self.layers, self.mean, self.fill = layers, mean, fill
        self.warmup, self.iters, self.min_time, self.max_iters = warmup, iters, min_time, max_iters
        self.time_budget = time_budget
        self.macs = macs_per_pixel()
        self.peaks = machine_info(dev)["peak_tflops"] if dev == "cuda" else None
        self.cases = [_Case(s, b, m) for s in sizes for b in batches for m in modes]
        self.inputs = {(s, b): bench_inputs(b, s, seed) for s in sizes for b in batches}
        self.bar = _progress(len(variants) * len(self.cases), progress)
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.interrupted: Optional[str] = None
        self.workdir = ""
        self.timer = Timer(dev)

    def over_budget(self) -> Optional[str]:
        if STOP_REQUESTED["reason"] and not self.interrupted:
            self.interrupted = STOP_REQUESTED["reason"]
        if self.interrupted:
            return self.interrupted
        if self.time_budget is not None and time.perf_counter() - self.started > self.time_budget:
            return f"time budget of {self.time_budget:g} s used up before this case"
        return None

    def _all_cases(self, variant: Variant, precision: str, status: str, reason: str) -> None:
        self.rows += _rows_with_status(variant, self.dev, precision, self.cases, self.macs, status, reason)
        self.bar.update(len(self.cases))

    def build(self, variant: Variant) -> Optional[_Built]:
        """The variant's backend, or None after recording why it cannot run."""
        from .api import Completer
        from .backends import BackendUnavailable

        try:
            precision = variant.resolved_precision(self.dev)
        except ValueError as e:
            self._all_cases(variant, variant.precision or "?", "unavailable", str(e))
            return None
        skip = self.over_budget()
        if skip:
            self._all_cases(variant, precision, "skipped", skip)
            return None
        self.bar.set_description(variant.label)
        try:
            t0 = time.perf_counter()
            backend = build_backend(variant, self.layers, self.dev, precision, self.sizes, self.batches, self.workdir)
            setup_s = time.perf_counter() - t0
        except KeyboardInterrupt:
            self.interrupted = STOP_REQUESTED["reason"] or "interrupted (Ctrl-C) before this case"
            self._all_cases(variant, precision, "skipped", self.interrupted)
            return None
        except Exception as e:  # noqa: BLE001 - every failure is reported, never raised
            if STOP_REQUESTED["reason"]:
                self.interrupted = STOP_REQUESTED["reason"]
                self._all_cases(variant, precision, "skipped", self.interrupted)
                return None
            # ValueError is how backends refuse a precision/device pair (e.g. fp16 on a CPU).
            unavailable = isinstance(e, (BackendUnavailable, ValueError, ImportError))
            if not unavailable:
                traceback.print_exc(file=sys.stderr)
            self._all_cases(variant, precision, "unavailable" if unavailable else "error",
                            str(e) if unavailable else _short_error(e))
            return None
        return _Built(variant, precision, backend, Completer(backend, self.mean, self.fill), setup_s)

    def _row(self, built: _Built, case: _Case) -> dict[str, Any]:
        return _base_row(built.variant, self.dev, built.precision, case, self.macs)

    def _fail(self, row: dict, e: BaseException) -> None:
        if isinstance(e, _Unsupported):
            row.update(status="unavailable", reason=str(e))
        elif isinstance(e, KeyboardInterrupt) or STOP_REQUESTED["reason"]:
            self.interrupted = STOP_REQUESTED["reason"] or "interrupted (Ctrl-C) before this case finished"
            row.update(status="skipped", reason=self.interrupted)
        else:
            traceback.print_exc(file=sys.stderr)
            row.update(status="error", reason=_short_error(e))

    def _finish(self, row: dict, built: _Built, first_ms: float, times: list[float]) -> None:
        row["first_call_ms"] = first_ms
        row.update(latency_stats(times, row["batch"], row["flops"], (self.peaks or {}).get(built.precision)))
        row["setup_s"] = built.setup_s

    def _prepare(self, built: _Built, case: _Case) -> tuple[Callable[[], Any], float]:
        """(the call to time, first-call ms) after the first call and the warm-up calls."""
        fn = _case_call(built.backend, built.completer, case, self.inputs[(case.size, case.batch)],
                        self.mean, self.fill, self.dev)
        first_ms = _first_call(fn, built.backend, case)
        for _ in range(self.warmup):
            fn()
            built.backend.synchronize()
        return fn, first_ms

    def _release(self, built: _Built) -> None:
        built.backend = built.completer = None
        _free_device_memory(self.dev)

    def sequential(self) -> None:
        """Each variant in one stretch: build, every case, release (least memory)."""
        for variant in self.variants:
            built = self.build(variant)
            if built is None:
                continue
            for case in self.cases:
                row = self._row(built, case)
                skip = self.over_budget()
                if skip:
                    row.update(status="skipped", reason=skip)
                else:
                    self._time_one_case(built, case, row)
                self.rows.append(row)
                self.bar.update(1)
            self._release(built)

    def _time_one_case(self, built: _Built, case: _Case, row: dict) -> None:
        # A method of its own so the timed closure (which holds the backend) dies on return.
        try:
            fn, first_ms = self._prepare(built, case)
            times = time_calls(fn, built.backend.synchronize, self.dev, 0, self.iters, self.min_time, self.max_iters)
            self._finish(row, built, first_ms, times)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
            self._fail(row, e)

    def interleaved(self) -> None:
        """Every variant built up front; per case, one timed call per variant per round."""
        built_all = [b for b in (self.build(v) for v in self.variants) if b is not None]
        for case in self.cases:
            skip = self.over_budget()
            active: list[tuple[dict, _Built, Callable[[], Any], float, list[float]]] = []
            for built in built_all:
                row = self._row(built, case)
                if skip:
                    row.update(status="skipped", reason=skip)
                    self.rows.append(row)
                    continue
                try:
                    fn, first_ms = self._prepare(built, case)
                    active.append((row, built, fn, first_ms, []))
                except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                    self._fail(row, e)
                    self.rows.append(row)
                    skip = skip or self.interrupted
            begin, rounds = time.perf_counter(), 0
            while active and not enough_iterations(rounds, self.iters, self.min_time, time.perf_counter() - begin, self.max_iters):
                if self.interrupted:
                    break
                k = rounds % len(active)
                for entry in active[k:] + active[:k]:  # rotate who goes first
                    row, built, fn, _, times = entry
                    if row["status"] != "ok":
                        continue
                    try:
                        times.append(self.timer.once(fn, built.backend.synchronize))
                    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                        self._fail(row, e)
                        if self.interrupted:
                            break
                rounds += 1
            for row, built, _, first_ms, times in active:
                if row["status"] == "ok":
                    if times and not self.interrupted:
                        self._finish(row, built, first_ms, times)
                    elif self.interrupted:
                        row.update(status="skipped", reason=self.interrupted)
                self.rows.append(row)
            self.bar.update(len(built_all))
            active.clear()
        for built in built_all:
            self._release(built)


def _rows_with_status(variant, device, precision, cases, macs, status, reason) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        row = _base_row(variant, device, precision, case, macs)
        row.update(status=status, reason=reason)
        rows.append(row)
    return rows


def _case_call(backend, completer, case: _Case, data, mean, fill, device) -> Callable[[], Any]:
    """The call a case times: end-to-end complete(), backend(x), or backend.run_tensor(x)."""
    images, masks = data
    if case.mode == "end-to-end":
        return lambda: completer.complete(images, masks)
    x = network_batch(images, masks, mean, fill)
    if case.mode == "network":
        return lambda: backend(x)
    run_tensor = getattr(backend, "run_tensor", None)
    if run_tensor is None:
        raise _Unsupported(f"the {backend.name} backend has no device-tensor entry point (run_tensor)")
    import torch

    xt = torch.from_numpy(x).to(device)
    return lambda: run_tensor(xt)


def _first_call(fn: Callable[[], Any], backend, case: _Case) -> float:
    """Run ``fn`` once (graph capture, autotuning, compilation happen here), check its output; ms."""
    h, w = case.size
    expect = (case.batch, h, w, 3) if case.mode == "end-to-end" else (case.batch, 3, h, w)
    t0 = time.perf_counter()
    out = fn()
    backend.synchronize()
    first_ms = (time.perf_counter() - t0) * 1e3
    if tuple(out.shape) != expect:
        raise RuntimeError(f"{case.mode} output has shape {tuple(out.shape)}, expected {expect}")
    if case.mode == "end-to-end" and out.dtype != np.uint8:
        raise RuntimeError(f"end-to-end output is {out.dtype}, expected uint8")
    return first_ms


def add_speedups(rows: list[dict[str, Any]], baseline: Optional[str]) -> None:
    """Set ``speedup`` (baseline p50 / row p50) and ``baseline`` on every measured row."""
    if not baseline:
        return
    base = {
        (r["size"], r["batch"], r["mode"]): r["p50_ms"]
        for r in rows
        if r["backend"] == baseline and r["status"] == "ok"
    }
    for r in rows:
        ref = base.get((r["size"], r["batch"], r["mode"]))
        if r["status"] == "ok" and ref:
            r["speedup"] = ref / r["p50_ms"]
            r["baseline"] = baseline


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _LineProgress(_NoBar):
    """Fallback when tqdm is not installed: one line per backend variant on stderr."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def update(self, n: int = 1) -> None:
        self.done += n

    def set_description(self, text: str) -> None:
        print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineProgress(total)
    return tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True, leave=False)


# ----------------------------------------------------------------------------- reports


def unavailable_summary(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """One entry per variant (and mode) that did not run, with its reason."""
    seen: dict[tuple, dict] = {}
    for r in rows:
        if r["status"] == "ok":
            continue
        key = (r["backend"], r["status"], r["reason"])
        entry = seen.setdefault(key, {"backend": r["backend"], "precision": r["precision"], "status": r["status"],
                                      "reason": r["reason"], "modes": []})
        if r["mode"] not in entry["modes"]:
            entry["modes"].append(r["mode"])
    return list(seen.values())


def report_dict(rows: Sequence[dict], machine: dict, settings: dict) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "machine": machine,
        "settings": settings,
        "rows": list(rows),
        "unavailable": unavailable_summary(rows),
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("backend", "backend", None),
    ("precision", "prec", None),
    ("mode", "mode", None),
    ("size", "size", None),
    ("batch", "batch", None),
    ("p50_ms", "p50 ms", 2),
    ("mean_ms", "mean ms", 2),
    ("min_ms", "min ms", 2),
    ("p90_ms", "p90 ms", 2),
    ("p99_ms", "p99 ms", 2),
    ("images_per_s", "img/s", 1),
    ("gflops", "GFLOP/s", 1),
    ("pct_peak", "% peak", 1),
    ("speedup", "speedup", 2),
    ("iters", "iters", None),
)


def _table_cells(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    header = [title for _, title, _ in TABLE_COLUMNS]
    body = [[_fmt(r.get(key), digits or 2) for key, _, digits in TABLE_COLUMNS] for r in rows if r["status"] == "ok"]
    return header, body


def _machine_line(machine: dict) -> str:
    parts = [f"{machine.get('device_name')}"]
    if machine.get("device") == "cpu":
        parts.append(f"{machine.get('cpu_affinity') or machine.get('cpu_count')} cores available")
    if machine.get("gpu_memory_gib"):
        parts.append(f"{machine['gpu_memory_gib']} GiB")
    versions = [f"{k} {machine[k]}" for k in ("torch", "onnxruntime", "triton", "tensorrt") if machine.get(k)]
    if machine.get("torch_cuda"):
        versions.append(f"CUDA {machine['torch_cuda']}")
    commit = (machine.get("git_commit") or "unknown")[:10] + ("+dirty" if machine.get("git_dirty") else "")
    return f"{', '.join(parts)}; {', '.join(versions)}; {machine.get('date')}; commit {commit}"


def format_table(rows: Sequence[dict], machine: Optional[dict] = None) -> str:
    """Plain-text table for the terminal, then the variants that did not run."""
    header, body = _table_cells(rows)
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(header)]
    lines = []
    if machine:
        lines.append(_machine_line(machine))
    lines.append("  ".join(h.rjust(wd) for h, wd in zip(header, widths)))
    lines.append("  ".join("-" * wd for wd in widths))
    lines += ["  ".join(c.rjust(wd) for c, wd in zip(b, widths)) for b in body]
    missing = unavailable_summary(rows)
    if missing:
        lines.append("")
        lines.append("not measured:")
        lines += [f"  {m['backend']} ({m['precision']}, {'/'.join(m['modes'])}): {m['status']}: {m['reason']}" for m in missing]
    return "\n".join(lines)


def best_summary(rows: Sequence[dict], baseline: Optional[str]) -> list[str]:
    """For each size x batch x mode: the fastest variant and its speedup over the baseline."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["height"] * r["width"], r["size"], r["batch"], MODES.index(r["mode"]), r["mode"]), []).append(r)
    out = []
    for key in sorted(groups):
        best = min(groups[key], key=lambda r: r["p50_ms"])
        _, size, batch, _, mode = key
        speed = f", {best['speedup']:.2f}x vs {baseline}" if best.get("speedup") is not None and baseline else ""
        out.append(f"{size} batch {batch} {mode}: fastest {best['backend']} ({best['precision']}) "
                   f"{best['p50_ms']:.2f} ms p50{speed}")
    return out


def format_markdown(report: dict) -> str:
    machine, settings, rows = report["machine"], report["settings"], report["rows"]
    header, body = _table_cells(rows)
    lines = [
        f"# glcic-fast latency: {machine.get('device_name')} ({machine.get('device')})",
        "",
        f"- Machine: {_machine_line(machine)}",
        f"- Settings: warm-up {settings.get('warmup')}, timed iterations >= {settings.get('iters')}"
        + (f" and >= {settings['min_time']} s" if settings.get("min_time") else "")
        + ("; backends timed in turns (interleaved)" if settings.get("interleave") else "")
        + f"; timing: {'CUDA events' if machine.get('device') == 'cuda' else 'perf_counter + synchronize'}; "
        f"model: {settings.get('model') or 'random weights (seed ' + str(settings.get('seed')) + '), BN folded'}",
        "- Modes: `network` = backend(x) on a float32 (N,4,H,W) array (host copies included); "
        "`end-to-end` = uint8 image + mask in, uint8 out through `Completer.complete`; "
        "`device` = network on a tensor already on the device.",
        f"- FLOPs = 2 x {settings.get('macs_per_pixel'):,} MACs/pixel x H x W x batch; "
        f"speedup = p50 of `{settings.get('baseline')}` / p50 of the row (same size, batch, mode).",
    ]
    if machine.get("peak_tflops"):
        peaks = ", ".join(f"{k} {v:g}" for k, v in machine["peak_tflops"].items())
        lines.append(f"- % peak against dense TFLOP/s: {peaks} (fp32 = non-tensor-core rate; "
                     f"cuDNN TF32 allowed: {machine.get('cudnn_allow_tf32')})")
    if settings.get("note"):
        lines.append(f"- Note: {settings['note']}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 4 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    best = best_summary(rows, settings.get("baseline"))
    if best:
        lines += ["", "## Fastest per case", ""] + [f"- {b}" for b in best]
    missing = report["unavailable"]
    if missing:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{m['backend']}` ({m['precision']}, {'/'.join(m['modes'])}): {m['status']}: {m['reason']}" for m in missing]
    return "\n".join(lines) + "\n"


def write_plot(report: dict, path: str) -> None:
    """p50 latency vs batch, one line per variant (line style per mode), one panel per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["status"] == "ok"]
    sizes = sorted({(r["height"], r["width"]) for r in rows}, key=lambda s: s[0] * s[1]) or [(0, 0)]
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.5), squeeze=False)
    labels = list(dict.fromkeys(r["backend"] for r in rows))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    styles = {"network": "-", "end-to-end": "--", "device": ":"}
    for ax, (h, w) in zip(axes[0], sizes):
        for lab in labels:
            for mode in MODES:
                pts = sorted((r["batch"], r["p50_ms"]) for r in rows
                             if r["backend"] == lab and r["mode"] == mode and (r["height"], r["width"]) == (h, w))
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, styles[mode], marker="o", color=colors[lab], label=f"{lab} ({mode})")
        ax.set_title(f"{h}x{w}")
        ax.set_xlabel("batch")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted({r["batch"] for r in rows})
        if batches:
            ax.set_xticks(batches)
            ax.set_xticklabels([str(b) for b in batches])
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    machine = report["machine"]
    fig.suptitle(f"glcic-fast latency on {machine.get('device_name')} ({machine.get('date', '')[:10]})")
    fig.tight_layout()
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def write_outputs(report: dict, json_path=None, markdown_path=None, plot_path=None) -> list[str]:
    """Write the requested files atomically; returns the paths written."""
    from .checkpoint import atomic_write_bytes

    written = []
    if json_path:
        data = json.dumps(report, indent=1, default=str).encode()
        atomic_write_bytes(json_path, lambda tmp: Path(tmp).write_bytes(data))
        written.append(str(json_path))
    if markdown_path:
        text = format_markdown(report).encode()
        atomic_write_bytes(markdown_path, lambda tmp: Path(tmp).write_bytes(text))
        written.append(str(markdown_path))
    if plot_path:
        write_plot(report, plot_path)
        written.append(str(plot_path))
    return written


# ----------------------------------------------------------------------------- CLI


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="time every backend side by side (latency, images/s, GFLOP/s)",
        description="Time the completion network on every backend x precision, over batch sizes and "
        "resolutions: min/p50/p90/p99/mean latency, images/s, achieved GFLOP/s and % of the "
        "device's peak; network-only and end-to-end (uint8 in, uint8 out). Backends that "
        "cannot run here are listed with the reason.",
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run (default: cuda if present)")
    p.add_argument(
        "--backends", default="all",
        help="comma-separated variants <backend>[-fp32|-fp16|-bf16][-modifier...] (torch: -compile, -nchw, "
        "-nograph; triton: -nograph, -tf32; tensorrt: -nograph, -plugins), or 'all' "
        f"(default: {','.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated HxW, multiples of 4 (default: {DEFAULT_SIZES['cuda']} on a GPU, "
                   f"{DEFAULT_SIZES['cpu']} on a CPU)")
    p.add_argument("--batch-sizes", default=None,
                   help=f"comma-separated batch sizes (default: {DEFAULT_BATCH_SIZES['cuda']} on a GPU, "
                   f"{DEFAULT_BATCH_SIZES['cpu']} on a CPU)")
    p.add_argument("--mode", choices=tuple(MODE_CHOICES), default="both",
                   help="network, end-to-end, device (tensor already on the device), both (network + end-to-end; default) or all")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case after the first (default 2)")
    p.add_argument("--iters", type=int, default=10, help="timed calls per case, at least (default 10)")
    p.add_argument("--min-time", type=float, default=None, help="also time each case for at least this many seconds")
    p.add_argument("--max-iters", type=int, default=10_000, help="cap on timed calls per case with --min-time")
    p.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=None,
                   help="build every backend first and time them in turns, one call each per round, so load from "
                   "other processes hits all alike (default: on for --device cpu, off on a GPU)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; cases not started within it are listed as skipped")
    p.add_argument("--model", default=None, help="checkpoint (.safetensors) to time instead of seeded random weights")
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"variant the speedup column is relative to (default {DEFAULT_BASELINE})")
    p.add_argument("--json", metavar="PATH", help="write every row and the machine header as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown table")
    p.add_argument("--plot", metavar="PATH", help="write a PNG plot (latency vs batch; needs matplotlib)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="also write DIR/<gpu-or-cpu-slug>-<date>.{json,md,png} (the bench/results naming)")
    p.add_argument("--note", default=None, help="free text stored in the report (e.g. 'shared machine')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"glcic-fast {NAME}: error: {msg}", file=sys.stderr)
    return 2


def _raise_interrupt(signum, frame):  # noqa: ARG001
    # The flag survives libraries that catch KeyboardInterrupt and re-raise something else
    # (torch.compile wraps errors raised while it compiles): no further case starts.
    STOP_REQUESTED["reason"] = f"interrupted by signal {signum} (time limit)"
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from .api import resolve_device
    from .layers import macs_per_pixel

    try:
        device = resolve_device(args.device)
        variants = parse_variants(args.backends)
        sizes = parse_sizes(args.sizes or DEFAULT_SIZES[device])
        batches = parse_batch_sizes(args.batch_sizes or DEFAULT_BATCH_SIZES[device])
    except ValueError as e:
        return _error(f"{e}")
    if args.warmup < 0 or args.iters < 1 or args.max_iters < 1:
        return _error("--warmup must be >= 0, --iters and --max-iters >= 1")
    if device == "cuda":
        from .backends import default_device

        if default_device() != "cuda":
            return _error("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if args.model and not Path(args.model).is_file():
        return _error(f"--model {args.model}: no such file")
    modes = MODE_CHOICES[args.mode]

    machine = machine_info(device)
    outputs = {"json": args.json, "markdown": args.markdown, "plot": args.plot}
    if args.results_dir:
        stem = Path(args.results_dir) / results_stem(device, machine)
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        outputs = {"json": outputs["json"] or f"{stem}.json", "markdown": outputs["markdown"] or f"{stem}.md",
                   "plot": outputs["plot"] or f"{stem}.png"}
    interleave = device == "cpu" if args.interleave is None else args.interleave
    STOP_REQUESTED["reason"] = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `timeout` -> keep partial results
    try:
        from .checkpoint import CheckpointError

        rows = run_benchmark(
            device, [v.label for v in variants], sizes, batches, args.warmup, args.iters,
            "end-to-end" in modes, network="network" in modes, device_resident="device" in modes,
            min_time=args.min_time, max_iters=args.max_iters, interleave=interleave, model=args.model,
            baseline=args.baseline,
            time_budget=args.time_budget, progress=not args.no_progress,
        )
    except (CheckpointError, ValueError) as e:
        return _error(str(e))
    finally:
        signal.signal(signal.SIGTERM, previous)
    settings = {
        "backends": [v.label for v in variants], "sizes": [f"{h}x{w}" for h, w in sizes], "batch_sizes": batches,
        "modes": list(modes), "warmup": args.warmup, "iters": args.iters, "min_time": args.min_time,
        "max_iters": args.max_iters, "interleave": interleave, "time_budget": args.time_budget, "model": args.model, "seed": 0,
        "baseline": args.baseline, "macs_per_pixel": macs_per_pixel(), "note": args.note,
        "argv": list(sys.argv),
    }
    report = report_dict(rows, machine, settings)
    print(format_table(rows, machine))
    status = 0
    try:
        written = write_outputs(report, outputs["json"], outputs["markdown"], None)
        if outputs["plot"]:
            try:
                write_plot(report, outputs["plot"])
                written.append(outputs["plot"])
            except ImportError:
                print(f"glcic-fast {NAME}: error: matplotlib is not installed (pip install matplotlib); "
                      f"no plot written to {outputs['plot']}", file=sys.stderr)
                status = 1
    except OSError as e:
        print(f"glcic-fast {NAME}: error: cannot write results: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    errors = [r for r in rows if r["status"] == "error"]
    if errors:
        print(f"glcic-fast {NAME}: {len(errors)} case(s) failed with errors (see 'not measured')", file=sys.stderr)
        status = 1
    if any(r["status"] == "skipped" and "interrupted" in (r["reason"] or "") for r in rows):
        print(f"glcic-fast {NAME}: interrupted; the files hold the cases measured before that", file=sys.stderr)
        status = 1
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m glcic_fast.bench ...``: the same as ``glcic-fast bench ...``."""
    parser = argparse.ArgumentParser(prog="glcic-fast bench", description="see: glcic-fast bench --help")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
