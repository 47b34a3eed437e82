"""``glcic-fast serve``: a checkpoint, an engine or an exported repository -> a running Triton
Inference Server (``glcic_fast.serving``)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from .common import UsageError
from .export_triton_server import add_repository_options, repository_options

NAME = "serve"

FLEET_HELP = """\
what it does:
  1. finds a tritonserver: --tritonserver, else the server environment (--server-env, $GLCIC_TRITON_SERVER_ENV,
     or ~/.cache/glcic-fast/triton-server-py3.X), else one on PATH; with none, it creates the server
     environment first: a venv with the nvidia-pytriton wheel (tritonserver 2.51 + python backend), numpy<2
     and onnxruntime (~250 MB, once). It is a venv of its own because that python backend needs numpy<2.
  2. exports the model (the packaged one by default) into a temporary model repository, unless --model
     is a repository already (glcic-fast export-triton-server writes one);
  3. starts the server on --host (default 127.0.0.1: this machine only) and the given ports, waits until
     every model is ready, prints the endpoints and a client one-liner, and serves until Ctrl-C, which
     lets in-flight requests finish (up to --exit-timeout seconds) and stops it.

on a GPU fleet, the same repository runs in NVIDIA's container, without glcic-fast:
  glcic-fast build-engine --model model.safetensors -o glcic.plan          # on a GPU like the fleet's
  glcic-fast export-triton-server --engine glcic.plan -o model_repository/
  docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
      -v $PWD/model_repository:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
      tritonserver --model-repository=/models
  Use the release whose TensorRT version is the engine's (its .json sidecar says which). For an
  onnxruntime repository (--runtime onnxruntime --device cuda), add onnxruntime-gpu to the image
  (FROM nvcr.io/nvidia/tritonserver:<yy.mm>-py3 / RUN pip install onnxruntime-gpu). Run one container
  per GPU behind a load balancer, with /v2/health/ready as the readiness probe; scrape :8002/metrics.

examples:
  glcic-fast serve                                        # packaged model, onnxruntime on this CPU
  glcic-fast serve --model model.safetensors --http-port 9000 --grpc-port 9001 --metrics-port 9002
  glcic-fast serve --model model_repository/ --host 0.0.0.0
  glcic-fast serve --setup-env                            # only create the server environment
"""


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="serve the model on a real Triton Inference Server (HTTP + gRPC), set up if needed",
        description=(
            "Serve GLCIC on NVIDIA Triton Inference Server: from a checkpoint, a TensorRT engine or an exported "
            "model repository to a running server with dynamic batching. Clients send uint8 images and masks "
            "(glcic_fast.client.Client, tritonclient, or plain HTTP) and get the same bytes glcic-fast complete "
            "writes. See docs/triton-server.md."
        ),
        epilog=FLEET_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors), TensorRT engine (.plan) or model repository folder; "
                                   "default: the packaged model")
    add_repository_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000; 0: any free port)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001; 0: any free port)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002; 0: any free port)")
    p.add_argument("--tritonserver", help="a tritonserver binary to run as it is (e.g. /opt/tritonserver/bin/tritonserver)")
    p.add_argument("--server-env", help="server environment (venv with nvidia-pytriton, numpy<2, onnxruntime); "
                                        "default $GLCIC_TRITON_SERVER_ENV or ~/.cache/glcic-fast/triton-server-py3.X")
    p.add_argument("--setup-env", action="store_true", help="create (or check) the server environment, then exit")
    p.add_argument("--exit-timeout", type=int, default=10, help="seconds in-flight requests get on Ctrl-C (default 10)")
    p.add_argument("--log", help="write tritonserver's log here (default: a temporary file, shown on errors)")
    p.set_defaults(func=run)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _runtime_for(args, server) -> str:
    """The runtime to export with. ``auto`` follows export-triton-server (TensorRT for an engine,
    and for a checkpoint where TensorRT and a GPU are), except that the nvidia-pytriton server
    has no TensorRT backend: a checkpoint then goes to onnxruntime."""
    from ..export.triton_server import resolve_runtime
    from ..resolve import is_engine_path

    if args.runtime == "auto" and server.env_dir is not None and not is_engine_path(args.model):
        return "onnxruntime"
    return resolve_runtime(args.model, args.runtime)


def client_one_liner(http_url: str, model: str) -> str:
    return (
        "python -c \"import numpy as np; from PIL import Image; from glcic_fast.client import Client; "
        "im = np.asarray(Image.open('photo.png').convert('RGB')); hole = np.asarray(Image.open('hole.png').convert('L')); "
        f"Image.fromarray(Client('{http_url}', model='{model}').complete(im, hole)).save('filled.png')\""
    )


def run(args) -> int:
    from ..serving import ServerSetupError, ServerStartError, TritonServer, create_server_env, default_env_dir
    from ..serving import find_server, is_repository, prepare_repository

    for port in (args.http_port, args.grpc_port, args.metrics_port):
        if not 0 <= port <= 65535:
            raise UsageError(f"ports must be in 0-65535, got {port}")
    try:
        if args.setup_env:
            server = create_server_env(args.server_env or default_env_dir())
            print(f"server environment ready: {server.description} (tritonserver {server.tritonserver})")
            return 0
        server = find_server(args.tritonserver, args.server_env)
    except ServerSetupError as e:
        print(f"glcic-fast {NAME}: error: {e}", file=sys.stderr)
        return 1
    options = repository_options(args)
    try:
        if not is_repository(args.model):
            options["runtime"] = _runtime_for(args, server)
            server.check_runtime(options["runtime"], args.device)  # before a possibly long export
    except ServerSetupError as e:
        print(f"glcic-fast {NAME}: error: {e}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="glcic-serve-") as workdir:
        t0 = time.perf_counter()
        repository, manifest = prepare_repository(args.model, workdir, **options)
        if repository != Path(args.model or "") and manifest:
            print(f"exported {manifest['source']} -> {manifest['runtime']} model repository ({time.perf_counter() - t0:.1f} s)")
        model = manifest["models"]["ensemble"] if manifest else args.name
        if manifest:
            try:
                server.check_runtime(manifest["runtime"], manifest.get("device", "cpu"))
            except ServerSetupError as e:
                print(f"glcic-fast {NAME}: error: {e}", file=sys.stderr)
                return 1
        triton = TritonServer(repository, server, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port, exit_timeout=args.exit_timeout, log_path=args.log)
        # Ctrl-C, and `kill`, stop it cleanly; SIGINT too is set here because a shell starts
        # background jobs with SIGINT ignored, and Python then leaves it so.
        previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"starting {server.description} ...", flush=True)
            t0 = time.perf_counter()
            try:
                endpoints = triton.start()
            except ServerStartError as e:
                print(f"glcic-fast {NAME}: error: {e}", file=sys.stderr)
                return 1
            _print_ready(endpoints, model, manifest, repository, time.perf_counter() - t0, triton)
            status = triton.process.wait() if triton.process else None
            print(f"glcic-fast {NAME}: tritonserver exited with status {status}:\n{triton.log_tail()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\nstopping (in-flight requests get up to {args.exit_timeout} s) ...", flush=True)
            code = triton.stop()
            print(f"stopped (tritonserver status {code})")
            return 0
        finally:
            triton.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _print_ready(endpoints, model: str, manifest, repository: Path, seconds: float, triton) -> None:
    if manifest:
        limits = manifest["size_limits"]
        what = (f"{manifest['runtime']}{', ' + manifest['device'] if manifest.get('device') else ''}; batch <= "
                f"{manifest['max_batch_size']}, height {limits['height'][0]}-{limits['height'][1]}, width "
                f"{limits['width'][0]}-{limits['width'][1]}; dynamic batching "
                f"{'on' if manifest.get('dynamic_batching') else 'off'}")
    else:
        what = "repository without a glcic-fast manifest"
    print(f"ready in {seconds:.1f} s: model '{model}' ({what}) from {repository}\n"
          f"  HTTP     {endpoints.http_url}   (curl http://{endpoints.http_url}/v2/health/ready)\n"
          f"  gRPC     {endpoints.grpc_url}\n"
          f"  metrics  {endpoints.metrics_url}\n"
          f"  log      {triton.log_path}\n"
          f"complete an image (pip install 'glcic-fast[client]'):\n  {client_one_liner(endpoints.http_url, model)}\n"
          "Ctrl-C stops the server.", flush=True)
