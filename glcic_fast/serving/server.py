"""A running Triton Inference Server process: start on given (or free) ports, wait until it is
ready, stop it cleanly.

    with TritonServer("model_repository/", find_server()) as server:
        print(server.endpoints.http_url)

The process gets its own session (process group), so Ctrl-C in a terminal reaches only us and
we stop the server in order: SIGINT (Triton finishes in-flight requests, refuses new ones, for
up to ``exit_timeout`` seconds), then SIGKILL for whatever of its group is left (the python
backend's stub processes included). Its log goes to a file; errors quote its end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .environment import ServerEnvironment, ServerSetupError


class ServerStartError(RuntimeError):
    """The server exited or did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int

    def _url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'127.0.0.1' if host in ('0.0.0.0', '[::]') else host}:{port}"

    @property
    def http_url(self) -> str:
        return self._url(self.http_port)

    @property
    def grpc_url(self) -> str:
        return self._url(self.grpc_port)

    @property
    def metrics_url(self) -> str:
        return f"http://{self._url(self.metrics_port)}/metrics"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports nothing listens on now (the OS picks; a race is retried by start)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# Runs first in the server's process, then becomes tritonserver (exec keeps the setting): Linux
# sends it SIGTERM (Triton's orderly stop) when the thread that started it dies, so a crashed or
# killed parent leaves no server behind. A separate tiny program rather than Popen's
# preexec_fn, which can deadlock in a parent with threads (onnxruntime's, gRPC's).
_STOP_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() == int(sys.argv[1]):  # the parent may have died before prctl\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still running (zombies excluded), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(int(stat.parent.name))
    return members


def _kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL what is left of the process group we started (the python backend's stubs of a
    server that died or was killed) and wait until none of it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if not Path("/proc").is_dir() or not _live_members(pgid):
            return
        time.sleep(0.05)


class TritonServer:
    """One ``tritonserver`` process serving ``repository``. Ports 0 mean "pick free ones" (and a
    later ``start`` after ``stop`` reuses the ones picked, as a restarted server would)."""

    def __init__(self, repository: str | os.PathLike, server: ServerEnvironment, host: str = "127.0.0.1",
                 http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002, exit_timeout: int = 10,
                 log_path: Optional[str | os.PathLike] = None, extra_args: tuple[str, ...] = ()):
        self.repository = Path(repository).absolute()
        if not self.repository.is_dir():
            raise ServerSetupError(f"model repository {self.repository} is not a folder")
        self.server = server
        self.host = host
        self.ports = (http_port, grpc_port, metrics_port)
        self.exit_timeout = exit_timeout
        self.extra_args = tuple(extra_args)
        self._workdir: Optional[Path] = None
        self._own_log = log_path is None
        self.log_path: Optional[Path] = Path(log_path) if log_path else None
        self.process: Optional[subprocess.Popen] = None
        self.endpoints: Optional[Endpoints] = None
        self._shm_prefix = f"glcic_serve_{os.getpid()}_{id(self):x}_"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> Endpoints:
        """Start and wait until every model is ready; ``ServerStartError`` with the log's end if not."""
        if self.running:
            assert self.endpoints is not None
            return self.endpoints
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="glcic-serve-"))
            if self._own_log:
                self.log_path = self._workdir / "tritonserver.log"
        folder = self._workdir / "backends"
        # Prepared once and kept across restarts (a dying stub may still hold its file); None
        # for a server that brings its own backends.
        backends = folder if folder.exists() else self.server.prepare_backends(folder)
        attempts = 3 if 0 in self.ports else 1  # free ports can be taken between choosing and binding
        for attempt in range(attempts):
            chosen = iter(free_ports(self.ports.count(0), self.host))
            ports = [p or next(chosen) for p in self.ports]
            self.endpoints = Endpoints(self.host, *ports)
            self._spawn(backends)
            try:
                self.wait_ready(timeout)
                self.ports = (ports[0], ports[1], ports[2])  # a restart comes back on the same ports
                return self.endpoints
            except ServerStartError as e:
                self.stop()
                if attempt + 1 == attempts or "address already in use" not in str(e).lower():
                    self._cleanup()
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, backends: Optional[Path]) -> None:
        assert self.endpoints is not None and self.log_path is not None
        e = self.endpoints
        args = [
            sys.executable, "-I", "-S", "-c", _STOP_WITH_PARENT, str(os.getpid()),
            str(self.server.tritonserver), f"--model-repository={self.repository}",
            f"--http-address={self.host}", f"--grpc-address={self.host}", f"--metrics-address={self.host}",
            f"--http-port={e.http_port}", f"--grpc-port={e.grpc_port}", f"--metrics-port={e.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout}", "--strict-readiness=true", "--exit-on-error=true",
            "--allow-gpu-metrics=false",
        ]
        if backends is not None:
            args.append(f"--backend-directory={backends}")
        # Our own prefix for the python backend's shared-memory regions, so stop() can remove
        # what a killed server leaves in /dev/shm (and only that).
        args.append(f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}")
        args += self.extra_args
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.server.process_env(), cwd=self._workdir, start_new_session=True)
        finally:
            log.close()

    def wait_ready(self, timeout: float = 180.0) -> None:
        assert self.endpoints is not None
        url = f"http://{self.endpoints.http_url}/v2/health/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerStartError(f"tritonserver exited (status {code}) before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        raise ServerStartError(f"tritonserver was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """SIGINT, wait up to ``timeout`` (default: the exit timeout + 5 s), then SIGKILL the group.

        Returns the server's exit status (None if it was not started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None and (timeout is None or timeout > 0):
            process.send_signal(signal.SIGINT)
            try:
                process.wait(self.exit_timeout + 5 if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(process.pid)  # the server if it is still up, and any stub left behind
        code = process.wait()
        self.process = None
        for region in Path("/dev/shm").glob(f"{self._shm_prefix}*"):
            region.unlink(missing_ok=True)
        return code

    def kill(self) -> None:
        """Stop at once, in-flight requests and all (what a crash looks like to clients)."""
        self.stop(timeout=0)

    def _cleanup(self) -> None:
        if self._workdir is not None and self._own_log:
            shutil.rmtree(self._workdir, ignore_errors=True)
        elif self._workdir is not None:
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)
        self._workdir = None

    def close(self) -> None:
        self.stop()
        self._cleanup()

    def __enter__(self) -> "TritonServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- diagnostics ----------------------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        # The NVML/DCGM warnings of a CPU-only machine are noise next to the real error.
        useful = [t for t in text if "NVML" not in t and "DCGM" not in t and "CudaDriverHelper" not in t]
        return "\n".join(useful[-lines:])
