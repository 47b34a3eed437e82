"""pytest-benchmark on CUDA: the network per backend (host arrays and device tensors) and
``Completer.complete``, at 256x256 batch 1 and 8. Every test skips without a GPU; a backend
that cannot run there (no onnxruntime-gpu, no TensorRT) skips with its reason."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

GPU_SIZE = (256, 256)
ROUNDS, WARMUP = 50, 5
VARIANTS = ["torch-fp16", "torch-bf16", "torch-fp32", "triton", "triton-bf16", "onnxruntime", "tensorrt"]
SHAPES = [pytest.param(GPU_SIZE, 1, id="256x256-b1"), pytest.param(GPU_SIZE, 8, id="256x256-b8")]


def _network_input(size, batch):
    from glcic_fast.bench import bench_inputs, network_batch
    from glcic_fast.checkpoint import PLACES2_MEAN

    images, masks = bench_inputs(batch, size)
    return network_batch(images, masks, PLACES2_MEAN, "subtract-mean")


@pytest.mark.parametrize("size,batch", SHAPES)
@pytest.mark.parametrize("label", VARIANTS)
def test_network_gpu(timed, backends, label, size, batch):
    backend = backends.get(label, "cuda", [GPU_SIZE], [1, 8])
    x = _network_input(size, batch)
    out = timed(lambda: backend(x), backend.synchronize, ROUNDS, WARMUP,
                             backend=label, device="cuda", size=size, batch=batch, mode="network")
    assert out.shape == (batch, 3, *size)


@pytest.mark.parametrize("size,batch", SHAPES)
@pytest.mark.parametrize("label", ["torch-fp16", "triton", "tensorrt"])
def test_network_device_tensor_gpu(timed, backends, label, size, batch):
    import torch

    backend = backends.get(label, "cuda", [GPU_SIZE], [1, 8])
    if not hasattr(backend, "run_tensor"):
        pytest.skip(f"the {label} backend has no device-tensor entry point (run_tensor)")
    x = torch.from_numpy(_network_input(size, batch)).cuda()
    out = timed(lambda: backend.run_tensor(x), backend.synchronize, ROUNDS, WARMUP,
                             backend=label, device="cuda", size=size, batch=batch, mode="device")
    assert tuple(out.shape) == (batch, 3, *size)


@pytest.mark.parametrize("label", ["torch-fp16", "triton"])
def test_complete_gpu(timed, backends, label):
    from glcic_fast.api import Completer
    from glcic_fast.bench import bench_inputs
    from glcic_fast.checkpoint import PLACES2_MEAN

    backend = backends.get(label, "cuda", [GPU_SIZE], [1, 8])
    completer = Completer(backend, PLACES2_MEAN)
    images, masks = bench_inputs(1, GPU_SIZE)
    out = timed(lambda: completer.complete(images[0], masks[0]), backend.synchronize,
                             ROUNDS, WARMUP, backend=label, device="cuda", size=GPU_SIZE, batch=1, mode="end-to-end")
    assert out.shape == images[0].shape and out.dtype == np.uint8
