"""``glcic-fast app``: the web page for removing objects from photos (needs ``glcic-fast[app]``)."""

from __future__ import annotations

import argparse
import errno
import ipaddress

from .common import UsageError, add_model_options

DEFAULT_PORT = 8000


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        "app",
        help="a web page to remove objects from photos (brush, complete, download)",
        description=(
            "Serve a web page to remove objects from photos: open or drop a photo, brush over what\n"
            "to remove, see it completed, compare before/after and download the PNG. The model is\n"
            "loaded once; photos stay in the server's memory (the latest few), never on disk.\n"
            "Needs: pip install 'glcic-fast[app]'."
        ),
        epilog=(
            "examples:\n"
            "  glcic-fast app                          # then open http://127.0.0.1:8000\n"
            "  glcic-fast app --backend torch --port 8080\n"
            "  glcic-fast app --model places2.safetensors --device cuda"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the app has no login)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest photo file accepted, in MB (default 25)")
    p.add_argument("--max-megapixels", type=float, default=40.0, help="largest photo accepted, in megapixels (default 40)")
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    try:
        from ..app.server import bind, create_app, serve, url_of
    except ImportError as e:
        raise UsageError(f"the app needs FastAPI and uvicorn ({e}): pip install 'glcic-fast[app]'") from None
    from ..app.engine import Engine

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise UsageError("--max-upload-mb and --max-megapixels must be positive")
    try:  # before loading the model: a port in use is the quicker thing to find out
        sock = bind(args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {args.port} on {args.host} is in use; choose another with --port (0: any free port)") from None
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    print(f"loading the model ({args.model or 'packaged default'}, backend {args.backend}) ...", flush=True)
    engine = Engine(args.model, backend=args.backend, device=args.device, precision=args.precision)
    app = create_app(
        engine, max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6),
    )
    print(f"backend {engine.default_backend} on {engine.device}, {engine.default_precision}", flush=True)
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach it can use the app (it has no login)", flush=True)
    print(f"glcic-fast app: open {url_of(sock)}  (Ctrl+C to stop)", flush=True)
    serve(app, sock)
    return 0
