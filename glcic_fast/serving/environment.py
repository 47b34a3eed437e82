"""Where the Triton Inference Server comes from, and the Python its python-backend models run in.

Two kinds of server:

- **a server environment**: a virtual environment holding the ``nvidia-pytriton`` wheel, which
  bundles ``tritonserver`` (Triton 2.51) with its python backend, plus numpy < 2 and onnxruntime
  for our python-backend models. It must be its own environment: that python backend returns
  empty outputs when the models' Python has numpy 2 (measured: numpy 1.26 works), and the wheel
  pins numpy < 2, while glcic-fast itself runs on numpy 2. ``create_server_env`` builds one
  (``glcic-fast serve`` does on first use, in ``~/.cache/glcic-fast/``); ``--server-env`` /
  ``$GLCIC_TRITON_SERVER_ENV`` names another.
- **a ``tritonserver`` on PATH** (NVIDIA's container, a system install): used as it is, with its
  own backends and Python.

How a server environment is made to run (what ``ServerEnvironment.process_env`` and
``prepare_backends`` do, and why):

- the wheel ships the python backend's stub process for each Python version under
  ``pytriton/tritonserver/python_backend_stubs/3.X/``; the backend looks for it in its own
  folder, so each start copies the backend and the matching stub into a fresh backend folder;
- the stub and backend find the wheel's bundled libraries (``nvidia_pytriton.libs``) through
  a relative rpath, which the copies lose: ``LD_LIBRARY_PATH`` names that folder, and the
  folder of the environment's ``libpython3.X.so.1.0``, which the stub embeds;
- the stub's embedded Python ignores ``PYTHONPATH``; it finds its prefix from ``python3`` on
  ``PATH``, so the environment's ``bin`` goes first on ``PATH`` and the models import the
  environment's numpy and onnxruntime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..atomic import atomic_write_data
from ..cache import user_cache_dir

PYTRITON_VERSION = "0.7.0"  # bundles Triton Inference Server 2.51
SERVER_ENV_VAR = "GLCIC_TRITON_SERVER_ENV"
MARKER = "glcic-fast-server-env.json"  # written last: an environment without it is incomplete
IN_PROGRESS = "glcic-fast-server-env.partial"  # written first: the folder is ours to remove and redo

_PROBE = r"""
import importlib.metadata as md, importlib.util, json, sys, sysconfig
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
spec = importlib.util.find_spec("pytriton")
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "soname": sysconfig.get_config_var("INSTSONAME"),
    "pytriton": list(spec.submodule_search_locations)[0] if spec else None,
    "versions": {n: version(n) for n in ("nvidia-pytriton", "numpy", "onnxruntime", "onnxruntime-gpu")},
}))
"""


class ServerSetupError(RuntimeError):
    """No usable Triton Inference Server here; the message says what to do."""


def default_env_dir() -> Path:
    """In the user's cache whatever ``GLCIC_FAST_CACHE`` says (see ``glcic_fast.cache``)."""
    return user_cache_dir() / f"triton-server-py{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass
class ServerEnvironment:
    """A ``tritonserver`` and what its process needs to run our models."""

    tritonserver: Path
    description: str
    env_dir: Optional[Path] = None  # the server environment (None: a tritonserver on PATH)
    python: Optional[str] = None  # "3.X" of the server environment
    libpython_dir: Optional[Path] = None
    versions: dict = field(default_factory=dict)  # package versions in the server environment

    @property
    def wheel_root(self) -> Optional[Path]:
        return self.tritonserver.parent.parent if self.env_dir else None  # .../pytriton/tritonserver

    def prepare_backends(self, folder: Path) -> Optional[Path]:
        """A backend folder for this server (None: the server's default). See the module doc."""
        if self.wheel_root is None:
            return None
        python_dir = folder / "python"
        python_dir.mkdir(parents=True, exist_ok=True)
        shipped = self.wheel_root / "backends" / "python"
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(shipped / name, python_dir / name)
        stub = self.wheel_root / "python_backend_stubs" / str(self.python) / "triton_python_backend_stub"
        shutil.copy2(stub, python_dir / "triton_python_backend_stub")
        return folder

    def process_env(self) -> dict[str, str]:
        """The environment variables to start ``tritonserver`` with."""
        env = dict(os.environ)
        if self.env_dir is None:
            return env
        assert self.wheel_root is not None
        libs = [str(self.wheel_root.parent.parent / "nvidia_pytriton.libs")]
        if self.libpython_dir:
            libs.append(str(self.libpython_dir))
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        env["PATH"] = os.pathsep.join([str(self.env_dir / "bin"), env.get("PATH", "")])
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        return env

    def check_runtime(self, runtime: str, device: str = "cpu") -> None:
        """Raise ``ServerSetupError`` if this environment cannot run a repository's network."""
        if self.env_dir is None:
            return  # a tritonserver on PATH brings its own backends and Python: docs/triton-server.md
        if runtime == "tensorrt":
            raise ServerSetupError(
                "the tritonserver of nvidia-pytriton has no TensorRT backend: serve an engine's repository with "
                "NVIDIA's container or a full Triton install (--tritonserver /opt/tritonserver/bin/tritonserver), "
                "or export the checkpoint with --runtime onnxruntime"
            )
        if runtime != "onnxruntime":
            return
        have = self.versions.get("onnxruntime-gpu" if device == "cuda" else "onnxruntime") or self.versions.get("onnxruntime-gpu")
        if not have:
            package = "onnxruntime-gpu" if device == "cuda" else "onnxruntime"
            raise ServerSetupError(
                f"the server environment {self.env_dir} has no {package}, which the onnxruntime runtime needs: "
                f"{self.env_dir / 'bin' / 'python'} -m pip install {package}"
            )


def _probe(python: Path) -> dict:
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise ServerSetupError(f"cannot run {python} to inspect the server environment ({e})") from None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _libpython_dir(info: dict) -> Optional[Path]:
    """The folder of the ``libpython3.X.so.1.0`` the stub embeds (None: the system's, via ld.so)."""
    soname = info.get("soname") or f"libpython{info['python']}.so.1.0"
    if info.get("libdir") and (Path(info["libdir"]) / soname).exists():
        return Path(info["libdir"])
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        cache = ""
    if soname in cache:
        return None
    raise ServerSetupError(
        f"the python backend's stub embeds Python {info['python']} from {soname}, which is not installed: "
        f"install the shared library (e.g. apt-get install libpython{info['python']}) or make the server environment "
        "with a Python built with --enable-shared"
    )


def server_from_env(env_dir: str | os.PathLike) -> ServerEnvironment:
    """Check a server environment (a virtual environment with nvidia-pytriton) and describe it."""
    env_dir = Path(env_dir).absolute()
    python = env_dir / "bin" / "python"
    if not python.exists():
        raise ServerSetupError(f"{env_dir} is not a Python environment (no bin/python); create one with glcic-fast serve --setup-env")
    info = _probe(python)
    versions = info["versions"]
    if not info["pytriton"] or not versions.get("nvidia-pytriton"):
        raise ServerSetupError(f"{env_dir} has no nvidia-pytriton (the wheel that bundles tritonserver): "
                               f"{python} -m pip install nvidia-pytriton=={PYTRITON_VERSION}")
    numpy = versions.get("numpy") or "0"
    if int(numpy.split(".")[0]) >= 2:
        raise ServerSetupError(
            f"{env_dir} has numpy {numpy}; the python backend bundled in nvidia-pytriton returns empty outputs with "
            f"numpy 2: {python} -m pip install 'numpy<2'"
        )
    root = Path(info["pytriton"]) / "tritonserver"
    stub = root / "python_backend_stubs" / info["python"] / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerSetupError(f"nvidia-pytriton {versions['nvidia-pytriton']} ships no python backend stub for Python "
                               f"{info['python']}; make the server environment with another Python (3.8-3.13)")
    return ServerEnvironment(root / "bin" / "tritonserver", f"nvidia-pytriton {versions['nvidia-pytriton']} in {env_dir}",
                             env_dir, info["python"], _libpython_dir(info), versions)


def server_packages(onnxruntime_version: Optional[str] = None, gpu: bool = False) -> list[str]:
    """What ``create_server_env`` installs. onnxruntime is pinned to the version glcic-fast runs
    here, so served images equal local ones byte for byte."""
    package = "onnxruntime-gpu" if gpu else "onnxruntime"
    pin = f"=={onnxruntime_version}" if onnxruntime_version else ""
    return [f"nvidia-pytriton=={PYTRITON_VERSION}", "numpy>=1.23,<2", package + pin]


def local_onnxruntime_version() -> Optional[str]:
    import importlib.metadata as md

    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def create_server_env(env_dir: str | os.PathLike, gpu: bool = False, python: str = sys.executable,
                      log: Callable[[str], None] = print) -> ServerEnvironment:
    """Make a server environment in ``env_dir`` (a virtual environment; pip downloads ~250 MB).

    An existing complete one (marker file present) is checked and reused, and so is a server
    environment made by hand that ``server_from_env`` accepts. A folder is only ever deleted when
    it carries ``IN_PROGRESS``, which this function writes first (so an interrupted setup is redone
    next time); any other non-empty folder is refused, never removed: it may be the user's own venv.
    """
    env_dir = Path(env_dir).absolute()
    if (env_dir / MARKER).exists():
        return server_from_env(env_dir)
    if (env_dir / IN_PROGRESS).exists():
        shutil.rmtree(env_dir)  # our own interrupted setup
    elif env_dir.exists() and any(env_dir.iterdir()):
        try:
            return server_from_env(env_dir)  # a server environment made by hand: used as it is
        except ServerSetupError as e:
            raise ServerSetupError(f"{env_dir} exists and is not a server environment glcic-fast made ({e}); "
                                   "it is left alone: choose another folder") from None
    packages = server_packages(local_onnxruntime_version(), gpu)
    log(f"creating the Triton server environment in {env_dir}: {', '.join(packages)} (about 250 MB, a minute or two)")
    atomic_write_data(env_dir / IN_PROGRESS, "glcic-fast is creating this server environment\n")
    try:
        subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
        subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                        *packages], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ServerSetupError(f"could not create the server environment in {env_dir} ({e}); see pip's output above") from None
    server = server_from_env(env_dir)
    atomic_write_data(env_dir / MARKER, json.dumps({"packages": packages, "versions": server.versions}, indent=2) + "\n")
    (env_dir / IN_PROGRESS).unlink()
    return server


def _this_env_serves() -> bool:
    import importlib.metadata as md

    try:
        md.version("nvidia-pytriton")
        return int(md.version("numpy").split(".")[0]) < 2
    except md.PackageNotFoundError:
        return False


def find_server(tritonserver: Optional[str] = None, server_env: Optional[str] = None, create: bool = True,
                log: Callable[[str], None] = print) -> ServerEnvironment:
    """The server to run, in this order: ``tritonserver`` (a binary, used as it is), ``server_env``
    (or $GLCIC_TRITON_SERVER_ENV), this environment if it has nvidia-pytriton and numpy < 2
    (``glcic-fast[triton-server]``), the default server environment if it exists, a
    ``tritonserver`` on PATH, and else a new default server environment (``create``)."""
    if tritonserver:
        path = Path(tritonserver)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerSetupError(f"{tritonserver} is not an executable tritonserver")
        return ServerEnvironment(path.absolute(), f"{path}")
    server_env = server_env or os.environ.get(SERVER_ENV_VAR)
    if server_env:
        return server_from_env(server_env)
    if _this_env_serves():  # installed with glcic-fast[triton-server], in a dedicated environment
        return server_from_env(sys.prefix)
    default = default_env_dir()
    if (default / MARKER).exists():
        return server_from_env(default)
    on_path = shutil.which("tritonserver")
    if on_path:
        return ServerEnvironment(Path(on_path), f"tritonserver on PATH ({on_path})")
    if not create:
        raise ServerSetupError(
            "no Triton Inference Server found: none on PATH and no server environment; create one with "
            "`glcic-fast serve --setup-env` (nvidia-pytriton in its own venv), or pass --tritonserver / --server-env"
        )
    return create_server_env(default, log=log)
