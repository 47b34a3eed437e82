"""pytest-benchmark: the network per backend and ``Completer.complete`` on the CPU.

Sizes are small (64x64; bf16 at 32x32, which this kind of CPU emulates slowly) so the whole
file runs in about two minutes on a 2-core machine. For the project's CPU numbers at 256x256
use ``glcic-fast bench --device cpu`` (it writes bench/results/ files).
"""

from __future__ import annotations

import numpy as np
import pytest

CPU_SIZE = (64, 64)
ROUNDS, WARMUP = 3, 1

NETWORK_CASES = [
    pytest.param("torch-fp32", CPU_SIZE, id="torch-fp32"),
    pytest.param("torch-fp32-nchw", CPU_SIZE, id="torch-fp32-nchw"),
    pytest.param("torch-bf16", (32, 32), id="torch-bf16"),
    pytest.param("onnxruntime", CPU_SIZE, id="onnxruntime"),
    pytest.param(
        "triton", CPU_SIZE, id="triton",
        marks=pytest.mark.skip(reason="Triton kernels on the CPU run in TRITON_INTERPRET mode, far too slow to benchmark"),
    ),
]


@pytest.mark.parametrize("label,size", NETWORK_CASES)
def test_network_cpu(timed, backends, label, size):
    from glcic_fast.bench import bench_inputs, network_batch
    from glcic_fast.checkpoint import PLACES2_MEAN

    backend = backends.get(label, "cpu", [size], [1])
    images, masks = bench_inputs(1, size)
    x = network_batch(images, masks, PLACES2_MEAN, "subtract-mean")
    out = timed(lambda: backend(x), backend.synchronize, ROUNDS, WARMUP,
                             backend=label, device="cpu", size=size, batch=1)
    assert out.shape == (1, 3, *size) and out.dtype == np.float32


@pytest.mark.parametrize("label", ["onnxruntime", "torch-fp32"])
def test_complete_cpu(timed, backends, label):
    from glcic_fast.api import Completer
    from glcic_fast.bench import bench_inputs
    from glcic_fast.checkpoint import PLACES2_MEAN

    backend = backends.get(label, "cpu", [CPU_SIZE], [1])
    completer = Completer(backend, PLACES2_MEAN)
    images, masks = bench_inputs(1, CPU_SIZE)
    out = timed(lambda: completer.complete(images[0], masks[0]), backend.synchronize,
                             ROUNDS, WARMUP, backend=label, device="cpu", size=CPU_SIZE, batch=1, mode="end-to-end")
    assert out.shape == images[0].shape and out.dtype == np.uint8
    assert np.array_equal(out[~masks[0]], images[0][~masks[0]])  # outside the hole: untouched
