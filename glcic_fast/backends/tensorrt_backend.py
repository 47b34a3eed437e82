"""The ``tensorrt`` backend: runs an engine built by ``glcic-fast build-engine``.

    completer = glcic_fast.load("glcic.plan")          # api -> TensorRTBackend.from_engine
    backend = TensorRTBackend.from_engine("glcic.plan")
    out = backend(x)                                   # (N, 4, H, W) float32 -> (N, 3, H, W)

Loading checks, in order: the plan and its sidecar exist and belong together (sha256), the
sidecar is ours; TensorRT is installed; a GPU is visible; the running TensorRT version and the
GPU's compute capability are the ones the plan was built for (a plan is tied to both; a
different GPU model of the same architecture only warns). Each check fails with a message that
says what to do; the file checks live in ``glcic_fast.engine_format`` and run without TensorRT
or a GPU.

Execution: ``execute_async_v3`` on a CUDA stream with tensor addresses bound to preallocated
device buffers. Every input shape inside the engine's profile works (another shape is refused
with the profile in the message); each shape gets its own execution context (sharing one
scratch allocation, since calls are serialised on one stream), its own buffers and its own
CUDA graph, captured after a warm-up run, so batch-1 calls cost one graph launch. Shapes are
kept in an LRU of ``max_shapes`` entries.

Device memory, streams and graphs come from PyTorch when it is importable with CUDA
(``torch_cuda_device``), else from cuda-python with numpy host buffers
(``cuda_python_device``): deploying an engine does not need PyTorch
(``pip install tensorrt cuda-python numpy``), and this module never imports it itself.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..engine_format import (
    INPUT_NAME,
    OUT_CHANNELS,
    OUTPUT_NAME,
    ShapeProfile,
    check_compatibility,
    check_shape_in_profile,
    engine_metadata,
    read_engine_bytes,
    read_sidecar,
)
from ..errors import BackendUnavailable, EngineError, TensorRTNotInstalled
from ..tensorrt_env import current_gpu, device_runtime_reason, import_tensorrt, tensorrt_version
from .base import Backend

if TYPE_CHECKING:
    import tensorrt as trt

RUNTIMES = ("auto", "torch", "cuda-python")


def _torch_cuda_available() -> bool:
    try:
        from .torch_cuda_device import cuda_available  # imports torch: optional here
    except ImportError:  # a lean deployment without PyTorch
        return False
    return cuda_available()


def choose_runtime(runtime: str = "auto") -> str:
    """"torch" when PyTorch with CUDA is usable (or asked for), else "cuda-python"."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    return "torch" if _torch_cuda_available() else "cuda-python"


def _device(runtime: str, index: int) -> Any:
    if runtime == "torch":
        from .torch_cuda_device import TorchDevice

        return TorchDevice(index)
    from .cuda_python_device import CudaPythonDevice

    return CudaPythonDevice(index)


@dataclass
class _ShapeSlot:
    """Everything prepared for one input shape."""

    shape: tuple[int, int, int, int]
    context: "trt.IExecutionContext"
    dev_in: Any
    dev_out: Any
    host_in: Any
    host_out: Any
    graph: Any = None


# ------------------------------------------------------------------------------- the backend


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "bf16")
    devices = ("cuda",)

    path: Path
    sidecar: dict[str, Any]
    metadata: dict[str, Any]  # the checkpoint's metadata (mean, input_fill, ...) + "engine"
    profile: ShapeProfile
    cuda_graphs: bool
    max_shapes: int
    _slots: "OrderedDict[tuple[int, int, int, int], _ShapeSlot]"
    _graph_failures: set[tuple[int, int, int, int]]
    _runtime_name: str
    _dev: Any  # TorchDevice | CudaPythonDevice
    _logger: "trt.Logger"
    _runtime: "trt.Runtime"
    _engine: "trt.ICudaEngine"
    _scratch: Any

    def __init__(self, layers: Any = None, device: str = "cuda", precision: str = "fp32", **options: Any):
        raise BackendUnavailable(
            "the tensorrt backend runs a built engine, not a checkpoint: build one with "
            "`glcic-fast build-engine --model MODEL -o glcic.plan` (or glcic_fast.export.tensorrt.build_engine), "
            "then load it with glcic_fast.load('glcic.plan') or TensorRTBackend.from_engine('glcic.plan')"
        )

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        if device != "cuda":
            return "TensorRT engines run on an NVIDIA GPU (device cuda)"
        try:
            import_tensorrt()
        except TensorRTNotInstalled as e:
            return str(e)
        reason = device_runtime_reason()
        if reason:
            return reason
        if current_gpu() is None:
            return "no CUDA GPU is visible"
        return None

    @classmethod
    def from_engine(
        cls,
        path: str | os.PathLike,
        device: str = "cuda",
        *,
        cuda_graphs: bool = True,
        runtime: str = "auto",
        max_shapes: int = 8,
        device_index: int = 0,
        **unused: Any,
    ) -> "TensorRTBackend":
        """Load ``path`` (a plan written by ``build-engine``, with ``path + '.json'`` beside it).

        cuda_graphs: capture a CUDA graph per input shape (default). runtime: "auto", "torch" or
        "cuda-python" (who allocates GPU memory and owns the stream). max_shapes: how many
        input shapes keep their prepared buffers, contexts and graphs.
        """
        if unused:
            raise TypeError(f"unexpected options for the tensorrt backend: {', '.join(sorted(unused))}")
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"{path}: no such engine file (build one with `glcic-fast build-engine -o {path}`)")
        sidecar = read_sidecar(path)
        engine_bytes = read_engine_bytes(path, sidecar)
        import_tensorrt()  # TensorRTNotInstalled, with install instructions
        import tensorrt as trt
        if device != "cuda":
            raise BackendUnavailable(f"TensorRT engines run on an NVIDIA GPU (device cuda), not {device}")
        reason = device_runtime_reason()
        if reason:
            raise BackendUnavailable(f"the tensorrt backend needs GPU memory management: {reason}")
        gpu = current_gpu(device_index)
        if gpu is None:
            raise BackendUnavailable("no CUDA GPU is visible; TensorRT engines run on an NVIDIA GPU")
        for note in check_compatibility(sidecar, tensorrt_version(trt), gpu):
            warnings.warn(note, stacklevel=2)
        backend = cls.__new__(cls)
        backend._load(path, sidecar, engine_bytes, cuda_graphs, runtime, max_shapes, device_index)
        return backend

    def _load(
        self, path: Path, sidecar: dict[str, Any], engine_bytes: bytes, cuda_graphs: bool, runtime: str,
        max_shapes: int, device_index: int,
    ) -> None:
        import tensorrt as trt

        self.device = "cuda"
        self.precision = sidecar["precision"]
        self.path = path
        self.sidecar = sidecar
        self.metadata = engine_metadata(path, sidecar)
        self.profile = ShapeProfile.from_json(sidecar["profile"])
        self.cuda_graphs = cuda_graphs
        self.max_shapes = max(1, int(max_shapes))
        self._slots = OrderedDict()
        self._graph_failures = set()
        self._runtime_name = choose_runtime(runtime)
        self._dev = _device(self._runtime_name, device_index)
        if sidecar.get("plugins") == "triton":
            _register_plugins_if_possible()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine: Optional[trt.ICudaEngine] = self._runtime.deserialize_cuda_engine(engine_bytes)
        if engine is None:
            raise EngineError(
                f"{path}: TensorRT {tensorrt_version(trt)} could not deserialize the engine (see the TensorRT "
                "message above); rebuild it with glcic-fast build-engine"
            )
        self._engine = engine
        _check_io(engine, path)
        # One scratch allocation shared by every shape's context (calls are serialised on one stream).
        self._scratch = self._dev.scratch(int(engine.device_memory_size_v2))

    def __repr__(self) -> str:
        return f"<TensorRTBackend {self.path.name} precision={self.precision} runtime={self._runtime_name}>"

    # -- execution -------------------------------------------------------------------------

    def _slot(self, shape: tuple[int, int, int, int]) -> _ShapeSlot:
        slot = self._slots.get(shape)
        if slot is not None:
            self._slots.move_to_end(shape)
            return slot
        check_shape_in_profile(shape, self.profile)
        import tensorrt as trt

        context = self._engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        if context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        context.set_device_memory(self._dev.ptr(self._scratch), int(self._engine.device_memory_size_v2))
        out_shape = (shape[0], OUT_CHANNELS, shape[2], shape[3])
        dev = self._dev
        slot = _ShapeSlot(shape, context, dev.empty(shape), dev.empty(out_shape), dev.empty_host(shape), dev.empty_host(out_shape))
        if not context.set_input_shape(INPUT_NAME, shape):
            raise ValueError(f"TensorRT refused input shape {shape} (engine profile: {self.profile.describe()})")
        context.set_tensor_address(INPUT_NAME, dev.ptr(slot.dev_in))
        context.set_tensor_address(OUTPUT_NAME, dev.ptr(slot.dev_out))
        # Warm-up run: TensorRT finishes shape-dependent setup on the first enqueue, which must
        # not happen inside a graph capture.
        self._enqueue(slot)
        dev.synchronize()
        if self.cuda_graphs and shape not in self._graph_failures:
            try:
                slot.graph = dev.capture(lambda: self._enqueue(slot))
            except Exception as e:  # e.g. a plugin that cannot be captured: run without a graph
                self._graph_failures.add(shape)
                warnings.warn(f"CUDA graph capture failed for input {shape} ({e}); running without a graph", stacklevel=3)
                dev.synchronize()
        self._slots[shape] = slot
        while len(self._slots) > self.max_shapes:
            _, old = self._slots.popitem(last=False)
            dev.release([old.dev_in, old.dev_out, old.host_in, old.host_out], old.graph)
        return slot

    def _enqueue(self, slot: _ShapeSlot) -> None:
        if not slot.context.execute_async_v3(self._dev.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for input {slot.shape}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"expected (batch, 4, height, width) input, got shape {x.shape}")
        shape = (int(x.shape[0]), int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
        slot = self._slot(shape)
        dev = self._dev
        np.copyto(dev.host_array(slot.host_in), x)
        dev.upload(slot.host_in, slot.dev_in)
        if slot.graph is not None:
            dev.replay(slot.graph)
        else:
            self._enqueue(slot)
        dev.download(slot.dev_out, slot.host_out)
        return dev.host_array(slot.host_out).copy()

    def run_torch(self, x: Any) -> Any:
        """Device-to-device call for PyTorch users: a CUDA float32 (N, 4, H, W) tensor in, a new
        CUDA tensor out, ordered on torch's current stream (no host copies)."""
        if self._runtime_name != "torch":
            raise RuntimeError("run_torch needs the torch runtime (from_engine(..., runtime='torch'))")
        torch = self._dev.torch
        shape = tuple(int(s) for s in x.shape)
        slot = self._slot(shape)  # type: ignore[arg-type]
        current = torch.cuda.current_stream(self._dev.device)
        self._dev.stream.wait_stream(current)
        with torch.cuda.stream(self._dev.stream):
            slot.dev_in.copy_(x, non_blocking=True)
            if slot.graph is not None:
                slot.graph.replay()
            else:
                self._enqueue(slot)
        current.wait_stream(self._dev.stream)
        # Clone on the caller's stream: memory allocated on the private stream could be
        # handed out again while the caller's stream still reads it.
        return slot.dev_out.clone()

    def synchronize(self) -> None:
        self._dev.synchronize()

    def close(self) -> None:
        """Free device memory now (otherwise freed when the backend is garbage-collected)."""
        self._slots.clear()
        if hasattr(self, "_dev"):
            self._dev.close()
            del self._dev


def _check_io(engine: "trt.ICudaEngine", path: Path) -> None:
    import tensorrt as trt

    names = {engine.get_tensor_name(i): engine.get_tensor_mode(engine.get_tensor_name(i)) for i in range(engine.num_io_tensors)}
    if names.get(INPUT_NAME) != trt.TensorIOMode.INPUT or names.get(OUTPUT_NAME) != trt.TensorIOMode.OUTPUT:
        raise EngineError(f"{path}: engine I/O {sorted(names)} are not this network's ({INPUT_NAME!r} -> {OUTPUT_NAME!r})")
    for name in (INPUT_NAME, OUTPUT_NAME):
        if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
            raise EngineError(f"{path}: engine tensor {name!r} is {engine.get_tensor_dtype(name)}, expected float32")


def _register_plugins_if_possible() -> None:
    """Register our plugin definitions before deserializing a ``--plugins triton`` engine.

    The kernels themselves are AOT-compiled into the plan (PTX), so this is belt and braces for
    TensorRT versions that look the plugin creator up at deserialization; without Triton
    installed it is skipped.
    """
    try:
        from ..kernels import trt_plugins

        trt_plugins.register()
    except ImportError:
        pass  # no Triton / no tensorrt.plugin: the AOT kernels in the plan do not need them
    except Exception as e:  # registration is best effort; deserialization reports real problems
        warnings.warn(f"could not register the glcic::conv2d_nhwc plugin definitions ({e})", stacklevel=3)
