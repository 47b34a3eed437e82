"""A Triton Inference Server model repository for GLCIC (``glcic-fast export-triton-server``).

    glcic-fast export-triton-server --model model.safetensors -o model_repository/   # onnxruntime
    glcic-fast export-triton-server --engine glcic.plan -o model_repository/         # TensorRT

writes four models (names prefixed by ``--name``, default "glcic") and a manifest:

    model_repository/
      glcic/                  ensemble: IMAGE uint8 (H, W, 3) + MASK uint8 (H, W) -> COMPLETED uint8 (H, W, 3)
      glcic_preprocess/       python backend (numpy): check the request, pad to a multiple of 4, blank the hole
      glcic_tensorrt/         tensorrt_plan: "input" FP32 (4, -1, -1) -> "output" FP32 (3, -1, -1)
        or glcic_onnxruntime/ python backend running model.onnx in onnxruntime (CPU, or CUDA EP)
      glcic_postprocess/      python backend: crop, and composite so pixels outside the hole are the input's
      glcic_repository.json   what was exported (runtime, model names, sizes, mean pixel, source)
      client_example.py, README.md

Two runtimes run the network. ``tensorrt`` (the GPU default) serves a plan built by
``build-engine``; its profile fixes the batch and size ranges. ``onnxruntime`` serves our ONNX
export (the graph ``glcic_fast.load(..., backend="onnxruntime")`` runs on the same device) from
a python-backend model, so any Triton build with the python backend can serve it, CPU-only
machines included; its batch and size ranges are options. Either way the network model has
dynamic batching of same-size requests (``dynamic_batching=False`` turns it off, for
comparisons). The mean pixel and input convention come from the checkpoint or the engine's
sidecar. The repository is assembled in a temporary folder and moved into place, so a failed
export leaves no half-written model. See docs/triton-server.md for running it, or
``glcic-fast serve``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..engine_format import ShapeProfile, read_engine_bytes, read_sidecar
from ..onnx_graph import build_onnx_model
from ..resolve import is_engine_path
from .onnx import onnx_metadata, resolve_export_model
from .triton_config import (
    Batching,
    ensemble_config,
    onnxruntime_config,
    preferred_batch_sizes,
    python_config,
    tensorrt_config,
)

DEFAULT_NAME = "glcic"
RUNTIMES = ("auto", "tensorrt", "onnxruntime")
DEVICES = ("cpu", "cuda")
MANIFEST = "glcic_repository.json"
MANIFEST_FORMAT = "glcic-fast-triton-repository"
PROCESSING_SOURCE = Path(__file__).with_name("triton_server_model.py")
ONNXRUNTIME_SOURCE = Path(__file__).with_name("triton_onnxruntime_model.py")
# onnxruntime runs any size that is a multiple of 4; the limit keeps one request from taking
# the server's memory (a 1024x1024 image needs ~1 GB of activations).
DEFAULT_MAX_SIZE = 1024
DEFAULT_MAX_BATCH = 8
MIN_SIZE = 4


CLIENT_EXAMPLE = '''"""Complete an image through the Triton Inference Server ensemble written by glcic-fast.

    pip install "tritonclient[http]" pillow numpy
    python client_example.py photo.png hole.png -o filled.png [--url localhost:8000]

The mask is white where the image should be filled and black elsewhere (binary: 0/255 or 0/1);
both are sent as uint8. With glcic-fast installed, ``glcic_fast.client.Client`` does the same
with batching, gRPC, timeouts and retries.
"""

import argparse

import numpy as np
import tritonclient.http as httpclient
from PIL import Image

MODEL = {model!r}


def complete(client, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 + (H, W) uint8 -> (H, W, 3) uint8, one request of batch 1."""
    inputs = [httpclient.InferInput("IMAGE", [1, *image.shape], "UINT8"),
              httpclient.InferInput("MASK", [1, *mask.shape], "UINT8")]
    inputs[0].set_data_from_numpy(image[None])
    inputs[1].set_data_from_numpy(mask[None])
    result = client.infer(MODEL, inputs, outputs=[httpclient.InferRequestedOutput("COMPLETED")])
    return result.as_numpy("COMPLETED")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("mask")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--url", default="localhost:8000")
    args = parser.parse_args()
    image = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.uint8)
    mask = np.asarray(Image.open(args.mask).convert("L"), dtype=np.uint8)
    client = httpclient.InferenceServerClient(url=args.url)
    Image.fromarray(complete(client, image, mask)).save(args.output)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
'''


README = """# GLCIC model repository for Triton Inference Server

Written by `glcic-fast export-triton-server` ({what}). Models: `{name}` (the ensemble clients
call: IMAGE uint8 (H, W, 3) + MASK uint8 (H, W) -> COMPLETED uint8 (H, W, 3)), `{name}_preprocess`,
`{network}`, `{name}_postprocess`. Batch up to {max_batch}; image sizes {sizes} (after rounding up
to a multiple of 4). `glcic_repository.json` records the rest.

Run it here (CPU or GPU; sets up the server environment on first use):

    glcic-fast serve --model .

or in NVIDIA's container on a GPU machine:

    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
        -v $PWD:/models nvcr.io/nvidia/tritonserver:<xx.yy>-py3 \\
        tritonserver --model-repository=/models

{runtime_note}

Then: `python client_example.py photo.png hole.png -o filled.png`, or in Python
`glcic_fast.client.Client("localhost:8000").complete(image, mask)`.
"""

TENSORRT_NOTE = ("Use the Triton release whose TensorRT is {trt} (the plan only loads in that version), on a GPU of "
                 "compute capability {cc}.")
ONNXRUNTIME_NOTE = ("The `{network}` model runs onnxruntime inside Triton's python backend: the container's Python "
                    "needs it (`pip install onnxruntime-gpu` for device cuda, `onnxruntime` for cpu).")


@dataclass
class _Network:
    """The network model of a repository, whichever runtime runs it."""

    runtime: str
    max_batch: int
    size_limits: tuple[int, int, int, int]  # min_h, max_h, min_w, max_w of the network input
    mean: list[float]
    input_fill: str
    files: dict[str, str | bytes]  # path inside the network model's folder -> content
    config: Any  # name -> config.pbtxt text
    readme: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)


def resolve_runtime(source: Any, runtime: str) -> str:
    """The runtime for ``source``: an engine runs on TensorRT; a checkpoint on TensorRT when
    TensorRT and a GPU are here (``auto``), else on onnxruntime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if is_engine_path(source):
        if runtime == "onnxruntime":
            raise ValueError(f"{source} is a TensorRT engine; the onnxruntime runtime serves a checkpoint (--model)")
        return "tensorrt"
    if runtime != "auto":
        return runtime
    import importlib.util

    from ..tensorrt_env import current_gpu

    if importlib.util.find_spec("tensorrt") is None:  # asking, not importing (that takes seconds)
        return "onnxruntime"
    return "tensorrt" if current_gpu() is not None else "onnxruntime"


def _tensorrt_network(engine: Path, instances: int, batching_delay: Optional[int]) -> _Network:
    sidecar = read_sidecar(engine)
    engine_bytes = read_engine_bytes(engine, sidecar)
    profile = ShapeProfile.from_json(sidecar["profile"])
    max_batch = profile.batch[2]
    batching = None if batching_delay is None else Batching(batching_delay, preferred_batch_sizes(profile.batch[0], max_batch))
    gpu = sidecar["gpu"]
    return _Network(
        "tensorrt", max_batch, (profile.height[0], profile.height[2], profile.width[0], profile.width[2]),
        [float(m) for m in sidecar["mean"]], sidecar.get("input_fill", "subtract-mean"),
        {"1/model.plan": engine_bytes, "1/model.plan.json": json.dumps(sidecar, indent=2, sort_keys=True) + "\n"},
        lambda name: tensorrt_config(name, max_batch, instances, batching),
        {"what": f"TensorRT {sidecar['tensorrt_version']} engine {engine.name}, {gpu.get('name', '?')}, "
                 f"{sidecar['precision']}, profile {profile.describe()}",
         "runtime_note": TENSORRT_NOTE.format(trt=sidecar["tensorrt_version"], cc=gpu["compute_capability"])},
        {"engine": engine.name, "engine_sha256": sidecar.get("engine_sha256"), "tensorrt_version": sidecar["tensorrt_version"],
         "source": sidecar.get("model_source"), "source_sha256": sidecar.get("model_sha256")},
    )


def _onnxruntime_network(model: Any, device: str, threads: int, max_batch: int, max_size: int, instances: int,
                         batching_delay: Optional[int]) -> _Network:
    if device not in DEVICES:
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if max_batch < 1 or threads < 0 or max_size < MIN_SIZE:
        raise ValueError(f"max batch must be >= 1, threads >= 0 and the max size >= {MIN_SIZE}")
    resolved = resolve_export_model(model)
    # The graph the onnxruntime backend builds for this device (sub-pixel transposed convs on
    # a CPU), so the server computes what glcic_fast.load(..., backend="onnxruntime") does.
    graph = build_onnx_model(resolved.layers, "fp32", onnx_metadata(resolved), subpixel_transposed=device == "cpu")
    batching = None if batching_delay is None else Batching(batching_delay, preferred_batch_sizes(1, max_batch))
    top = max_size // 4 * 4
    return _Network(
        "onnxruntime", max_batch, (MIN_SIZE, top, MIN_SIZE, top), list(resolved.mean), resolved.input_fill,
        {"1/model.onnx": graph.SerializeToString(), "1/model.py": ONNXRUNTIME_SOURCE.read_text(encoding="utf-8")},
        lambda name: onnxruntime_config(name, max_batch, instances, batching, device, threads),
        {"what": f"{Path(resolved.source).name} on onnxruntime ({device})", "runtime_note": ""},
        {"source": resolved.source, "source_sha256": resolved.sha256, "device": device},
    )


def export_triton_repository(
    source: Any,
    output: str | os.PathLike,
    runtime: str = "auto",
    name: str = DEFAULT_NAME,
    instances: int = 1,
    python_instances: int = 2,
    dynamic_batching: bool = True,
    queue_delay_us: int = 100,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_size: int = DEFAULT_MAX_SIZE,
    device: str = "cpu",
    threads: int = 0,
    mask_threshold: Optional[float] = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the model repository for ``source`` into ``output``; returns {kind: model folder}.

    source: a TensorRT engine (.plan with its sidecar), a checkpoint, a ``CompletionNetwork``,
    or None (the packaged model). runtime: "tensorrt", "onnxruntime" or "auto" (see
    ``resolve_runtime``); a checkpoint on "tensorrt" is built into an engine first (TensorRT
    and a GPU needed). ``max_batch``, ``max_size`` (largest height and width), ``device`` and
    ``threads`` apply to onnxruntime; an engine's profile sets its own ranges.
    ``mask_threshold`` None (the default, as in ``glcic_fast.load``): masks must be binary;
    a fraction in (0, 1]: greyscale masks are thresholded there.

    Raises ``EngineError`` for a missing/corrupt engine, ``CheckpointError`` for a bad
    checkpoint, ``ValueError`` for bad options or existing models (unless ``overwrite``).
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"model name must be letters, digits, '_' or '-', got {name!r}")
    if instances < 1 or python_instances < 1 or queue_delay_us < 0:
        raise ValueError("instance counts must be >= 1 and the queue delay >= 0")
    if mask_threshold is not None and not 0.0 < mask_threshold <= 1.0:
        raise ValueError(f"mask threshold must be in (0, 1], got {mask_threshold}")
    runtime = resolve_runtime(source, runtime)
    names = {"ensemble": name, "pre": f"{name}_preprocess", "network": f"{name}_{runtime}", "post": f"{name}_postprocess"}
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    existing = [n for n in [*names.values(), MANIFEST] if (out / n).exists()]
    if existing and not overwrite:
        raise ValueError(f"{out} already holds {', '.join(existing)}; pass --overwrite to replace them")
    delay = queue_delay_us if dynamic_batching else None
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".glcic-export-", dir=out))
    try:
        if runtime == "tensorrt":
            if not is_engine_path(source):
                from .tensorrt import build_engine

                build_engine(source, staging / "built.plan")
                source = staging / "built.plan"
            network = _tensorrt_network(Path(source), instances, delay)
        else:
            network = _onnxruntime_network(source, device, threads, max_batch, max_size, instances, delay)
        _write_repository(staging, names, network, python_instances, mask_threshold, dynamic_batching, queue_delay_us)
        # Move into place: models first (each an atomic rename), then the manifest and helpers.
        for entry in [*names.values(), MANIFEST, "client_example.py", "README.md"]:
            if (out / entry).is_dir():
                shutil.rmtree(out / entry)
            os.replace(staging / entry, out / entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {kind: out / model for kind, model in names.items()}


def _write_repository(staging: Path, names: dict[str, str], network: _Network, python_instances: int,
                      threshold: Optional[float], batching: bool, queue_delay_us: int) -> None:
    files: dict[str, str | bytes] = {f"{names['network']}/{rel}": content for rel, content in network.files.items()}
    files[f"{names['network']}/config.pbtxt"] = network.config(names["network"])
    files[f"{names['ensemble']}/config.pbtxt"] = ensemble_config(
        names["ensemble"], network.max_batch, names["pre"], names["network"], names["post"])
    processing = PROCESSING_SOURCE.read_text(encoding="utf-8")
    for key, stage in (("pre", "preprocess"), ("post", "postprocess")):
        files[f"{names[key]}/config.pbtxt"] = python_config(
            names[key], stage, network.max_batch, network.mean, network.input_fill, threshold, network.size_limits,
            python_instances)
        files[f"{names[key]}/1/model.py"] = processing
    min_h, max_h, min_w, max_w = network.size_limits
    manifest = {
        "format": MANIFEST_FORMAT, "format_version": 1, "runtime": network.runtime, "models": names,
        "max_batch_size": network.max_batch, "size_limits": {"height": [min_h, max_h], "width": [min_w, max_w]},
        "mean": network.mean, "input_fill": network.input_fill, "mask_threshold": threshold,
        "dynamic_batching": batching, "max_queue_delay_us": queue_delay_us if batching else None, **network.source,
    }
    files[MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    files["client_example.py"] = CLIENT_EXAMPLE.replace("{model!r}", repr(names["ensemble"]))
    note = network.readme["runtime_note"] or ONNXRUNTIME_NOTE.format(network=names["network"])
    files["README.md"] = README.format(what=network.readme["what"], name=names["ensemble"], network=names["network"],
                                       max_batch=network.max_batch, sizes=f"{min_h}-{max_h} x {min_w}-{max_w}",
                                       runtime_note=note)
    for rel, content in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    (staging / names["ensemble"] / "1").mkdir(exist_ok=True)  # ensembles need an (empty) version folder


def read_manifest(repository: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a repository this module wrote (ValueError if it has none)."""
    path = Path(repository) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{repository} has no {MANIFEST}: not a repository written by glcic-fast export-triton-server") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a glcic-fast repository manifest")
    return manifest
