"""Training: hole sampler, losses, a CPU smoke run of the three phases, resume, DDP.

Everything runs on tiny images (64x64 crops, the smallest the context discriminator takes)
with batch 2 so the file stays around a minute or two on a 2-core CPU.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from glcic_fast.train.data import PhotoCropDataset, StepBatchSampler, list_images
from glcic_fast.train.holes import Box, sample_hole, sample_local_box, sample_training_masks
from glcic_fast.train.losses import (
    completion_loss,
    discriminator_loss,
    generator_adversarial_loss,
    joint_completion_loss,
)
from glcic_fast.train.trainer import TrainOptions, Trainer, phase_of, train

from conftest import DEVICES
from glcic_fast.train.runtime import CUBLAS_WORKSPACE

# cuBLAS reads its workspace setting when PyTorch first starts it: set it before any test uses
# CUDA, so the deterministic CUDA tests here hold whichever test ran CUDA first.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)



@pytest.fixture(autouse=True)
def restore_determinism():
    """--deterministic switches process-wide PyTorch settings; give later tests the defaults back."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


# ---- hole sampler -------------------------------------------------------------------------


@pytest.mark.parametrize("size,local,lo,hi", [(256, 128, 96, 128), (64, 32, 24, 32), (64, 40, 5, 9)])
def test_hole_sizes_bounds_and_local_region(size, local, lo, hi):
    rng = np.random.default_rng(1)
    heights, widths = set(), set()
    for _ in range(300):
        mask, hole, region = sample_hole(rng, size, local, lo, hi)
        assert mask.shape == (size, size) and mask.dtype == np.float32
        assert lo <= hole.h <= hi and lo <= hole.w <= hi
        heights.add(hole.h)
        widths.add(hole.w)
        assert region.h == region.w == local
        assert 0 <= region.y and region.y + local <= size and 0 <= region.x and region.x + local <= size
        assert region.contains(hole)
        # the mask is exactly the hole rectangle
        assert mask.sum() == hole.h * hole.w
        assert mask[hole.y : hole.y + hole.h, hole.x : hole.x + hole.w].all()
    # both ends of the inclusive range are drawn
    assert min(heights) == lo and max(heights) == hi and min(widths) == lo and max(widths) == hi


def test_hole_sampler_rejects_impossible_sizes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        sample_hole(rng, 64, 32, 24, 40)  # hole larger than the local region
    with pytest.raises(ValueError):
        sample_hole(rng, 64, 80, 24, 32)  # local region larger than the image
    with pytest.raises(ValueError):
        sample_hole(rng, 64, 32, 30, 20)


def test_md_is_independent_of_mc():
    rng = np.random.default_rng(3)
    pairs = [sample_training_masks(rng, 64, 32, 8, 16) for _ in range(400)]
    yc = np.array([c.y for _, c, _ in pairs], float)
    yd = np.array([d.y for _, _, d in pairs], float)
    assert any(c != d for _, c, d in pairs)
    # independent draws: no correlation between where Mc and Md sit
    assert abs(np.corrcoef(yc, yd)[0, 1]) < 0.15
    for _, _, d in pairs:
        assert 0 <= d.y <= 32 and 0 <= d.x <= 32 and d.h == d.w == 32


def test_local_box_is_uniform_over_positions():
    rng = np.random.default_rng(0)
    ys = [sample_local_box(rng, 8, 4).y for _ in range(2000)]
    counts = np.bincount(ys, minlength=5)
    assert counts.min() > 300  # 5 positions, ~400 each


def test_box_contains():
    assert Box(0, 0, 10, 10).contains(Box(2, 3, 8, 7))
    assert not Box(0, 0, 10, 10).contains(Box(2, 3, 9, 7))


# ---- losses ----------------------------------------------------------------------------------


def test_completion_loss_hand_computed():
    out = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 3, 2, 2)
    target[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0])  # in the hole
    target[0, :, 1, 1] = 100.0  # outside the hole: ignored
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 1
    mask[0, 0, 0, 1] = 1
    # hole values: (1 + 4 + 9) + 0 over 2 pixels x 3 channels
    assert completion_loss(out, target, mask).item() == pytest.approx(14.0 / 6.0)
    assert completion_loss(out, target, torch.zeros_like(mask)).item() == 0.0


def test_discriminator_and_adversarial_losses_hand_computed():
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([-1.0, 0.0])
    # BCE(x, 1) = log(1 + e^-x); BCE(x, 0) = log(1 + e^x)
    want_real = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    want_fake = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(want_real + want_fake, rel=1e-6)
    assert generator_adversarial_loss(fake).item() == pytest.approx(
        (math.log(1 + math.exp(1)) + math.log(2)) / 2, rel=1e-6
    )
    assert joint_completion_loss(torch.tensor(0.5), torch.tensor(2.0), 0.0004).item() == pytest.approx(0.5008)


def test_phase_boundaries():
    o = TrainOptions(iters_c=3, iters_d=2, iters_total=7)
    assert [phase_of(s, o) for s in range(7)] == [1, 1, 1, 2, 2, 3, 3]


# ---- data ------------------------------------------------------------------------------------


def _write_photos(folder: Path, count: int = 4) -> Path:
    """Small synthetic 'photos' in several formats: an orange scene (gradient plus patches).

    One dominant colour family makes the smoke run's first lesson (the colours) learnable in
    a few steps, so "phase-1 loss goes down" is a reliable check.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    base = np.array([0.85, 0.4, 0.2])
    for i in range(count):
        h, w = 72 + 4 * i, 80
        yy, xx = np.mgrid[0:h, 0:w] / 80.0
        img = base + 0.1 * np.stack([yy, xx, 0.5 * (yy + xx)], -1) - 0.05
        for _ in range(3):
            y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
            img[y : y + 20, x : x + 20] = base + rng.uniform(-0.1, 0.1, 3)
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        name = ["a.png", "b.jpg", "sub/c.webp", "sub/d.png"][i % 4] if i < 4 else f"e{i}.png"
        Image.fromarray(arr).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _write_photos(tmp_path_factory.mktemp("photos"))


def test_dataset_is_recursive_deterministic_and_sized(photos):
    files = list_images(photos)
    assert [f.relative_to(photos).as_posix() for f in files] == ["a.png", "b.jpg", "sub/c.webp", "sub/d.png"]
    ds = PhotoCropDataset(files, 64, 32, 12, 20, seed=5)
    img, mask, corner_c, corner_d, skipped = ds[6]
    assert skipped.item() == -1
    assert img.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
    assert 0 <= img.min() and img.max() <= 1
    y, x = corner_c.tolist()
    hole = mask[0].nonzero()
    assert hole[:, 0].min() >= y and hole[:, 0].max() < y + 32 and hole[:, 1].min() >= x and hole[:, 1].max() < x + 32
    again = PhotoCropDataset(files, 64, 32, 12, 20, seed=5)[6]
    assert all(torch.equal(a, b) for a, b in zip((img, mask, corner_c, corner_d, skipped), again))
    # each epoch visits every image once
    assert sorted(ds.image_index(k) for k in range(4, 8)) == [0, 1, 2, 3]


def test_step_sampler_shards_and_resumes():
    full = list(StepBatchSampler(2, 0, 4, rank=0, world=2))
    other = list(StepBatchSampler(2, 0, 4, rank=1, world=2))
    assert full[0] == [0, 1] and other[0] == [2, 3] and full[1] == [4, 5]
    assert not set(sum(full, [])) & set(sum(other, []))
    assert list(StepBatchSampler(2, 2, 4, rank=0, world=2)) == full[2:]


# ---- training runs ---------------------------------------------------------------------------


def _options(data: Path, out: Path, **kw) -> TrainOptions:
    base = dict(
        data=str(data), out=str(out), image_size=64, local_size=32, hole_min=12, hole_max=20,
        iters_c=5, iters_d=1, iters_total=7, batch_size=2, workers=0, save_every=3,
        sample_every=6, seed=0, progress=False, threads=1, device="cpu",
    )
    base.update(kw)
    return TrainOptions(**base)


def _fixed_batch_mse(trainer: Trainer) -> float:
    """The hole MSE of a copy of the network on four fixed held-back samples."""
    import copy

    from glcic_fast.train.trainer import network_input

    ds = trainer.make_dataset(seed=12345)
    items = [ds[i] for i in range(4)]
    images = torch.stack([it[0] for it in items])
    masks = torch.stack([it[1] for it in items])
    net = copy.deepcopy(trainer.completion).train()
    with torch.no_grad():
        return completion_loss(net(network_input(images, masks, trainer.mean_t)), images, masks).item()


def test_smoke_three_phases_loss_goes_down_and_checkpoint_loads(photos, tmp_path):
    import json

    import glcic_fast
    from glcic_fast.checkpoint import read_metadata

    trainer = Trainer(_options(photos, tmp_path / "run"), log=lambda m: None)
    before = _fixed_batch_mse(trainer)
    result = trainer.run()
    after = _fixed_batch_mse(trainer)
    assert result["step"] == 7 and not result["stopped"]
    assert after < 0.5 * before, (before, after)

    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == [1] * 5 + [2] + [3]
    assert all("loss_mse" in r for r in records if r["phase"] == 1)
    assert all("loss_d" in r and "loss_mse" not in r for r in records if r["phase"] == 2)
    assert all({"loss_d", "loss_adv", "loss_mse"} <= set(r) for r in records if r["phase"] == 3)
    assert (tmp_path / "run" / "samples" / "step0000006.png").is_file()

    model = tmp_path / "run" / "model.safetensors"
    meta = read_metadata(model)
    assert meta["training_step"] == 7 and meta["image_size"] == 64 and meta["hole_range"] == [12, 20]
    assert meta["steps_per_phase"] == {"completion": 5, "discriminator": 1, "joint": 1}
    assert meta["mean"] == pytest.approx(trainer.mean)
    completer = glcic_fast.load(str(model), backend="torch", device="cpu")
    image = (np.random.default_rng(0).uniform(0, 1, (40, 44, 3)) * 255).astype(np.uint8)
    hole = np.zeros((40, 44), bool)
    hole[10:25, 12:30] = True
    out = completer.complete(image, hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], image[~hole])


@pytest.mark.parametrize("device", DEVICES)
def test_resume_is_bit_for_bit(photos, tmp_path, device):
    """CPU: always bit-for-bit. CUDA: with --deterministic, mixed precision on (see train.runtime)."""
    # split at step 2: phase 1 and 2 before the save, phase 3 after it
    opts = dict(iters_c=1, iters_d=1, iters_total=3, save_every=100, sample_every=0, workers=1,
                device=device, deterministic=device == "cuda", amp=True)
    straight = Trainer(_options(photos, tmp_path / "straight", **opts), log=lambda m: None)
    assert straight.device.type == device and straight.use_amp == (device == "cuda")
    straight.run()

    first = train(_options(photos, tmp_path / "split", stop_after=2, **opts), log=lambda m: None)
    assert first["step"] == 2
    resumed = Trainer(_options(photos, tmp_path / "split", **opts), resume=str(tmp_path / "split" / "train_state.safetensors"), log=lambda m: None)
    assert resumed.step == 2
    resumed.run()
    assert resumed.step == 3
    for a, b in ((straight.completion, resumed.completion), (straight.discriminator, resumed.discriminator)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    sa, sb = straight.opt_c.state_dict()["state"], resumed.opt_c.state_dict()["state"]
    assert all(torch.equal(sa[i]["acc_delta"], sb[i]["acc_delta"]) for i in sa)


def test_resume_refuses_to_move_trained_phases(photos, tmp_path):
    train(_options(photos, tmp_path / "run", iters_c=1, iters_d=1, iters_total=3, stop_after=1, sample_every=0), log=lambda m: None)
    state = str(tmp_path / "run" / "train_state.safetensors")
    with pytest.raises(ValueError, match="already trained"):
        Trainer(_options(photos, tmp_path / "run", iters_c=0, iters_d=1, iters_total=3), resume=state, log=lambda m: None)
    # moving a boundary that no trained step has reached is fine (step 1 is still phase 1's)
    t = Trainer(_options(photos, tmp_path / "run", iters_c=4, iters_d=2, iters_total=8), resume=state, log=lambda m: None)
    assert (t.opts.iters_c, t.opts.iters_d, t.opts.iters_total, t.step) == (4, 2, 8, 1)
    # phase lengths not given: the saved run's
    t = Trainer(_options(photos, tmp_path / "run", iters_c=None, iters_d=None, iters_total=None), resume=state, log=lambda m: None)
    assert (t.opts.iters_c, t.opts.iters_d, t.opts.iters_total) == (1, 1, 3)
    assert t.opts.learning_rate == 1.0 and t.opt_c.param_groups[0]["lr"] == 1.0
    # a new learning rate on resume reaches both optimisers
    t = Trainer(_options(photos, tmp_path / "run", lr=0.25), resume=state, log=lambda m: None)
    assert t.opts.lr == 0.25 and {g["lr"] for g in t.opt_c.param_groups + t.opt_d.param_groups} == {0.25}


def test_train_cli_and_resume_flag(photos, tmp_path):
    from glcic_fast.cli import main

    out = tmp_path / "cli"
    common = ["train", "--data", str(photos), "--out", str(out), "--image-size", "64", "--local-size", "32",
              "--hole-min", "12", "--hole-max", "20", "--batch-size", "2", "--workers", "0", "--no-progress",
              "--threads", "1", "--sample-every", "0"]
    assert main(common + ["--iters-c", "1", "--iters-d", "0", "--iters-total", "2", "--stop-after", "1"]) == 0
    assert main(common + ["--resume"]) == 0  # keeps the saved phase lengths: ends at step 2
    from glcic_fast.checkpoint import read_metadata

    assert read_metadata(out / "model.safetensors")["training_step"] == 2
    assert main(["train", "--data", str(photos), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from glcic_fast.train.trainer import TrainOptions, Trainer
    data, out, device = sys.argv[1], sys.argv[2], sys.argv[3]
    opts = TrainOptions(data=data, out=out, image_size=64, local_size=32, hole_min=12, hole_max=20,
                        iters_c=1, iters_d=1, iters_total=3, batch_size=4, workers=0, save_every=100,
                        sample_every=0, progress=False, threads=1, device=device)
    t = Trainer(opts, log=lambda m: print(m, flush=True))
    t.run()
    # every process must hold the same completion network (DDP averaged the gradients)
    flat = torch.cat([p.detach().flatten() for p in t.completion.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(t.dist.world)]
    torch.distributed.all_gather(gathered, flat)
    assert all(torch.equal(g, gathered[0]) for g in gathered), "ranks diverged"
    backend = torch.distributed.get_backend()
    print(f"rank {t.dist.rank} of {t.dist.world} step {t.step} on {t.device} via {backend} ok", flush=True)
    torch.distributed.destroy_process_group()
    """
)


def run_ddp(photos: Path, out: Path, device: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun`` the training script above with ``processes`` processes on this machine."""
    script = out.parent / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous (torchrun's port 0 hangs)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", f"--master-port={port}",
         "--master-addr=127.0.0.1", str(script), str(photos), str(out), device],
        capture_output=True, text=True, timeout=170, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_ddp_two_gloo_processes(photos, tmp_path):
    # Two CPU processes: gloo on any machine, whatever GPUs it has (see test_train_runtime for auto).
    proc = run_ddp(photos, tmp_path / "ddp", "cpu")
    assert "rank 0 of 2 step 3 on cpu via gloo ok" in proc.stdout and "rank 1 of 2 step 3 on cpu via gloo ok" in proc.stdout
    from glcic_fast.checkpoint import read_metadata

    meta = read_metadata(tmp_path / "ddp" / "model.safetensors")
    assert meta["training_step"] == 3 and meta["batch_size"] == 4


def test_recalibrate_batchnorm_changes_only_statistics(photos):
    from glcic_fast import CompletionNetwork
    from glcic_fast.train.trainer import recalibrate_batchnorm

    torch.manual_seed(0)
    net = CompletionNetwork()
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    ds = PhotoCropDataset(list_images(photos), 64, 32, 12, 20, seed=1)
    recalibrate_batchnorm(net, ds, [0.5, 0.5, 0.5], batches=2, batch_size=2)
    assert not net.training
    bn = net.layers[0].bn
    assert bn.momentum == 0.1 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())


def test_zero_unreached_dilated_taps_keeps_the_training_size_output():
    from glcic_fast import CompletionNetwork
    from glcic_fast.train.trainer import zero_unreached_dilated_taps

    torch.manual_seed(0)
    net = CompletionNetwork().eval()
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        before = net(x)
        changed = zero_unreached_dilated_taps(net, 64)
        after = net(x)
    assert changed == [9]  # the dilation-16 layer; its +-16 taps only read padding on 16x16 maps
    w = net.layers[9].conv.weight
    assert w[:, :, 1, 1].abs().sum() > 0 and w[:, :, 0].abs().sum() == 0 and w[:, :, :, 2].abs().sum() == 0
    assert torch.equal(before, after)
    assert zero_unreached_dilated_taps(CompletionNetwork(), 256) == []  # at the paper's size every tap is used
