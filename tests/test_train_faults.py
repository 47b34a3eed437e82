"""Fault test: training killed with SIGKILL at random points, resumed until done.

For each seed, ``glcic-fast train`` runs in a subprocess and is killed (SIGKILL: no handler,
no cleanup) either after a random delay or the moment a checkpoint write has begun (its
temporary file appears), then resumed with ``--resume``, until a run finishes. It must end
with exactly the weights and optimiser state of an uninterrupted run, no partial or
temporary file anywhere in the run folder, and a log that has each step once.

``GLCIC_FAULT_SEEDS=N`` runs N seeds instead of the default 3 (e.g. 20 for a long soak).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from glcic_fast.train.state import load_state

from test_train import _write_photos

STEPS = 4
SEEDS = int(os.environ.get("GLCIC_FAULT_SEEDS", "3"))
MAX_KILLS = 2


def _command(photos: Path, out: Path, resume: bool) -> list[str]:
    return [
        sys.executable, "-m", "glcic_fast.cli", "train", "--data", str(photos), "--out", str(out),
        "--image-size", "64", "--local-size", "32", "--hole-min", "12", "--hole-max", "20", "--batch-size", "2",
        "--iters-c", "2", "--iters-d", "1", "--iters-total", str(STEPS), "--save-every", "2", "--sample-every", "3",
        "--keep-snapshots", "--workers", "0", "--threads", "1", "--device", "cpu", "--no-progress",
        *(["--resume"] if resume else []),
    ]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _writing(out: Path) -> bool:
    """True while a checkpoint or state write is under way (its temporary file exists)."""
    try:
        return any(e.name.endswith(".tmp") and ".safetensors." in e.name for e in os.scandir(out))
    except FileNotFoundError:
        return False


def _run_with_kills(photos: Path, out: Path, seed: int) -> list[str]:
    """Run to the end, SIGKILLing MAX_KILLS times (unless a run ends first); returns how each kill landed."""
    rng = random.Random(seed)
    plan = ["write" if (seed + i) % 2 == 0 else "time" for i in range(MAX_KILLS)]  # both kinds in every seed
    kills: list[str] = []
    while True:
        resume = (out / "train_state.safetensors").exists()
        proc = subprocess.Popen(_command(photos, out, resume), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env())
        if len(kills) < len(plan):
            in_write = plan[len(kills)] == "write"
            deadline = time.monotonic() + (90 if in_write else rng.uniform(1.0, 8.0))
            while proc.poll() is None and time.monotonic() < deadline:
                if in_write and _writing(out):
                    break
                time.sleep(0.001 if in_write else 0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append("in a checkpoint write" if in_write and _writing(out) else "at a random time")
        output = proc.communicate(timeout=300)[0].decode(errors="replace")
        if proc.returncode == 0:
            return kills
        assert proc.returncode == -signal.SIGKILL, output[-3000:]


def _final_tensors(out: Path) -> dict[str, torch.Tensor]:
    state = load_state(out / "train_state.safetensors")
    assert state["step"] == STEPS
    flat = {f"completion.{k}": v for k, v in state["completion"].items()}
    flat.update({f"discriminator.{k}": v for k, v in state["discriminator"].items()})
    for opt in ("opt_c", "opt_d"):
        for i, entries in state[opt]["state"].items():
            flat.update({f"{opt}.{i}.{k}": v for k, v in entries.items() if isinstance(v, torch.Tensor)})
    return flat


@pytest.fixture(scope="module")
def fault_photos(tmp_path_factory):
    return _write_photos(tmp_path_factory.mktemp("fault_photos"))


@pytest.fixture(scope="module")
def uninterrupted(fault_photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run(_command(fault_photos, out, False), check=True, capture_output=True, env=_env(), timeout=300)
    return _final_tensors(out)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_sigkill_at_random_points_resumes_to_the_same_weights(fault_photos, uninterrupted, tmp_path, seed):
    out = tmp_path / "run"
    kills = _run_with_kills(fault_photos, out, seed)
    print(f"seed {seed}: killed {len(kills)} time(s): {kills}")
    assert "in a checkpoint write" in kills, kills

    final = _final_tensors(out)
    assert final.keys() == uninterrupted.keys()
    different = [k for k in final if not torch.equal(final[k], uninterrupted[k])]
    assert not different, f"after kills {kills}: {different[:5]} differ from the uninterrupted run"

    # no partial or temporary file anywhere; every file written is complete
    from PIL import Image

    from glcic_fast.checkpoint import load_checkpoint

    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert not [p.name for p in files if p.name.endswith(".tmp") or p.name.startswith(".")], files
    for p in files:
        if p.suffix == ".safetensors" and p.name != "train_state.safetensors":
            load_checkpoint(p)
        elif p.suffix == ".png":
            Image.open(p).load()
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [f"model_step{s:07d}.safetensors" for s in (2, 4)]

    # the log has each step once, in order
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1)), (kills, [r.get("step") for r in records])
