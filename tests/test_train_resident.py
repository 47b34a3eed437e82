"""The GPU-resident data of budgeted runs, the photo pack builder, and the one-command GPU run.

The bank and the builder run on the CPU here exactly as on a GPU (the same tensor code);
``bash train/gpu_train.sh --rehearse`` runs every step of the GPU script on a CPU, tiny.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from glcic_fast.train import photos as P
from glcic_fast.train.resident import PhotoBank

REPO = Path(__file__).resolve().parents[1]


def _photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([yy * 255 // h, xx * 255 // w, (yy + xx) * 127 // (h + w)], -1) + rng.integers(0, 8, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)
    return path


def test_bank_never_enlarges_and_draws_holes_inside_their_region(tmp_path):
    files = [_photo(tmp_path / "wide.png", 150, 96), _photo(tmp_path / "tall.png", 70, 130, 1),
             _photo(tmp_path / "small.png", 60, 50, 2)]
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    messages = []
    bank = PhotoBank(files + [tmp_path / "broken.jpg"], 64, 32, 12, 20, scale_max=96, log=messages.append)
    assert len(bank) == 2  # small.png would need enlarging, broken.jpg is unreadable
    assert any("small.png" in m and "enlarging" in m for m in messages) and any("broken.jpg" in m for m in messages)
    assert bank.sizes.min() >= 64 and bank.sizes[:, :].max() <= 2 * 96  # short side cut to scale_max, long <= 2x
    images, masks, corners_c, corners_d, skipped = bank.sample(step=3, batch=16)
    assert images.shape == (16, 3, 64, 64) and masks.shape == (16, 1, 64, 64) and (skipped == -1).all()
    assert images.min() >= 0 and images.max() <= 1
    for m, (y, x), (dy, dx) in zip(masks[:, 0], corners_c.tolist(), corners_d.tolist()):
        ys, xs = torch.nonzero(m, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert 12 <= h <= 20 and 12 <= w <= 20 and m.sum() == h * w  # one rectangle of the paper's kind
        assert y <= ys.min() and ys.max() < y + 32 and x <= xs.min() and xs.max() < x + 32  # inside Mc's region
        assert 0 <= dy <= 32 and 0 <= dx <= 32
    again = bank.sample(step=3, batch=16)
    assert all(torch.equal(a, b) for a, b in zip((images, masks, corners_c, corners_d), again))  # a function of the step
    assert not torch.equal(images, bank.sample(step=4, batch=16)[0])


def test_bank_crops_are_the_photo_resampled_not_invented(tmp_path):
    # One flat-colour photo at exactly the crop size: every crop must be that colour (no padding, no border).
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 100, 50)).save(tmp_path / "flat.png")
    bank = PhotoBank([tmp_path / "flat.png"], 64, 32, 12, 20)
    images = bank.sample(0, 4)[0]
    want = torch.tensor([200, 100, 50], dtype=torch.float32).view(1, 3, 1, 1) / 255
    assert torch.allclose(images, want.expand_as(images), atol=1e-6)


def _write_rcc(files: dict[str, bytes]) -> bytes:
    """A Qt resource archive (version 2) holding ``files`` in one folder, the second one zlib-compressed."""
    names = b""
    offsets = {}
    for n in ["dir", *files]:
        offsets[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    payload = b""
    data_offsets = []
    for i, blob in enumerate(files.values()):
        data_offsets.append(len(payload))
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if i == 1 else blob
        payload += struct.pack(">I", len(stored)) + stored
    node = lambda *fields: struct.pack(*fields) + b"\0" * 8  # noqa: E731 (+ modification time)
    tree = node(">IHII", 0, 2, 1, 1) + node(">IHII", offsets["dir"], 2, len(files), 2)
    for i, n in enumerate(files):
        tree += node(">IHHHI", offsets[n], 1 if i == 1 else 0, 0, 0, data_offsets[i])
    header = 24
    return (struct.pack(">4sIIIII", b"qres", 2, header, header + len(tree), header + len(tree) + len(payload), 0)
            + tree + payload + names)


def test_qt_resource_reader_and_readme_licences():
    readme = b"Copyright: A. Person, 2020\nLicense: CC0-1.0\nFiles:\ncat.webp\n\nLicense: GPL-3+\nFiles:\ndog.webp\n"
    files = {"cat.webp": b"CAT" * 10, "dog.webp": b"DOG" * 50, "README": readme}
    got = P.read_qt_resources(_write_rcc(files))
    assert got == {f"dir/{k}": v for k, v in files.items()}
    assert P.readme_licences(got) == {"cat.webp": "CC0-1.0", "dog.webp": "GPL-3+"}
    with pytest.raises(ValueError, match="not a Qt resource"):
        P.read_qt_resources(b"PK\x03\x04" + b"\0" * 40)


def test_debian_copyright_licences_match_installed_paths():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: x\nLicense: GPL-2+\n\n"
            "Files: 16.04/Bridge_by_Someone.jpg\nCopyright: y\nLicense: CC-BY-SA-4.0\n\n"
            "Files: nature/*.jpg\n  extra/*.png\nCopyright: z\nLicense: CC0-1.0\n")
    stanzas = P.debian_licences(text)
    assert P.licence_for("usr/share/backgrounds/Bridge_by_Someone.jpg", stanzas) == "CC-BY-SA-4.0"
    assert P.licence_for("usr/share/backgrounds/mate/nature/Aqua.jpg", stanzas) == "CC0-1.0"
    assert P.licence_for("usr/share/x/extra/a.png", stanzas) == "CC0-1.0"
    assert P.licence_for("usr/share/other.jpg", stanzas) == "GPL-2+"
    assert P.EXCLUDED_LICENCE.search("CC-BY-NC-SA-1.0") and not P.EXCLUDED_LICENCE.search("CC-BY-SA-4.0")


def test_photo_filter_and_store_size():
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    photo = np.stack([yy * 0.8, xx * 0.6, (yy + xx) * 0.3], -1) % 256 + rng.normal(0, 12, (300, 400, 3))
    assert P.looks_like_photo(Image.fromarray(photo.clip(0, 255).astype(np.uint8)))
    drawing = np.zeros((300, 400, 3), np.uint8)
    drawing[50:200, 100:300] = (255, 0, 0)
    assert not P.looks_like_photo(Image.fromarray(drawing))
    assert not P.looks_like_photo(Image.fromarray(np.repeat(photo[..., :1], 3, -1).clip(0, 255).astype(np.uint8)))
    assert P.store_size(1920, 1080) == (683, 384, (0, 0, 1920, 1080))  # short side cut to 384, never enlarged
    assert P.store_size(300, 280) == (300, 280, (0, 0, 300, 280))
    w, h, box = P.store_size(3000, 1000)  # a panorama: centre 2:1
    assert (w, h) == (768, 384) and box == (500, 0, 2500, 1000)
    assert not set(s for s, *_ in P.SOURCES) & set(P.RESERVED)
    splits = {}
    for package, _, _, split in P.SOURCES:
        splits.setdefault(package, set()).add(split)
    assert all(len(s) == 1 for s in splits.values()) and {s for v in splits.values() for s in v} == set(P.SPLITS)


def test_photo_build_replaces_only_a_previous_pack(tmp_path, capsys):
    """``build --out X`` clears X only when it is missing, empty or a previous pack (manifest.csv)."""
    own = tmp_path / "mine"
    own.mkdir()
    (own / "thesis.txt").write_text("keep")
    with pytest.raises(SystemExit) as exit_info:  # refused before any download
        P.main(["build", "--out", str(own)])
    assert exit_info.value.code == 2 and "is not a photo pack" in capsys.readouterr().err
    assert (own / "thesis.txt").read_text() == "keep"
    pack = P.synthetic(tmp_path / "pack", per_split=1)
    P.clear_previous_pack(pack)
    assert not pack.exists()
    (tmp_path / "empty").mkdir()
    P.clear_previous_pack(tmp_path / "empty")  # an empty folder is fine (and kept)
    P.clear_previous_pack(tmp_path / "missing")
    assert (tmp_path / "empty").is_dir()


def test_validation_scores_as_eval_does(tmp_path):
    """The budgeted run's on-device hole PSNR is ``metrics.psnr`` (what eval reports), Telea's included."""
    from glcic_fast.evaluate import fill_baseline
    from glcic_fast.metrics import psnr
    from glcic_fast.train.budget import ValidationSet

    pack = P.synthetic(tmp_path / "pack", per_split=3, size=(48, 48))
    val = ValidationSet(pack / "val", 32, 24, 8, 16, torch.device("cpu"))
    images = (val.images * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)
    holes = val.masks[:, 0].numpy().astype(bool)
    telea = [fill_baseline("telea", i, h) for i, h in zip(images, holes)]
    assert val.telea_psnr == pytest.approx(np.mean([psnr(t, i, h) for t, i, h in zip(telea, images, holes)]), abs=1e-3)
    noisy = np.clip(images.astype(int) + np.random.default_rng(0).integers(-20, 21, images.shape), 0, 255)
    on_device = val._psnr(torch.from_numpy(noisy).permute(0, 3, 1, 2).float()).numpy()
    np.testing.assert_allclose(on_device, [psnr(n, i, h) for n, i, h in zip(noisy, images, holes)], atol=1e-3)


def test_gpu_train_script_rehearsal(tmp_path):
    """Every step of the one-command GPU run, on the CPU with tiny sizes (what CI runs)."""
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", str(REPO / "train" / "gpu_train.sh"), "--rehearse"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["MODEL_CARD.md", "demo.png", "eval.json", "eval.md", "log.jsonl", "model.safetensors",
                     "summary.json", "train.log"]  # at most 8 files: what the device tool returns
    from glcic_fast.checkpoint import load_checkpoint

    _, meta = load_checkpoint(out / "model.safetensors")
    summary = json.loads((out / "summary.json").read_text())
    assert meta["bn_recalibrated"] and meta["validation"] == summary["best"] and summary["plan"]["planned_steps"] >= 1
    runs = json.loads((out / "eval.json").read_text())["runs"]
    assert [r["settings"]["image_size"] for r in runs] == [64, 96]  # the trained size and a second one
    from glcic_fast.evaluate import baseline_unavailable

    assert ("fsr-fast" in runs[0]["results"]["paper"]) == (baseline_unavailable("fsr-fast") is None)
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, summary["step"] + 1))
    card = (out / "MODEL_CARD.md").read_text()
    assert "| step | hole PSNR (dB) |" in card and "glcic vs telea" in card and "synthetic" in card
    from PIL import Image

    assert Image.open(out / "demo.png").size == (96 * 3 + 8, 96)


def test_gpu_train_script_refuses_without_a_gpu_or_pack(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "o"), PHOTOS=str(tmp_path / "none"))
    proc = subprocess.run(["bash", str(REPO / "train" / "gpu_train.sh"), "600"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "at most 480" in proc.stderr
    if not torch.cuda.is_available():
        proc = subprocess.run(["bash", str(REPO / "train" / "gpu_train.sh"), "300"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "--rehearse" in proc.stderr
