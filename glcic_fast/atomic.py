"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Every file glcic-fast writes (checkpoints, training states, engines, ONNX models, images,
reports, logs) goes through ``atomic_write`` (``atomic_write_bytes`` for a writer that takes a
path, ``atomic_write_data`` for bytes or text):

1. write to a temporary file *in the same folder* (so the rename below never crosses a file
   system), named ``.NAME.<pid>-<8 hex>.tmp``;
2. give it the mode a plain ``open()`` would (0666 minus the umask), also when the writer
   replaced the file under us (safetensors' ``save_file`` writes its own 0600 temp and renames
   it over ours);
3. ``fsync`` the file, ``rename`` it over ``NAME``, ``fsync`` the folder: after a power cut the
   folder holds either the old file or the complete new one, never an empty or partial one;
4. on any error (or Ctrl-C) remove the temporary file.

A process killed with SIGKILL cannot clean up, so each write first removes the stale
temporaries of the same ``NAME`` left by processes that no longer exist (a pid still alive may
be writing right now, so its temporaries are left alone).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
from pathlib import Path
from typing import Callable, Union

Writer = Callable[[str], None]
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_active: set[str] = set()  # this process's temporaries being written now (threads may write at once)
_active_lock = threading.Lock()


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.NAME.<pid>-<random>.tmp``."""
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: Union[str, os.PathLike], name: str | None = None) -> list[Path]:
    """Delete the temporaries of ``name`` (all names if None) in ``folder`` whose writer is gone.

    Our own process's temporaries are removed too unless a write is using them now.
    Returns the paths removed.
    """
    removed: list[Path] = []
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m.group("name") != name):
            continue
        pid = int(m.group("pid"))
        with _active_lock:
            in_use = entry.path in _active
        if in_use or (pid != os.getpid() and _pid_alive(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _fsync_path(path: Union[str, os.PathLike], directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open folders; the rename is still atomic
            return
        raise
    try:
        os.fsync(fd)
    except OSError as e:
        # Folders on some file systems (and some FUSE mounts) refuse fsync; nothing to do then.
        if not (directory and e.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def atomic_write(path: Union[str, os.PathLike], content: Union[bytes, bytearray, memoryview, Writer]) -> Path:
    """Write ``content`` (bytes, or ``write(tmp_path)`` that writes the file) to ``path`` atomically.

    The folder is created if needed. Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = temp_path(path)
    with _active_lock:
        _active.add(str(tmp))
    try:
        # O_EXCL: never reuse a name; 0o666 lets the kernel apply the umask, as open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        try:
            if isinstance(content, (bytes, bytearray, memoryview)):
                view = memoryview(content).cast("B")
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
        finally:
            os.close(fd)
        if not isinstance(content, (bytes, bytearray, memoryview)):
            content(str(tmp))
            if not tmp.exists():
                raise RuntimeError(f"writing {path}: the writer left no file at {tmp}")
            if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
                os.chmod(tmp, mode)  # the writer replaced our file with its own (e.g. 0600)
            _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        with _active_lock:
            _active.discard(str(tmp))
    return path


def atomic_write_bytes(path: Union[str, os.PathLike], write: Writer) -> Path:
    """Call ``write(tmp_path)`` to write the file, then put it at ``path`` atomically."""
    return atomic_write(path, write)


def atomic_write_data(path: Union[str, os.PathLike], data: Union[bytes, str]) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically."""
    return atomic_write(path, data.encode("utf-8") if isinstance(data, str) else data)
