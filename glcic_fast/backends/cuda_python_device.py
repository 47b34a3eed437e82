"""GPU buffers, stream and CUDA graphs from cuda-python, for the tensorrt backend.

What a TensorRT deployment without PyTorch uses (``pip install tensorrt cuda-python numpy``):
device memory from ``cudaMalloc``, pinned host buffers as numpy arrays, our own non-blocking
stream, graphs captured with stream capture. cuda-python has no garbage collection, so
buffers and graphs are freed explicitly (``release``, ``close``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..tensorrt_env import cuda_runtime


class CudaPythonDevice:
    name = "cuda-python"

    def __init__(self, index: int = 0):
        self.rt = cuda_runtime()
        self._check(self.rt.cudaSetDevice(index), "cudaSetDevice")
        self.stream = self._check(self.rt.cudaStreamCreateWithFlags(1), "cudaStreamCreateWithFlags")  # non-blocking
        self.handle = int(self.stream)
        self._device_ptrs: list[int] = []
        self._host_ptrs: list[int] = []
        self._graphs: list[tuple[Any, Any]] = []

    def _check(self, result: Any, what: str) -> Any:
        err = result[0] if isinstance(result, tuple) else result
        if err != self.rt.cudaError_t.cudaSuccess:
            text = self.rt.cudaGetErrorString(err)[1]
            raise RuntimeError(f"{what} failed: {text.decode() if isinstance(text, bytes) else text}")
        if isinstance(result, tuple):
            return result[1] if len(result) == 2 else result[1:]
        return None

    def empty(self, shape: Sequence[int]) -> "DeviceBuffer":
        nbytes = int(np.prod(shape)) * 4
        ptr = int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        self._device_ptrs.append(ptr)
        return DeviceBuffer(ptr, tuple(shape), nbytes)

    def empty_host(self, shape: Sequence[int]) -> np.ndarray:
        count = int(np.prod(shape))
        ptr = int(self._check(self.rt.cudaMallocHost(count * 4), "cudaMallocHost"))
        self._host_ptrs.append(ptr)
        return np.ctypeslib.as_array((ctypes.c_float * count).from_address(ptr)).reshape(tuple(shape))

    @staticmethod
    def ptr(buf: Any) -> int:
        return buf.ptr

    @staticmethod
    def host_array(buf: np.ndarray) -> np.ndarray:
        return buf

    def scratch(self, nbytes: int) -> "DeviceBuffer":
        ptr = int(self._check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
        self._device_ptrs.append(ptr)
        return DeviceBuffer(ptr, (nbytes,), nbytes)

    def upload(self, host: np.ndarray, dev: "DeviceBuffer") -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dev.ptr, host.ctypes.data, dev.nbytes, kind, self.stream), "cudaMemcpyAsync")

    def download(self, dev: "DeviceBuffer", host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, dev.ptr, dev.nbytes, kind, self.stream), "cudaMemcpyAsync")
        self.synchronize()

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def capture(self, enqueue: Callable[[], None]) -> Any:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = self._check(self.rt.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture")
        executable = self._check(self.rt.cudaGraphInstantiateWithFlags(graph, 0), "cudaGraphInstantiateWithFlags")
        self._graphs.append((graph, executable))
        return executable

    def replay(self, executable: Any) -> None:
        self._check(self.rt.cudaGraphLaunch(executable, self.stream), "cudaGraphLaunch")

    def release(self, buffers: Sequence[Any], graph: Any) -> None:
        """Free one evicted shape's buffers and graph now (cuda-python has no garbage collection)."""
        self.synchronize()
        for buf in buffers:
            if isinstance(buf, DeviceBuffer) and buf.ptr in self._device_ptrs:
                self._device_ptrs.remove(buf.ptr)
                self.rt.cudaFree(buf.ptr)
            elif isinstance(buf, np.ndarray) and buf.ctypes.data in self._host_ptrs:
                self._host_ptrs.remove(buf.ctypes.data)
                self.rt.cudaFreeHost(buf.ctypes.data)
        for pair in [p for p in self._graphs if p[1] is graph]:
            self._graphs.remove(pair)
            self.rt.cudaGraphExecDestroy(pair[1])
            self.rt.cudaGraphDestroy(pair[0])

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the runtime module may already be gone
            pass

    def close(self) -> None:
        if self.stream is None:
            return
        for graph, executable in self._graphs:
            self.rt.cudaGraphExecDestroy(executable)
            self.rt.cudaGraphDestroy(graph)
        for ptr in self._device_ptrs:
            self.rt.cudaFree(ptr)
        for ptr in self._host_ptrs:
            self.rt.cudaFreeHost(ptr)
        self._graphs, self._device_ptrs, self._host_ptrs = [], [], []
        self.rt.cudaStreamDestroy(self.stream)
        self.stream = None


@dataclass
class DeviceBuffer:
    ptr: int
    shape: tuple[int, ...]
    nbytes: int
