"""PyTorch backend: the folded network through cuDNN / oneDNN, channels-last.

On CUDA each new input shape gets static input/output buffers and a captured CUDA graph, so a
call is one H2D copy, one graph replay and one D2H copy, with no per-layer launch overhead.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..folding import FoldedLayer, FoldedNetwork
from .base import Backend

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "fp16", "bf16")
    devices = ("cpu", "cuda")

    def __init__(
        self,
        layers: Sequence[FoldedLayer],
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        cuda_graphs: bool = True,
        compile: bool = False,
    ):
        super().__init__(layers, device, precision)
        import torch

        if device == "cpu" and precision == "fp16":
            raise ValueError("fp16 convolutions are not supported by the torch backend on the CPU; use fp32 or bf16")
        self.dtype = getattr(torch, TORCH_DTYPES[precision])
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net = FoldedNetwork(layers).to(device=device, dtype=self.dtype).eval()
        if channels_last:
            # 4-D weights in NHWC order let cuDNN / oneDNN pick their fastest kernels.
            net = net.to(memory_format=torch.channels_last)
        self.network = torch.compile(net, mode="max-autotune") if compile else net
        self.use_graphs = cuda_graphs and device == "cuda" and not compile
        self._graphs: dict[tuple, tuple] = {}

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        try:
            import torch
        except ImportError:
            return "PyTorch is not installed (pip install torch)"
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch"
        return None

    def _forward(self, x):
        return self.network(x.to(self.dtype).contiguous(memory_format=self.memory_format)).float()

    def run_tensor(self, x):
        """Torch tensor (N, 4, H, W) float32 on ``self.device`` -> (N, 3, H, W) float32 there."""
        import torch

        with torch.inference_mode():
            if not self.use_graphs:
                return self._forward(x)
            key = tuple(x.shape)
            if key not in self._graphs:
                self._graphs[key] = self._capture(x)
            static_in, static_out, graph = self._graphs[key]
            static_in.copy_(x)
            graph.replay()
            return static_out

    def _capture(self, example):
        import torch

        static_in = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm up: cuDNN picks its algorithms outside the capture
                self._forward(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        return static_in, static_out, graph

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.device == "cuda":
            t = t.pin_memory().to("cuda", non_blocking=True)
        # the last conv's output is channels-last; callers get a plain C-ordered array
        return np.ascontiguousarray(self.run_tensor(t).cpu().numpy())

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
