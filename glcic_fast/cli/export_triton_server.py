"""``glcic-fast export-triton-server``: a Triton Inference Server model repository for a checkpoint
or an engine (``glcic_fast.export.triton_server``)."""

from __future__ import annotations

import argparse

from ..errors import BackendUnavailable, CheckpointError, EngineError
from ..export.triton_server import DEFAULT_MAX_BATCH, DEFAULT_MAX_SIZE, DEFAULT_NAME, RUNTIMES, export_triton_repository
from .common import UsageError, error

NAME = "export-triton-server"


def add_repository_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a repository (``serve`` exports with the same ones)."""
    p.add_argument("--runtime", default="auto", choices=RUNTIMES,
                   help="what runs the network: tensorrt (an engine; the default for an engine, and for a checkpoint "
                        "when TensorRT and a GPU are here) or onnxruntime (our ONNX export in Triton's python backend; "
                        "any machine)")
    p.add_argument("--name", default=DEFAULT_NAME, help="ensemble name; the other models get _preprocess, _<runtime>, _postprocess")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="onnxruntime: CPU, or the CUDA execution provider (onnxruntime-gpu in the server's Python)")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"onnxruntime: largest batch the network model runs (default {DEFAULT_MAX_BATCH}; an engine's profile sets its own)")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE,
                   help=f"onnxruntime: largest image height and width served (default {DEFAULT_MAX_SIZE}); larger requests are refused")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime: intra-op threads per instance (default 0: one per core)")
    p.add_argument("--instances", type=int, default=1, help="network model instances (per GPU for tensorrt; default 1)")
    p.add_argument("--python-instances", type=int, default=2, help="CPU instances of each pre/post-processing model (default 2)")
    p.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic batcher queue delay (default 100 us)")
    p.add_argument("--no-dynamic-batching", action="store_true", help="run each request alone (for comparisons)")
    p.add_argument("--mask-threshold", type=float, default=None,
                   help="accept greyscale masks: hole where mask >= this fraction of white (the authors use 0.2); "
                        "default: masks must be binary, as in glcic-fast complete")


def repository_options(args) -> dict:
    return dict(
        runtime=args.runtime, name=args.name, device=args.device, max_batch=args.max_batch, max_size=args.max_size,
        threads=args.threads, instances=args.instances, python_instances=args.python_instances,
        queue_delay_us=args.max_queue_delay_us, dynamic_batching=not args.no_dynamic_batching,
        mask_threshold=args.mask_threshold,
    )


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="write a Triton Inference Server model repository (TensorRT engine or onnxruntime)",
        description=(
            "Write a Triton Inference Server model repository: the network (a TensorRT engine built by glcic-fast "
            "build-engine, or our ONNX export run by onnxruntime in Triton's python backend) with dynamic batching, "
            "python-backend pre/post-processing, and an ensemble so clients send uint8 images and masks and get "
            "uint8 completed images back, identical to glcic-fast complete's. Also writes glcic_repository.json "
            "and a tritonclient example. Run it with glcic-fast serve; see docs/triton-server.md."
        ),
        epilog="examples:\n"
               "  glcic-fast export-triton-server --engine glcic.plan -o model_repository/\n"
               "  glcic-fast export-triton-server --model model.safetensors --runtime onnxruntime -o model_repository/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--engine", help="TensorRT plan written by build-engine (its .json sidecar beside it)")
    source.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("-o", "--output", required=True, help="model repository folder (created if missing)")
    add_repository_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace models of the same names in the repository")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.engine and args.runtime == "onnxruntime":
        raise UsageError("--engine runs on the tensorrt runtime; give the checkpoint (--model) for onnxruntime")
    try:
        models = export_triton_repository(args.engine or args.model, args.output, overwrite=args.overwrite,
                                          **repository_options(args))
    except (EngineError, CheckpointError, BackendUnavailable, ValueError, OSError) as e:
        return error(NAME, str(e))
    print(f"wrote model repository {args.output}: {', '.join(p.name for p in models.values())}\n"
          f"serve it with: glcic-fast serve --model {args.output}   (or tritonserver --model-repository={args.output}); "
          f"clients call model {models['ensemble'].name!r}")
    return 0
