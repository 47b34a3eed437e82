"""The CPU's measured GEMM peak for fp32, bf16 and int8: the limit each benchmark row's
"% peak" is taken against.

A CPU has no datasheet number we could trust here (clock under load, a VM's share, whether
AVX-512 runs at full width), so we measure: a square matmul (N = 2048, large enough to run at
the kernels' best rate) in every library that has a fast kernel for the type, best of a few
calls, and keep the fastest library per type:

* fp32: PyTorch (MKL/oneDNN) and OpenVINO (oneDNN JIT) -- on AMD CPUs MKL can be the slower one;
* bf16: PyTorch and OpenVINO with a bf16 inference hint (native on AVX-512 BF16 / AMX);
* int8: onnxruntime ``MatMulInteger`` (uint8 x int8 -> int32) and an OpenVINO matmul with
  int8 weights and fake-quantized activations (its int8 kernels: VNNI / AMX where present).

Rates are in GFLOP/s (int8: GOP/s, one multiply-add = 2 operations), on all cores the process
may use, like the benchmark itself.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

N = 2048
CALLS = 8  # best of: on a shared machine the best call is the least disturbed


def _rate(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up: kernel selection, JIT, first-touch of memory
    best = float("inf")
    for _ in range(CALLS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def _torch(dtype_name: str, n: int) -> Optional[float]:
    try:
        import torch
    except ImportError:
        return None
    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        return _rate(lambda: a @ b, n)


def _openvino(kind: str, n: int) -> Optional[float]:
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    x = ops.parameter([n, n], np.float32, name="x")
    if kind == "int8":
        lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
        weights = ops.convert(ops.constant(rng.integers(-127, 128, (n, n), dtype=np.int8)), np.float32)
        y = ops.matmul(ops.fake_quantize(x, lo, hi, lo, hi, 256), ops.multiply(weights, ops.constant(np.float32(0.01))),
                       False, False)
    else:
        y = ops.matmul(x, ops.constant(rng.standard_normal((n, n), dtype=np.float32)), False, False)
    hint = "bf16" if kind == "bf16" else "f32"
    compiled = ov.Core().compile_model(ov.Model([y], [x]), "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    data = rng.standard_normal((n, n), dtype=np.float32)
    return _rate(lambda: request.infer({0: data}), n)


def _onnxruntime_int8(n: int) -> Optional[float]:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "gemm_int8",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
        [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return _rate(lambda: session.run(None, {"a": a}), n)


@lru_cache(maxsize=None)
def cpu_gemm_peaks(n: int = N) -> dict[str, dict[str, float]]:
    """{"fp32" | "bf16" | "int8": {library: GFLOP/s (GOP/s)}} for every library that ran."""
    measured: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}, "int8": {}}
    probes = {
        ("fp32", "torch"): lambda: _torch("float32", n),
        ("fp32", "openvino"): lambda: _openvino("fp32", n),
        ("bf16", "torch"): lambda: _torch("bfloat16", n),
        ("bf16", "openvino"): lambda: _openvino("bf16", n),
        ("int8", "onnxruntime"): lambda: _onnxruntime_int8(n),
        ("int8", "openvino"): lambda: _openvino("int8", n),
    }
    for (kind, library), probe in probes.items():
        try:
            rate = probe()
        except Exception:  # noqa: BLE001 - a library without that kernel here is simply not counted
            rate = None
        if rate:
            measured[kind][library] = round(rate, 1)
    return {k: v for k, v in measured.items() if v}


def peak_tflops(peaks: dict[str, dict[str, float]]) -> dict[str, float]:
    """The best library per type, in TFLOP/s (the unit the benchmark's % peak column uses)."""
    return {kind: max(rates.values()) / 1e3 for kind, rates in peaks.items()}


__all__ = ["cpu_gemm_peaks", "peak_tflops"]
