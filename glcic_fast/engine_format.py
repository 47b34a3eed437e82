"""The TensorRT engine format: a plan file plus its JSON sidecar, and the shapes it accepts.

Both sides of an engine use this module: the builder (``glcic_fast.export.tensorrt``) writes a
plan and its sidecar, the ``tensorrt`` backend checks them before loading. It imports neither
torch nor tensorrt, so every check here runs, and is tested, on a machine without a GPU.

The sidecar (``engine.plan.json``) records what the engine was built from and for: the model's
sha256 and checkpoint metadata (mean pixel, input fill), TensorRT version, GPU name and compute
capability, precision, the optimization profile, plugins and build time. A plan only runs on
the TensorRT version and GPU architecture it was built with, so the backend compares those
before loading.

Shape ranges: batch, height and width each have (min, opt, max); height and width must be
multiples of 4 (two stride-2 convs, two 2x upsamplings).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import __version__
from .errors import EngineError, ProfileError
from .layers import SIZE_MULTIPLE

ENGINE_FORMAT = "glcic-fast-engine"
ENGINE_FORMAT_VERSION = 1
INPUT_NAME = "input"  # == glcic_fast.onnx_graph.INPUT_NAME
OUTPUT_NAME = "output"  # == glcic_fast.onnx_graph.OUTPUT_NAME
IN_CHANNELS = 4
OUT_CHANNELS = 3

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


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    index: int = 0


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


