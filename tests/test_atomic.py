"""The one atomic-write helper: permissions, durability calls, cleanup of its own stale temps."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from glcic_fast.atomic import atomic_write, atomic_write_data, remove_stale_temps, temp_path


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_bytes_and_text_follow_the_umask(tmp_path, umask_027):
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_data(tmp_path / "b.txt", "hello")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01" and (tmp_path / "b.txt").read_text() == "hello"
    assert _mode(tmp_path / "a.bin") == umask_027 and _mode(tmp_path / "b.txt") == umask_027
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt"]


def test_a_writer_that_replaces_the_file_does_not_leave_0600(tmp_path, umask_027):
    # safetensors' save_file writes its own 0600 temporary and renames it over the path given
    from safetensors.torch import save_file

    atomic_write(tmp_path / "t.safetensors", lambda tmp: save_file({"w": torch.zeros(2)}, tmp))
    assert _mode(tmp_path / "t.safetensors") == umask_027


def test_checkpoints_and_states_follow_the_umask(tmp_path, umask_027, random_network):
    from glcic_fast.checkpoint import save_checkpoint
    from glcic_fast.train.state import save_state

    save_checkpoint(random_network, tmp_path / "m.safetensors")
    save_state(tmp_path / "s.safetensors", {"w": torch.ones(3)})
    assert _mode(tmp_path / "m.safetensors") == umask_027 and _mode(tmp_path / "s.safetensors") == umask_027


def test_file_and_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(a, b):
        events.append(("rename", os.path.basename(b)))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(tmp_path / "f.bin", b"data")
    atomic_write(tmp_path / "g.bin", lambda tmp: open(tmp, "wb").write(b"x"))
    for name in ("f.bin", "g.bin"):
        i = events.index(("rename", name))
        assert events[i - 1][0] == "fsync" and events[i - 1][1].endswith(".tmp")  # the data first
        assert events[i + 1] == ("fsync", tmp_path.name)  # then the folder entry


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    atomic_write(tmp_path / "f.txt", b"old")

    def broken(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "f.txt", broken)
    assert (tmp_path / "f.txt").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".model.safetensors.{dead_pid}-0123abcd.tmp"
        busy = tmp_path / f".model.safetensors.{live.pid}-89abcdef.tmp"
        other = tmp_path / f".other.bin.{dead_pid}-0123abcd.tmp"
        unrelated = tmp_path / ".model.safetensors.backup"
        for p in (stale, busy, other, unrelated):
            p.write_bytes(b"partial")
        atomic_write(tmp_path / "model.safetensors", b"new")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert stale.name not in left  # the dead writer's temp of this name went
        assert busy.name in left and other.name in left and unrelated.name in left
        assert remove_stale_temps(tmp_path) == [other]  # all names: only the dead writer's
    finally:
        live.kill()
        live.wait()


def test_temp_names_are_hidden_unique_and_beside_the_target(tmp_path):
    a, b = temp_path(tmp_path / "x.png"), temp_path(tmp_path / "x.png")
    assert a != b and a.parent == tmp_path and a.name.startswith(".x.png.") and a.name.endswith(".tmp")
