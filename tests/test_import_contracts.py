"""The package's layering (``.importlinter``), checked with import-linter, and proof that the
check can fail.

import-linter reads the package from its folder, and the installed ``glcic_fast`` gathers
three folders of this repository (``glcic_fast/``, ``kernels/`` -> ``glcic_fast.kernels``,
``train/`` -> ``glcic_fast.train``; see setup.py), so each test lays them out as installed in a
temporary folder first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(
    not Path(LINT_IMPORTS).exists(), reason="import-linter is not installed (pip install 'glcic-fast[test]')"
)


def _installed_layout(root: Path) -> Path:
    """The package as pip installs it, under ``root``; returns ``root``."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "data", "aot")
    shutil.copytree(REPO / "glcic_fast", root / "glcic_fast", ignore=skip)
    shutil.copytree(REPO / "kernels", root / "glcic_fast" / "kernels", ignore=skip)
    shutil.copytree(REPO / "train", root / "glcic_fast" / "train", ignore=skip)
    return root


def _lint(layout: Path, config: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH: the laid-out copy, not the editable install; COLUMNS: one line per contract name
    env = dict(os.environ, PYTHONPATH=str(layout), COLUMNS="300")
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache"], cwd=layout, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return _installed_layout(tmp_path_factory.mktemp("installed"))


def test_contracts_are_kept(layout):
    result = _lint(layout, CONFIG)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    kept = re.findall(r"^(.*) KEPT", result.stdout, re.M)
    assert len(kept) == CONFIG.read_text().count("[importlinter:contract:"), result.stdout


@pytest.mark.parametrize("exception, contract", [
    # The engine path's declared optional torch interop: without the exception it is a violation.
    ("glcic_fast.backends.tensorrt_backend -> glcic_fast.backends.torch_cuda_device", "imports no torch"),
    # `python -m glcic_fast.bench` reaching up into the command line.
    ("glcic_fast.bench.__main__ -> glcic_fast.cli.bench", "Layers"),
])
def test_deleting_an_exception_breaks_its_contract(layout, tmp_path, exception, contract):
    text = CONFIG.read_text()
    assert exception in text
    config = tmp_path / "contracts.ini"
    # Delete the first occurrence only: the one in the contract named.
    config.write_text(text.replace(f"    {exception}\n", "", 1))
    result = _lint(layout, config)
    assert result.returncode != 0
    broken = re.findall(r"^(.*) BROKEN", result.stdout, re.M)
    assert any(contract in line for line in broken), result.stdout[-4000:]


def test_a_new_upward_import_is_caught(layout, tmp_path):
    """An exporter that imports the completion API (the cycle this layering removed) fails."""
    bad = _installed_layout(tmp_path / "bad")
    onnx_export = bad / "glcic_fast" / "export" / "onnx.py"
    onnx_export.write_text(onnx_export.read_text() + "\nfrom ..api import load  # noqa: E402,F401\n")
    result = _lint(bad, CONFIG)
    assert result.returncode != 0
    assert "glcic_fast.export.onnx -> glcic_fast.api" in result.stdout
