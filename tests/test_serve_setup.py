"""``glcic-fast serve`` without a server: finding one (and saying what to do when there is none),
the command line's help, and the client's checks that need no server. tests/test_serve.py
runs the real server."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from glcic_fast.serving import ServerSetupError, find_server, server_from_env


def test_serve_help_explains_the_fleet_container(capsys):
    from glcic_fast.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for needed in ("nvcr.io/nvidia/tritonserver", "--model-repository=/models", "numpy<2", "Ctrl-C", "--setup-env",
                   "onnxruntime-gpu", "/v2/health/ready"):
        assert needed in text, needed


def test_no_server_anywhere_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("GLCIC_TRITON_SERVER_ENV", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no default server environment
    monkeypatch.setenv("PATH", str(tmp_path))  # no tritonserver on PATH
    if _running_env_serves():
        pytest.skip("this Python environment has nvidia-pytriton with numpy<2 (it would be used)")
    with pytest.raises(ServerSetupError, match="glcic-fast serve --setup-env"):
        find_server(create=False)
    with pytest.raises(ServerSetupError, match="not an executable tritonserver"):
        find_server(tritonserver=str(tmp_path / "tritonserver"))


def _running_env_serves():
    from glcic_fast.serving.environment import _this_env_serves

    return _this_env_serves()


def test_server_env_checks_say_what_is_missing(tmp_path):
    with pytest.raises(ServerSetupError, match="not a Python environment"):
        server_from_env(tmp_path)
    # A Python environment without the wheel: this very one (numpy 2, no nvidia-pytriton) seen
    # through a venv-shaped folder.
    if _running_env_serves():
        pytest.skip("this Python environment has nvidia-pytriton")
    fake = tmp_path / "env"
    (fake / "bin").mkdir(parents=True)
    os.symlink(sys.executable, fake / "bin" / "python")
    with pytest.raises(ServerSetupError, match="has no nvidia-pytriton"):
        server_from_env(fake)


def test_server_packages_pin_numpy_below_2_and_the_local_onnxruntime():
    from glcic_fast.serving.environment import local_onnxruntime_version, server_packages

    packages = server_packages(local_onnxruntime_version())
    assert "numpy>=1.23,<2" in packages and any(p.startswith("nvidia-pytriton==") for p in packages)
    import onnxruntime

    assert f"onnxruntime=={onnxruntime.__version__}" in packages
    assert server_packages(None, gpu=True)[-1] == "onnxruntime-gpu"


def test_client_checks_before_sending():
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install 'glcic-fast[client]')")
    from glcic_fast.client import Client
    from glcic_fast.errors import InputError

    client = Client("127.0.0.1:9", timeout=1)  # nothing is sent: every call below fails first
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InputError, match="does not match the image"):
        client.complete(image, np.zeros((8, 6), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        client.complete(image.astype(np.float32), np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="one per image"):
        client.complete([image, image], [np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="protocol"):
        Client("127.0.0.1:9", protocol="ftp")


def test_client_reports_an_unreachable_server():
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    from glcic_fast.client import Client, ServerUnavailable
    from glcic_fast.serving import free_ports

    port = free_ports(1)[0]  # nothing listens there
    image, mask = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    mask[:2, :2] = 255
    for protocol in ("http", "grpc"):
        with pytest.raises(ServerUnavailable, match="unavailable"):
            Client(f"127.0.0.1:{port}", protocol=protocol, timeout=5).complete(image, mask)


def test_repository_detection(tmp_path):
    from glcic_fast.serving import is_repository, prepare_repository

    assert not is_repository(tmp_path) and not is_repository(tmp_path / "missing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\n')
    assert is_repository(tmp_path)
    assert prepare_repository(tmp_path, tmp_path / "work") == (Path(tmp_path), None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_repository(tmp_path / "nothing.safetensors", tmp_path / "work")


def test_wheel_server_refuses_tensorrt_and_needs_onnxruntime(tmp_path):
    """nvidia-pytriton's tritonserver has the python backend only: an engine's repository is
    refused before anything is exported, and the onnxruntime runtime needs onnxruntime there."""
    from glcic_fast.serving import ServerEnvironment

    wheel = ServerEnvironment(tmp_path / "bin" / "tritonserver", "test", env_dir=tmp_path, python="3.11",
                              versions={"numpy": "1.26.4", "onnxruntime": None})
    with pytest.raises(ServerSetupError, match="no TensorRT backend"):
        wheel.check_runtime("tensorrt")
    with pytest.raises(ServerSetupError, match="pip install onnxruntime"):
        wheel.check_runtime("onnxruntime")
    wheel.versions["onnxruntime"] = "1.32.0"
    wheel.check_runtime("onnxruntime")  # fine now
    on_path = ServerEnvironment(tmp_path / "tritonserver", "on PATH")
    on_path.check_runtime("tensorrt")  # a full Triton brings its own backends


def test_setup_env_never_deletes_a_folder_it_did_not_make(tmp_path):
    """``serve --setup-env --server-env DIR`` on the user's own venv: refused, nothing removed."""
    from glcic_fast.serving import create_server_env

    own = tmp_path / "venv"
    own.mkdir()
    (own / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (own / "keep.txt").write_text("mine")
    # A python that cannot run: had the folder been removed, creating the venv would fail next.
    with pytest.raises(ServerSetupError, match="not a server environment glcic-fast made"):
        create_server_env(own, python=str(tmp_path / "no-python"), log=lambda _: None)
    assert (own / "keep.txt").read_text() == "mine" and (own / "pyvenv.cfg").exists()


def test_setup_env_redoes_only_its_own_interrupted_setup(tmp_path):
    from glcic_fast.serving import create_server_env
    from glcic_fast.serving.environment import IN_PROGRESS

    ours = tmp_path / "env"
    ours.mkdir()
    (ours / IN_PROGRESS).write_text("")
    (ours / "half-installed").write_text("")
    with pytest.raises(ServerSetupError, match="could not create the server environment"):
        create_server_env(ours, python=str(tmp_path / "no-python"), log=lambda _: None)
    assert not (ours / "half-installed").exists() and (ours / IN_PROGRESS).exists()  # redone next time


def test_setup_env_reuses_a_server_env_made_by_hand(tmp_path):
    """A venv with nvidia-pytriton and numpy<2 that the user made (no marker of ours) is used as it is."""
    from glcic_fast.serving import create_server_env
    from glcic_fast.serving.environment import MARKER

    server_env = os.environ.get("GLCIC_TRITON_SERVER_ENV")
    if not server_env:
        pytest.skip("GLCIC_TRITON_SERVER_ENV names no server environment to stand in for a hand-made one")
    by_hand = tmp_path / "by-hand"
    (by_hand / "bin").mkdir(parents=True)
    (by_hand / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = by_hand / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {Path(server_env).absolute() / "bin" / "python"} "$@"\n')
    python.chmod(0o755)
    server = create_server_env(by_hand, python=str(tmp_path / "no-python"), log=lambda _: None)
    assert server.env_dir == by_hand and server.versions.get("nvidia-pytriton")
    assert sorted(p.name for p in by_hand.iterdir()) == ["bin", "pyvenv.cfg"] and not (by_hand / MARKER).exists()
