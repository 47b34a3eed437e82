"""A Triton Inference Server model repository for an engine (``glcic-fast export-triton-server``).

    glcic-fast build-engine --model model.safetensors -o glcic.plan
    glcic-fast export-triton-server --engine glcic.plan -o model_repository/

writes four models (names prefixed by ``--name``, default "glcic"):

    model_repository/
      glcic/                  ensemble: IMAGE uint8 (H, W, 3) + MASK uint8 (H, W) -> COMPLETED uint8 (H, W, 3)
        config.pbtxt, 1/
      glcic_preprocess/       python backend (numpy): pad to a multiple of 4, blank the hole, add the mask
        config.pbtxt, 1/model.py
      glcic_tensorrt/         tensorrt_plan: "input" FP32 (4, -1, -1) -> "output" FP32 (3, -1, -1), dynamic batching
        config.pbtxt, 1/model.plan, 1/model.plan.json
      glcic_postprocess/      python backend: crop, and composite so pixels outside the hole are the input's
        config.pbtxt, 1/model.py
      client_example.py       tritonclient[http] example
      README.md

``max_batch_size`` is the engine profile's maximum batch (the batch dimension is implicit in
Triton's dims); the mean pixel and input convention come from the engine's sidecar. Clients
send one image per request (batch 1) or several of the same size; Triton's dynamic batcher
combines same-size requests for the engine. The repository is assembled in a temporary folder
and moved into place, so a failed export leaves no half-written model. See
docs/triton-server.md for running it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..engine_format import ShapeProfile, read_engine_bytes, read_sidecar

DEFAULT_NAME = "glcic"
MODEL_SOURCE = Path(__file__).with_name("triton_server_model.py")


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid protobuf text-format string


def _param(key: str, value: str) -> str:
    return f"parameters {{\n  key: {_quote(key)}\n  value: {{ string_value: {_quote(value)} }}\n}}\n"


def tensorrt_config(name: str, max_batch_size: int, instances: int, queue_delay_us: int, preferred: list[int]) -> str:
    preferred_text = f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]\n" if preferred else ""
    return f"""name: {_quote(name)}
platform: "tensorrt_plan"
max_batch_size: {max_batch_size}
default_model_filename: "model.plan"
input [
  {{
    name: "input"
    data_type: TYPE_FP32
    dims: [ 4, -1, -1 ]
  }}
]
output [
  {{
    name: "output"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  }}
]
dynamic_batching {{
{preferred_text}  max_queue_delay_microseconds: {queue_delay_us}
}}
instance_group [
  {{
    kind: KIND_GPU
    count: {instances}
  }}
]
"""


def python_config(name: str, stage: str, max_batch_size: int, mean: list[float], fill: str, threshold: float,
                  instances: int) -> str:
    if stage == "preprocess":
        inputs = [("IMAGE", "TYPE_UINT8", "-1, -1, 3"), ("MASK", "TYPE_UINT8", "-1, -1")]
        outputs = [("NETWORK_INPUT", "TYPE_FP32", "4, -1, -1")]
    else:
        inputs = [("NETWORK_OUTPUT", "TYPE_FP32", "3, -1, -1"), ("IMAGE", "TYPE_UINT8", "-1, -1, 3"),
                  ("MASK", "TYPE_UINT8", "-1, -1")]
        outputs = [("COMPLETED", "TYPE_UINT8", "-1, -1, 3")]

    def tensors(items: list[tuple[str, str, str]]) -> str:
        return ",\n".join(f"  {{\n    name: {_quote(n)}\n    data_type: {t}\n    dims: [ {d} ]\n  }}" for n, t, d in items)

    return (
        f"name: {_quote(name)}\nbackend: \"python\"\nmax_batch_size: {max_batch_size}\n"
        f"input [\n{tensors(inputs)}\n]\noutput [\n{tensors(outputs)}\n]\n"
        f"instance_group [\n  {{\n    kind: KIND_CPU\n    count: {instances}\n  }}\n]\n"
        + _param("stage", stage)
        + _param("mean", ",".join(f"{m:.6g}" for m in mean))
        + _param("input_fill", fill)
        + _param("mask_threshold", f"{threshold:g}")
    )


def ensemble_config(name: str, max_batch_size: int, pre: str, trt: str, post: str) -> str:
    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f"      input_map {{ key: {_quote(k)} value: {_quote(v)} }}\n" for k, v in inputs.items())
        maps += "".join(f"      output_map {{ key: {_quote(k)} value: {_quote(v)} }}\n" for k, v in outputs.items())
        return f"    {{\n      model_name: {_quote(model)}\n      model_version: -1\n{maps}    }}"

    steps = ",\n".join([
        step(pre, {"IMAGE": "IMAGE", "MASK": "MASK"}, {"NETWORK_INPUT": "network_input"}),
        step(trt, {"input": "network_input"}, {"output": "network_output"}),
        step(post, {"NETWORK_OUTPUT": "network_output", "IMAGE": "IMAGE", "MASK": "MASK"}, {"COMPLETED": "COMPLETED"}),
    ])
    return f"""name: {_quote(name)}
platform: "ensemble"
max_batch_size: {max_batch_size}
input [
  {{
    name: "IMAGE"
    data_type: TYPE_UINT8
    dims: [ -1, -1, 3 ]
  }},
  {{
    name: "MASK"
    data_type: TYPE_UINT8
    dims: [ -1, -1 ]
  }}
]
output [
  {{
    name: "COMPLETED"
    data_type: TYPE_UINT8
    dims: [ -1, -1, 3 ]
  }}
]
ensemble_scheduling {{
  step [
{steps}
  ]
}}
"""


CLIENT_EXAMPLE = '''"""Complete an image through the Triton Inference Server ensemble written by glcic-fast.

    pip install "tritonclient[http]" pillow numpy
    python client_example.py photo.png hole.png -o filled.png [--url localhost:8000]

The mask is white (non-zero) where the image should be filled; both are sent as uint8.
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

Written by `glcic-fast export-triton-server` from `{engine}`
(TensorRT {trt}, {gpu}, {precision}, profile {profile}).

    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
        -v $PWD:/models nvcr.io/nvidia/tritonserver:<xx.yy>-py3 \\
        tritonserver --model-repository=/models

Use the Triton release whose TensorRT is {trt} (the plan only loads in that version), on a GPU of
compute capability {cc}. Then: `python client_example.py photo.png hole.png -o filled.png`.
Models: `{name}` (ensemble, what clients call), `{name}_preprocess`, `{name}_tensorrt`,
`{name}_postprocess`.
"""


def export_triton_repository(
    engine: str | os.PathLike,
    output: str | os.PathLike,
    name: str = DEFAULT_NAME,
    instances: int = 1,
    python_instances: int = 2,
    queue_delay_us: int = 100,
    mask_threshold: float = 0.5,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the model repository for ``engine`` (a plan with its sidecar) into ``output``.

    Returns {model name: folder}. Raises ``EngineError`` for a missing/corrupt engine or
    sidecar, ``ValueError`` for bad options or existing models (unless ``overwrite``).
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"model name must be letters, digits, '_' or '-', got {name!r}")
    if instances < 1 or python_instances < 1 or queue_delay_us < 0:
        raise ValueError("instance counts must be >= 1 and the queue delay >= 0")
    if not 0.0 < mask_threshold <= 1.0:
        raise ValueError(f"mask threshold must be in (0, 1], got {mask_threshold}")
    engine = Path(engine)
    sidecar = read_sidecar(engine)
    engine_bytes = read_engine_bytes(engine, sidecar)
    profile = ShapeProfile.from_json(sidecar["profile"])
    max_batch = profile.batch[2]
    # Sizes worth waiting for (powers of two and the maximum); batch 1 needs no batching.
    preferred = sorted({b for b in (2, 4, 8, 16, 32, max_batch) if max(2, profile.batch[0]) <= b <= max_batch})
    mean = [float(m) for m in sidecar["mean"]]
    fill = sidecar.get("input_fill", "subtract-mean")
    names = {"ensemble": name, "pre": f"{name}_preprocess", "trt": f"{name}_tensorrt", "post": f"{name}_postprocess"}
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    existing = [n for n in names.values() if (out / n).exists()]
    if existing and not overwrite:
        raise ValueError(f"{out} already holds model(s) {', '.join(existing)}; pass --overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".glcic-export-", dir=out))
    try:
        files: dict[str, str | bytes] = {
            f"{names['trt']}/config.pbtxt": tensorrt_config(names["trt"], max_batch, instances, queue_delay_us, preferred),
            f"{names['trt']}/1/model.plan": engine_bytes,
            f"{names['trt']}/1/model.plan.json": json.dumps(sidecar, indent=2, sort_keys=True) + "\n",
            f"{names['ensemble']}/config.pbtxt": ensemble_config(names["ensemble"], max_batch, names["pre"], names["trt"], names["post"]),
        }
        model_py = MODEL_SOURCE.read_text(encoding="utf-8")
        for key, stage in (("pre", "preprocess"), ("post", "postprocess")):
            files[f"{names[key]}/config.pbtxt"] = python_config(names[key], stage, max_batch, mean, fill, mask_threshold, python_instances)
            files[f"{names[key]}/1/model.py"] = model_py
        for rel, content in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        (staging / names["ensemble"] / "1").mkdir(exist_ok=True)  # ensembles need an (empty) version folder
        gpu = sidecar["gpu"]
        extras = {
            "client_example.py": CLIENT_EXAMPLE.replace("{model!r}", repr(names["ensemble"])),
            "README.md": README.format(engine=engine.name, trt=sidecar["tensorrt_version"], gpu=gpu.get("name", "?"),
                                       cc=gpu["compute_capability"], precision=sidecar["precision"],
                                       profile=profile.describe(), name=name),
        }
        for rel, text in extras.items():
            (staging / rel).write_text(text, encoding="utf-8")
        # Move into place: models first (each an atomic rename), then the two helper files.
        for model in names.values():
            if (out / model).exists():
                shutil.rmtree(out / model)
            os.replace(staging / model, out / model)
        for rel in extras:
            os.replace(staging / rel, out / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {kind: out / model for kind, model in names.items()}
