"""Triton Inference Server export, without a server: the repository layout for both runtimes,
config.pbtxt contents (parsed with a small protobuf text-format reader written here,
independent of the writer), and the python-backend models' code run here directly: the
pre/post-processing math must equal glcic_fast.preprocess exactly and refuse the same masks,
and the onnxruntime model must compute what the local onnxruntime backend does, batched or not.
tests/test_serve.py loads these repositories in a real server."""

import importlib.util
import json
import re

import numpy as np
import pytest

from glcic_fast.errors import InputError
from glcic_fast.preprocess import composite, network_input, padded_size, read_image, read_mask, to_unit
from glcic_fast.engine_format import make_sidecar, validate_profile
from glcic_fast.export.tensorrt import write_engine_files

TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|[{}\[\]:,]')


def parse_pbtxt(text):
    """Protobuf text format -> {field: [values]} (messages as nested dicts)."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = TOKEN.findall(text)
    assert "".join(tokens) == re.sub(r"\s+", "", text), "unparsed characters in pbtxt"

    def scalar(tok):
        if tok.startswith('"'):
            return json.loads(tok)
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if re.fullmatch(r"-?\d+\.\d+", tok):
            return float(tok)
        return tok  # enum identifier

    def value(i):
        if tokens[i] == "{":
            return message(i + 1, "}")
        return scalar(tokens[i]), i + 1

    def message(i, end):
        fields = {}
        while i < len(tokens) and tokens[i] != end:
            key = tokens[i]
            i += 1
            if tokens[i] == ":":
                i += 1
            if tokens[i] == "[":
                i += 1
                while tokens[i] != "]":
                    v, i = value(i)
                    fields.setdefault(key, []).append(v)
                    if tokens[i] == ",":
                        i += 1
                i += 1
            else:
                v, i = value(i)
                fields.setdefault(key, []).append(v)
        return fields, i + 1

    fields, _ = message(0, None)
    return fields


def one(fields, key):
    assert len(fields[key]) == 1, key
    return fields[key][0]


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "engine" / "glcic.plan"
    payload = b"plan bytes for the export test"
    sidecar = make_sidecar(
        engine_path=path, engine_bytes=payload, profile=validate_profile((1, 2, 8), (64, 256, 512), (64, 256, 512)),
        precision="fp16", tensorrt_version="10.8.0.43", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
        model_source="model.safetensors", model_sha256=None,
        model_metadata={"mean": [0.5, 0.25, 0.125], "input_fill": "subtract-mean"},
    )
    write_engine_files(path, payload, sidecar)
    return path


def params_of(config):
    return {one(p, "key"): one(one(p, "value"), "string_value") for p in config.get("parameters", [])}


def test_export_writes_repository(tmp_path, engine):
    from glcic_fast.cli import main

    repo = tmp_path / "repo"
    assert main(["export-triton-server", "--engine", str(engine), "-o", str(repo)]) == 0
    assert sorted(p.name for p in repo.iterdir()) == [
        "README.md", "client_example.py", "glcic", "glcic_postprocess", "glcic_preprocess", "glcic_repository.json",
        "glcic_tensorrt",
    ]
    assert (repo / "glcic_tensorrt" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (repo / "glcic" / "1").is_dir()

    trt = parse_pbtxt((repo / "glcic_tensorrt" / "config.pbtxt").read_text())
    assert one(trt, "name") == "glcic_tensorrt"
    assert one(trt, "platform") == "tensorrt_plan" and one(trt, "default_model_filename") == "model.plan"
    assert one(trt, "max_batch_size") == 8  # the profile's max batch
    (inp,), (out,) = trt["input"], trt["output"]
    assert (one(inp, "name"), one(inp, "data_type"), inp["dims"]) == ("input", "TYPE_FP32", [4, -1, -1])
    assert (one(out, "name"), one(out, "data_type"), out["dims"]) == ("output", "TYPE_FP32", [3, -1, -1])
    batching = one(trt, "dynamic_batching")
    assert batching["preferred_batch_size"] == [2, 4, 8] and one(batching, "max_queue_delay_microseconds") == 100
    assert one(one(trt, "instance_group"), "kind") == "KIND_GPU"

    ens = parse_pbtxt((repo / "glcic" / "config.pbtxt").read_text())
    assert one(ens, "platform") == "ensemble" and one(ens, "max_batch_size") == 8
    assert [(one(t, "name"), one(t, "data_type"), t["dims"]) for t in ens["input"]] == [
        ("IMAGE", "TYPE_UINT8", [-1, -1, 3]), ("MASK", "TYPE_UINT8", [-1, -1])]
    assert [(one(t, "name"), one(t, "data_type")) for t in ens["output"]] == [("COMPLETED", "TYPE_UINT8")]
    steps = one(ens, "ensemble_scheduling")["step"]
    assert [one(s, "model_name") for s in steps] == ["glcic_preprocess", "glcic_tensorrt", "glcic_postprocess"]

    def maps(step, kind):
        return {one(m, "key"): one(m, "value") for m in step[kind]}

    # Every tensor a step reads is an ensemble input or an earlier step's output.
    available = {"IMAGE", "MASK"}
    for step in steps:
        assert set(maps(step, "input_map").values()) <= available
        available |= set(maps(step, "output_map").values())
    assert "COMPLETED" in available
    assert maps(steps[1], "input_map") == {"input": "network_input"}

    pre = parse_pbtxt((repo / "glcic_preprocess" / "config.pbtxt").read_text())
    params = params_of(pre)
    assert one(pre, "backend") == "python" and params["stage"] == "preprocess"
    assert [float(v) for v in params["mean"].split(",")] == [0.5, 0.25, 0.125]
    assert params["input_fill"] == "subtract-mean"
    assert params["mask_threshold"] == ""  # binary masks only, as glcic_fast.load's default
    assert params["size_limits"] == "64,512,64,512"  # the profile's height and width ranges
    assert [one(t, "name") for t in pre["output"]] == ["NETWORK_INPUT"]
    post = parse_pbtxt((repo / "glcic_postprocess" / "config.pbtxt").read_text())
    assert [one(t, "name") for t in post["input"]] == ["NETWORK_OUTPUT", "IMAGE", "MASK"]
    manifest = json.loads((repo / "glcic_repository.json").read_text())
    assert manifest["runtime"] == "tensorrt" and manifest["models"]["network"] == "glcic_tensorrt"
    assert manifest["size_limits"] == {"height": [64, 512], "width": [64, 512]} and manifest["max_batch_size"] == 8
    assert "tritonclient.http" in (repo / "client_example.py").read_text()
    compile((repo / "client_example.py").read_text(), "client_example.py", "exec")


def test_export_refuses_to_clobber_and_bad_engines(tmp_path, engine):
    from glcic_fast.cli import main

    repo = tmp_path / "repo"
    assert main(["export-triton-server", "--engine", str(engine), "-o", str(repo)]) == 0
    assert main(["export-triton-server", "--engine", str(engine), "-o", str(repo)]) == 2
    assert main(["export-triton-server", "--engine", str(engine), "-o", str(repo), "--overwrite"]) == 0
    assert main(["export-triton-server", "--engine", str(engine), "--runtime", "onnxruntime", "-o", str(repo)]) == 2
    engine.write_bytes(b"corrupted")
    other = tmp_path / "other"
    assert main(["export-triton-server", "--engine", str(engine), "-o", str(other)]) == 2
    assert not other.exists() or list(other.iterdir()) == []


def test_mean_reaches_the_server_exactly():
    """A mean written with 6 digits made served images differ from local ones by one level in
    some pixels; the config must parse back to the very floats of the checkpoint."""
    from glcic_fast.export.triton_config import exact_floats

    mean = (0.499619660159036, 0.5075155159346192, 0.47641797232388067)
    assert tuple(float(v) for v in exact_floats(mean).split(",")) == mean


def _load_model_py(path, name="glcic_triton_model"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fill", ["subtract-mean", "mean"])
def test_python_backend_math_equals_glcic_fast(tmp_path, engine, fill):
    from glcic_fast.export.triton_server import export_triton_repository

    export_triton_repository(engine, tmp_path / "repo")
    model = _load_model_py(tmp_path / "repo" / "glcic_preprocess" / "1" / "model.py")
    assert (tmp_path / "repo" / "glcic_postprocess" / "1" / "model.py").read_text() == \
        (tmp_path / "repo" / "glcic_preprocess" / "1" / "model.py").read_text()
    rng = np.random.default_rng(0)
    mean = (0.5, 0.25, 0.125)
    for h, w, scale in [(21, 30, 255), (16, 12, 1), (7, 9, 255), (3, 2, 255)]:  # padded and not; 0/255 and 0/1 masks
        images = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
        masks = (rng.random((2, h, w)) < 0.3).astype(np.uint8) * scale
        masks[:, 0, 0], masks[:, -1, -1] = scale, 0  # some hole and some context in every mask
        got = model.preprocess(images, masks, mean, fill, None)
        size = padded_size(h, w)
        for i in range(2):
            record = read_image(images[i])
            hole = read_mask(masks[i], (h, w))
            want = network_input(to_unit(record.pixels), hole, mean, fill, size)
            np.testing.assert_array_equal(got[i], want)
        outputs = rng.random((2, 3, *size), dtype=np.float32)
        done = model.postprocess(outputs, images, masks, None)
        for i in range(2):
            record = read_image(images[i])
            want = composite(outputs[i], record.pixels, read_mask(masks[i], (h, w)))
            np.testing.assert_array_equal(done[i], want)
            outside = ~read_mask(masks[i], (h, w))
            assert np.array_equal(done[i][outside], images[i][outside])  # untouched outside the hole
    # Greyscale masks with a threshold binarise like read_mask(..., threshold).
    grey = rng.integers(0, 256, size=(1, 8, 8), dtype=np.uint8)
    grey[0, 0, 0], grey[0, -1, -1] = 255, 0
    img = rng.integers(0, 256, size=(1, 8, 8, 3), dtype=np.uint8)
    want = network_input(to_unit(read_image(img[0]).pixels), read_mask(grey[0], (8, 8), threshold=0.2), mean, fill,
                         (8, 8))
    np.testing.assert_array_equal(model.preprocess(img, grey, mean, fill, 0.2)[0], want)


def test_python_backend_refuses_what_the_api_refuses(tmp_path, engine):
    """Masks glcic_fast.load().complete refuses, the served model refuses with the same reason;
    and it refuses mismatched sizes and sizes outside the repository's range."""
    from glcic_fast.export.triton_server import export_triton_repository

    export_triton_repository(engine, tmp_path / "repo")
    model = _load_model_py(tmp_path / "repo" / "glcic_preprocess" / "1" / "model.py")
    image = np.zeros((1, 8, 8, 3), np.uint8)
    grey = np.zeros((1, 8, 8), np.uint8)
    grey[0, :2, :2] = 255
    grey[0, 4, 4] = 128
    bad = {"not binary": grey, "no hole pixels": np.zeros((1, 8, 8), np.uint8),
           "every pixel is a hole": np.full((1, 8, 8), 255, np.uint8)}
    for reason, mask in bad.items():
        with pytest.raises(InputError, match=reason):
            read_mask(mask[0], (8, 8))
        with pytest.raises(model.RequestError, match=reason):
            model.preprocess(image, mask, (0.5, 0.5, 0.5), "subtract-mean", None)
    good = np.zeros((1, 8, 8), np.uint8)
    good[0, :2, :2] = 255
    with pytest.raises(model.RequestError, match="MASK must match IMAGE"):
        model.preprocess(image, good[:, :, :6], (0.5, 0.5, 0.5), "subtract-mean", None)
    with pytest.raises(model.RequestError, match="outside the sizes this server runs"):
        model.preprocess(image, good, (0.5, 0.5, 0.5), "subtract-mean", None, (64, 512, 64, 512))
    written = params_of(parse_pbtxt((tmp_path / "repo" / "glcic_preprocess" / "config.pbtxt").read_text()))
    # What Triton hands the model: the config as JSON, parameters as {"key": {"string_value": ...}}.
    params = model.parse_parameters({"parameters": {k: {"string_value": v} for k, v in written.items()}})
    assert params["limits"] == (64, 512, 64, 512) and params["threshold"] is None


def test_onnxruntime_repository(tmp_path, random_network):
    """The onnxruntime runtime: layout and configs, and its model.py (run here, outside a server)
    computes what glcic_fast.load(..., backend="onnxruntime") does, whatever it is batched with."""
    from glcic_fast import load
    from glcic_fast.export.triton_server import export_triton_repository, read_manifest

    repo = tmp_path / "repo"
    models = export_triton_repository(random_network, repo, runtime="onnxruntime", max_batch=4, max_size=200,
                                      queue_delay_us=500)
    assert models["network"] == repo / "glcic_onnxruntime"
    assert sorted(p.name for p in (repo / "glcic_onnxruntime" / "1").iterdir()) == ["model.onnx", "model.py"]
    net = parse_pbtxt((repo / "glcic_onnxruntime" / "config.pbtxt").read_text())
    assert one(net, "backend") == "python" and one(net, "max_batch_size") == 4
    assert one(one(net, "instance_group"), "kind") == "KIND_CPU"
    assert params_of(net) == {"device": "cpu", "threads": "0"}
    batching = one(net, "dynamic_batching")
    assert batching["preferred_batch_size"] == [2, 4] and one(batching, "max_queue_delay_microseconds") == 500
    steps = one(parse_pbtxt((repo / "glcic" / "config.pbtxt").read_text()), "ensemble_scheduling")["step"]
    assert [one(s, "model_name") for s in steps] == ["glcic_preprocess", "glcic_onnxruntime", "glcic_postprocess"]
    assert params_of(parse_pbtxt((repo / "glcic_preprocess" / "config.pbtxt").read_text()))["size_limits"] == "4,200,4,200"
    manifest = read_manifest(repo)
    assert manifest["runtime"] == "onnxruntime" and manifest["device"] == "cpu" and manifest["dynamic_batching"]

    served = _load_model_py(repo / "glcic_onnxruntime" / "1" / "model.py", "glcic_ort_model")
    session = served.make_session(str(repo / "glcic_onnxruntime" / "1" / "model.onnx"), "cpu", 0)
    local = load(random_network, backend="onnxruntime", device="cpu").backend
    rng = np.random.default_rng(1)
    inputs = [rng.random((1, 4, 24, 32), dtype=np.float32), rng.random((2, 4, 24, 32), dtype=np.float32),
              rng.random((1, 4, 16, 16), dtype=np.float32)]
    outputs = served.run_grouped(lambda x: session.run(["output"], {"input": x})[0], inputs)
    for x, y in zip(inputs, outputs):
        for i in range(len(x)):  # each image alone through the local backend
            assert np.array_equal(y[i], local(x[i:i + 1])[0])
    # A failing group fails its own requests only.
    broken = served.run_grouped(lambda x: session.run(["output"], {"input": x})[0] if x.shape[2] != 16 else 1 / 0,
                                inputs)
    assert isinstance(broken[2], ZeroDivisionError) and all(isinstance(b, np.ndarray) for b in broken[:2])


def test_onnxruntime_repository_options(tmp_path, random_network):
    from glcic_fast.export.triton_server import export_triton_repository

    repo = tmp_path / "repo"
    export_triton_repository(random_network, repo, runtime="onnxruntime", dynamic_batching=False, mask_threshold=0.2,
                             device="cuda", name="inpaint")
    net = parse_pbtxt((repo / "inpaint_onnxruntime" / "config.pbtxt").read_text())
    assert "dynamic_batching" not in net
    assert one(one(net, "instance_group"), "kind") == "KIND_GPU" and params_of(net)["device"] == "cuda"
    assert params_of(parse_pbtxt((repo / "inpaint_preprocess" / "config.pbtxt").read_text()))["mask_threshold"] == "0.2"
    with pytest.raises(ValueError, match="mask threshold"):
        export_triton_repository(random_network, tmp_path / "x", runtime="onnxruntime", mask_threshold=1.5)
    with pytest.raises(ValueError, match="device"):
        export_triton_repository(random_network, tmp_path / "y", runtime="onnxruntime", device="tpu")
    assert not (tmp_path / "y" / "glcic_onnxruntime").exists()
