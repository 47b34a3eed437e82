"""``glcic-fast eval``: L1 / PSNR / SSIM of a model and of inpainting baselines on test photos."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..atomic import atomic_write_data
from ..errors import CheckpointError
from ..evaluate import BASELINES, HOLE_SETS, evaluate, evaluation_sizes, format_markdown, format_table
from .common import error

NAME = "eval"


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="measure L1/PSNR/SSIM of a model and of inpainting baselines on test photos",
        description="Fill seeded holes (the paper's rectangles and free-form strokes) in the photos of --data "
        "with the model (with and without post-processing) and with mean fill, OpenCV Telea, "
        "Navier-Stokes and FSR_FAST; print L1 / PSNR / SSIM on the hole and on the whole image, and the "
        "network's paired difference to each baseline with a 95% interval. By default at the model's "
        "training size and at the paper's 256x256. Unreadable photos are skipped with a warning.",
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--data", required=True, help="folder of test photos (recursive)")
    p.add_argument("--image-size", default="trained,256",
                   help="evaluation size(s), comma-separated; 'trained' is the model's training size "
                   "(default: trained,256 -- the trained size and the paper's 256x256)")
    p.add_argument("--hole-min", type=int, default=None,
                   help="smallest paper-hole side (default: the model's at its size, else 96/256 of the size)")
    p.add_argument("--hole-max", type=int, default=None,
                   help="largest paper-hole side (default: the model's at its size, else 128/256 of the size)")
    p.add_argument("--local-size", type=int, default=None, help="region the paper holes lie in (default: half the size)")
    p.add_argument("--holes-per-image", type=int, default=1, help="seeded holes drawn per photo and hole set")
    p.add_argument("--hole-sets", default=",".join(HOLE_SETS), help="comma list of: " + ", ".join(HOLE_SETS))
    p.add_argument("--baselines", default=None,
                   help="comma list of baselines (default: all that can run here: " + ", ".join(BASELINES) + ")")
    p.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines-only", action="store_true", help="skip the model; only the baselines")
    p.add_argument("--backend", default="auto", help="backend for the model (auto, torch, onnxruntime, ...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help='write the results as JSON here ({"runs": [one report per size]})')
    p.add_argument("--markdown", help="write the tables as Markdown here")
    p.add_argument("--figure", help="also write a demo picture here (PNG): the first photo at the largest size "
                   "with an object-sized hole, input | mask | result")
    p.set_defaults(func=run)
    return p


def _write_figure(path: str, model, data: str, size: int) -> None:
    from PIL import Image

    from ..evaluate import demo_figure, load_eval_images, object_hole

    image = load_eval_images(data, size, limit=1)[0][0]
    panel = demo_figure(model, image, object_hole(size))
    from ..atomic import atomic_write_bytes

    atomic_write_bytes(path, lambda tmp: Image.fromarray(panel).save(tmp, format="PNG"))


def run(args) -> int:
    if args.holes_per_image < 1:
        return error(NAME, "--holes-per-image must be at least 1")
    sets = [s.strip() for s in args.hole_sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in HOLE_SETS]
    if bad or not sets:
        return error(NAME, f"--hole-sets: unknown {bad or 'empty'}; choose from {', '.join(HOLE_SETS)}")
    baselines = None if args.baselines is None else [b.strip() for b in args.baselines.split(",") if b.strip()]
    if args.figure and args.baselines_only:
        return error(NAME, "--figure shows the model's result: it needs a model, not --baselines-only")
    from ..api import load  # imports torch: only when evaluating

    def show(message, *_args, **_kwargs):
        print(f"glcic-fast {NAME}: warning: {message}", file=sys.stderr)

    reports = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = show
            model = False if args.baselines_only else load(args.model, backend=args.backend, device=args.device)
            trained = model.metadata.get("image_size") if model is not False else None
            sizes = evaluation_sizes(args.image_size, trained)
            for size in sizes:
                # explicit hole sizes apply to a single size, or to the model's own size among several
                own = len(sizes) == 1 or size == trained
                reports.append(evaluate(
                    model, args.data, size, args.hole_min if own else None, args.hole_max if own else None,
                    args.local_size if own else None, args.holes_per_image, sets, args.seed, args.backend, args.device,
                    args.limit, baselines=baselines,
                ))
                print(format_table(reports[-1]), flush=True)
                # written after each size: a run stopped half-way keeps what it measured
                if args.json:
                    atomic_write_data(args.json, json.dumps({"runs": reports}, indent=2) + "\n")
                if args.markdown:
                    atomic_write_data(args.markdown, "\n".join(format_markdown(r) for r in reports) + "\n")
            if args.figure:
                _write_figure(args.figure, model, args.data, max(sizes))
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        return error(NAME, str(e))
    for method, reason in reports[0]["settings"]["unavailable"].items():
        print(f"glcic-fast {NAME}: note: {method} not run: {reason}", file=sys.stderr)
    return 0
