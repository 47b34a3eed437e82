"""The one parity test every backend must pass: same folded network, same input, compared with
the PyTorch reference (the unfolded CompletionNetwork in eval mode, float32).

Backends that cannot run here are skipped with the backend's own reason. On a CPU-only machine
the triton backend runs in Triton's interpreter (conftest sets TRITON_INTERPRET=1), so it is
checked at a small size; on CUDA every backend is checked at a larger one too.

int8 (openvino, onnxruntime on the CPU) is calibrated here on random inputs drawn like the test's
(the parity test checks the arithmetic; calibration on photos and the accuracy gate are
tests/test_quantize.py's). Its stated tolerance, 1e-2 (2.5 of 255 levels), is what int8
activations with per-channel int8 weights keep on this network (measured ~1e-3).
"""

import numpy as np
import pytest
import torch

from conftest import DEVICES, HAS_CUDA
from glcic_fast import backends, fold_batchnorm
from glcic_fast.api import load_folded

TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 6e-2, "int8": 1e-2}
CASES = [
    (name, device, precision)
    for name in backends.REGISTRY
    for device in DEVICES
    for precision in ("fp32", "fp16", "bf16", "int8")
]
SHAPES = {"cpu": [(2, 4, 20, 28)], "cuda": [(2, 4, 20, 28), (3, 4, 64, 96), (1, 4, 256, 256)]}


def make_backend(name, layers, device, precision, tmp_path):
    if name == "tensorrt":
        from glcic_fast.backends.tensorrt_backend import TensorRTBackend
        from glcic_fast.export.tensorrt import build_engine

        engine = tmp_path / "parity.plan"
        build_engine(layers, engine, precision=precision, batch=(1, 2, 4), height=(16, 64, 256), width=(16, 96, 256))
        return TensorRTBackend.from_engine(engine, device=device)
    options = {}
    if precision == "int8":
        from glcic_fast.photo_samples import Sample

        gen = torch.Generator().manual_seed(1)
        calibration = [Sample(None, None, torch.randn(1, *SHAPES["cpu"][0][1:], generator=gen).numpy()) for _ in range(8)]
        options = {"calibration": calibration, "cache": False}
    return load_folded(layers, name, device=device, precision=precision, **options)


@pytest.mark.parametrize("name,device,precision", CASES, ids=["-".join(c) for c in CASES])
def test_backend_matches_reference(name, device, precision, random_network, tmp_path):
    reason = backends.unavailable_reason(name, device)
    if reason:
        pytest.skip(f"{name} on {device}: {reason}")
    cls = backends.backend_class(name)
    if name != "tensorrt" and precision not in cls.precisions:
        pytest.skip(f"{name} has no {precision} mode")
    layers = fold_batchnorm(random_network)
    try:
        backend = make_backend(name, layers, device, precision, tmp_path)
    except ValueError as e:  # a precision this backend refuses on this device, with its reason
        pytest.skip(str(e))
    gen = torch.Generator().manual_seed(5)
    for shape in SHAPES[device] if name != "triton" or HAS_CUDA else SHAPES["cpu"]:
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = random_network(x).numpy()
        out = backend(x.numpy())
        again = backend(x.numpy())  # second call: the prepared (cached / graph-captured) path
        assert out.shape == ref.shape and out.dtype == np.float32
        err = float(np.abs(out - ref).max())
        assert err <= TOLERANCE[precision], f"{name}/{device}/{precision} at {shape}: max error {err:.3g}"
        np.testing.assert_array_equal(again, out)
