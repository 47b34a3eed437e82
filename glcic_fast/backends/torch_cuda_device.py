"""GPU buffers, stream and CUDA graphs from PyTorch, for the tensorrt backend.

The backend uses this when PyTorch with CUDA is installed (and for ``run_torch``, device
tensors in and out); a deployment without PyTorch uses ``cuda_python_device`` instead. The
engine runs on our own torch stream, ordered after whatever the caller queued on torch's
current stream.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


class TorchDevice:
    name = "torch"

    def __init__(self, index: int = 0):
        self.torch = torch
        self.device = torch.device("cuda", index)
        self.stream = torch.cuda.Stream(self.device)
        self.handle = int(self.stream.cuda_stream)

    def empty(self, shape: Sequence[int]) -> Any:
        return self.torch.empty(tuple(shape), dtype=self.torch.float32, device=self.device)

    def empty_host(self, shape: Sequence[int]) -> Any:
        return self.torch.empty(tuple(shape), dtype=self.torch.float32, pin_memory=True)

    @staticmethod
    def ptr(buf: Any) -> int:
        return int(buf.data_ptr())

    @staticmethod
    def host_array(buf: Any) -> np.ndarray:
        return buf.numpy()

    def scratch(self, nbytes: int) -> Any:
        return self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device=self.device)

    def upload(self, host: Any, dev: Any) -> None:
        self.stream.wait_stream(self.torch.cuda.current_stream(self.device))
        with self.torch.cuda.stream(self.stream):
            dev.copy_(host, non_blocking=True)

    def download(self, dev: Any, host: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            host.copy_(dev, non_blocking=True)
        self.stream.synchronize()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[], None]) -> Any:
        graph = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            enqueue()
        return graph

    def replay(self, graph: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            graph.replay()

    def release(self, buffers: Sequence[Any], graph: Any) -> None:
        pass  # torch frees tensors and graphs when they are dropped

    def close(self) -> None:
        pass
