"""TensorRT engines: a plan (``.plan``) and its JSON sidecar from a checkpoint (``build-engine``).

    build_engine("model.safetensors", "glcic.plan", precision="fp16",
                 batch=(1, 1, 8), height=(64, 256, 1024), width=(64, 256, 1024))

Pipeline: checkpoint -> BN-folded layers -> ONNX (``glcic_fast.onnx_graph.build_onnx_model``,
typed fp32/fp16/bf16) -> [``plugins="triton"``: the dilated 3x3 convs become Triton-kernel
plugin nodes, ``glcic_fast.kernels.trt_plugins``] -> ``trt.OnnxParser`` -> a strongly typed
network (TensorRT 11 has no other kind; on 10.x we ask for it) -> one optimization profile
over (batch, 4, height, width) -> ``build_serialized_network`` -> engine + sidecar (the format
both the builder and the ``tensorrt`` backend use is ``glcic_fast.engine_format``).

Shape ranges are checked before anything is imported or loaded. The engine runs any shape
inside the ranges; TensorRT tunes its kernels for OPT. Both files are written atomically and
only after a build has succeeded: a failed build leaves no file behind.

Timing cache: TensorRT times candidate kernels for every layer; the timings are kept in a
persistent cache (default ``glcic_fast.cache.cache_dir()``, usually ``~/.cache/glcic-fast/``,
one file per TensorRT version and GPU architecture) so rebuilding an engine, or building
another precision or profile, takes a fraction of the first build's time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from ..atomic import atomic_write_data
from ..cache import cache_dir
from ..engine_format import INPUT_NAME, ShapeProfile, make_sidecar, sidecar_path, validate_profile
from ..errors import BackendUnavailable, EngineBuildError
from ..onnx_graph import build_onnx_model
from ..tensorrt_env import current_gpu, import_tensorrt, tensorrt_version
from .onnx import onnx_metadata, resolve_export_model

PRECISIONS = ("fp32", "fp16", "bf16")
PLUGIN_CHOICES = ("none", "triton")
PLUGIN_LAYER_CHOICES = ("dilated", "h4")
MAX_OPT_LEVEL = 5  # TensorRT's builder_optimization_level range is 0..5 (default 3)
DEFAULT_BATCH = (1, 1, 8)
DEFAULT_HEIGHT = (64, 256, 1024)
DEFAULT_WIDTH = (64, 256, 1024)
DEFAULT_WORKSPACE_GB = 4.0
DEFAULT_TIMING_CACHE = "default"  # sentinel: cache_dir()/timing-....cache


def default_timing_cache_path(trt_version: str, compute_capability: str) -> Path:
    """One cache per TensorRT version and GPU architecture (TensorRT rejects others' caches)."""
    return cache_dir() / f"timing-trt{trt_version}-sm{compute_capability.replace('.', '')}.cache"


def write_engine_files(engine_path: str | os.PathLike, engine_bytes: bytes, sidecar: dict[str, Any]) -> None:
    """Write the plan and its sidecar atomically; if either fails, neither is left behind."""
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"

    # A stale sidecar must never describe the new plan: remove it first, write the plan, then
    # the sidecar. A crash in between leaves a plan without sidecar, which the backend refuses.
    if side.exists():
        side.unlink()
    atomic_write_data(engine_path, engine_bytes)
    try:
        atomic_write_data(side, text)
    except BaseException:
        engine_path.unlink(missing_ok=True)
        raise


def _check_options(precision: str, plugins: str, plugin_layers: str, opt_level: int, workspace_gb: Optional[float]) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if plugins not in PLUGIN_CHOICES:
        raise ValueError(f"plugins must be one of {', '.join(PLUGIN_CHOICES)}, got {plugins!r}")
    if plugin_layers not in PLUGIN_LAYER_CHOICES:
        raise ValueError(f"plugin_layers must be one of {', '.join(PLUGIN_LAYER_CHOICES)}, got {plugin_layers!r}")
    if not 0 <= opt_level <= MAX_OPT_LEVEL:
        raise ValueError(f"opt level must be 0..{MAX_OPT_LEVEL} (TensorRT's builder optimization level), got {opt_level}")
    if workspace_gb is not None and not workspace_gb > 0:
        raise ValueError(f"workspace must be a positive number of GiB, got {workspace_gb}")


def build_engine(
    checkpoint_or_network: Any,
    output: str | os.PathLike,
    precision: str = "fp16",
    batch: Any = DEFAULT_BATCH,
    height: Any = DEFAULT_HEIGHT,
    width: Any = DEFAULT_WIDTH,
    workspace_gb: Optional[float] = DEFAULT_WORKSPACE_GB,
    opt_level: int = 3,
    timing_cache: Optional[str | os.PathLike] = DEFAULT_TIMING_CACHE,
    plugins: str = "none",
    plugin_layers: str = "dilated",
    verbose: bool = False,
) -> dict[str, Any]:
    """Build a TensorRT engine for the completion network; returns the sidecar dict.

    checkpoint_or_network: a checkpoint path, a ``CompletionNetwork``, a list of
    ``FoldedLayer``, or None (the packaged model). precision: fp32 (full fp32: TF32 is
    disabled), fp16 or bf16 (typed graph; the input, the output and the sigmoid stay fp32).
    batch / height / width: ``(min, opt, max)`` or ``"min,opt,max"`` or one number.
    workspace_gb: TensorRT's workspace pool limit (None: TensorRT's default, all GPU memory).
    opt_level: TensorRT builder optimization level 0..5. timing_cache: a path, "default"
    (``~/.cache/glcic-fast/``) or None (no cache). plugins: "none" or "triton" (our Triton
    convolution as TensorRT plugins for the layers chosen by ``plugin_layers``: "dilated" =
    layers 7-10, "h4" = all 256-channel 3x3 stride-1 layers at H/4, 5-12).

    Raises ``ProfileError`` / ``ValueError`` for bad arguments (checked first),
    ``TensorRTNotInstalled`` without TensorRT, ``BackendUnavailable`` without a GPU,
    ``CheckpointError`` for a bad checkpoint, ``EngineBuildError`` when TensorRT fails. Writes
    ``output`` and ``output + ".json"`` only after a successful build.
    """
    profile = validate_profile(batch, height, width)
    _check_options(precision, plugins, plugin_layers, opt_level, workspace_gb)
    trt = import_tensorrt()  # TensorRTNotInstalled, with install instructions
    gpu = current_gpu()
    if gpu is None:
        raise BackendUnavailable("building a TensorRT engine needs an NVIDIA GPU, and none is visible here")
    if plugins == "triton":
        from ..kernels import trt_plugins  # needs triton: imported only when plugins are asked for

        trt_plugins.register()  # before parsing: the ONNX parser looks the plugin creator up by name
    model = resolve_export_model(checkpoint_or_network)
    onnx_bytes, chosen_layers = _onnx_for_engine(model, precision, plugins, plugin_layers)
    version = tensorrt_version(trt)
    cache_path: Optional[Path] = None
    if timing_cache == DEFAULT_TIMING_CACHE:
        cache_path = default_timing_cache_path(version, gpu.compute_capability)
    elif timing_cache is not None and str(timing_cache).lower() != "none":
        cache_path = Path(timing_cache)
    start = time.perf_counter()
    engine_bytes, cache_bytes = _build_serialized(
        onnx_bytes, profile, precision, workspace_gb, opt_level, cache_path, plugins == "triton", verbose
    )
    seconds = time.perf_counter() - start
    sidecar = make_sidecar(
        engine_path=output, engine_bytes=engine_bytes, profile=profile, precision=precision,
        tensorrt_version=version, gpu_name=gpu.name, compute_capability=gpu.compute_capability,
        model_source=model.source, model_sha256=model.sha256, model_metadata=model.metadata(),
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(), plugins=plugins, plugin_layers=chosen_layers,
        build_seconds=seconds,
        build_options={
            "opt_level": opt_level,
            "workspace_bytes": None if workspace_gb is None else int(workspace_gb * 2**30),
            "timing_cache": None if cache_path is None else str(cache_path),
            "tf32": False if precision == "fp32" else None,
        },
    )
    write_engine_files(output, engine_bytes, sidecar)
    if cache_path is not None and cache_bytes:
        _save_timing_cache(cache_path, cache_bytes)
    return sidecar


def _onnx_for_engine(model: Any, precision: str, plugins: str, plugin_layers: str) -> tuple[bytes, list[int]]:
    """Serialized ONNX for the builder, and the (1-based) layers turned into plugins."""
    onnx_model = build_onnx_model(model.layers, precision, onnx_metadata(model))
    chosen: list[int] = []
    if plugins == "triton":
        from ..kernels import trt_plugins  # needs triton: imported only when plugins are asked for

        chosen = trt_plugins.plugin_layer_numbers(model.layers, plugin_layers)
        onnx_model = trt_plugins.replace_convs_with_plugins(onnx_model, chosen)
    return onnx_model.SerializeToString(), chosen


def _build_serialized(
    onnx_bytes: bytes,
    profile: ShapeProfile,
    precision: str,
    workspace_gb: Optional[float],
    opt_level: int,
    cache_path: Optional[Path],
    aot_plugins: bool,
    verbose: bool,
) -> tuple[bytes, Optional[bytes]]:
    """Parse the ONNX and build; returns (plan bytes, serialized timing cache or None)."""
    import tensorrt as trt

    logger = _make_logger(verbose)
    builder = trt.Builder(logger)
    # TensorRT 11 networks are always strongly typed (the flag is kept and ignored); 10.x needs it.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if aot_plugins:
        # Our plugins register only an AOT implementation; say so in case a JIT one appears
        # (the flag exists from TensorRT 10.10 on; older versions pick the only implementation).
        prefer_aot = getattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS", None)
        if prefer_aot is not None:
            flags |= 1 << int(prefer_aot)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(f"{err.node_name() or 'graph'} ({err.node_operator() or '-'}): {err.desc()}")
        raise EngineBuildError("TensorRT's ONNX parser rejected the network:\n  " + "\n  ".join(errors or logger.errors))
    config = builder.create_builder_config()
    if workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    config.builder_optimization_level = opt_level
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # "fp32" means fp32 products, not TF32's 10-bit mantissas
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, profile.min_shape, profile.opt_shape, profile.max_shape)
    if config.add_optimization_profile(opt_profile) < 0:
        raise EngineBuildError(f"TensorRT rejected the optimization profile {profile.describe()}")
    cache = None
    if cache_path is not None:
        data = b""
        if cache_path.is_file():
            data = cache_path.read_bytes()
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, False):
            # A cache from another TensorRT build or GPU: start a fresh one instead.
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = "\n  ".join(logger.errors) or "no error message (rerun with --verbose)"
        raise EngineBuildError(f"TensorRT could not build the engine:\n  {detail}")
    engine_bytes = bytes(memoryview(serialized))
    cache_bytes = None
    if cache is not None:
        cache_bytes = bytes(memoryview(config.get_timing_cache().serialize()))
    return engine_bytes, cache_bytes


def _make_logger(verbose: bool) -> Any:
    """A TensorRT logger that keeps the errors (for our exception) and prints warnings and up."""
    import tensorrt as trt

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            is_error = severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR)
            if is_error:
                self.errors.append(msg)
            if is_error or verbose:
                print(f"[TensorRT {severity.name}] {msg}", file=sys.stderr)

    return _Logger()


def _save_timing_cache(path: Path, data: bytes) -> None:
    try:
        atomic_write_data(path, data)
    except OSError as e:  # a read-only cache folder must not fail a finished build
        print(f"glcic-fast build-engine: warning: could not save the timing cache to {path} ({e})", file=sys.stderr)
