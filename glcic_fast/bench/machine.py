"""What the numbers were measured on: CPU or GPU model, library versions, git commit, and the
device's peak throughput where it is known (for the "% peak" column)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..cpu_isa import cpu_model, detect as detect_isa
from .cpu_peak import cpu_gemm_peaks, peak_tflops

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


def _package_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


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


def machine_info(device: str, measure_cpu_peak: bool = True) -> dict[str, Any]:
    """What the numbers were measured on: hardware, library versions, date, git commit; on a CPU
    its instruction-set class and measured GEMM peaks (``cpu_peak``, a few seconds, once per
    process; ``measure_cpu_peak=False`` skips them)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "cpu_model": cpu_model(),
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
        "openvino": _package_version("openvino"),
        "nncf": _package_version("nncf"),
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
    isa = detect_isa()
    info["cpu_isa"], info["cpu_class"] = isa.summary(), isa.tier
    if device == "cpu" and measure_cpu_peak:
        info["cpu_gemm_peaks"] = cpu_gemm_peaks()
        info["peak_tflops"] = peak_tflops(info["cpu_gemm_peaks"]) or None
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
