"""The ``glcic-fast`` command: one small module per subcommand, each parsing its arguments and
calling the library.

Every module in ``COMMANDS`` has ``add_subcommand(subparsers)`` and a ``run(args)`` it sets as
the parser's ``func``. They import the library inside ``run`` (PyTorch, onnx, tensorrt are
heavy), so ``glcic-fast --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import BackendUnavailable, CheckpointError, InputError
from .common import UsageError

# In the order ``glcic-fast --help`` lists them: run, train and measure, export.
COMMANDS = (
    "complete",
    "app",
    "info",
    "train",
    "evaluate",
    "bench",
    "quantize",
    "export_onnx",
    "build_engine",
    "export_triton_server",
    "serve",
    "bench_serve",
    "import_weights",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glcic-fast",
        description="Fast image completion with GLCIC (Iizuka, Simo-Serra, Ishikawa, SIGGRAPH 2017).",
        epilog="Start with: glcic-fast complete --demo",
    )
    parser.add_argument("--version", action="version", version=f"glcic-fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_subcommand(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"glcic-fast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glcic-fast {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors from the library carry their own message
        if isinstance(e, (BackendUnavailable, CheckpointError, InputError, ValueError, FileNotFoundError)):
            print(f"glcic-fast {args.command}: error: {e}", file=sys.stderr)
            return 1
        raise


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
