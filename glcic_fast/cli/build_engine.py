"""``glcic-fast build-engine``: a TensorRT engine (``.plan``) and its JSON sidecar from a checkpoint.

    glcic-fast build-engine --model model.safetensors --precision fp16 \\
        --batch 1,1,8 --height 64,256,1024 --width 64,256,1024 -o glcic.plan

Arguments are checked before anything is imported or loaded; without TensorRT the command says
so, explains how to install it, exits with status 1 and writes nothing. The library is
``glcic_fast.export.tensorrt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine_format import sidecar_path, validate_profile
from ..errors import BackendUnavailable, CheckpointError, EngineBuildError, TensorRTNotInstalled
from ..export.tensorrt import (
    DEFAULT_BATCH,
    DEFAULT_HEIGHT,
    DEFAULT_TIMING_CACHE,
    DEFAULT_WIDTH,
    DEFAULT_WORKSPACE_GB,
    PLUGIN_CHOICES,
    PLUGIN_LAYER_CHOICES,
    PRECISIONS,
    _check_options,
    build_engine,
)
from ..tensorrt_env import import_tensorrt
from .common import error

NAME = "build-engine"


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="build a TensorRT engine (.plan) from a checkpoint",
        description=(
            "Build a TensorRT engine for the completion network and write it with a JSON sidecar "
            "(ENGINE.json: model checksum and metadata, TensorRT version, GPU, precision, profile). "
            "The engine runs any input inside the --batch/--height/--width ranges (each MIN,OPT,MAX or one "
            "number; height and width multiples of 4) on the TensorRT version and GPU architecture it was "
            "built with. Run it with: glcic-fast complete IMAGE --mask MASK --model ENGINE, or "
            "glcic_fast.load('ENGINE'). Needs TensorRT >= 10.8 (pip install tensorrt) and an NVIDIA GPU."
        ),
        epilog=(
            "examples:\n"
            "  glcic-fast build-engine --model model.safetensors -o glcic-fp16.plan\n"
            "  glcic-fast build-engine --model model.safetensors --precision fp32 --batch 1 \\\n"
            "      --height 256,512,1024 --width 256,512,1024 -o glcic-fp32.plan\n"
            "  glcic-fast build-engine --model model.safetensors --plugins triton -o glcic-triton.plan"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--precision", default="fp16", choices=PRECISIONS,
                   help="fp16 (default), bf16, or fp32 (TF32 off); I/O are float32 in every case")
    p.add_argument("--batch", default=",".join(map(str, DEFAULT_BATCH)), metavar="MIN,OPT,MAX",
                   help="batch size range (default %(default)s)")
    p.add_argument("--height", default=",".join(map(str, DEFAULT_HEIGHT)), metavar="MIN,OPT,MAX",
                   help="network input height range, multiples of 4 (default %(default)s)")
    p.add_argument("--width", default=",".join(map(str, DEFAULT_WIDTH)), metavar="MIN,OPT,MAX",
                   help="network input width range, multiples of 4 (default %(default)s)")
    p.add_argument("--workspace", type=float, default=DEFAULT_WORKSPACE_GB, metavar="GIB",
                   help="TensorRT workspace limit in GiB (default %(default)s)")
    p.add_argument("--opt-level", type=int, default=3, metavar="0-5",
                   help="TensorRT builder optimization level (default 3; 5 searches longest)")
    p.add_argument("--timing-cache", default=DEFAULT_TIMING_CACHE, metavar="PATH",
                   help="persistent timing cache file; 'default': ~/.cache/glcic-fast/, 'none': no cache")
    p.add_argument("--plugins", default="none", choices=PLUGIN_CHOICES,
                   help="'triton': run our Triton convolution kernels inside the engine as TensorRT plugins")
    p.add_argument("--plugin-layers", default="dilated", choices=PLUGIN_LAYER_CHOICES,
                   help="with --plugins triton: 'dilated' (layers 7-10, default) or 'h4' (layers 5-12)")
    p.add_argument("--verbose", action="store_true", help="print TensorRT's log")
    p.add_argument("-o", "--output", required=True, help="engine file to write (e.g. glcic.plan)")
    p.set_defaults(func=run)


def run(args) -> int:
    # 1. Arguments (nothing loaded yet).
    try:
        profile = validate_profile(args.batch, args.height, args.width)
        _check_options(args.precision, args.plugins, args.plugin_layers, args.opt_level, args.workspace)
    except ValueError as e:
        return error(NAME, str(e), 2)
    out = Path(args.output)
    if out.is_dir():
        return error(NAME, f"{out} is a folder; give the engine file to write (e.g. {out / 'glcic.plan'})", 2)
    if args.model is not None and not Path(args.model).is_file():
        return error(NAME, f"{args.model}: no such checkpoint file", 2)
    # 2. TensorRT present? (before loading the model: say the actionable thing first)
    try:
        import_tensorrt()
    except TensorRTNotInstalled as e:
        return error(NAME, str(e), 1)
    # 3. Build.
    print(f"building {args.precision} engine, profile {profile.describe()} ...", file=sys.stderr)
    try:
        sidecar = build_engine(
            args.model, out, precision=args.precision, batch=profile.batch, height=profile.height,
            width=profile.width, workspace_gb=args.workspace, opt_level=args.opt_level,
            timing_cache=args.timing_cache, plugins=args.plugins, plugin_layers=args.plugin_layers,
            verbose=args.verbose,
        )
    except (CheckpointError, FileNotFoundError) as e:
        return error(NAME, str(e), 2)
    except (BackendUnavailable, EngineBuildError, ImportError) as e:
        return error(NAME, str(e), 1)
    gpu = sidecar["gpu"]
    print(
        f"wrote {out} and {sidecar_path(out).name}: TensorRT {sidecar['tensorrt_version']}, {gpu['name']} "
        f"(sm {gpu['compute_capability']}), {args.precision}, {profile.describe()}, built in "
        f"{sidecar['build']['seconds']:.0f} s"
    )
    return 0
