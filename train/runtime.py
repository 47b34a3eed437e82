"""Where a training process runs: its device, the collective backend, and determinism.

Device and backend are chosen by a pure function of what was asked and what the machine has
(``choose_placement``), so the rules are tested for machines with no, one and several GPUs
on any machine:

* one process per GPU or none: under ``torchrun`` with more processes on a node than it has
  GPUs, ``auto`` puts every process on the CPU (two processes cannot share a GPU under
  NCCL), and ``cuda`` is an error that says how many processes would fit;
* the collective backend follows the device actually used: NCCL between GPUs (where this
  PyTorch has it), gloo between CPU processes.

Determinism (``--deterministic``): bit-for-bit reproducible training, and so bit-for-bit
resume, on CUDA too. What each device guarantees:

* CPU: always bit-for-bit (same machine, same thread count), with or without the flag;
* CUDA with ``deterministic``: bit-for-bit on the same GPU model and the same PyTorch / CUDA /
  cuDNN versions, with mixed precision on or off (bf16 autocast and the fp16 gradient
  scaler are deterministic once the kernels are): cuDNN and cuBLAS are restricted to
  deterministic algorithms, cuDNN's autotuner is off, cuBLAS gets a fixed workspace
  (``CUBLAS_WORKSPACE_CONFIG``), and any operation without a deterministic implementation
  raises instead of running;
* CUDA without it: the same batches, holes and RNG streams, but results may differ in the
  last bits between runs (cuDNN autotuning and atomic adds), so a resumed run is close to,
  not identical with, an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

CUBLAS_WORKSPACE = ":4096:8"  # the setting NVIDIA documents for reproducible cuBLAS results


@dataclass(frozen=True)
class Placement:
    """One process's device (``"cpu"`` or ``"cuda:N"``), its collective backend and why."""

    device: str
    backend: str  # "nccl" or "gloo" (used only when there are several processes)
    note: Optional[str] = None  # said to the user when auto had to fall back

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def choose_placement(
    requested: str, local_rank: int, local_world: int, cuda_count: int, nccl_available: bool = True
) -> Placement:
    """The device and backend for process ``local_rank`` of ``local_world`` on a node with ``cuda_count`` GPUs.

    ``requested`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Raises ``ValueError`` for a
    request the machine cannot meet, with what to do instead.
    """
    if not 0 <= local_rank < max(local_world, 1):
        raise ValueError(f"local rank {local_rank} is outside a node of {local_world} process(es)")

    def on_gpu(index: int) -> Placement:
        return Placement(f"cuda:{index}", "nccl" if nccl_available else "gloo")

    if requested == "cpu":
        return Placement("cpu", "gloo")
    if requested == "auto":
        if cuda_count == 0:
            return Placement("cpu", "gloo")
        if local_world > cuda_count:
            return Placement(
                "cpu", "gloo",
                note=f"{local_world} processes on this node but {cuda_count} GPU(s): every process trains on the CPU "
                f"(processes cannot share a GPU); start {cuda_count} process(es) per node to train on the GPU(s)",
            )
        return on_gpu(local_rank)
    if requested == "cuda":
        if cuda_count == 0:
            raise ValueError("--device cuda asked for, but this PyTorch sees no CUDA GPU; use --device cpu or auto")
        if local_world > cuda_count:
            raise ValueError(
                f"--device cuda with {local_world} processes on this node, but it has {cuda_count} GPU(s): "
                f"start at most {cuda_count} (torchrun --nproc-per-node {cuda_count}) or use --device cpu"
            )
        return on_gpu(local_rank)
    if requested.startswith("cuda:"):
        try:
            index = int(requested.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}") from None
        if not 0 <= index < cuda_count:
            raise ValueError(f"--device {requested}: this machine has {cuda_count} CUDA GPU(s) (cuda:0..cuda:{cuda_count - 1})"
                             if cuda_count else f"--device {requested}: this PyTorch sees no CUDA GPU")
        if local_world > 1:
            raise ValueError(f"--device {requested} would put all {local_world} processes on one GPU; use --device cuda")
        return on_gpu(index)
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")


def placement_here(requested: str) -> Placement:
    """``choose_placement`` for this process, from torchrun's environment and this machine's GPUs."""
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return choose_placement(requested, local_rank, local_world, cuda_count, dist.is_available() and dist.is_nccl_available())


def make_deterministic() -> None:
    """Restrict PyTorch to deterministic algorithms (see the module docstring for what this buys).

    ``CUBLAS_WORKSPACE_CONFIG`` is read when cuBLAS starts, so call this before the first
    CUDA operation of the process (``glcic-fast train --deterministic`` does); a value the
    user set is kept.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def seed_worker(worker_id: int) -> None:
    """Data-loader worker start: leave Ctrl-C to the main process, seed the global RNGs from torch's.

    The training data does not use the global RNGs (every sample is a pure function of the
    seed and its number), but anything a user plugs in then gets a reproducible stream too.
    """
    import random
    import signal

    import numpy as np
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
