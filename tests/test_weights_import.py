"""``glcic-fast import-weights``: the authors' Torch7 models and GLCIC-PyTorch state_dicts.

No real checkpoint is needed: Torch7 files in the authors' layout are written here with
``tests/torch7_writer.py`` (random weights, full-size network) and read back through
``torchfile`` by the importer; GLCIC-PyTorch state_dicts are built in its key layout. Each
imported model is compared with an independent implementation of the layer table below,
written with ``torch.nn.functional`` straight from the source tensors.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import torch7_writer as t7  # noqa: E402

from glcic_fast.checkpoint import load_checkpoint, read_metadata  # noqa: E402
from glcic_fast.folding import FoldedNetwork, fold_batchnorm, needs_post_affine  # noqa: E402
from glcic_fast.weights_import import (  # noqa: E402
    WeightsImportError,
    detect_format,
    file_sha256,
    import_glcic_pytorch,
    import_torch7,
    import_weights,
)

needs_torchfile = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchfile") is None, reason="torchfile is not installed"
)

# The paper's completion network, written out independently of glcic_fast.layers:
# (transposed, in, out, kernel, stride, dilation, padding)
PAPER_LAYERS = [
    (False, 4, 64, 5, 1, 1, 2),
    (False, 64, 128, 3, 2, 1, 1),
    (False, 128, 128, 3, 1, 1, 1),
    (False, 128, 256, 3, 2, 1, 1),
    (False, 256, 256, 3, 1, 1, 1),
    (False, 256, 256, 3, 1, 1, 1),
    (False, 256, 256, 3, 1, 2, 2),
    (False, 256, 256, 3, 1, 4, 4),
    (False, 256, 256, 3, 1, 8, 8),
    (False, 256, 256, 3, 1, 16, 16),
    (False, 256, 256, 3, 1, 1, 1),
    (False, 256, 256, 3, 1, 1, 1),
    (True, 256, 128, 4, 2, 1, 1),
    (False, 128, 128, 3, 1, 1, 1),
    (True, 128, 64, 4, 2, 1, 1),
    (False, 64, 32, 3, 1, 1, 1),
    (False, 32, 3, 3, 1, 1, 1),
]
# In the authors' file layers 5-12 are nn.SpatialDilatedConvolution (dilation 1 for 5, 6, 11, 12).
AUTHORS_DILATED = range(4, 12)
PLACES2_MEAN = [0.4560, 0.4472, 0.4155]


def random_params(seed: int, eps: float = 1e-5) -> list[dict]:
    """Random weights and BatchNorm statistics, scaled so activations stay O(1) through 17 layers."""
    rng = np.random.default_rng(seed)
    params = []
    for i, (transposed, cin, cout, k, stride, _, _) in enumerate(PAPER_LAYERS):
        fan_in = cin * (k // stride) ** 2 if transposed else cin * k * k
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        p = {
            "weight": (rng.standard_normal(shape) * (1.6 / np.sqrt(fan_in))).astype(np.float32),
            "bias": (rng.standard_normal(cout) * 0.1).astype(np.float32),
        }
        if i != len(PAPER_LAYERS) - 1:
            p["gamma"] = rng.uniform(0.6, 1.4, cout).astype(np.float32)
            p["beta"] = (rng.standard_normal(cout) * 0.2).astype(np.float32)
            p["mean"] = (rng.standard_normal(cout) * 0.2).astype(np.float32)
            p["var"] = rng.uniform(0.5, 2.0, cout).astype(np.float32)
            p["eps"] = eps
        params.append(p)
    return params


def reference_forward(params: list[dict], x: torch.Tensor, order: str) -> torch.Tensor:
    """The layer table with torch.nn.functional: order "conv-bn-relu" (paper) or "conv-relu-bn"."""
    last = len(PAPER_LAYERS) - 1
    for i, ((transposed, _, _, _, stride, dilation, pad), p) in enumerate(zip(PAPER_LAYERS, params)):
        w, b = torch.from_numpy(p["weight"]), torch.from_numpy(p["bias"])
        if transposed:
            x = F.conv_transpose2d(x, w, b, stride=stride, padding=pad)
        else:
            x = F.conv2d(x, w, b, stride=stride, padding=pad, dilation=dilation)
        if i == last:
            return torch.sigmoid(x)

        def bn(z):
            c = (1, -1, 1, 1)
            mean, var = torch.from_numpy(p["mean"]).reshape(c), torch.from_numpy(p["var"]).reshape(c)
            g, beta = torch.from_numpy(p["gamma"]).reshape(c), torch.from_numpy(p["beta"]).reshape(c)
            return (z - mean) / torch.sqrt(var + p["eps"]) * g + beta

        x = torch.relu(bn(x)) if order == "conv-bn-relu" else bn(torch.relu(x))
    raise AssertionError("unreachable")


def random_input(seed: int = 0, n: int = 2, h: int = 20, w: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(n, 3, h, w, generator=g) - 0.45
    mask = torch.zeros(n, 1, h, w)
    mask[:, :, 4:14, 6:20] = 1.0
    return torch.cat([rgb * (1 - mask), mask], dim=1)


def check_completer(checkpoint, params, order: str, mean, fill: str) -> None:
    """``glcic_fast.load(checkpoint)`` fills the hole as the layer table does with ``fill``."""
    import glcic_fast.api as api

    rng = np.random.default_rng(0)
    image = rng.random((20, 28, 3), dtype=np.float32)
    hole = np.zeros((20, 28), dtype=bool)
    hole[5:13, 8:19] = True
    completer = api.load(str(checkpoint), backend="torch", device="cpu", precision="fp32")
    result = completer.complete(image, hole)

    rgb, m = torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(hole.astype(np.float32))[None, None]
    mean_px = torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1)
    blanked = (rgb - mean_px) * (1 - m) if fill == "subtract-mean" else rgb * (1 - m) + mean_px * m
    with torch.no_grad():
        out = reference_forward(params, torch.cat([blanked, m], 1), order)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(result[hole], out[hole], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(result[~hole], image[~hole])


# ---------------------------------------------------------------------------------------------
# Torch7 files in the authors' layout


def _module_state() -> dict:
    # Fields every nn.Module carries in a saved file: (empty) buffers and the train flag.
    return {"output": np.empty(0, np.float32), "gradInput": np.empty(0, np.float32), "train": False}


def authors_modules(
    params: list[dict],
    *,
    shared_storage: bool = True,
    conv_weights_2d: bool = False,
    bn_running_std: bool = False,
    dtype=np.float32,
    dilations: dict | None = None,
) -> list:
    """The 50 nn modules of the authors' completion network, holding ``params``.

    ``shared_storage``: weights and biases are views into one flat storage, as
    ``getParameters()`` leaves them. ``conv_weights_2d`` / ``bn_running_std``: the layouts of
    nn versions before 2016. ``dilations`` overrides a layer's dilation (to build wrong files).
    """
    learnables = []
    for p in params:
        learnables += [p["weight"], p["bias"]] + ([p["gamma"], p["beta"]] if "gamma" in p else [])
    tensors: Iterator[Any]
    if shared_storage:
        _, views = t7.flatten_parameters(learnables, dtype=dtype)
        tensors = iter(views)
    else:
        tensors = iter([np.asarray(a, dtype=dtype) for a in learnables])
    modules = []
    for i, ((transposed, cin, cout, k, stride, dilation, pad), p) in enumerate(zip(PAPER_LAYERS, params)):
        dilation = (dilations or {}).get(i, dilation)
        weight, bias = next(tensors), next(tensors)
        if conv_weights_2d and not transposed:
            assert not shared_storage
            weight = weight.reshape(cout, cin * k * k)
        fields = {
            **_module_state(), "nInputPlane": cin, "nOutputPlane": cout, "kW": k, "kH": k,
            "dW": stride, "dH": stride, "padW": pad, "padH": pad, "weight": weight, "bias": bias,
        }
        if transposed:
            cls = "nn.SpatialFullConvolution"
            fields.update(adjW=0, adjH=0)
        elif i in AUTHORS_DILATED or dilation != 1:
            cls = "nn.SpatialDilatedConvolution"
            fields.update(dilationW=dilation, dilationH=dilation)
        else:
            cls = "nn.SpatialConvolution"
        modules.append(t7.TorchObject(cls, fields))
        if "gamma" in p:
            bn = {
                **_module_state(), "weight": next(tensors), "bias": next(tensors), "eps": p["eps"],
                "momentum": 0.1, "affine": True, "nDim": 4,
                "running_mean": np.asarray(p["mean"], dtype=dtype),
            }
            if bn_running_std:
                bn["running_std"] = (1.0 / np.sqrt(p["var"].astype(np.float64) + p["eps"])).astype(dtype)
            else:
                bn["running_var"] = np.asarray(p["var"], dtype=dtype)
            modules.append(t7.TorchObject("nn.SpatialBatchNormalization", bn))
            modules.append(t7.TorchObject("nn.ReLU", {**_module_state(), "inplace": True, "threshold": 0, "val": 0}))
        else:
            modules.append(t7.TorchObject("nn.Sigmoid", _module_state()))
    return modules


def write_authors_file(path, params, mean=PLACES2_MEAN, **options) -> None:
    model = t7.TorchObject("nn.Sequential", {**_module_state(), "modules": authors_modules(params, **options)})
    table: dict[str, Any] = {"model": model}
    if mean is not None:
        table["mean"] = np.asarray(mean, dtype=np.float64)
    t7.save(path, table)


@pytest.fixture(scope="module")
def authors_file(tmp_path_factory):
    params = random_params(seed=1)
    path = tmp_path_factory.mktemp("t7") / "completionnet_test.t7"
    write_authors_file(path, params)
    return path, params


def _assert_meaningful(out: torch.Tensor) -> None:
    # Outputs neither constant nor saturated, so an agreement to 1e-5 says something.
    assert out.std() > 0.02 and 0.02 < out.mean() < 0.98


@needs_torchfile
def test_writer_round_trips_through_torchfile(tmp_path):
    import torchfile  # type: ignore[import-untyped]

    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _, (wa, wb) = t7.flatten_parameters([a, np.ones(5, np.float32)])
    conv = t7.TorchObject("nn.SpatialConvolution", {"weight": wa, "bias": wb, "kW": 3, "train": False})
    path = tmp_path / "x.t7"
    t7.save(path, {"model": t7.TorchObject("nn.Sequential", {"modules": [conv, conv]}), "mean": [0.5, 0.25, 1.5], "s": "hi", "none": None})
    data = torchfile.load(str(path))
    assert detect_format(path) == "torch7"
    mods = data[b"model"].modules
    assert mods[0] is mods[1]  # a shared object stays shared (written once, then by index)
    assert mods[0].torch_typename() == b"nn.SpatialConvolution"
    np.testing.assert_array_equal(mods[0].weight, a)
    np.testing.assert_array_equal(mods[0].bias, np.ones(5))
    assert mods[0].kW == 3 and mods[0].train is False
    assert data[b"mean"] == [0.5, 0.25, 1.5] and data[b"s"] == b"hi" and data[b"none"] is None


@needs_torchfile
def test_torch7_import_matches_independent_layer_table(authors_file, tmp_path):
    path, params = authors_file
    network, meta = import_torch7(path)
    x = random_input()
    with torch.no_grad():
        expected = reference_forward(params, x, "conv-bn-relu")
        got = network(x)
    _assert_meaningful(expected)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert meta["mean"] == pytest.approx(PLACES2_MEAN)
    assert meta["input_fill"] == "subtract-mean" and meta["layer_order"] == "glcic"
    assert meta["source"]["format"] == "torch7"
    assert meta["source"]["sha256"] == file_sha256(path)

    # Through the checkpoint file: same function, metadata recorded.
    out = tmp_path / "imported.safetensors"
    written = import_weights(path, out)
    assert written == read_metadata(out)
    assert written["source"] == {"format": "torch7", "file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size}
    assert written["mean"] == pytest.approx(PLACES2_MEAN) and written["mean_from"] == "the Torch7 file"
    reloaded, _ = load_checkpoint(out)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), expected, atol=1e-5, rtol=0)
        # Folding (what every fast backend runs) keeps the function.
        folded = FoldedNetwork(fold_batchnorm(reloaded))(x)
    torch.testing.assert_close(folded, expected, atol=1e-4, rtol=0)
    # The completer blanks the hole the authors' way (minus the stored mean, hole = 0).
    check_completer(out, params, "conv-bn-relu", PLACES2_MEAN, "subtract-mean")


@needs_torchfile
def test_torch7_old_nn_layouts(tmp_path):
    # 2-D conv weights, running_std instead of running_var, eps != 1e-5, double tensors.
    params = random_params(seed=2, eps=1e-3)
    path = tmp_path / "old.t7"
    write_authors_file(path, params, shared_storage=False, conv_weights_2d=True, bn_running_std=True, dtype=np.float64)
    network, meta = import_torch7(path)
    x = random_input(seed=3)
    with torch.no_grad():
        expected = reference_forward(params, x, "conv-bn-relu")
        got = network(x)
    _assert_meaningful(expected)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert any("running_std" in n for n in meta["notes"]) and any("2-D" in n for n in meta["notes"])
    assert any("eps" in n for n in meta["notes"])


@needs_torchfile
def test_torch7_mean_override_and_missing_mean(tmp_path):
    params = random_params(seed=4)
    bare = tmp_path / "bare.t7"
    t7.save(bare, t7.TorchObject("nn.Sequential", {"modules": authors_modules(params)}))
    with pytest.raises(WeightsImportError, match="--mean"):
        import_torch7(bare)
    _, meta = import_torch7(bare, mean=[0.5, 0.4, 0.3])
    assert meta["mean"] == [0.5, 0.4, 0.3] and meta["mean_from"] == "given by the user"


@needs_torchfile
def test_torch7_file_of_another_network_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    convs = [
        t7.TorchObject("nn.SpatialConvolution", {
            "weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "bias": np.zeros(8, np.float32),
            "kW": 3, "kH": 3, "dW": 1, "dH": 1, "padW": 1, "padH": 1,
        })
        for _ in range(3)
    ]
    path = tmp_path / "other.t7"
    t7.save(path, {"model": t7.TorchObject("nn.Sequential", {"modules": convs}), "mean": PLACES2_MEAN})
    with pytest.raises(WeightsImportError) as err:
        import_torch7(path)
    message = str(err.value)
    assert "expected 50 modules" in message and "found 3: nn.SpatialConvolution x3" in message
    assert "17 convolutions" in message and "nn.Sigmoid last" in message


@needs_torchfile
def test_torch7_wrong_module_and_wrong_geometry_are_refused(tmp_path):
    params = random_params(seed=5)
    modules = authors_modules(params)
    modules[49] = t7.TorchObject("nn.Tanh", _module_state())
    path = tmp_path / "tanh.t7"
    t7.save(path, {"model": t7.TorchObject("nn.Sequential", {"modules": modules}), "mean": PLACES2_MEAN})
    with pytest.raises(WeightsImportError, match=r"module 50 is nn\.Tanh where nn\.Sigmoid was expected"):
        import_torch7(path)

    path = tmp_path / "dilation.t7"
    write_authors_file(path, params, dilations={7: 3})  # layer 8 should have dilation 4
    with pytest.raises(WeightsImportError, match=r"layer 8 .*dilation 3x3, expected 4x4"):
        import_torch7(path)

    path = tmp_path / "table.t7"
    t7.save(path, {"net": 1, "epoch": 3})
    with pytest.raises(WeightsImportError, match=r"keys \['epoch', 'net'\]"):
        import_torch7(path)


@needs_torchfile
def test_non_torch7_and_truncated_files_are_refused(tmp_path, authors_file):
    junk = tmp_path / "photo.t7"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(WeightsImportError, match="neither a Torch7 file nor a PyTorch checkpoint"):
        import_weights(junk, tmp_path / "out.safetensors")
    with pytest.raises(WeightsImportError, match="not a readable Torch7 file"):
        import_torch7(junk)  # format forced: the reader itself refuses
    assert not (tmp_path / "out.safetensors").exists()

    path, _ = authors_file
    cut = tmp_path / "cut.t7"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsImportError, match="truncated"):
        import_torch7(cut)

    # A tensor that claims more elements than its storage holds is refused before it is read.
    modules = authors_modules(random_params(seed=12), shared_storage=False)
    small = t7.Storage(np.zeros(10, np.float32))
    modules[0].fields["weight"] = t7.TensorView(small, (64, 4, 5, 5), (100, 25, 5, 1), 0)
    bad = tmp_path / "bad_view.t7"
    t7.save(bad, {"model": t7.TorchObject("nn.Sequential", {"modules": modules}), "mean": PLACES2_MEAN})
    with pytest.raises(WeightsImportError, match="layer 1 .* weight: tensor runs past the end of its storage"):
        import_torch7(bad)


# ---------------------------------------------------------------------------------------------
# GLCIC-PyTorch


def glcic_pytorch_state_dict(params: list[dict], prefix: str = "") -> dict:
    state = {}
    for i, ((transposed, *_), p) in enumerate(zip(PAPER_LAYERS, params), start=1):
        conv = f"deconv{i}" if transposed else f"conv{i}"
        state[f"{prefix}{conv}.weight"] = torch.from_numpy(p["weight"].copy())
        state[f"{prefix}{conv}.bias"] = torch.from_numpy(p["bias"].copy())
        if "gamma" in p:
            state[f"{prefix}bn{i}.weight"] = torch.from_numpy(p["gamma"].copy())
            state[f"{prefix}bn{i}.bias"] = torch.from_numpy(p["beta"].copy())
            state[f"{prefix}bn{i}.running_mean"] = torch.from_numpy(p["mean"].copy())
            state[f"{prefix}bn{i}.running_var"] = torch.from_numpy(p["var"].copy())
            state[f"{prefix}bn{i}.num_batches_tracked"] = torch.tensor(90000)
    return state


def test_glcic_pytorch_import_matches_conv_relu_bn_everywhere(tmp_path):
    from glcic_fast.api import load_folded

    params = random_params(seed=6)
    # GLCIC-PyTorch's snapshots have no extension: the format is told by the contents.
    path = tmp_path / "model_cn_step400000"
    torch.save(glcic_pytorch_state_dict(params), path)
    assert detect_format(path) == "glcic-pytorch"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mpv": [0.51, 0.42, 0.38], "data_parallel": False}))

    out = tmp_path / "glcic_pytorch.safetensors"
    meta = import_weights(path, out, config=config)
    assert meta["layer_order"] == "glcic-pytorch" and meta["input_fill"] == "mean"
    assert meta["mean"] == pytest.approx([0.51, 0.42, 0.38]) and "config.json" in meta["mean_from"]
    assert meta["source"]["format"] == "glcic-pytorch" and meta["source"]["sha256"] == file_sha256(path)

    network, _ = load_checkpoint(out)
    x = random_input(seed=7)
    with torch.no_grad():
        expected = reference_forward(params, x, "conv-relu-bn")
        got = network(x)
        layers = fold_batchnorm(network)
        folded = FoldedNetwork(layers)(x)
    _assert_meaningful(expected)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # The BN after the ReLU cannot fold into the conv: it stays as the post-activation affine.
    assert needs_post_affine(layers)
    torch.testing.assert_close(folded, expected, atol=1e-4, rtol=0)
    ort = load_folded(layers, "onnxruntime", device="cpu", precision="fp32")
    np.testing.assert_allclose(ort(x.numpy()), expected.numpy(), atol=1e-4, rtol=0)
    # The completer fills the hole GLCIC-PyTorch's way (with the mean pixel, no subtraction).
    check_completer(out, params, "conv-relu-bn", [0.51, 0.42, 0.38], "mean")


def test_glcic_pytorch_state_dict_in_memory_and_data_parallel_prefix():
    params = random_params(seed=8)
    network, meta = import_glcic_pytorch(glcic_pytorch_state_dict(params, prefix="module."), mean=[0.5, 0.5, 0.5])
    assert meta["source"]["file"] is None and meta["mean"] == [0.5, 0.5, 0.5]
    x = random_input(seed=9, n=1)
    with torch.no_grad():
        torch.testing.assert_close(network(x), reference_forward(params, x, "conv-relu-bn"), atol=1e-5, rtol=0)


def test_glcic_pytorch_refusals(tmp_path):
    params = random_params(seed=10)
    state = glcic_pytorch_state_dict(params)
    # No mean pixel: refused, nothing written.
    out = tmp_path / "out.safetensors"
    with pytest.raises(WeightsImportError, match=r"--mean R G B"):
        import_weights(state, out)
    assert not out.exists()
    # A 0-255 mean is caught.
    with pytest.raises(WeightsImportError, match="0-255"):
        import_glcic_pytorch(state, mean=[120, 115, 100])
    # A discriminator's keys.
    disc = {"model_ld.conv1.weight": torch.zeros(64, 3, 5, 5), "linear1.weight": torch.zeros(1, 2048)}
    with pytest.raises(WeightsImportError, match="missing .*conv1.weight.*discriminator"):
        import_glcic_pytorch(disc)
    # The early 3-channel input (no mask channel).
    early = dict(state)
    early["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(WeightsImportError, match="3 input channels"):
        import_glcic_pytorch(early)
    # A pickled module is not unpickled (weights_only).
    pickled = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Conv2d(4, 64, 5), pickled)
    with pytest.raises(WeightsImportError, match="not a loadable PyTorch state_dict"):
        import_glcic_pytorch(pickled, mean=[0.5, 0.5, 0.5])


# ---------------------------------------------------------------------------------------------
# command line


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``glcic-fast ARGV``; returns (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        from glcic_fast import cli

        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@needs_torchfile
def test_cli_import_weights(authors_file, tmp_path):
    path, params = authors_file
    out = tmp_path / "model.safetensors"
    code, stdout, stderr = _cli(["import-weights", str(path), "-o", str(out)])
    assert code == 0, stderr
    assert "torch7" in stdout and "0.4560 0.4472 0.4155" in stdout
    assert read_metadata(out)["source"]["sha256"] == file_sha256(path)

    # An existing output is kept unless --force.
    before = out.read_bytes()
    code, _, stderr = _cli(["import-weights", str(path), "-o", str(out), "--mean", "0.5", "0.5", "0.5"])
    assert code == 2 and "--force" in stderr and "glcic-fast import-weights: error:" in stderr
    assert out.read_bytes() == before
    code, _, stderr = _cli(["import-weights", str(path), "-o", str(out), "--mean", "0.5", "0.5", "0.5", "--force"])
    assert code == 0, stderr
    assert read_metadata(out)["mean"] == [0.5, 0.5, 0.5]

    # A GLCIC-PyTorch file without its mean: a readable error, no output.
    pth = tmp_path / "cn.pth"
    torch.save(glcic_pytorch_state_dict(random_params(seed=11)), pth)
    out2 = tmp_path / "cn.safetensors"
    code, _, stderr = _cli(["import-weights", str(pth), "-o", str(out2)])
    assert code == 2 and "--mean" in stderr and not out2.exists()
    code, stdout, stderr = _cli(["import-weights", str(pth), "-o", str(out2), "--format", "glcic-pytorch", "--mean", "0.4", "0.4", "0.4"])
    assert code == 0, stderr
    assert read_metadata(out2)["layer_order"] == "glcic-pytorch"

    # Forcing the wrong format gives the reader's refusal.
    code, _, stderr = _cli(["import-weights", str(pth), "-o", str(tmp_path / "x.safetensors"), "--format", "torch7"])
    assert code == 2 and "Torch7" in stderr
