"""The ``tensorrt`` backend: runs an engine built by ``glcic-fast build-engine``.

    completer = glcic_fast.load("glcic.plan")          # api -> TensorRTBackend.from_engine
    backend = TensorRTBackend.from_engine("glcic.plan")
    out = backend(x)                                   # (N, 4, H, W) float32 -> (N, 3, H, W)

Loading checks, in order: the plan and its sidecar exist and belong together (sha256), the
sidecar is ours; TensorRT is installed; a GPU is visible; the running TensorRT version and the
GPU's compute capability are the ones the plan was built for (a plan is tied to both; a
different GPU model of the same architecture only warns). Each check fails with a message that
says what to do, and all of them except the last two run without TensorRT or a GPU (they are
plain functions here, tested on CPU machines).

Execution: ``execute_async_v3`` on a CUDA stream with tensor addresses bound to preallocated
device buffers. Every input shape inside the engine's profile works (another shape is refused
with the profile in the message); each shape gets its own execution context (sharing one
scratch allocation, since calls are serialised on one stream), its own buffers and its own
CUDA graph, captured after a warm-up run, so batch-1 calls cost one graph launch. Shapes are
kept in an LRU of ``max_shapes`` entries.

Device memory, streams and graphs come from PyTorch when it is importable with CUDA, else from
cuda-python's ``cuda.bindings.runtime`` with numpy host buffers: deploying an engine does not
need PyTorch (``pip install tensorrt cuda-python numpy``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from ..tensorrt_build import (
    ENGINE_FORMAT,
    ENGINE_FORMAT_VERSION,
    INPUT_NAME,
    OUTPUT_NAME,
    ProfileError,
    ShapeProfile,
    sidecar_path,
)
from .base import Backend, BackendUnavailable

if TYPE_CHECKING:
    import tensorrt as trt

TENSORRT_DOCS = "https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/installing.html"
INSTALL_HINT = (
    "TensorRT is not installed (the Python package `tensorrt` cannot be imported). Install it with "
    "`pip install tensorrt` (TensorRT >= 10.8; or `pip install 'glcic-fast[tensorrt]'`, which adds "
    "cuda-python); it needs an NVIDIA GPU and driver. Instructions: " + TENSORRT_DOCS
)
OUT_CHANNELS = 3
RUNTIMES = ("auto", "torch", "cuda-python")


class EngineError(ValueError):
    """An engine file or sidecar that is missing, corrupt, or built for another setup."""


class TensorRTNotInstalled(BackendUnavailable):
    """``import tensorrt`` failed; the message says how to install it."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or ``TensorRTNotInstalled`` with install instructions."""
    try:
        import tensorrt
    except ImportError:
        raise TensorRTNotInstalled(INSTALL_HINT) from None
    return tensorrt


def tensorrt_version(trt: Any) -> str:
    return str(getattr(trt, "__version__", "unknown"))


# ------------------------------------------------------------------------------ GPU identity


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    index: int = 0


def _cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # type: ignore[no-redef]
    return runtime


def current_gpu(index: int = 0) -> Optional[GpuInfo]:
    """Name and compute capability of CUDA device ``index``, or None without a usable GPU.

    Asks PyTorch when it is installed, else cuda-python.
    """
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None:
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return None
        props = torch.cuda.get_device_properties(index)
        return GpuInfo(props.name, f"{props.major}.{props.minor}", index)
    try:
        cudart = _cudart()
    except ImportError:
        return None
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or index >= count:
        return None
    err, props = cudart.cudaGetDeviceProperties(index)
    if err != cudart.cudaError_t.cudaSuccess:
        return None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.rstrip("\x00"), f"{props.major}.{props.minor}", index)


def device_runtime_reason() -> Optional[str]:
    """None if GPU memory can be managed here (PyTorch with CUDA, or cuda-python), else why not."""
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    try:
        _cudart()
    except ImportError:
        return "neither PyTorch with CUDA nor cuda-python is installed (pip install cuda-python)"
    return None


# ------------------------------------------------------------------ plan + sidecar (CPU side)


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The engine's sidecar, checked for shape; ``EngineError`` says what is wrong and what to do."""
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    rebuild = "rebuild the engine with `glcic-fast build-engine`"
    if not side.is_file():
        raise EngineError(
            f"{engine_path}: its sidecar {side.name} is missing; the engine cannot be checked against this "
            f"GPU and TensorRT, and its model's mean pixel is unknown. Keep ENGINE.json next to the engine or {rebuild}"
        )
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineError(f"{side}: not a readable JSON sidecar ({e}); {rebuild}") from None
    validate_sidecar(data, str(side))
    return data


def validate_sidecar(data: Any, where: str = "sidecar") -> None:
    """Raise ``EngineError`` unless ``data`` is a glcic-fast engine sidecar we can use."""
    if not isinstance(data, dict) or data.get("format") != ENGINE_FORMAT:
        fmt = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise EngineError(f"{where}: not a glcic-fast engine sidecar (format {fmt!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or version > ENGINE_FORMAT_VERSION:
        raise EngineError(f"{where}: sidecar format version {version!r} is newer than this glcic-fast reads; upgrade glcic-fast")
    for key, kind in (("engine_sha256", str), ("tensorrt_version", str), ("gpu", dict), ("precision", str), ("profile", dict)):
        if not isinstance(data.get(key), kind):
            raise EngineError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    if not isinstance(data["gpu"].get("compute_capability"), str):
        raise EngineError(f"{where}: gpu.compute_capability is missing")
    try:
        ShapeProfile.from_json(data["profile"])
    except ProfileError as e:
        raise EngineError(f"{where}: {e}") from None
    mean = data.get("mean")
    if not (isinstance(mean, list) and len(mean) == 3 and all(isinstance(m, (int, float)) for m in mean)):
        raise EngineError(f"{where}: 'mean' must be 3 numbers (the model's mean pixel), got {mean!r}")


def read_engine_bytes(engine_path: str | os.PathLike, sidecar: dict[str, Any]) -> bytes:
    """The plan's bytes, verified against the sidecar's sha256."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineError(f"{engine_path}: no such engine file")
    data = engine_path.read_bytes()
    if not data:
        raise EngineError(f"{engine_path}: the engine file is empty (an interrupted copy?); rebuild it")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sidecar["engine_sha256"]:
        raise EngineError(
            f"{engine_path}: the engine does not match its sidecar (sha256 {digest[:12]}... vs "
            f"{sidecar['engine_sha256'][:12]}...): the file is corrupt or was replaced without its .json; "
            "copy both files together or rebuild with `glcic-fast build-engine`"
        )
    return data


def check_compatibility(sidecar: dict[str, Any], running_tensorrt: str, gpu: GpuInfo) -> list[str]:
    """Raise ``EngineError`` if the plan cannot run here; return warnings for what may be slow.

    A plan runs only on the TensorRT version that built it and on GPUs of the compute
    capability it was built for. Another GPU model of that capability runs it, but the kernels
    were timed on the builder's GPU.
    """
    built_trt = sidecar["tensorrt_version"]
    if built_trt != running_tensorrt:
        raise EngineError(
            f"the engine was built with TensorRT {built_trt} but TensorRT {running_tensorrt} is installed; "
            f"a plan only loads in the version that built it: rebuild it here (glcic-fast build-engine) or "
            f"install tensorrt=={built_trt}"
        )
    built_cc = sidecar["gpu"]["compute_capability"]
    built_name = sidecar["gpu"].get("name", "?")
    if built_cc != gpu.compute_capability:
        raise EngineError(
            f"the engine was built for compute capability {built_cc} ({built_name}) but this GPU is "
            f"{gpu.name} (compute capability {gpu.compute_capability}); rebuild it on this GPU with glcic-fast build-engine"
        )
    notes = []
    if built_name != gpu.name:
        notes.append(
            f"the engine was built on {built_name} and runs on {gpu.name} (same architecture, so it works, "
            "but its kernels were tuned for the other GPU; rebuild here for best speed)"
        )
    return notes


def check_shape_in_profile(shape: Sequence[int], profile: ShapeProfile) -> None:
    """``ValueError`` naming the engine's ranges if ``shape`` (N, 4, H, W) is outside them."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or shape[1] != 4:
        raise ValueError(f"the engine takes (batch, 4, height, width) input, got shape {shape}")
    if not profile.contains(shape):
        n, _, h, w = shape
        raise ValueError(
            f"input batch {n}, {h}x{w} is outside the engine's profile ({profile.describe()}); split the batch, "
            "resize the image, or rebuild the engine with wider --batch/--height/--width ranges"
        )


def engine_metadata(engine_path: str | os.PathLike, sidecar: dict[str, Any]) -> dict[str, Any]:
    """What ``Completer.metadata`` holds for an engine: the checkpoint's metadata plus the build."""
    model = sidecar.get("model") or {}
    meta = dict(model.get("metadata") or {})
    meta.update(
        mean=[float(m) for m in sidecar["mean"]],
        input_fill=sidecar.get("input_fill", meta.get("input_fill", "subtract-mean")),
        source=f"{engine_path} (TensorRT engine of {model.get('source', 'unknown model')})",
        engine={
            "path": str(engine_path),
            "tensorrt_version": sidecar["tensorrt_version"],
            "gpu": sidecar["gpu"],
            "precision": sidecar["precision"],
            "profile": sidecar["profile"],
            "plugins": sidecar.get("plugins", "none"),
            "model_sha256": model.get("sha256"),
        },
    )
    return meta


# ------------------------------------------------------------------- device memory backends


class _TorchDevice:
    """Buffers, stream and CUDA graphs from PyTorch (the engine runs on our own torch stream,
    ordered after whatever the caller queued on torch's current stream)."""

    name = "torch"

    def __init__(self, index: int = 0):
        import torch

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


class _CudaPythonDevice:
    """The same with cuda-python and numpy: for installs without PyTorch."""

    name = "cuda-python"

    def __init__(self, index: int = 0):
        self.rt = _cudart()
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

    def empty(self, shape: Sequence[int]) -> "_DeviceBuffer":
        nbytes = int(np.prod(shape)) * 4
        ptr = int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        self._device_ptrs.append(ptr)
        return _DeviceBuffer(ptr, tuple(shape), nbytes)

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

    def scratch(self, nbytes: int) -> "_DeviceBuffer":
        ptr = int(self._check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
        self._device_ptrs.append(ptr)
        return _DeviceBuffer(ptr, (nbytes,), nbytes)

    def upload(self, host: np.ndarray, dev: "_DeviceBuffer") -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dev.ptr, host.ctypes.data, dev.nbytes, kind, self.stream), "cudaMemcpyAsync")

    def download(self, dev: "_DeviceBuffer", host: np.ndarray) -> None:
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
            if isinstance(buf, _DeviceBuffer) and buf.ptr in self._device_ptrs:
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
class _DeviceBuffer:
    ptr: int
    shape: tuple[int, ...]
    nbytes: int


def choose_runtime(runtime: str = "auto") -> str:
    """"torch" when PyTorch with CUDA is usable (or asked for), else "cuda-python"."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    try:
        import torch

        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    return "cuda-python"


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
    _dev: Any  # _TorchDevice | _CudaPythonDevice
    _logger: "trt.Logger"
    _runtime: "trt.Runtime"
    _engine: "trt.ICudaEngine"
    _scratch: Any

    def __init__(self, layers: Any = None, device: str = "cuda", precision: str = "fp32", **options: Any):
        raise BackendUnavailable(
            "the tensorrt backend runs a built engine, not a checkpoint: build one with "
            "`glcic-fast build-engine --model MODEL -o glcic.plan` (or glcic_fast.tensorrt_build.build_engine), "
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
        self._dev = _TorchDevice(device_index) if self._runtime_name == "torch" else _CudaPythonDevice(device_index)
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
