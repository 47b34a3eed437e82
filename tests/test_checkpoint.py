"""Checkpoint files: round trip, metadata, and clear errors for wrong or corrupt files."""

import json

import pytest
import torch
from safetensors.torch import save_file

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
