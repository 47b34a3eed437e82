"""The training process's plumbing: RNG state to save and restore, a clean stop on Ctrl-C /
SIGTERM, the torchrun job it may be part of, and the log a resumed run cuts back."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..atomic import atomic_write
from .runtime import Placement


def capture_rng() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopRequest:
    """Ctrl-C / SIGTERM ask for a clean stop: finish the step, save, exit.

    A second Ctrl-C raises ``KeyboardInterrupt`` at once (no save: the state may be mid-step).
    """

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, _frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading_is_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(placement: Placement) -> Distributed:
    """Join the torchrun job described by the environment (if any), on ``placement``'s backend."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(placement.backend)
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def truncate_log(path: Path, step: int) -> int:
    """Cut ``log.jsonl`` back to the records of steps <= ``step`` (those a resume keeps).

    A killed run may have logged steps after its last save (and half a line); the resumed
    run trains those steps again, so without this they would appear twice. Returns the
    number of lines dropped.
    """
    if not path.is_file():
        return 0
    lines = path.read_bytes().split(b"\n")
    kept: list[bytes] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            break  # a line cut by the kill: it and anything after it go
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
            break
        kept.append(line)
    dropped = sum(1 for line in lines if line.strip()) - len(kept)
    if dropped:
        atomic_write(path, b"".join(line + b"\n" for line in kept))
    return dropped
