"""Serving GLCIC on a real Triton Inference Server (``glcic-fast serve``).

| module | holds |
|---|---|
| ``environment`` | where ``tritonserver`` comes from (a server environment with ``nvidia-pytriton``, or one on PATH) and what its process needs |
| ``server`` | ``TritonServer``: one server process, started on given or free ports, waited for, stopped cleanly |
| here | ``prepare_repository``: a checkpoint, an engine or an exported repository -> a repository to serve |

Clients live in ``glcic_fast.client``; the serving benchmark in ``glcic_fast.bench.serving``.
This layer uses the exporters and the core; never the completion API or a runtime backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..export.triton_server import MANIFEST, export_triton_repository, read_manifest
from .environment import (
    SERVER_ENV_VAR,
    ServerEnvironment,
    ServerSetupError,
    create_server_env,
    default_env_dir,
    find_server,
    server_from_env,
)
from .server import Endpoints, ServerStartError, TritonServer, free_ports


def is_repository(path: Any) -> bool:
    """A folder holding a model repository (ours, with its manifest, or any with config.pbtxt models)."""
    if not isinstance(path, (str, os.PathLike)) or not Path(path).is_dir():
        return False
    folder = Path(path)
    return (folder / MANIFEST).exists() or any(p.is_file() for p in folder.glob("*/config.pbtxt"))


def prepare_repository(model: Any, workdir: str | os.PathLike, **options: Any) -> tuple[Path, Optional[dict]]:
    """(repository folder, its manifest or None) for ``model``: an exported repository is used as
    it is; a checkpoint, an engine or None (the packaged model) is exported into ``workdir``
    with ``export_triton_repository(**options)``."""
    if is_repository(model):
        folder = Path(model)
        return folder, read_manifest(folder) if (folder / MANIFEST).exists() else None
    if isinstance(model, (str, os.PathLike)) and not Path(model).exists():
        raise FileNotFoundError(f"{model} does not exist (expected a checkpoint, an engine or a model repository)")
    folder = Path(workdir) / "model_repository"
    export_triton_repository(model, folder, overwrite=True, **options)
    return folder, read_manifest(folder)


__all__ = [
    "SERVER_ENV_VAR", "Endpoints", "ServerEnvironment", "ServerSetupError", "ServerStartError", "TritonServer",
    "create_server_env", "default_env_dir", "find_server", "free_ports", "is_repository", "prepare_repository",
    "server_from_env",
]
