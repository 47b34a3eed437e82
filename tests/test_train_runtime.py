"""Where training runs: device and backend for machines with no, one and several GPUs; CUDA runs.

The placement rules are a pure function, so every machine tests all of them; the runs that
need GPUs skip with the reason here and run in the GPU suite.
"""

from __future__ import annotations

import pytest
import torch

from glcic_fast.train.runtime import Placement, choose_placement
from conftest import HAS_CUDA
from test_train import _write_photos, restore_determinism, run_ddp  # noqa: F401 (an autouse fixture)

CUDA_COUNT = torch.cuda.device_count() if HAS_CUDA else 0


@pytest.mark.parametrize(
    "requested,rank,world,gpus,want",
    [
        # no GPU: everything on the CPU with gloo
        ("auto", 0, 1, 0, Placement("cpu", "gloo")),
        ("auto", 1, 2, 0, Placement("cpu", "gloo")),
        # one GPU, one process: on it; two processes cannot share it: both on the CPU (gloo)
        ("auto", 0, 1, 1, Placement("cuda:0", "nccl")),
        ("auto", 1, 2, 1, "cpu-with-note"),
        ("cpu", 0, 1, 1, Placement("cpu", "gloo")),
        # several GPUs: one per process, NCCL between them
        ("auto", 1, 2, 4, Placement("cuda:1", "nccl")),
        ("auto", 3, 4, 4, Placement("cuda:3", "nccl")),
        ("cuda", 2, 4, 8, Placement("cuda:2", "nccl")),
        ("cuda:3", 0, 1, 4, Placement("cuda:3", "nccl")),
        ("cpu", 1, 2, 4, Placement("cpu", "gloo")),
    ],
)
def test_placement_rules(requested, rank, world, gpus, want):
    got = choose_placement(requested, rank, world, gpus)
    if want == "cpu-with-note":
        assert (got.device, got.backend) == ("cpu", "gloo") and "2 processes" in got.note and "1 GPU" in got.note
    else:
        assert got == want


def test_nccl_only_where_available():
    assert choose_placement("auto", 0, 2, 2, nccl_available=False) == Placement("cuda:0", "gloo")


@pytest.mark.parametrize(
    "requested,rank,world,gpus,message",
    [
        ("cuda", 0, 1, 0, "sees no CUDA GPU"),
        ("cuda", 1, 2, 1, "at most 1"),  # rank 1 must not ask for a cuda:1 that does not exist
        ("cuda:1", 0, 1, 1, "has 1 CUDA GPU"),
        ("cuda:0", 0, 2, 2, "all 2 processes on one GPU"),
        ("cuda:x", 0, 1, 1, "auto, cpu, cuda or cuda:N"),
        ("tpu", 0, 1, 0, "auto, cpu, cuda or cuda:N"),
    ],
)
def test_placement_errors_say_what_to_do(requested, rank, world, gpus, message):
    with pytest.raises(ValueError, match=message):
        choose_placement(requested, rank, world, gpus)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU: two auto-placed processes on this machine's GPU(s)")
def test_ddp_auto_placement_on_this_gpu_machine(tmp_path):
    photos = _write_photos(tmp_path / "photos")
    proc = run_ddp(photos, tmp_path / "ddp", "auto")
    want = "on cpu via gloo" if CUDA_COUNT < 2 else "on cuda:{rank} via nccl"
    for rank in (0, 1):
        assert f"rank {rank} of 2 step 3 {want.format(rank=rank)} ok" in proc.stdout, proc.stdout[-2000:]
    if CUDA_COUNT < 2:
        assert "every process trains on the CPU" in proc.stdout


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU: deterministic kernels on CUDA")
def test_deterministic_cuda_training_repeats_bit_for_bit(tmp_path):
    from glcic_fast.train.trainer import Trainer
    from test_train import _options

    photos = _write_photos(tmp_path / "photos")
    nets = []
    for name in ("a", "b"):
        t = Trainer(_options(photos, tmp_path / name, device="cuda", deterministic=True, iters_c=2, iters_d=1,
                             iters_total=4, sample_every=0), log=lambda m: None)
        assert torch.are_deterministic_algorithms_enabled() and t.use_amp
        t.run()
        nets.append(t.completion.state_dict())
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])
