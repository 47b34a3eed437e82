"""The glcic-fast command, run for real (in-process through main(), and once as a process)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from glcic_fast import save_checkpoint
from glcic_fast.resolve import DEFAULT_MODEL
from glcic_fast.cli import main


@pytest.fixture()
def checkpoint(random_network, tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(random_network, path, source="test")
    return path


def write_pair(folder, name, h=30, w=42, seed=0):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    mask = np.zeros((h, w), np.uint8)
    mask[8:20, 10:30] = 255
    masks = folder.parent / "masks"
    masks.mkdir(exist_ok=True)
    Image.fromarray(mask).save(masks / f"{name}.png")
    return folder / f"{name}.png", masks / f"{name}.png"


def test_complete_one_file(checkpoint, tmp_path):
    image, mask = write_pair(tmp_path / "in", "a")
    out = tmp_path / "out.png"
    assert main(["complete", str(image), "--mask", str(mask), "-o", str(out), "--model", str(checkpoint)]) == 0
    result, source = np.asarray(Image.open(out)), np.asarray(Image.open(image))
    hole = np.asarray(Image.open(mask)) > 0
    assert result.shape == source.shape
    np.testing.assert_array_equal(result[~hole], source[~hole])


def test_complete_a_folder(checkpoint, tmp_path):
    for i, size in enumerate([(30, 42), (30, 42), (44, 28)]):
        write_pair(tmp_path / "in", f"img{i}", *size, seed=i)
    out = tmp_path / "out"
    args = ["complete", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o", str(out),
            "--model", str(checkpoint), "--backend", "onnxruntime", "--batch-size", "2"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert Image.open(out / "img2.png").size == (28, 44)


def test_bad_input_writes_nothing(checkpoint, tmp_path, capsys):
    image, _ = write_pair(tmp_path / "in", "a")
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(wrong)
    out = tmp_path / "out.png"
    code = main(["complete", str(image), "--mask", str(wrong), "-o", str(out), "--model", str(checkpoint)])
    assert code == 2 and not out.exists()
    assert "does not match" in capsys.readouterr().err
    code = main(["complete", str(image), "--mask", str(tmp_path / "nope.png"), "-o", str(out), "--model", str(checkpoint)])
    assert code == 2 and not out.exists()
    assert "no such mask" in capsys.readouterr().err
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*")) == []


def test_demo(tmp_path, capsys):
    out = tmp_path / "demo.png"
    code = main(["complete", "--demo", "-o", str(out)])
    if DEFAULT_MODEL.is_file():
        assert code == 0
        panel = Image.open(out)
        assert panel.width > 3 * panel.height // 2  # input | mask | result
    else:
        assert code == 2 and not out.exists()
        assert "default model is missing" in capsys.readouterr().err


def test_info_and_help_run_as_a_process():
    info = subprocess.run([sys.executable, "-m", "glcic_fast.cli", "info"], capture_output=True, text=True, check=True)
    assert "onnxruntime" in info.stdout and "auto on cpu" in info.stdout
    helptext = subprocess.run([sys.executable, "-m", "glcic_fast.cli", "complete", "--help"],
                              capture_output=True, text=True, check=True)
    assert "--postprocess" in helptext.stdout and "--demo" in helptext.stdout
