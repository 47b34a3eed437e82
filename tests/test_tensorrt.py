"""TensorRT: the builder CLI without TensorRT, shape-range validation, the engine sidecar checks,
the Triton-plugin ONNX rewrite and kernel, and (where TensorRT and a GPU exist) real builds.

Everything up to the last section runs on a CPU machine without TensorRT; the build + parity
tests skip with the reason when ``tensorrt`` is not importable or no GPU is visible.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import HAS_CUDA
from glcic_fast import fold_batchnorm, save_checkpoint
from glcic_fast.backends import BackendUnavailable
from glcic_fast.backends.tensorrt_backend import TensorRTBackend, choose_runtime
from glcic_fast.engine_format import (
    GpuInfo,
    ShapeProfile,
    check_compatibility,
    check_shape_in_profile,
    engine_metadata,
    make_sidecar,
    parse_range,
    read_engine_bytes,
    read_sidecar,
    sidecar_path,
    validate_profile,
)
from glcic_fast.errors import EngineError, ProfileError, TensorRTNotInstalled
from glcic_fast.export.tensorrt import build_engine, write_engine_files

try:
    import tensorrt  # noqa: F401

    HAS_TENSORRT = True
except ImportError:
    HAS_TENSORRT = False

needs_no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: this checks the message without it")
needs_tensorrt_gpu = pytest.mark.skipif(
    not (HAS_TENSORRT and HAS_CUDA), reason="needs TensorRT (pip install tensorrt) and a CUDA GPU"
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, random_network):
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(random_network, path, mean=(0.5, 0.4, 0.3))
    return path


# ----------------------------------------------------------------------- without TensorRT


@needs_no_tensorrt
def test_build_engine_cli_without_tensorrt(tmp_path, checkpoint):
    out = tmp_path / "out" / "glcic.plan"
    exe = shutil.which("glcic-fast", path=os.path.dirname(sys.executable)) or shutil.which("glcic-fast")
    cmd = [exe] if exe else [sys.executable, "-m", "glcic_fast.cli"]
    proc = subprocess.run(cmd + ["build-engine", "--model", str(checkpoint), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "glcic-fast build-engine: error: TensorRT is not installed" in proc.stderr
    assert "pip install tensorrt" in proc.stderr and "docs.nvidia.com" in proc.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert list(tmp_path.rglob("*.plan*")) == []


@needs_no_tensorrt
def test_build_engine_function_without_tensorrt(tmp_path, random_network):
    out = tmp_path / "glcic.plan"
    with pytest.raises(TensorRTNotInstalled, match="pip install tensorrt"):
        build_engine(random_network, out, precision="fp16")
    assert list(tmp_path.iterdir()) == []


@needs_no_tensorrt
def test_backend_without_tensorrt(tmp_path):
    assert "pip install tensorrt" in (TensorRTBackend.unavailable_reason("cuda") or "")
    assert "GPU" in (TensorRTBackend.unavailable_reason("cpu") or "")
    engine = _fake_engine(tmp_path)
    with pytest.raises(TensorRTNotInstalled, match="TensorRT is not installed"):
        TensorRTBackend.from_engine(engine)
    import glcic_fast

    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        glcic_fast.load(str(engine))


def test_backend_constructor_points_to_build_engine(random_network):
    with pytest.raises(BackendUnavailable, match="glcic-fast build-engine"):
        TensorRTBackend(fold_batchnorm(random_network), device="cuda", precision="fp16")


# -------------------------------------------------------------------- shape-range validation


def test_parse_range_forms():
    assert parse_range("1,4,8", "batch") == (1, 4, 8)
    assert parse_range("1:4:8", "batch") == (1, 4, 8)
    assert parse_range("8", "batch") == (8, 8, 8)
    assert parse_range(256, "height") == (256, 256, 256)
    assert parse_range([64, 128, 256], "height") == (64, 128, 256)
    for bad in ("1,2", "a,b,c", "1,2,3,4", ""):
        with pytest.raises(ProfileError):
            parse_range(bad, "batch")


@pytest.mark.parametrize(
    "batch,height,width,message",
    [
        ((1, 1, 8), (64, 254, 1024), (64, 256, 1024), "opt 254 is not a multiple of 4"),
        ((1, 1, 8), (64, 256, 1024), (66, 256, 1024), "width range 66,256,1024: min 66 is not a multiple of 4 (the network halves the resolution twice); use 64 or 68"),
        ((1, 1, 8), (64, 256, 1022), (64, 256, 1024), "max 1022 is not a multiple of 4"),
        ((1, 9, 8), (64, 256, 1024), (64, 256, 1024), "batch range 1,9,8: need min <= opt <= max"),
        ((1, 1, 8), (512, 256, 1024), (64, 256, 1024), "height range 512,256,1024: need min <= opt <= max"),
        ((0, 1, 8), (64, 256, 1024), (64, 256, 1024), "min must be at least 1"),
        ((1, 1, 8), (0, 256, 1024), (64, 256, 1024), "min must be at least 4"),
    ],
)
def test_validate_profile_rejects(batch, height, width, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        validate_profile(batch, height, width)


def test_profile_shapes_and_json():
    p = validate_profile("1,2,8", "64,256,512", "32,128,1024")
    assert p.min_shape == (1, 4, 64, 32) and p.opt_shape == (2, 4, 256, 128) and p.max_shape == (8, 4, 512, 1024)
    assert ShapeProfile.from_json(json.loads(json.dumps(p.to_json()))) == p
    assert p.contains((8, 4, 512, 32)) and not p.contains((9, 4, 64, 32)) and not p.contains((1, 3, 64, 32))


@pytest.mark.parametrize("flag,value", [("--height", "64,250,512"), ("--batch", "4,2,8"), ("--opt-level", "9")])
def test_cli_validates_before_anything_else(tmp_path, flag, value):
    """Bad ranges fail with status 2 and the reason, with or without TensorRT, writing nothing."""
    from glcic_fast.cli import main

    out = tmp_path / "x.plan"
    assert main(["build-engine", "--model", str(tmp_path / "does-not-matter.safetensors"), flag, value, "-o", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- sidecar and checks


def _fake_engine(tmp_path, payload=b"not really a plan, but bytes with a checksum", **overrides):
    engine = tmp_path / "glcic.plan"
    fields = dict(
        engine_path=engine, engine_bytes=payload, profile=validate_profile((1, 1, 4), (16, 64, 256), (16, 64, 256)),
        precision="fp16", tensorrt_version="10.8.0.43", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
        model_source="model.safetensors", model_sha256="ab" * 32,
        model_metadata={"mean": [0.5, 0.4, 0.3], "input_fill": "subtract-mean", "layer_order": "glcic"},
    )
    fields.update(overrides)
    write_engine_files(engine, payload, make_sidecar(**fields))
    return engine


def test_sidecar_roundtrip_and_metadata(tmp_path):
    engine = _fake_engine(tmp_path)
    side = read_sidecar(engine)
    assert sidecar_path(engine).name == "glcic.plan.json"
    assert read_engine_bytes(engine, side).startswith(b"not really")
    for key in ("engine_sha256", "tensorrt_version", "gpu", "precision", "profile", "plugins", "build", "model"):
        assert key in side
    assert side["model"]["sha256"] == "ab" * 32 and side["gpu"]["compute_capability"] == "9.0"
    meta = engine_metadata(engine, side)
    assert meta["mean"] == [0.5, 0.4, 0.3] and meta["input_fill"] == "subtract-mean"
    assert meta["engine"]["precision"] == "fp16" and meta["layer_order"] == "glcic"


def test_corrupt_or_replaced_engine_is_refused(tmp_path):
    engine = _fake_engine(tmp_path)
    engine.write_bytes(b"X" + engine.read_bytes()[1:])
    with pytest.raises(EngineError, match="does not match its sidecar"):
        read_engine_bytes(engine, read_sidecar(engine))
    with pytest.raises(EngineError, match="does not match its sidecar"):
        TensorRTBackend.from_engine(engine)  # refused before TensorRT is even needed
    engine.write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        read_engine_bytes(engine, read_sidecar(engine))


def test_missing_or_bad_sidecar(tmp_path):
    engine = _fake_engine(tmp_path)
    side = sidecar_path(engine)
    side.write_text("{not json")
    with pytest.raises(EngineError, match="not a readable JSON sidecar"):
        read_sidecar(engine)
    side.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EngineError, match="not a glcic-fast engine sidecar"):
        read_sidecar(engine)
    side.unlink()
    with pytest.raises(EngineError, match="sidecar glcic.plan.json is missing"):
        read_sidecar(engine)
    with pytest.raises(EngineError, match="no such engine file"):
        TensorRTBackend.from_engine(tmp_path / "nope.plan")


def test_newer_sidecar_format_is_refused(tmp_path):
    engine = _fake_engine(tmp_path)
    side = sidecar_path(engine)
    data = json.loads(side.read_text())
    data["format_version"] = 99
    side.write_text(json.dumps(data))
    with pytest.raises(EngineError, match="upgrade glcic-fast"):
        read_sidecar(engine)


def test_compatibility_checks(tmp_path):
    side = read_sidecar(_fake_engine(tmp_path))
    assert check_compatibility(side, "10.8.0.43", GpuInfo("NVIDIA H100 80GB HBM3", "9.0")) == []
    notes = check_compatibility(side, "10.8.0.43", GpuInfo("NVIDIA H200", "9.0"))
    assert len(notes) == 1 and "NVIDIA H200" in notes[0]
    with pytest.raises(EngineError, match=r"built with TensorRT 10\.8\.0\.43 but TensorRT 11\.4\.0 is installed"):
        check_compatibility(side, "11.4.0", GpuInfo("NVIDIA H100 80GB HBM3", "9.0"))
    with pytest.raises(EngineError, match=r"compute capability 9\.0 .*\(compute capability 8\.0\)"):
        check_compatibility(side, "10.8.0.43", GpuInfo("NVIDIA A100-SXM4-80GB", "8.0"))


def test_shape_must_lie_in_profile():
    profile = validate_profile((1, 1, 4), (16, 64, 256), (16, 64, 256))
    check_shape_in_profile((4, 4, 256, 16), profile)
    with pytest.raises(ValueError, match=r"batch 5, 64x64 is outside the engine's profile \(batch 1..4"):
        check_shape_in_profile((5, 4, 64, 64), profile)
    with pytest.raises(ValueError, match="outside the engine's profile"):
        check_shape_in_profile((1, 4, 260, 64), profile)
    with pytest.raises(ValueError, match=r"\(batch, 4, height, width\)"):
        check_shape_in_profile((1, 3, 64, 64), profile)


def test_failed_write_leaves_no_file(tmp_path):
    engine = tmp_path / "glcic.plan"
    sidecar = make_sidecar(
        engine_path=engine, engine_bytes=b"x", profile=validate_profile(1, 64, 64), precision="fp32",
        tensorrt_version="10.8", gpu_name="g", compute_capability="9.0", model_source="m", model_sha256=None,
        model_metadata={"mean": [0.5, 0.5, 0.5], "unserialisable": object()},
    )
    with pytest.raises(TypeError):
        write_engine_files(engine, b"x", sidecar)
    assert list(tmp_path.iterdir()) == []


def test_runtime_choice():
    assert choose_runtime("cuda-python") == "cuda-python"
    assert choose_runtime("auto") == ("torch" if HAS_CUDA else "cuda-python")
    with pytest.raises(ValueError):
        choose_runtime("numba")


def test_backend_module_imports_without_torch_at_top_level():
    """The lean (torch-free) path: the backend module itself must not import torch."""
    import ast

    tree = ast.parse((REPO / "glcic_fast" / "backends" / "tensorrt_backend.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not any(name.split(".")[0] in ("torch", "tensorrt") for name in names)


_TORCH_FREE_SCRIPT = r"""
import json, sys
sys.modules["torch"] = None  # as in a lean install: pip install tensorrt cuda-python numpy
try:
    from glcic_fast.backends import tensorrt_backend as tb
    from glcic_fast import engine_format as ef
except ImportError as e:
    print(json.dumps({"import_error": str(e)}))
    sys.exit(0)
engine = sys.argv[1]
side = ef.read_sidecar(engine)
ef.read_engine_bytes(engine, side)
result = {"runtime": tb.choose_runtime("auto"), "mean": ef.engine_metadata(engine, side)["mean"]}
try:
    tb.TensorRTBackend.from_engine(engine)
except tb.BackendUnavailable as e:
    result["unavailable"] = str(e)
print(json.dumps(result))
"""


def test_backend_without_torch(tmp_path):
    """The engine path of the backend imports and checks engines with torch unimportable."""
    engine = _fake_engine(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _TORCH_FREE_SCRIPT, str(engine)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "import_error" not in result, result  # the engine path imports without torch
    assert result["runtime"] == "cuda-python" and result["mean"] == [0.5, 0.4, 0.3]
    if not HAS_TENSORRT:
        assert "TensorRT is not installed" in result["unavailable"]


# ---------------------------------------------------------------- Triton kernels as plugins


def test_plugin_layer_selection(random_network):
    from glcic_fast.kernels.trt_plugins import plugin_layer_numbers

    layers = fold_batchnorm(random_network)
    assert plugin_layer_numbers(layers, "dilated") == [7, 8, 9, 10]
    assert plugin_layer_numbers(layers, "h4") == [5, 6, 7, 8, 9, 10, 11, 12]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_onnx_rewrite_to_plugin_nodes(random_network, precision):
    from glcic_fast.kernels.conv2d import pack_weight
    from glcic_fast.kernels.trt_plugins import ONNX_DOMAIN, PLUGIN_NAME, PLUGIN_NAMESPACE, replace_convs_with_plugins
    from glcic_fast.onnx_graph import build_onnx_model

    layers = fold_batchnorm(random_network)
    original = build_onnx_model(layers, precision)
    model = replace_convs_with_plugins(original, [7, 8, 9, 10])
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count(PLUGIN_NAME) == 4 and ops.count("Relu") == ops.count("Conv") + ops.count("ConvTranspose") - 1 - 4 + 4
    assert len(model.graph.node) == len(original.graph.node) - 4  # conv + relu -> one node
    inits = {t.name: t for t in model.graph.initializer}
    storage = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}[precision]
    for n, dilation in zip((7, 8, 9, 10), (2, 4, 8, 16)):
        node = next(x for x in model.graph.node if x.name == f"conv{n}_triton")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == ONNX_DOMAIN and attrs["plugin_namespace"].decode() == PLUGIN_NAMESPACE
        assert (attrs["dilation"], attrs["kernel_size"], attrs["activation"]) == (dilation, 3, 1)
        assert (attrs["in_channels"], attrs["out_channels"]) == (256, 256)
        assert list(node.input) == [f"act{n - 1}", f"conv{n}.weight_packed", f"conv{n}.bias"]
        assert list(node.output) == [f"act{n}"]
        assert f"conv{n}.weight" not in inits
        packed = np.frombuffer(inits[f"conv{n}.weight_packed"].raw_data, dtype=storage).reshape(9 * 256, 256)
        w = layers[n - 1].weight
        if precision == "bf16":
            expect = (pack_weight(w).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
        else:
            expect = pack_weight(w).numpy().astype(storage)
        np.testing.assert_array_equal(packed, expect)
    assert any(op.domain == ONNX_DOMAIN for op in model.opset_import)


def test_plugin_kernel_matches_torch_conv(random_network):
    """The plugin's Triton entry point (interpreter on CPU, compiled on CUDA), fed the packed
    weight exactly as the rewritten ONNX stores it, equals conv + bias + ReLU."""
    from glcic_fast.kernels.trt_plugins import (
        Tile, conv2d_nhwc_plugin_kernel, plugin_constexprs, plugin_grid, replace_convs_with_plugins,
    )
    from glcic_fast.onnx_graph import build_onnx_model

    layers = fold_batchnorm(random_network)
    model = replace_convs_with_plugins(build_onnx_model(layers, "fp32"), [8])
    packed = next(t for t in model.graph.initializer if t.name == "conv8.weight_packed")
    device = "cuda" if HAS_CUDA else "cpu"
    w = torch.from_numpy(np.frombuffer(packed.raw_data, dtype=np.float32).reshape(2304, 256).copy()).to(device)
    layer = layers[7]
    gen = torch.Generator().manual_seed(2)
    n, h, wd = 2, 5, 6  # smaller than the dilation (4): most taps fall in the padding
    x = torch.randn(n, h, wd, 256, generator=gen).to(device)
    out = torch.empty(n, h, wd, 256, device=device)
    tile = Tile(64, 128, 64, 4, 1, 4)  # few programs: the interpreter is slow per program
    grid = (plugin_grid(n, h, wd, 256, tile),)
    conv2d_nhwc_plugin_kernel[grid](x, w, layer.bias.to(device), n, h, wd, out,
                                    **plugin_constexprs("fp32", 256, 256, 3, 4, 1, tile))
    ref = torch.relu(torch.nn.functional.conv2d(x.permute(0, 3, 1, 2).cpu(), layer.weight, layer.bias, padding=4, dilation=4))
    assert torch.allclose(out.cpu(), ref.permute(0, 2, 3, 1), atol=1e-3, rtol=1e-4)


def test_strip_scratch_params():
    from glcic_fast.kernels.trt_plugins import strip_scratch_params

    ptx = (".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u32 k_param_1,\n\t.param .u64 k_param_2,\n"
           "\t.param .u64 k_param_3\n)\n{\n\tld.param.b64 %rd1, [k_param_0];\n\tld.param.b32 %r1, [k_param_1];\n}\n")
    stripped = strip_scratch_params(ptx, "k", keep=2)
    assert "k_param_2" not in stripped and "k_param_3" not in stripped and ".param .u32 k_param_1\n)" in stripped
    assert stripped.endswith("{\n\tld.param.b64 %rd1, [k_param_0];\n\tld.param.b32 %r1, [k_param_1];\n}\n")
    with pytest.raises(ValueError, match="uses parameter k_param_1"):
        strip_scratch_params(ptx, "k", keep=1)


def test_usable_tiles_respect_shared_memory():
    from glcic_fast.kernels.trt_plugins import PLUGIN_TILES, usable_tiles

    assert usable_tiles("fp16", 48 * 1024) == [1, 2, 3, 4]
    fp32 = usable_tiles("fp32", 48 * 1024)
    assert all(PLUGIN_TILES[t - 1].shared_bytes(4) <= 48 * 1024 for t in fp32) and 1 not in fp32


_COMPILE_SCRIPT = r"""
import json, os, subprocess, sys, tempfile
from glcic_fast.kernels import trt_plugins as tp
k = tp.compile_plugin_kernel("fp16", 256, 256, 3, 8, 1, tp.PLUGIN_TILES[0], tp.current_target())
entry = k.ptx[k.ptx.index(".entry"):]
entry = entry[: entry.index(")")]
ptxas = os.path.join(os.path.dirname(tp.triton.__file__), "backends", "nvidia", "bin", "ptxas")
assembled = None
if os.path.exists(ptxas):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        open(src, "w").write(k.ptx)
        proc = subprocess.run([ptxas, "-arch=sm_90a", src, "-o", os.path.join(d, "k.cubin")], capture_output=True, text=True)
        assembled = proc.returncode == 0 or proc.stderr
version = k.ptx[k.ptx.index(".version"):].split()[1]
print(json.dumps({"name": k.name, "params": entry.count(".param"), "shared": k.shared, "warps": k.num_warps,
                  "cubin": len(k.cubin), "assembled": assembled, "ptx_version": version}))
"""


def test_plugin_kernel_compiles_to_ptx_for_tensorrt():
    """triton.compile for sm_90 on a machine without a GPU: PTX with exactly TensorRT's 7 params
    (x, w, bias, batch, height, width, out) that ptxas assembles."""
    env = dict(os.environ, TRITON_INTERPRET="0", GLCIC_TRT_PLUGIN_TARGET="cuda:90", TRITON_DEFAULT_FP_FUSION="1")
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["name"] == "conv2d_nhwc_plugin_kernel" and result["params"] == 7
    assert result["warps"] == 8 and 0 < result["shared"] <= 48 * 1024 and result["cubin"] > 0
    assert result["ptx_version"] == "8.4"  # loadable by CUDA 12.4+ drivers, not only the newest
    assert result["assembled"] in (True, None), result["assembled"]


# -------------------------------------------------------- with TensorRT and a GPU (skipped here)


@needs_tensorrt_gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_build_and_run_engine(tmp_path, checkpoint, random_network, precision, tol):
    import glcic_fast

    engine = tmp_path / f"glcic-{precision}.plan"
    side = build_engine(checkpoint, engine, precision=precision, batch=(1, 2, 3), height=(16, 32, 64),
                        width=(16, 48, 96), workspace_gb=2, opt_level=1, timing_cache=tmp_path / "cache")
    assert engine.is_file() and sidecar_path(engine).is_file() and (tmp_path / "cache").is_file()
    assert side["precision"] == precision and side["profile"]["max_shape"] == [3, 4, 64, 96]
    backend = TensorRTBackend.from_engine(engine)
    gen = torch.Generator().manual_seed(0)
    for shape in [(2, 4, 20, 28), (3, 4, 64, 96), (1, 4, 16, 16), (2, 4, 20, 28)]:
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = random_network(x).numpy()
        assert np.abs(backend(x.numpy()) - ref).max() <= tol
    with pytest.raises(ValueError, match="outside the engine's profile"):
        backend(np.zeros((4, 4, 16, 16), np.float32))
    completer = glcic_fast.load(str(engine))
    assert completer.mean == pytest.approx((0.5, 0.4, 0.3))


@needs_tensorrt_gpu
def test_build_with_triton_plugins(tmp_path, checkpoint, random_network):
    pytest.importorskip("tensorrt.plugin")
    engine = tmp_path / "glcic-triton.plan"
    side = build_engine(checkpoint, engine, precision="fp16", batch=(1, 1, 2), height=(16, 32, 64),
                        width=(16, 32, 64), opt_level=1, timing_cache=None, plugins="triton")
    assert side["plugins"] == "triton" and side["plugin_layers"] == [7, 8, 9, 10]
    backend = TensorRTBackend.from_engine(engine)
    x = torch.randn(2, 4, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = random_network(x).numpy()
    assert np.abs(backend(x.numpy()) - ref).max() <= 2e-2


@needs_tensorrt_gpu
def test_cuda_python_runtime_matches_torch_runtime(tmp_path, random_network):
    pytest.importorskip("cuda.bindings")
    engine = tmp_path / "glcic.plan"
    build_engine(fold_batchnorm(random_network), engine, precision="fp32", batch=(1, 1, 2), height=(16, 32, 32),
                 width=(16, 32, 32), opt_level=1, timing_cache=None)
    x = np.random.default_rng(0).standard_normal((2, 4, 32, 16)).astype(np.float32)
    a = TensorRTBackend.from_engine(engine, runtime="torch")(x)
    b = TensorRTBackend.from_engine(engine, runtime="cuda-python")(x)
    np.testing.assert_allclose(a, b, atol=1e-6)
