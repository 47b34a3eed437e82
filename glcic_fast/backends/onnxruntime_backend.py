"""onnxruntime backend: the exported ONNX graph (``glcic_fast.onnx_graph``) in an ORT session.

On a CPU it beats PyTorch eager (ORT fuses Conv+Relu and runs its blocked NCHWc kernels), so
it is the exact (fp32) CPU path. With onnxruntime-gpu it also runs on CUDA. ``precision="int8"``
(CPU) runs the statically quantized QDQ graph of ``glcic_fast.quantize`` (calibrated on real
photos, cached on disk; ``recipe`` says which convs stay in float).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..folding import FoldedLayer
from ..onnx_graph import INPUT_NAME, OUTPUT_NAME, build_onnx_model
from ..photo_samples import InputConvention, Sample
from .base import Backend


def _physical_cores() -> int:
    # ORT defaults to one thread per logical core; on SMT machines that oversubscribes.
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")
    devices = ("cpu", "cuda")

    def __init__(
        self,
        layers: Sequence[FoldedLayer],
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        convention: Optional[InputConvention] = None,
        calibration: Optional[Sequence[Sample]] = None,
        cache: bool = True,
        recipe: Optional[str] = None,
    ):
        """``convention``, ``calibration``, ``cache``, ``recipe``: for int8, as in the openvino backend."""
        super().__init__(layers, device, precision)
        import onnxruntime as ort

        if device == "cpu" and precision == "fp16":
            raise ValueError("the onnxruntime backend runs fp32 or int8 on the CPU (its CPU fp16 convolutions are slow)")
        if device == "cuda" and precision == "int8":
            raise ValueError("int8 on onnxruntime is a CPU path; on a GPU use fp16")
        if precision == "int8":
            from ..quantize import onnxruntime_int8

            path = onnxruntime_int8(layers, convention or InputConvention(), samples=calibration, cache=cache, recipe=recipe)
            model_bytes = path.read_bytes()
        else:
            # On the CPU the transposed convs go in as sub-pixel convs (see onnx_graph).
            model_bytes = build_onnx_model(layers, precision, subpixel_transposed=device == "cpu").SerializeToString()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or _physical_cores()
        options.log_severity_level = 3
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model_bytes, options, providers=providers)

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
