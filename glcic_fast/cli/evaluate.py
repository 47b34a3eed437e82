"""``glcic-fast eval``: L1 / PSNR / SSIM of a model and of inpainting baselines on test photos."""

from __future__ import annotations

import argparse
import json
import sys

from ..atomic import atomic_write_data
from ..errors import CheckpointError
from ..evaluate import HOLE_SETS, evaluate, format_markdown, format_table

NAME = "eval"


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="measure L1/PSNR/SSIM of a model and of inpainting baselines on test photos",
        description="Fill seeded holes (the paper's rectangles and free-form strokes) in the photos of --data "
        "with the model (with and without post-processing) and with mean fill, OpenCV Telea and "
        "Navier-Stokes; print L1 / PSNR / SSIM on the hole and on the whole image.",
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--data", required=True, help="folder of test photos (recursive)")
    p.add_argument("--image-size", type=int, default=None, help="evaluation size (default: the model's training size, else 256)")
    p.add_argument("--hole-min", type=int, default=None, help="smallest paper-hole side (default: the model's, else 96/256 of the size)")
    p.add_argument("--hole-max", type=int, default=None, help="largest paper-hole side (default: the model's, else 128/256 of the size)")
    p.add_argument("--local-size", type=int, default=None, help="region the paper holes lie in (default: half the size)")
    p.add_argument("--holes-per-image", type=int, default=1, help="seeded holes drawn per photo and hole set")
    p.add_argument("--hole-sets", default=",".join(HOLE_SETS), help="comma list of: " + ", ".join(HOLE_SETS))
    p.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines-only", action="store_true", help="skip the model; only mean/Telea/NS")
    p.add_argument("--backend", default="auto", help="backend for the model (auto, torch, onnxruntime, ...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--markdown", help="write the tables as Markdown here")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    def error(msg: str, code: int = 2) -> int:
        print(f"glcic-fast {NAME}: error: {msg}", file=sys.stderr)
        return code

    if args.holes_per_image < 1:
        return error("--holes-per-image must be at least 1")
    sets = [s.strip() for s in args.hole_sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in HOLE_SETS]
    if bad or not sets:
        return error(f"--hole-sets: unknown {bad or 'empty'}; choose from {', '.join(HOLE_SETS)}")
    try:
        report = evaluate(
            False if args.baselines_only else args.model, args.data, args.image_size, args.hole_min, args.hole_max,
            args.local_size, args.holes_per_image, sets, args.seed, args.backend, args.device, args.limit,
        )
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        return error(str(e))
    print(format_table(report))
    if args.json:
        atomic_write_data(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown:
        atomic_write_data(args.markdown, format_markdown(report) + "\n")
    return 0
