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
    assert "a.png: mask: size 10x10 does not match" in capsys.readouterr().err
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
    # the promise is kept where the format can keep it (issue 11, item 9)
    assert "JPEG re-compresses the whole image, so a JPEG output warns" in " ".join(helptext.stdout.split())


# ---------------------------------------------------------------- hostile folders and files (issue 11, items 5, 6, 9)


def run_with_alarm(args, seconds=120):
    """main(args), failing (not hanging) if it blocks: a FIFO opened for reading waits forever."""
    import signal

    def hung(signum, frame):
        raise TimeoutError("glcic-fast complete blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        return main(args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_two_masks_for_one_image_are_refused_before_anything_is_written(checkpoint, tmp_path, capsys):
    write_pair(tmp_path / "in", "a")
    write_pair(tmp_path / "in", "b", seed=1)
    Image.open(tmp_path / "masks" / "a.png").save(tmp_path / "masks" / "a.bmp")
    out = tmp_path / "out"
    code = main(["complete", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o", str(out), "--model", str(checkpoint)])
    assert code == 2 and not out.exists()
    assert "match more than one mask" in (err := capsys.readouterr().err) and "a.bmp, a.png" in err


def test_fifos_in_folders_are_skipped_with_a_warning(checkpoint, tmp_path, capsys):
    import os

    for name in ("a", "b"):
        write_pair(tmp_path / "in", name, seed=len(name))
    os.mkfifo(tmp_path / "in" / "pipe.png")
    os.mkfifo(tmp_path / "masks" / "stray.png")
    out = tmp_path / "out"
    args = ["complete", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o", str(out), "--model", str(checkpoint)]
    assert run_with_alarm(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    err = capsys.readouterr().err
    assert "skipping" in err and "pipe.png: a FIFO" in err and "stray.png: a FIFO" in err
    code = run_with_alarm(["complete", str(tmp_path / "in" / "pipe.png"), "--mask", str(tmp_path / "masks" / "a.png"),
                           "-o", str(tmp_path / "x.png"), "--model", str(checkpoint)])
    assert code == 2 and "pipe.png: a FIFO, not an image file" in capsys.readouterr().err


def test_one_unreadable_image_among_many_is_skipped_and_named(checkpoint, tmp_path, capsys):
    for i in range(4):
        write_pair(tmp_path / "in", f"img{i}", seed=i)
    data = (tmp_path / "in" / "img1.png").read_bytes()
    (tmp_path / "in" / "img1.png").write_bytes(data[: len(data) // 2])  # truncated
    (tmp_path / "in" / "img2.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "img3.png")  # mask of the wrong size
    out = tmp_path / "out"
    args = ["complete", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o", str(out),
            "--model", str(checkpoint), "--batch-size", "4"]
    assert main(args) == 1
    assert sorted(p.name for p in out.iterdir()) == ["img0.png"]  # no partial, no temporary files
    err = capsys.readouterr().err
    for name, why in (("img1.png", "cannot read image"), ("img2.png", "cannot read image"), ("img3.png", "does not match")):
        assert f"skipping {tmp_path / 'in' / name}: " in err and why in err
    assert "3 of 4 image(s) skipped, 1 written" in err


def test_jpeg_output_warns_and_lossless_outputs_keep_every_pixel(checkpoint, tmp_path, capsys):
    image, mask = write_pair(tmp_path / "in", "a")
    source, hole = np.asarray(Image.open(image)), np.asarray(Image.open(mask)) > 0
    for name in ("out.png", "out.webp", "out.bmp", "out.tif"):
        assert main(["complete", str(image), "--mask", str(mask), "-o", str(tmp_path / name), "--model", str(checkpoint)]) == 0
        assert "lossy" not in capsys.readouterr().err
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name).convert("RGB"))[~hole], source[~hole])
    assert main(["complete", str(image), "--mask", str(mask), "-o", str(tmp_path / "out.jpg"), "--model", str(checkpoint)]) == 0
    assert "out.jpg: JPEG is lossy, so pixels outside the hole will not be kept" in capsys.readouterr().err


def test_files_keep_their_mode(checkpoint, tmp_path):
    rng = np.random.default_rng(5)
    hole = np.zeros((30, 42), bool)
    hole[8:20, 10:30] = True
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
    rgba = Image.fromarray(rng.integers(0, 256, (30, 42, 4), dtype=np.uint8))
    deep = Image.fromarray(rng.integers(0, 65536, (30, 42), dtype=np.uint16))
    for name, image in (("rgba.png", rgba), ("deep.png", deep)):
        image.save(tmp_path / name)
        out = tmp_path / f"out-{name}"
        assert main(["complete", str(tmp_path / name), "--mask", str(tmp_path / "m.png"), "-o", str(out),
                     "--model", str(checkpoint)]) == 0
        result = Image.open(out)
        assert result.mode == image.mode
        np.testing.assert_array_equal(np.asarray(result)[~hole], np.asarray(image)[~hole])
