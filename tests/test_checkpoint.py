"""Checkpoint files: round trip, metadata, and clear errors for wrong or corrupt files."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import glcic_fast
from glcic_fast import CheckpointError, CompletionNetwork, load_checkpoint, read_metadata, save_checkpoint


def test_round_trip(random_network, tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(random_network, path, mean=(0.1, 0.2, 0.3), source="test", training_steps=7)
    net, meta = load_checkpoint(path)
    assert meta["mean"] == [0.1, 0.2, 0.3] and meta["training_steps"] == 7 and meta["source"] == "test"
    assert meta["layer_order"] == "glcic" and meta["input_fill"] == "subtract-mean"
    assert not net.training
    for (name, a), b in zip(random_network.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), name
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp files left


def test_fp16_file_is_half_the_size(random_network, tmp_path):
    save_checkpoint(random_network, tmp_path / "a.safetensors")
    save_checkpoint(random_network, tmp_path / "b.safetensors", dtype=torch.float16)
    small, big = (tmp_path / "b.safetensors").stat().st_size, (tmp_path / "a.safetensors").stat().st_size
    assert small < 0.55 * big
    net, _ = load_checkpoint(tmp_path / "b.safetensors")
    assert net.layers[0].conv.weight.dtype == torch.float32


def test_errors_name_the_file_and_problem(random_network, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": json.dumps("other")})
    with pytest.raises(CheckpointError, match="not a glcic-fast checkpoint"):
        load_checkpoint(foreign)
    good = tmp_path / "good.safetensors"
    save_checkpoint(random_network, good)
    data = bytearray(good.read_bytes())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_checkpoint(truncated)
    state = {k: v for k, v in CompletionNetwork().state_dict().items() if not k.startswith("layers.16")}
    meta = {k: json.dumps(v) for k, v in read_metadata(good).items()}
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial), metadata=meta)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(partial)


# ---------------------------------------------------------------- everything read is checked (issue 11, item 3)


def _rewrite(path, out, meta_changes=None, tensor_change=None):
    """A copy of checkpoint ``path`` with metadata values (JSON text) or tensors changed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    for key, value in (meta_changes or {}).items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    tensors = load_file(str(path))
    if tensor_change:
        tensors = {name: tensor_change(name, t) for name, t in tensors.items()}
    save_file(tensors, str(out), metadata=meta)
    return out


BAD_METADATA = [
    ("mean", "[NaN, 0.5, 0.5]", "must lie in \\[0, 1\\]"),
    ("mean", "[2.0, 0.5, 0.5]", "must lie in \\[0, 1\\]"),
    ("mean", "[-0.1, 0.5, 0.5]", "must lie in \\[0, 1\\]"),
    ("mean", "[Infinity, 0.5, 0.5]", "must lie in \\[0, 1\\]"),
    ("mean", "[true, false, true]", "must be 3 numbers"),
    ("mean", "[0.5, 0.5]", "must be 3 numbers"),
    ("mean", "[0.5, 0.5, 0.5, 0.5]", "must be 3 numbers"),
    ("mean", '"0.5 0.5 0.5"', "must be 3 numbers"),
    ("mean", None, "must be 3 numbers"),
    ("format_version", '"1"', "format_version must be a whole number"),
    ("format_version", "1.0", "format_version must be a whole number"),
    ("format_version", "true", "format_version must be a whole number"),
    ("format_version", None, "format_version must be a whole number"),
    ("format_version", "2", "newer glcic-fast"),
    ("input_fill", '"zero"', "input_fill must be one of"),
    ("input_fill", "[1]", "input_fill must be one of"),
    ("layer_order", '["glcic"]', "unknown layer_order"),
]


@pytest.mark.parametrize("key,value,message", BAD_METADATA, ids=[f"{k}={v}" for k, v, _ in BAD_METADATA])
def test_bad_metadata_fails_at_load_with_one_clear_error(random_network, tmp_path, key, value, message):
    good = tmp_path / "good.safetensors"
    save_checkpoint(random_network, good)
    bad = _rewrite(good, tmp_path / "bad.safetensors", {key: value})
    for loader in (read_metadata, load_checkpoint, lambda p: glcic_fast.load(p, backend="torch", device="cpu")):
        with pytest.raises(CheckpointError, match=f"bad.safetensors: .*{message}"):
            loader(bad)


BAD_TENSORS = [
    ("integer weights", lambda n, t: t.round().to(torch.int32) if t.is_floating_point() else t, "holds int32 values"),
    ("boolean weights", lambda n, t: (t > 0) if n.endswith("conv.weight") else t, "holds bool values"),
    ("float64 beyond float32", lambda n, t: t.double() * 1e300 if n == "layers.3.conv.weight" else t, "NaN or infinite"),
    ("negative variance", lambda n, t: -t if n == "layers.5.bn.running_var" else t, "negative variances"),
    ("float step count", lambda n, t: t.float() if n.endswith("num_batches_tracked") else t, "expected integers"),
]


@pytest.mark.parametrize("change,message", [c[1:] for c in BAD_TENSORS], ids=[c[0] for c in BAD_TENSORS])
def test_bad_tensors_fail_at_load(random_network, tmp_path, change, message):
    good = tmp_path / "good.safetensors"
    save_checkpoint(random_network, good)
    bad = _rewrite(good, tmp_path / "bad.safetensors", tensor_change=change)
    with pytest.raises(CheckpointError, match=message):
        glcic_fast.load(bad, backend="torch", device="cpu")


@pytest.mark.parametrize("mean", [[0.5, 0.5], [0.5, 0.5, float("nan")], [1.5, 0.5, 0.5], [True, False, True], "abc", 0.5])
def test_a_bad_mean_argument_fails_at_load_not_at_complete(random_network, mean):
    with pytest.raises(ValueError, match="mean must"):
        glcic_fast.load(random_network, backend="torch", device="cpu", mean=mean)


def test_a_numpy_mean_argument_is_taken(random_network, tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(random_network, path)
    completer = glcic_fast.load(path, backend="torch", device="cpu", mean=np.array([0.25, 0.5, 0.75]))
    assert completer.mean == (0.25, 0.5, 0.75)


@pytest.mark.parametrize("mean,message", [([2.0, float("nan"), 0.5], "must lie in"), (5, "must be 3 numbers"),
                                          ([0.5, 0.5], "must be 3 numbers"), ([0.5, "0.5", 0.5], "must be 3 numbers")])
def test_save_refuses_a_mean_the_loader_would_refuse(random_network, tmp_path, mean, message):
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=f"mean {message}"):
        save_checkpoint(random_network, path, mean=mean)
    with pytest.raises(ValueError, match="input_fill must be one of"):
        save_checkpoint(random_network, path, input_fill=["mean"])
    assert list(tmp_path.iterdir()) == []  # nothing written
