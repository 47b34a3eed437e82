"""``glcic-fast export-triton-server``: a Triton Inference Server model repository for an engine
(``glcic_fast.export.triton_server``)."""

from __future__ import annotations

import argparse

from ..errors import EngineError
from ..export.triton_server import DEFAULT_NAME, export_triton_repository
from .common import error

NAME = "export-triton-server"


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="write a Triton Inference Server model repository for a TensorRT engine",
        description=(
            "Write a Triton Inference Server model repository serving ENGINE (built by glcic-fast build-engine): "
            "a tensorrt_plan model with dynamic batching, python-backend pre/post-processing, and an ensemble so "
            "clients send uint8 images and masks and get uint8 completed images back. Also writes a tritonclient "
            "example (client_example.py). See docs/triton-server.md."
        ),
        epilog="example:\n  glcic-fast export-triton-server --engine glcic.plan -o model_repository/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--engine", required=True, help="TensorRT plan written by build-engine (its .json sidecar beside it)")
    p.add_argument("-o", "--output", required=True, help="model repository folder (created if missing)")
    p.add_argument("--name", default=DEFAULT_NAME, help="ensemble name; other models get _preprocess/_tensorrt/_postprocess")
    p.add_argument("--instances", type=int, default=1, help="TensorRT model instances per GPU (default 1)")
    p.add_argument("--python-instances", type=int, default=2, help="CPU instances of each python model (default 2)")
    p.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic batcher queue delay (default 100 us)")
    p.add_argument("--mask-threshold", type=float, default=0.5,
                   help="hole where mask >= this fraction of white (default 0.5; binary masks are unaffected)")
    p.add_argument("--overwrite", action="store_true", help="replace models of the same names in the repository")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        models = export_triton_repository(
            args.engine, args.output, name=args.name, instances=args.instances, python_instances=args.python_instances,
            queue_delay_us=args.max_queue_delay_us, mask_threshold=args.mask_threshold, overwrite=args.overwrite,
        )
    except (EngineError, ValueError, OSError) as e:
        return error(NAME, str(e))
    print(f"wrote model repository {args.output}: {', '.join(p.name for p in models.values())} "
          f"(serve with: tritonserver --model-repository={args.output}; call model {models['ensemble'].name!r})")
    return 0
