"""Triton Inference Server python-backend model: the GLCIC network in onnxruntime.

``glcic-fast export-triton-server --runtime onnxruntime`` copies this file, unchanged, to
``<repo>/glcic_onnxruntime/1/model.py`` beside ``model.onnx`` (the same graph the onnxruntime
backend of ``glcic_fast.load`` builds for that device). It is the runtime for servers without
TensorRT: Triton has no onnxruntime backend in every build (the ``nvidia-pytriton`` wheel has
none), while the python backend is everywhere.

    input  FP32 (B, 4, H, W) -> output FP32 (B, 3, H, W)

With dynamic batching, Triton hands ``execute`` several requests at once; requests of the same
size are concatenated into one session run and split again. Each image's output does not depend
on what it was batched with (onnxruntime's convolutions compute each image separately; the
served-vs-local test checks bytes), so batching changes throughput, never results.

Parameters (config.pbtxt): ``device`` "cpu" or "cuda" (the CUDA execution provider, on the GPU
Triton assigns the instance), ``threads`` (intra-op threads; 0 = one per core available).
"""

import json
import os

import numpy as np

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def available_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def make_session(path: str, device: str, threads: int, device_id: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or available_cores()
    options.log_severity_level = 3
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                f"onnxruntime {ort.__version__} in the server's Python has no CUDA execution provider "
                "(install onnxruntime-gpu there, or export with --device cpu)"
            )
        providers: list = [("CUDAExecutionProvider", {"device_id": device_id})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(path, options, providers=providers)


def run_grouped(run, inputs: list) -> list:
    """Outputs for a list of (b, 4, H, W) arrays: one ``run`` per distinct shape.

    Returns one entry per input: an array, or the exception its group raised.
    """
    groups: dict = {}
    for i, x in enumerate(inputs):
        groups.setdefault(x.shape[1:], []).append(i)
    results: list = [None] * len(inputs)
    for members in groups.values():
        try:
            batch = inputs[members[0]] if len(members) == 1 else np.concatenate([inputs[i] for i in members])
            y = run(np.ascontiguousarray(batch, dtype=np.float32))
            start = 0
            for i in members:
                n = inputs[i].shape[0]
                results[i] = y[start:start + n]
                start += n
        except Exception as e:  # a failed group fails its own requests only
            for i in members:
                results[i] = e
    return results


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        device = params.get("device", "cpu")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"parameter device must be cpu or cuda, got {device!r}")
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        device_id = int(args.get("model_instance_device_id") or 0)
        self.session = make_session(path, device, int(params.get("threads", "0")), device_id)

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        inputs = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        outputs = run_grouped(lambda x: self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], inputs)
        responses = []
        for y in outputs:
            if isinstance(y, Exception):
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(repr(y))))
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, y)]))
        return responses
