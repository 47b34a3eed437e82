"""The config.pbtxt texts of a Triton Inference Server model repository (protobuf text format).

One function per kind of model ``glcic_fast.export.triton_server`` writes: the network (a
``tensorrt_plan`` model, or a python-backend model running onnxruntime), the python-backend
pre/post-processing models, and the ensemble that chains them. Strings are written as JSON
string literals, which are valid protobuf text-format strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

NETWORK_INPUT = ("input", "TYPE_FP32", "4, -1, -1")
NETWORK_OUTPUT = ("output", "TYPE_FP32", "3, -1, -1")


def quote(text: str) -> str:
    return json.dumps(text)


def parameter(key: str, value: str) -> str:
    return f"parameters {{\n  key: {quote(key)}\n  value: {{ string_value: {quote(value)} }}\n}}\n"


def tensors(items: Sequence[tuple[str, str, str]]) -> str:
    """``[ {name, data_type, dims}, ... ]`` for (name, TYPE_X, "d0, d1, ...") triples."""
    body = ",\n".join(f"  {{\n    name: {quote(n)}\n    data_type: {t}\n    dims: [ {d} ]\n  }}" for n, t, d in items)
    return f"[\n{body}\n]"


def exact_floats(values: Sequence[float]) -> str:
    """Comma-separated floats that parse back to the same values (repr round-trips).

    The mean pixel must reach the server exactly: written with 6 digits it differed from the
    checkpoint's in the 7th, which changed network inputs by ~5e-7 and some output pixels by one
    level, so served images were not byte-identical to ``glcic_fast.load(...).complete``.
    """
    return ",".join(repr(float(v)) for v in values)


@dataclass(frozen=True)
class Batching:
    """Triton's dynamic batcher for the network model (None in its place: batching off)."""

    queue_delay_us: int
    preferred: tuple[int, ...] = ()

    def text(self) -> str:
        preferred = f"  preferred_batch_size: [ {', '.join(str(b) for b in self.preferred)} ]\n" if self.preferred else ""
        return f"dynamic_batching {{\n{preferred}  max_queue_delay_microseconds: {self.queue_delay_us}\n}}\n"


def preferred_batch_sizes(min_batch: int, max_batch: int) -> tuple[int, ...]:
    """Sizes worth waiting for: powers of two and the maximum (batch 1 needs no batching)."""
    return tuple(sorted({b for b in (2, 4, 8, 16, 32, max_batch) if max(2, min_batch) <= b <= max_batch}))


def _instances(kind: str, count: int) -> str:
    return f"instance_group [\n  {{\n    kind: {kind}\n    count: {count}\n  }}\n]\n"


def tensorrt_config(name: str, max_batch_size: int, instances: int, batching: Optional[Batching]) -> str:
    return (
        f"name: {quote(name)}\nplatform: \"tensorrt_plan\"\nmax_batch_size: {max_batch_size}\n"
        f"default_model_filename: \"model.plan\"\n"
        f"input {tensors([NETWORK_INPUT])}\noutput {tensors([NETWORK_OUTPUT])}\n"
        + (batching.text() if batching else "")
        + _instances("KIND_GPU", instances)
    )


def onnxruntime_config(name: str, max_batch_size: int, instances: int, batching: Optional[Batching], device: str,
                       threads: int) -> str:
    """A python-backend model running model.onnx (``triton_onnxruntime_model.py``)."""
    return (
        f"name: {quote(name)}\nbackend: \"python\"\nmax_batch_size: {max_batch_size}\n"
        f"input {tensors([NETWORK_INPUT])}\noutput {tensors([NETWORK_OUTPUT])}\n"
        + (batching.text() if batching else "")
        + _instances("KIND_GPU" if device == "cuda" else "KIND_CPU", instances)
        + parameter("device", device)
        + parameter("threads", str(threads))
    )


def python_config(name: str, stage: str, max_batch_size: int, mean: Sequence[float], fill: str,
                  threshold: Optional[float], size_limits: Sequence[int], instances: int) -> str:
    """A pre- or post-processing model (``triton_server_model.py``, role chosen by ``stage``)."""
    if stage == "preprocess":
        inputs = [("IMAGE", "TYPE_UINT8", "-1, -1, 3"), ("MASK", "TYPE_UINT8", "-1, -1")]
        outputs = [("NETWORK_INPUT", "TYPE_FP32", "4, -1, -1")]
    else:
        inputs = [("NETWORK_OUTPUT", "TYPE_FP32", "3, -1, -1"), ("IMAGE", "TYPE_UINT8", "-1, -1, 3"),
                  ("MASK", "TYPE_UINT8", "-1, -1")]
        outputs = [("COMPLETED", "TYPE_UINT8", "-1, -1, 3")]
    return (
        f"name: {quote(name)}\nbackend: \"python\"\nmax_batch_size: {max_batch_size}\n"
        f"input {tensors(inputs)}\noutput {tensors(outputs)}\n"
        + _instances("KIND_CPU", instances)
        + parameter("stage", stage)
        + parameter("mean", exact_floats(mean))
        + parameter("input_fill", fill)
        + parameter("mask_threshold", "" if threshold is None else repr(float(threshold)))
        + parameter("size_limits", ",".join(str(int(v)) for v in size_limits))
    )


def ensemble_config(name: str, max_batch_size: int, pre: str, network: str, post: str) -> str:
    """IMAGE + MASK -> pre -> network -> post -> COMPLETED."""

    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f"      input_map {{ key: {quote(k)} value: {quote(v)} }}\n" for k, v in inputs.items())
        maps += "".join(f"      output_map {{ key: {quote(k)} value: {quote(v)} }}\n" for k, v in outputs.items())
        return f"    {{\n      model_name: {quote(model)}\n      model_version: -1\n{maps}    }}"

    steps = ",\n".join([
        step(pre, {"IMAGE": "IMAGE", "MASK": "MASK"}, {"NETWORK_INPUT": "network_input"}),
        step(network, {"input": "network_input"}, {"output": "network_output"}),
        step(post, {"NETWORK_OUTPUT": "network_output", "IMAGE": "IMAGE", "MASK": "MASK"}, {"COMPLETED": "COMPLETED"}),
    ])
    inputs = tensors([("IMAGE", "TYPE_UINT8", "-1, -1, 3"), ("MASK", "TYPE_UINT8", "-1, -1")])
    return (
        f"name: {quote(name)}\nplatform: \"ensemble\"\nmax_batch_size: {max_batch_size}\n"
        f"input {inputs}\noutput {tensors([('COMPLETED', 'TYPE_UINT8', '-1, -1, 3')])}\n"
        f"ensemble_scheduling {{\n  step [\n{steps}\n  ]\n}}\n"
    )
