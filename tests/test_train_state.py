"""Training state files and hostile or broken input to training and evaluation.

Reading a state never runs code (a crafted pickle is refused, and nothing it asks for runs);
garbage and truncated states, unreadable photos and an empty folder give clear errors.
"""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch

from glcic_fast.train.state import TrainStateError, encode_state, load_state, save_state

from test_train import _options, _write_photos


def test_state_round_trip_keeps_every_kind_of_value(tmp_path):
    opt = torch.optim.Adadelta([torch.nn.Parameter(torch.ones(3))], lr=0.5)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    state = {
        "step": 7, "mean": [0.1, 0.2, 0.3], "name": "x", "none": None, "flag": True,
        "opt": opt.state_dict(),  # int keys, tensors, floats, None
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "nested": {"$odd": 1, "list": [torch.arange(4), (1, 2)]},
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["step"] == 7 and back["mean"] == [0.1, 0.2, 0.3] and back["none"] is None and back["flag"] is True
    assert back["rng"]["python"] == random.getstate()  # tuples come back as tuples
    np_state = back["rng"]["numpy"]
    assert np_state[1].dtype == np.uint32 and np.array_equal(np_state[1], np.random.get_state()[1])
    assert torch.equal(back["rng"]["torch"], torch.get_rng_state())
    assert set(back["opt"]["state"]) == {0}  # int keys stay ints
    assert torch.equal(back["opt"]["state"][0]["acc_delta"], opt.state_dict()["state"][0]["acc_delta"])
    fresh = torch.optim.Adadelta([torch.nn.Parameter(torch.ones(3))], lr=0.5)
    fresh.load_state_dict(back["opt"])
    assert back["nested"]["$odd"] == 1 and back["nested"]["list"][1] == (1, 2)
    with pytest.raises(TypeError, match="cannot hold"):
        encode_state({"bad": object()})


class _RunsCode:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("name", ["train_state.pt", "train_state.safetensors", "evil.bin"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, name):
    marker = tmp_path / "pwned"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps({"format": "glcic-fast-train-state", "payload": _RunsCode(marker)}))
    pickle.loads(evil.read_bytes())  # the control: unpickling it does run code
    assert marker.exists()
    marker.unlink()
    with pytest.raises(TrainStateError, match="pickle|not a readable"):
        load_state(evil)
    assert not marker.exists()


def test_train_cli_never_unpickles_a_run_folder_state(tmp_path, capsys):
    from glcic_fast.cli import main

    photos = _write_photos(tmp_path / "photos")
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    (run / "train_state.pt").write_bytes(pickle.dumps(_RunsCode(marker)))  # an old-style state, crafted
    rc = main(["train", "--data", str(photos), "--out", str(run), "--resume", "--no-progress", "--device", "cpu"])
    assert rc == 2 and not marker.exists()
    assert "pickle" in capsys.readouterr().err


def test_garbage_and_truncated_states_give_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_state(good, {"step": 1, "w": torch.zeros(1000)})
    cases = {
        "garbage.safetensors": b"\x13\x37" * 500,
        "empty.safetensors": b"",
        "truncated.safetensors": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TrainStateError, match=f"{name}: not a readable training state"):
            load_state(tmp_path / name)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(TrainStateError, match="not a glcic-fast training state"):
        load_state(tmp_path / "model.safetensors")
    with pytest.raises(TrainStateError, match="no such"):
        load_state(tmp_path / "missing.safetensors")


def test_train_cli_reports_a_truncated_resume_file(tmp_path, capsys):
    from glcic_fast.cli import main

    photos = _write_photos(tmp_path / "photos")
    broken = tmp_path / "state.safetensors"
    broken.write_bytes(b"{\"not\": \"a state\"}")
    rc = main(["train", "--data", str(photos), "--out", str(tmp_path / "run"), "--resume", str(broken), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "state.safetensors: not a readable training state" in err and "Traceback" not in err


def test_train_help_shows_no_true_defaults(capsys):
    from glcic_fast.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--no-amp" in text and "--no-progress" in text and "--deterministic" in text
    assert "(default: True)" not in text and "(default: False)" not in text and "(default: None)" not in text
    assert "(default: 96)" in text  # real defaults are still shown


# ---- unreadable images ------------------------------------------------------------------------


def _break_files(folder):
    """One truncated JPEG and one non-image with an image name among the good photos."""
    good_jpg = (folder / "b.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(good_jpg[: len(good_jpg) // 3])
    (folder / "sub" / "fake.png").write_bytes(b"this is not a png")
    return ["broken.jpg", "sub/fake.png"]


def test_training_skips_unreadable_images_with_a_named_warning(tmp_path):
    from glcic_fast.train.trainer import Trainer

    photos = _write_photos(tmp_path / "photos")
    bad = _break_files(photos)
    messages = []
    trainer = Trainer(_options(photos, tmp_path / "run", iters_c=3, iters_d=0, iters_total=3, sample_every=0), log=messages.append)
    result = trainer.run()
    assert result["step"] == 3
    warned = [m for m in messages if m.startswith("warning: skipping unreadable image")]
    assert sorted(str(p.relative_to(photos)) for p in (trainer.files[i] for i in trainer.skipped)) == bad
    assert len(warned) == 2 and all(any(b in m for m in warned) for b in bad)  # each named once
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and records[-1]["skipped_files"] == 2
    from glcic_fast.checkpoint import read_metadata

    meta = read_metadata(tmp_path / "run" / "model.safetensors")
    assert meta["skipped_images"] == 2 and meta["training_images"] == 4


def test_a_sample_whose_image_is_unreadable_takes_the_next_one(tmp_path):
    from glcic_fast.train.data import PhotoCropDataset, list_images

    photos = _write_photos(tmp_path / "photos")
    files = list_images(photos)
    ds = PhotoCropDataset(files, 64, 32, 12, 20, seed=3)
    victim = ds.image_index(0)
    (files[victim]).write_bytes(b"garbage")
    sample = ds[0]
    assert sample[4].item() == victim and sample[0].shape == (3, 64, 64)
    assert PhotoCropDataset(files, 64, 32, 12, 20, seed=3)[0][4].item() == victim  # same choice every time


def test_nothing_usable_is_a_clear_error(tmp_path):
    from glcic_fast.cli import main

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"")
    args = ["--data", str(folder), "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]
    assert main(["train", *args]) == 2
    assert main(["eval", "--baselines-only", "--data", str(folder)]) == 2


def test_eval_skips_unreadable_images(tmp_path):
    from glcic_fast import evaluate as E

    photos = _write_photos(tmp_path / "photos")
    bad = _break_files(photos)
    with pytest.warns(UserWarning, match="broken.jpg") as caught:
        report = E.evaluate(False, photos, image_size=64, hole_sets=["paper"])
    assert len([w for w in caught if "skipping unreadable image" in str(w.message)]) == 2
    assert report["settings"]["images"] == 4 and sorted(report["settings"]["skipped"]) == bad
