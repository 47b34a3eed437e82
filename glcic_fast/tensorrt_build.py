"""``glcic-fast build-engine``: a TensorRT engine (``.plan``) and its JSON sidecar from a checkpoint.

    glcic-fast build-engine --model model.safetensors --precision fp16 \\
        --batch 1,1,8 --height 64,256,1024 --width 64,256,1024 -o glcic.plan

Pipeline: checkpoint -> BN-folded layers -> ONNX (``glcic_fast.onnx_export.build_onnx_model``,
typed fp32/fp16/bf16) -> [``--plugins triton``: the dilated 3x3 convs become Triton-kernel
plugin nodes, ``glcic_fast.kernels.trt_plugins``] -> ``trt.OnnxParser`` -> a strongly typed
network (TensorRT 11 has no other kind; on 10.x we ask for it) -> one optimization profile
over (batch, 4, height, width) -> ``build_serialized_network`` -> engine + sidecar.

Shape ranges: ``--batch/--height/--width`` each take ``MIN,OPT,MAX`` (or one number for a fixed
size). Height and width must be multiples of 4 (two stride-2 convs, two 2x upsamplings) and
``min <= opt <= max``; they are checked before anything is imported or loaded. The engine
runs any shape inside the ranges; TensorRT tunes its kernels for OPT.

The sidecar (``engine.plan.json``) records what the engine was built from and for: the model's
sha256 and checkpoint metadata (mean pixel, input fill), TensorRT version, GPU name and compute
capability, precision, profile, plugins and build time. The ``tensorrt`` backend checks it
before loading the plan, because a plan only runs on the TensorRT version and GPU
architecture it was built with. Both files are written atomically and only after a build has
succeeded: a failed build leaves no file behind.

Timing cache: TensorRT times candidate kernels for every layer; the timings are kept in a
persistent cache (default ``~/.cache/glcic-fast/``, one file per TensorRT version and GPU
architecture) so rebuilding an engine, or building another precision or profile, takes a
fraction of the first build's time. ``--timing-cache none`` disables it.

Without TensorRT the command says so, explains how to install it, exits with status 1 and
writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

NAME = "build-engine"
PRECISIONS = ("fp32", "fp16", "bf16")
PLUGIN_CHOICES = ("none", "triton")
PLUGIN_LAYER_CHOICES = ("dilated", "h4")
SIZE_MULTIPLE = 4  # == glcic_fast.layers.SIZE_MULTIPLE (kept here so validation imports nothing)
MAX_OPT_LEVEL = 5  # TensorRT's builder_optimization_level range is 0..5 (default 3)
DEFAULT_BATCH = (1, 1, 8)
DEFAULT_HEIGHT = (64, 256, 1024)
DEFAULT_WIDTH = (64, 256, 1024)
DEFAULT_WORKSPACE_GB = 4.0
DEFAULT_TIMING_CACHE = "default"  # sentinel: ~/.cache/glcic-fast/timing-....cache
ENGINE_FORMAT = "glcic-fast-engine"
ENGINE_FORMAT_VERSION = 1
INPUT_NAME = "input"  # == glcic_fast.onnx_export.INPUT_NAME
OUTPUT_NAME = "output"  # == glcic_fast.onnx_export.OUTPUT_NAME
IN_CHANNELS = 4


class ProfileError(ValueError):
    """A shape range that cannot make an optimization profile; the message says how to fix it."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the network; the message carries TensorRT's errors."""


Range = tuple[int, int, int]


@dataclass(frozen=True)
class ShapeProfile:
    """The engine's optimization profile: (min, opt, max) of batch, height and width."""

    batch: Range
    height: Range
    width: Range

    def shape(self, which: int) -> tuple[int, int, int, int]:
        """Input shape (N, 4, H, W) at index 0 = min, 1 = opt, 2 = max."""
        return (self.batch[which], IN_CHANNELS, self.height[which], self.width[which])

    @property
    def min_shape(self) -> tuple[int, int, int, int]:
        return self.shape(0)

    @property
    def opt_shape(self) -> tuple[int, int, int, int]:
        return self.shape(1)

    @property
    def max_shape(self) -> tuple[int, int, int, int]:
        return self.shape(2)

    def contains(self, shape: Sequence[int]) -> bool:
        n, c, h, w = shape
        return c == IN_CHANNELS and all(lo <= v <= hi for v, (lo, _, hi) in ((n, self.batch), (h, self.height), (w, self.width)))

    def describe(self) -> str:
        return ", ".join(f"{name} {lo}..{hi} (opt {opt})" for name, (lo, opt, hi) in
                         (("batch", self.batch), ("height", self.height), ("width", self.width)))

    def to_json(self) -> dict[str, Any]:
        return {
            "input": INPUT_NAME, "output": OUTPUT_NAME,
            "batch": list(self.batch), "height": list(self.height), "width": list(self.width),
            "min_shape": list(self.min_shape), "opt_shape": list(self.opt_shape), "max_shape": list(self.max_shape),
        }

    @classmethod
    def from_json(cls, data: Any) -> "ShapeProfile":
        try:
            return validate_profile(data["batch"], data["height"], data["width"])
        except (KeyError, TypeError) as e:
            raise ProfileError(f"profile must hold batch/height/width ranges, got {data!r} ({e})") from None


def parse_range(text: str | int | Sequence[int], what: str) -> Range:
    """``"1,4,8"`` -> (1, 4, 8); ``"8"`` / 8 -> (8, 8, 8). Types only; see ``validate_profile``."""
    if isinstance(text, int):
        values: list[Any] = [text]
    elif isinstance(text, str):
        values = [v.strip() for v in text.replace(":", ",").split(",")]
    else:
        values = list(text)
    try:
        numbers = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ProfileError(f"{what}: expected MIN,OPT,MAX or one number, got {text!r}") from None
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3:
        raise ProfileError(f"{what}: expected MIN,OPT,MAX (3 numbers) or one number, got {len(numbers)} numbers ({text!r})")
    return numbers[0], numbers[1], numbers[2]


def _nearest_multiples(v: int, m: int = SIZE_MULTIPLE) -> str:
    lo = v // m * m
    return f"{lo} or {lo + m}" if lo >= m else f"{lo + m}"


def validate_profile(batch: Any, height: Any, width: Any) -> ShapeProfile:
    """Check the ranges (before anything heavy happens) and return the profile.

    Each range is (min, opt, max) with min <= opt <= max; batch >= 1; height and width >= 4 and
    multiples of 4. Raises ``ProfileError`` naming the range, the value and a fix.
    """
    b = parse_range(batch, "batch")
    h = parse_range(height, "height")
    w = parse_range(width, "width")
    for what, (lo, opt, hi), smallest in (("batch", b, 1), ("height", h, SIZE_MULTIPLE), ("width", w, SIZE_MULTIPLE)):
        if lo < smallest:
            raise ProfileError(f"{what} range {lo},{opt},{hi}: min must be at least {smallest}")
        if not lo <= opt <= hi:
            raise ProfileError(f"{what} range {lo},{opt},{hi}: need min <= opt <= max")
        if what != "batch":
            for label, v in (("min", lo), ("opt", opt), ("max", hi)):
                if v % SIZE_MULTIPLE:
                    raise ProfileError(
                        f"{what} range {lo},{opt},{hi}: {label} {v} is not a multiple of {SIZE_MULTIPLE} "
                        f"(the network halves the resolution twice); use {_nearest_multiples(v)}"
                    )
    return ShapeProfile(b, h, w)


def default_timing_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glcic-fast"


def default_timing_cache_path(trt_version: str, compute_capability: str) -> Path:
    """One cache per TensorRT version and GPU architecture (TensorRT rejects others' caches)."""
    return default_timing_cache_dir() / f"timing-trt{trt_version}-sm{compute_capability.replace('.', '')}.cache"


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``engine.plan`` -> ``engine.plan.json``."""
    return Path(str(engine_path) + ".json")


def make_sidecar(
    *,
    engine_path: str | os.PathLike,
    engine_bytes: bytes,
    profile: ShapeProfile,
    precision: str,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    model_source: str,
    model_sha256: Optional[str],
    model_metadata: dict[str, Any],
    onnx_sha256: Optional[str] = None,
    plugins: str = "none",
    plugin_layers: Sequence[int] = (),
    build_seconds: Optional[float] = None,
    build_options: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The sidecar dict (pure function: no TensorRT needed, so tests can make one)."""
    import hashlib

    from . import __version__

    meta = dict(model_metadata)
    return {
        "format": ENGINE_FORMAT,
        "format_version": ENGINE_FORMAT_VERSION,
        "engine_file": Path(engine_path).name,
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "engine_bytes": len(engine_bytes),
        "model": {"source": model_source, "sha256": model_sha256, "metadata": meta},
        "mean": list(meta.get("mean", [])),
        "input_fill": meta.get("input_fill", "subtract-mean"),
        "onnx_sha256": onnx_sha256,
        "tensorrt_version": tensorrt_version,
        "gpu": {"name": gpu_name, "compute_capability": compute_capability},
        "precision": precision,
        "profile": profile.to_json(),
        "plugins": plugins,
        "plugin_ops": ["glcic::conv2d_nhwc"] if plugins == "triton" else [],
        "plugin_layers": [int(i) for i in plugin_layers],
        "build": {
            "seconds": None if build_seconds is None else round(build_seconds, 3),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "glcic_fast_version": __version__,
            **(build_options or {}),
        },
    }


def write_engine_files(engine_path: str | os.PathLike, engine_bytes: bytes, sidecar: dict[str, Any]) -> None:
    """Write the plan and its sidecar atomically; if either fails, neither is left behind."""
    from .checkpoint import atomic_write_bytes

    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"

    def write_engine(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(engine_bytes)

    def write_sidecar(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    # A stale sidecar must never describe the new plan: remove it first, write the plan, then
    # the sidecar. A crash in between leaves a plan without sidecar, which the backend refuses.
    if side.exists():
        side.unlink()
    atomic_write_bytes(engine_path, write_engine)
    try:
        atomic_write_bytes(side, write_sidecar)
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
    from .backends.tensorrt_backend import current_gpu, import_tensorrt, tensorrt_version
    from .backends.base import BackendUnavailable

    trt = import_tensorrt()  # TensorRTNotInstalled, with install instructions
    gpu = current_gpu()
    if gpu is None:
        raise BackendUnavailable("building a TensorRT engine needs an NVIDIA GPU, and none is visible here")
    from .onnx_cli import resolve_export_model

    if plugins == "triton":
        from .kernels import trt_plugins

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
    import hashlib

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
    from .onnx_cli import onnx_metadata
    from .onnx_export import build_onnx_model

    onnx_model = build_onnx_model(model.layers, precision, onnx_metadata(model))
    chosen: list[int] = []
    if plugins == "triton":
        from .kernels import trt_plugins

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
    from .checkpoint import atomic_write_bytes

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    try:
        atomic_write_bytes(path, write)
    except OSError as e:  # a read-only cache folder must not fail a finished build
        print(f"glcic-fast {NAME}: warning: could not save the timing cache to {path} ({e})", file=sys.stderr)


# ----------------------------------------------------------------------------------------- CLI


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="build a TensorRT engine (.plan) from a checkpoint",
        description=(
            "Build a TensorRT engine for the completion network and write it with a JSON sidecar "
            "(ENGINE.json: model checksum and metadata, TensorRT version, GPU, precision, profile). "
            "The engine runs any input inside the --batch/--height/--width ranges (each MIN,OPT,MAX or one "
            "number; height and width multiples of 4) on the TensorRT version and GPU architecture it was "
            "built with. Run it with: glcic-fast complete IMAGE --mask MASK --model ENGINE, or "
            "glcic_fast.load('ENGINE'). Needs TensorRT >= 10.8 (pip install tensorrt) and an NVIDIA GPU."
        ),
        epilog=(
            "examples:\n"
            "  glcic-fast build-engine --model model.safetensors -o glcic-fp16.plan\n"
            "  glcic-fast build-engine --model model.safetensors --precision fp32 --batch 1 \\\n"
            "      --height 256,512,1024 --width 256,512,1024 -o glcic-fp32.plan\n"
            "  glcic-fast build-engine --model model.safetensors --plugins triton -o glcic-triton.plan"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--precision", default="fp16", choices=PRECISIONS,
                   help="fp16 (default), bf16, or fp32 (TF32 off); I/O are float32 in every case")
    p.add_argument("--batch", default=",".join(map(str, DEFAULT_BATCH)), metavar="MIN,OPT,MAX",
                   help="batch size range (default %(default)s)")
    p.add_argument("--height", default=",".join(map(str, DEFAULT_HEIGHT)), metavar="MIN,OPT,MAX",
                   help="network input height range, multiples of 4 (default %(default)s)")
    p.add_argument("--width", default=",".join(map(str, DEFAULT_WIDTH)), metavar="MIN,OPT,MAX",
                   help="network input width range, multiples of 4 (default %(default)s)")
    p.add_argument("--workspace", type=float, default=DEFAULT_WORKSPACE_GB, metavar="GIB",
                   help="TensorRT workspace limit in GiB (default %(default)s)")
    p.add_argument("--opt-level", type=int, default=3, metavar="0-5",
                   help="TensorRT builder optimization level (default 3; 5 searches longest)")
    p.add_argument("--timing-cache", default=DEFAULT_TIMING_CACHE, metavar="PATH",
                   help="persistent timing cache file; 'default': ~/.cache/glcic-fast/, 'none': no cache")
    p.add_argument("--plugins", default="none", choices=PLUGIN_CHOICES,
                   help="'triton': run our Triton convolution kernels inside the engine as TensorRT plugins")
    p.add_argument("--plugin-layers", default="dilated", choices=PLUGIN_LAYER_CHOICES,
                   help="with --plugins triton: 'dilated' (layers 7-10, default) or 'h4' (layers 5-12)")
    p.add_argument("--verbose", action="store_true", help="print TensorRT's log")
    p.add_argument("-o", "--output", required=True, help="engine file to write (e.g. glcic.plan)")
    p.set_defaults(func=run)


def _error(message: str, code: int) -> int:
    print(f"glcic-fast {NAME}: error: {message}", file=sys.stderr)
    return code


def run(args) -> int:
    # 1. Arguments (nothing imported or loaded yet).
    try:
        profile = validate_profile(args.batch, args.height, args.width)
        _check_options(args.precision, args.plugins, args.plugin_layers, args.opt_level, args.workspace)
    except ValueError as e:
        return _error(str(e), 2)
    out = Path(args.output)
    if out.is_dir():
        return _error(f"{out} is a folder; give the engine file to write (e.g. {out / 'glcic.plan'})", 2)
    if args.model is not None and not Path(args.model).is_file():
        return _error(f"{args.model}: no such checkpoint file", 2)
    # 2. TensorRT present? (before loading the model: say the actionable thing first)
    from .backends.base import BackendUnavailable
    from .backends.tensorrt_backend import TensorRTNotInstalled, import_tensorrt

    try:
        import_tensorrt()
    except TensorRTNotInstalled as e:
        return _error(str(e), 1)
    # 3. Build.
    from .checkpoint import CheckpointError

    print(f"building {args.precision} engine, profile {profile.describe()} ...", file=sys.stderr)
    try:
        sidecar = build_engine(
            args.model, out, precision=args.precision, batch=profile.batch, height=profile.height,
            width=profile.width, workspace_gb=args.workspace, opt_level=args.opt_level,
            timing_cache=args.timing_cache, plugins=args.plugins, plugin_layers=args.plugin_layers,
            verbose=args.verbose,
        )
    except (CheckpointError, FileNotFoundError) as e:
        return _error(str(e), 2)
    except (BackendUnavailable, EngineBuildError, ImportError) as e:
        return _error(str(e), 1)
    gpu = sidecar["gpu"]
    print(
        f"wrote {out} and {sidecar_path(out).name}: TensorRT {sidecar['tensorrt_version']}, {gpu['name']} "
        f"(sm {gpu['compute_capability']}), {args.precision}, {profile.describe()}, built in "
        f"{sidecar['build']['seconds']:.0f} s"
    )
    return 0
