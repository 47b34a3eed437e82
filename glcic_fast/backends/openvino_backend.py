"""OpenVINO backend (CPU): the same sub-pixel ONNX graph as onnxruntime, in fp32, bf16 or int8.

* fp32: OpenVINO's own oneDNN kernels with ``INFERENCE_PRECISION_HINT=f32`` set explicitly --
  on CPUs with bf16 (AVX-512 BF16, AMX) OpenVINO's default hint is bf16, which would make
  "fp32" silently inexact;
* bf16: ``INFERENCE_PRECISION_HINT=bf16``: weights and activations rounded to bf16, fp32
  accumulation, native on AVX-512 BF16 / AMX (emulated, and slow, elsewhere);
* int8: the NNCF-quantized model (``glcic_fast.quantize``: calibrated on real photos, cached on
  disk; ``recipe`` "all" or "first-last" says which convs stay in float); float parts run in f32.

The model is compiled once with dynamic batch/height/width (measured: no slower than static
shapes on the CPU plugin), in latency mode with one stream on all physical cores.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..folding import FoldedLayer
from ..onnx_graph import build_onnx_model
from ..photo_samples import InputConvention, Sample
from .base import Backend

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVINOBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    devices = ("cpu",)

    def __init__(
        self,
        layers: Sequence[FoldedLayer],
        device: str = "cpu",
        precision: str = "fp32",
        threads: Optional[int] = None,
        convention: Optional[InputConvention] = None,
        calibration: Optional[Sequence[Sample]] = None,
        cache: bool = True,
        recipe: Optional[str] = None,
    ):
        """``convention``: the model's input convention (mean, hole fill, trained size), which
        int8 calibration needs to turn photos into inputs; ``calibration``: samples to calibrate
        on instead of the packaged photos; ``cache=False`` builds int8 in a temporary folder."""
        super().__init__(layers, device, precision)
        import openvino as ov

        core = ov.Core()
        if precision == "int8":
            from ..quantize import openvino_int8

            path = openvino_int8(layers, convention or InputConvention(), samples=calibration, cache=cache, recipe=recipe)
            model = core.read_model(str(path))
            self.quantized_path: Optional[str] = str(path)
        else:
            model = core.read_model(build_onnx_model(layers, "fp32", subpixel_transposed=True).SerializeToString())
            self.quantized_path = None
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed (pip install 'glcic-fast[openvino]')"
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        # the request reuses its output buffer on the next call: hand the caller a copy
        return np.array(self.request.infer({0: x})[0], dtype=np.float32, copy=True)

