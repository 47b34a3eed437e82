"""ONNX export: onnxruntime runs the exported graph and must match the PyTorch networks.

fp32: within 1e-4 of both the folded network and the unfolded reference, at non-square sizes
and batch > 1, on several shapes through one session (the dims are dynamic). fp16: the typed
graph runs in onnxruntime's CPU provider and must stay within 2e-2 of the fp32 reference.
bf16: onnxruntime cannot run it (ONNX gives Conv a bfloat16 type only from opset 22; the graph
is opset 17, which TensorRT's parser accepts), so its weights are decoded and checked against
the fp32 weights to bf16 rounding, and its node list must equal the fp32 graph's.
"""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import make_random_network
from glcic_fast import CompletionNetwork, fold_batchnorm, save_checkpoint
from glcic_fast.folding import FoldedNetwork
from glcic_fast.onnx_graph import INPUT_NAME, OUTPUT_NAME, build_onnx_model

FP32_TOL = 1e-4
FP16_TOL = 2e-2
SHAPES = [(2, 4, 20, 28), (3, 4, 12, 8)]


def _session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _inputs(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


@pytest.fixture(scope="module")
def layers(random_network):
    return fold_batchnorm(random_network)


def test_fp32_matches_folded_and_reference(random_network, layers):
    session = _session(build_onnx_model(layers, "fp32"))
    folded = FoldedNetwork(layers).eval()
    for i, shape in enumerate(SHAPES):
        x = _inputs(shape, i)
        with torch.no_grad():
            ref = random_network(x).numpy()
            fold = folded(x).numpy()
        out = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        assert out.shape == (shape[0], 3, shape[2], shape[3]) and out.dtype == np.float32
        assert np.abs(out - fold).max() <= FP32_TOL
        assert np.abs(out - ref).max() <= FP32_TOL


def test_fp16_graph_runs_within_tolerance(random_network, layers):
    model = build_onnx_model(layers, "fp16")
    session = _session(model)
    x = _inputs(SHAPES[0], 7)
    with torch.no_grad():
        ref = random_network(x).numpy()
    out = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    assert out.dtype == np.float32  # I/O stay float32
    err = float(np.abs(out - ref).max())
    assert err <= FP16_TOL, f"fp16 graph max error {err:.3g}"
    # The weights really are fp16 (not an fp32 graph with a different name).
    types = {t.data_type for t in model.graph.initializer}
    assert types == {onnx.TensorProto.FLOAT16}


def test_bf16_graph_weights_and_structure(layers):
    fp32 = build_onnx_model(layers, "fp32")
    bf16 = build_onnx_model(layers, "bf16")
    assert [n.op_type for n in bf16.graph.node if n.op_type != "Cast"] == [n.op_type for n in fp32.graph.node]
    casts = [n for n in bf16.graph.node if n.op_type == "Cast"]
    assert [n.name for n in casts] == ["cast_in", "cast_out"]  # in to bf16; logit back to fp32 before the sigmoid
    ref = {t.name: onnx.numpy_helper.to_array(t) for t in fp32.graph.initializer}
    for tensor in bf16.graph.initializer:
        assert tensor.data_type == onnx.TensorProto.BFLOAT16
        bits = np.frombuffer(tensor.raw_data, dtype=np.uint16).astype(np.uint32) << 16
        decoded = bits.view(np.float32).reshape(tuple(tensor.dims))
        expect = ref[tensor.name]
        # bf16 keeps 8 significant bits: relative error <= 2**-8 after round-to-nearest.
        assert np.all(np.abs(decoded - expect) <= np.abs(expect) * 2.0**-8 + 1e-30), tensor.name


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_checker_full_and_dynamic_dims(layers, precision):
    model = build_onnx_model(layers, precision)
    onnx.checker.check_model(model, full_check=True)  # strict type and shape inference
    assert model.opset_import[0].version >= 17
    for value, channels in ((model.graph.input[0], 4), (model.graph.output[0], 3)):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
        assert dims[1].dim_value == channels


def test_glcic_pytorch_order_exports(layers):
    net = make_random_network(CompletionNetwork, torch, seed=3, order="glcic-pytorch")
    session = _session(build_onnx_model(fold_batchnorm(net), "fp32"))
    x = _inputs((2, 4, 12, 16), 11)
    with torch.no_grad():
        ref = net(x).numpy()
    out = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    assert np.abs(out - ref).max() <= FP32_TOL


def _checkpoint(tmp_path, random_network):
    path = tmp_path / "model.safetensors"
    save_checkpoint(random_network, path, mean=(0.5, 0.4, 0.3))
    return path


def test_export_onnx_cli_writes_model_with_provenance(tmp_path, random_network):
    from glcic_fast.cli import main
    from glcic_fast.export.onnx import file_sha256

    ckpt = _checkpoint(tmp_path, random_network)
    out = tmp_path / "model.onnx"
    assert main(["export-onnx", "--model", str(ckpt), "--precision", "fp16", "-o", str(out)]) == 0
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["source_sha256"] == file_sha256(ckpt)
    assert json.loads(props["glcic_fast_mean"]) == pytest.approx([0.5, 0.4, 0.3])
    assert props["glcic_fast_input_fill"] == "subtract-mean"
    assert props["precision"] == "fp16"
    x = _inputs((1, 4, 16, 12), 3)
    with torch.no_grad():
        ref = random_network(x).numpy()
    out_arr = _session(model).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    assert np.abs(out_arr - ref).max() <= FP16_TOL


def test_export_onnx_cli_errors_leave_no_file(tmp_path, capsys):
    from glcic_fast.cli import main

    out = tmp_path / "model.onnx"
    assert main(["export-onnx", "--model", str(tmp_path / "missing.safetensors"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "glcic-fast export-onnx: error:" in err and "no such checkpoint" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export-onnx", "--model", str(bad), "-o", str(out)]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


def test_export_onnx_plugins_graph(tmp_path, random_network):
    from glcic_fast.cli import main

    ckpt = _checkpoint(tmp_path, random_network)
    out = tmp_path / "plugins.onnx"
    assert main(["export-onnx", "--model", str(ckpt), "--plugins", "triton", "-o", str(out)]) == 0
    model = onnx.load(str(out))
    plugin_nodes = [n for n in model.graph.node if n.op_type == "conv2d_nhwc"]
    assert [n.name for n in plugin_nodes] == ["conv7_triton", "conv8_triton", "conv9_triton", "conv10_triton"]
