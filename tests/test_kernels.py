"""The Triton convolution kernels and the ``triton`` backend against PyTorch.

Without a GPU the kernels run in Triton's interpreter, which must be switched on before
anything imports Triton, hence the environment line at the very top. With a GPU they are
compiled and the same tests run on CUDA tensors (the interpreter is then left off, since
interpreting would not test the compiled kernels).
"""

import functools
import os
import zlib

import torch  # importing torch does not import triton

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

triton = pytest.importorskip("triton", reason="Triton is not installed")

from glcic_fast import kernels  # noqa: E402
from glcic_fast.api import load_folded  # noqa: E402
from glcic_fast.backends import BackendUnavailable  # noqa: E402
from glcic_fast.backends.triton_backend import TritonBackend  # noqa: E402
from glcic_fast.folding import FoldedLayer, FoldedNetwork, fold_batchnorm  # noqa: E402
from glcic_fast.kernels.configs import SMALL_TILE  # noqa: E402
from glcic_fast.model import CompletionNetwork  # noqa: E402

DEVICES = [
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(
            not kernels.INTERPRETER_MODE,
            reason="CPU runs need Triton's interpreter: TRITON_INTERPRET=1 before glcic_fast.kernels is first "
            "imported (another test module imported it first, or a GPU is present)",
        ),
    ),
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available() or kernels.INTERPRETER_MODE,
            reason="needs a CUDA GPU with compiled (not interpreted) Triton kernels",
        ),
    ),
]

# Tolerances against a float32 reference computed from the same (rounded) inputs: fp32 is
# exact products with reordered sums; fp16 / bf16 add one rounding of the output.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 3e-3, torch.bfloat16: 1.6e-2}
# A small tile makes the test tensors span several masked tiles in every dimension.
SMALL = dict(SMALL_TILE, num_warps=4, num_stages=2)
DEFAULT = None  # the launcher's own choice (autotuned on a GPU, wide in the interpreter)

fp32, fp16, bf16 = torch.float32, torch.float16, torch.bfloat16


def _random_conv(cout, cin, k, generator, transposed=False):
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    weight = torch.randn(shape, generator=generator) / (cin * k * k / (4 if transposed else 1)) ** 0.5
    bias = torch.randn(cout, generator=generator) * 0.5
    return weight, bias


def _assert_close(actual, expected, dtype):
    """Signal-scaled parity (``kernels.parity``) plus an elementwise bound."""
    from glcic_fast.kernels.parity import assert_parity

    assert_parity(actual, expected, {fp32: "fp32", fp16: "fp16", bf16: "bf16"}[dtype])
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(actual.float().cpu(), expected.float().cpu(), atol=tol, rtol=tol)


# kernel, stride, dilation, cin, cout, batch, height, width, activation, dtype, tile
CONV_CASES = {
    "d1": (3, 1, 1, 20, 24, 2, 5, 7, "relu", fp32, SMALL),
    "d2": (3, 1, 2, 16, 24, 1, 11, 10, "relu", fp32, DEFAULT),
    "d4-batch2": (3, 1, 4, 24, 40, 2, 5, 6, "relu", fp32, SMALL),
    "d8": (3, 1, 8, 16, 16, 1, 10, 9, "relu", fp32, DEFAULT),
    "d16-smaller-than-dilation": (3, 1, 16, 32, 20, 2, 5, 9, "relu", fp32, SMALL),
    "d3": (3, 1, 3, 16, 24, 1, 13, 6, "relu", fp32, DEFAULT),
    "d5": (3, 1, 5, 20, 16, 1, 6, 11, "relu", fp32, SMALL),
    "k5-cin4-flat": (5, 1, 1, 4, 40, 2, 5, 8, "relu", fp32, SMALL),
    "k5-d2": (5, 1, 2, 16, 24, 1, 7, 7, "relu", fp32, SMALL),
    "s2-odd": (3, 2, 1, 20, 24, 2, 9, 11, "relu", fp32, SMALL),
    "s2-k5-flat-odd": (5, 2, 1, 3, 16, 1, 11, 7, "relu", fp32, DEFAULT),
    "sigmoid-cout3": (3, 1, 2, 24, 3, 2, 9, 8, "sigmoid", fp32, SMALL),
    "none-activation": (3, 1, 1, 16, 16, 1, 5, 7, "none", fp32, DEFAULT),
    "fp16-s2": (3, 2, 1, 16, 32, 1, 8, 10, "relu", fp16, DEFAULT),
    "fp16-d4": (3, 1, 4, 20, 24, 2, 5, 7, "relu", fp16, SMALL),
    "fp16-k5-flat": (5, 1, 1, 4, 64, 1, 12, 8, "relu", fp16, DEFAULT),
    "fp16-wide": (3, 1, 2, 64, 96, 1, 6, 7, "relu", fp16, DEFAULT),
    "bf16-d1": (3, 1, 1, 20, 24, 1, 7, 9, "relu", bf16, SMALL),
    "bf16-d16": (3, 1, 16, 16, 24, 1, 5, 6, "relu", bf16, DEFAULT),
    "bf16-sigmoid": (3, 1, 1, 16, 3, 1, 6, 5, "sigmoid", bf16, DEFAULT),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CONV_CASES), ids=list(CONV_CASES))
def test_conv2d_matches_torch(case, device):
    k, stride, dilation, cin, cout, n, h, w, activation, dtype, tile = CONV_CASES[case]
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    weight, bias = _random_conv(cout, cin, k, g)
    x = torch.randn(n, h, w, cin, generator=g).to(dtype)
    weight = weight.to(dtype)
    y = kernels.conv2d_nhwc(
        x.to(device), kernels.pack_weight(weight, device=device), bias.to(device),
        kernel=k, stride=stride, dilation=dilation, activation=activation, config=tile,
    )
    expected = kernels.reference_conv2d_nhwc(x, weight, bias, stride=stride, dilation=dilation, activation=activation)
    assert y.dtype == dtype and y.is_contiguous()
    _assert_close(y, expected, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [fp32, fp16, bf16], ids=["fp32", "fp16", "bf16"])
def test_conv2d_post_affine(dtype, device):
    """GLCIC-PyTorch order: BatchNorm after the ReLU, as a per-channel affine in the epilogue."""
    g = torch.Generator().manual_seed(7)
    weight, bias = _random_conv(24, 20, 3, g)
    scale, shift = torch.rand(24, generator=g) + 0.5, torch.randn(24, generator=g)
    x = torch.randn(2, 5, 7, 20, generator=g).to(dtype)
    y = kernels.conv2d_nhwc(
        x.to(device), kernels.pack_weight(weight.to(dtype), device=device), bias.to(device), kernel=3, dilation=2,
        post_scale=scale.to(device), post_shift=shift.to(device), config=SMALL,
    )
    expected = kernels.reference_conv2d_nhwc(
        x, weight.to(dtype), bias, dilation=2, post_scale=scale, post_shift=shift
    )
    _assert_close(y, expected, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_reads_nchw_float32_and_writes_strided_output(device):
    """The backend's first / last layers: an NCHW float32 view in, an NCHW float32 view out."""
    g = torch.Generator().manual_seed(3)
    weight, bias = _random_conv(3, 20, 3, g)
    x_nchw = torch.randn(2, 20, 8, 12, generator=g)
    out_nchw = torch.full((2, 3, 8, 12), float("nan"), device=device)
    kernels.conv2d_nhwc(
        x_nchw.to(device).permute(0, 2, 3, 1), kernels.pack_weight(weight.half(), device=device), bias.to(device),
        kernel=3, activation="sigmoid", out=out_nchw.permute(0, 2, 3, 1),
    )
    # The kernel casts the float32 input to the fp16 weight dtype as it loads it.
    expected = kernels.reference_conv2d_nhwc(
        x_nchw.half().permute(0, 2, 3, 1), weight.half(), bias, activation="sigmoid"
    ).permute(0, 3, 1, 2)
    _assert_close(out_nchw, expected, fp16)


# cin, cout, batch, height, width, activation, dtype, tile
TRANSPOSED_CASES = {
    "fp32-multi-tile": (20, 24, 2, 3, 7, "relu", fp32, SMALL),
    "fp32-1x1-input": (4, 8, 1, 1, 1, "relu", fp32, DEFAULT),
    "fp32-odd": (16, 16, 1, 3, 5, "sigmoid", fp32, DEFAULT),
    "fp16": (16, 40, 1, 3, 4, "relu", fp16, SMALL),
    "bf16": (24, 16, 2, 4, 3, "relu", bf16, SMALL),
    "fp16-wide": (64, 64, 1, 4, 4, "relu", fp16, DEFAULT),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(TRANSPOSED_CASES), ids=list(TRANSPOSED_CASES))
def test_conv_transpose2d_matches_torch(case, device):
    cin, cout, n, h, w, activation, dtype, tile = TRANSPOSED_CASES[case]
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    weight, bias = _random_conv(cout, cin, 4, g, transposed=True)
    weight = weight.to(dtype)
    x = torch.randn(n, h, w, cin, generator=g).to(dtype)
    y = kernels.conv_transpose2d_nhwc(
        x.to(device), kernels.pack_transposed_weight(weight, device=device), bias.to(device),
        activation=activation, config=tile,
    )
    expected = kernels.reference_conv_transpose2d_nhwc(x, weight, bias, activation=activation)
    assert tuple(y.shape) == (n, 2 * h, 2 * w, cout)
    _assert_close(y, expected, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_conv_transpose2d_post_affine(device):
    g = torch.Generator().manual_seed(11)
    weight, bias = _random_conv(8, 16, 4, g, transposed=True)
    scale, shift = torch.rand(8, generator=g) + 0.5, torch.randn(8, generator=g)
    x = torch.randn(1, 3, 3, 16, generator=g)
    y = kernels.conv_transpose2d_nhwc(
        x.to(device), kernels.pack_transposed_weight(weight, device=device), bias.to(device),
        post_scale=scale.to(device), post_shift=shift.to(device),
    )
    expected = kernels.reference_conv_transpose2d_nhwc(x, weight, bias, post_scale=scale, post_shift=shift)
    _assert_close(y, expected, fp32)


def test_pack_weight_layout():
    w = torch.randn(5, 3, 3, 3)
    packed = kernels.pack_weight(w)
    assert packed.shape == (27, 5) and packed.is_contiguous()
    for kh, kw, ci, co in [(0, 0, 0, 0), (2, 1, 2, 4), (1, 2, 1, 3)]:
        assert packed[(kh * 3 + kw) * 3 + ci, co] == w[co, ci, kh, kw]


def test_pack_transposed_weight_layout():
    w = torch.randn(3, 5, 4, 4)
    packed = kernels.pack_transposed_weight(w)
    assert packed.shape == (4, 12, 5)
    for py, px, ty, tx, ci, co in [(0, 0, 0, 0, 0, 0), (1, 0, 1, 1, 2, 4), (0, 1, 0, 1, 1, 3), (1, 1, 1, 0, 2, 1)]:
        assert packed[2 * py + px, (2 * ty + tx) * 3 + ci, co] == w[ci, co, 1 - py + 2 * ty, 1 - px + 2 * tx]


def test_launchers_reject_mismatched_arguments():
    x = torch.zeros(1, 4, 4, 8)
    w = kernels.pack_weight(torch.zeros(16, 8, 3, 3))
    with pytest.raises(ValueError, match="rows"):
        kernels.conv2d_nhwc(x, w, torch.zeros(16), kernel=5)
    with pytest.raises(ValueError, match="activation"):
        kernels.conv2d_nhwc(x, w, torch.zeros(16), kernel=3, activation="tanh")
    with pytest.raises(ValueError, match="bias"):
        kernels.conv2d_nhwc(x, w, torch.zeros(15), kernel=3)
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.conv2d_nhwc(x, w, torch.zeros(16), kernel=3, out=torch.zeros(1, 4, 4, 8))
    with pytest.raises(ValueError, match="pack_transposed_weight"):
        kernels.conv_transpose2d_nhwc(x, w, torch.zeros(16))


# ---------------------------------------------------------------------------------------
# The whole network through the backend


@functools.lru_cache(maxsize=None)
def _random_folded_network(order="glcic", seed=0):
    """A CompletionNetwork whose BatchNorms hold realistic statistics and random affines.

    Running statistics are set from one forward pass in training mode (momentum 1), so every
    layer's activations stay O(1) through all 17 layers and the comparison is not dominated
    by a saturated or constant sigmoid.
    """
    torch.manual_seed(seed)
    net = CompletionNetwork(order=order)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    net.train()
    with torch.no_grad():
        net(torch.rand(2, 4, 20, 28))
    return tuple(fold_batchnorm(net.eval()))  # a tuple: cached, so nobody may modify it


def _network_input(n, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, h, w), dtype=np.float32) - 0.5
    x[:, 3] = rng.random((n, h, w)) > 0.6  # a binary mask channel, as the completer feeds it
    return x


@pytest.mark.parametrize("device", DEVICES)
def test_backend_matches_folded_network_fp32(device):
    layers = _random_folded_network()
    backend = load_folded(layers, "triton", device=device, precision="fp32")
    x = _network_input(1, 20, 28, seed=1)
    expected = FoldedNetwork(layers)(torch.from_numpy(x)).detach().numpy()
    assert expected.std() > 0.05  # the test network is not degenerate
    y = backend(x)
    assert y.shape == (1, 3, 20, 28) and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_backend_post_affine_order_and_buffer_reuse(device):
    """GLCIC-PyTorch order (BN after ReLU) at batch 2; a second call on the same shape reuses
    the prepared buffers (and CUDA graph) and must not see the first call's data."""
    layers = _random_folded_network(order="glcic-pytorch", seed=2)
    assert any(layer.post_scale is not None for layer in layers)
    backend = TritonBackend(layers, device=device, precision="fp32")
    reference = FoldedNetwork(layers)
    for seed in (3, 4):
        x = _network_input(2, 8, 12, seed=seed)
        expected = reference(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(backend(x), expected, atol=1e-4, rtol=1e-4)
    assert len(backend._plans) == 1


def test_backend_refuses_cpu_without_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = TritonBackend.unavailable_reason("cpu")
    assert reason is not None and "TRITON_INTERPRET=1" in reason and "GPU" in reason
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET"):
        load_folded(_random_folded_network(), "triton", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_backend_refuses_cuda_without_gpu():
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        TritonBackend(_random_folded_network(), device="cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_backend_rejects_bad_shapes_and_layers(device):
    layers = _random_folded_network()
    backend = TritonBackend(layers, device=device, precision="fp32")
    with pytest.raises(ValueError, match="multiples of 4"):
        backend(np.zeros((1, 4, 10, 12), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        backend(np.zeros((1, 3, 12, 12), np.float32))
    odd = list(layers)
    bad = odd[12]
    odd[12] = FoldedLayer(bad.weight[:, :, :3, :3].contiguous(), bad.bias, 2, 1, 1, "relu", transposed=True)
    with pytest.raises(BackendUnavailable, match="4x4 stride-2"):
        TritonBackend(odd, device=device, precision="fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_layer_benchmark_refuses_to_run_without_gpu(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "bench_layers.py"
    result = subprocess.run(
        [sys.executable, str(script), "-o", str(tmp_path / "layers")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "no CUDA GPU" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written
