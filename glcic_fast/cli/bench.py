"""``glcic-fast bench``: time every backend side by side (the library is ``glcic_fast.bench``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..api import resolve_device
from ..backends import default_device
from ..bench import format_table, machine_info, report_dict, results_stem, run_benchmark, write_outputs
from ..bench.runner import STOP_REQUESTED
from ..bench.variants import (
    DEFAULT_BASELINE,
    DEFAULT_BATCH_SIZES,
    DEFAULT_SIZES,
    DEFAULT_VARIANTS,
    MODE_CHOICES,
    parse_batch_sizes,
    parse_sizes,
    parse_variants,
)
from ..errors import CheckpointError
from ..layers import macs_per_pixel

NAME = "bench"


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="time every backend side by side (latency, images/s, GFLOP/s)",
        description="Time the completion network on every backend x precision, over batch sizes and "
        "resolutions: min/p50/p90/p99/mean latency, images/s, achieved GFLOP/s and % of the "
        "device's peak; network-only and end-to-end (uint8 in, uint8 out). Backends that "
        "cannot run here are listed with the reason.",
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run (default: cuda if present)")
    p.add_argument(
        "--backends", default="all",
        help="comma-separated variants <backend>[-fp32|-fp16|-bf16|-int8][-modifier...] (torch: -compile, -nchw, "
        "-nograph; triton: -nograph, -tf32; tensorrt: -nograph, -plugins); 'auto' (what load() picks: on a CPU "
        "the fastest variant passing the accuracy gate); or 'all' "
        f"(default: {','.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated HxW, multiples of 4 (default: {DEFAULT_SIZES['cuda']} on a GPU, "
                   f"{DEFAULT_SIZES['cpu']} on a CPU)")
    p.add_argument("--batch-sizes", default=None,
                   help=f"comma-separated batch sizes (default: {DEFAULT_BATCH_SIZES['cuda']} on a GPU, "
                   f"{DEFAULT_BATCH_SIZES['cpu']} on a CPU)")
    p.add_argument("--mode", choices=tuple(MODE_CHOICES), default="both",
                   help="network, end-to-end, device (tensor already on the device), both (network + end-to-end; default) or all")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case after the first (default 2)")
    p.add_argument("--iters", type=int, default=10, help="timed calls per case, at least (default 10)")
    p.add_argument("--min-time", type=float, default=None, help="also time each case for at least this many seconds")
    p.add_argument("--max-iters", type=int, default=10_000, help="cap on timed calls per case with --min-time")
    p.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=None,
                   help="build every backend first and time them in turns, one call each per round, so load from "
                   "other processes hits all alike (default: on for --device cpu, off on a GPU)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; cases not started within it are listed as skipped")
    p.add_argument("--model", default=None, help="checkpoint (.safetensors) to time instead of seeded random weights")
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"variant the speedup column is relative to (default {DEFAULT_BASELINE})")
    p.add_argument("--json", metavar="PATH", help="write every row and the machine header as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown table")
    p.add_argument("--plot", metavar="PATH", help="write a PNG plot (latency vs batch; needs matplotlib)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="also write DIR/<gpu-or-cpu-slug>-<date>.{json,md,png} (the bench/results naming)")
    p.add_argument("--note", default=None, help="free text stored in the report (e.g. 'shared machine')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--large-photo", action="store_true",
                   help="instead of the grid: a 4000x3000 photo with a 5%% hole, end to end, time and peak memory, "
                   "through the hole windows and through the whole image, each in a fresh process (uses --device, "
                   "--backends (plain backend names; all: onnxruntime and torch on a CPU), --model, --json, "
                   "--markdown, --results-dir, --note)")
    p.add_argument("--large-photo-calls", default="3,1", metavar="WINDOWS,WHOLE",
                   help="--large-photo: calls through the hole windows and through the whole image (default 3,1; "
                   "0 skips that way)")


def _error(msg: str) -> int:
    print(f"glcic-fast {NAME}: error: {msg}", file=sys.stderr)
    return 2


def _raise_interrupt(signum, frame):  # noqa: ARG001
    # The flag survives libraries that catch KeyboardInterrupt and re-raise something else
    # (torch.compile wraps errors raised while it compiles): no further case starts.
    STOP_REQUESTED["reason"] = f"interrupted by signal {signum} (time limit)"
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.large_photo:
        return _run_large_photo(args)
    try:
        device = resolve_device(args.device)
        variants = parse_variants(args.backends)
        sizes = parse_sizes(args.sizes or DEFAULT_SIZES[device])
        batches = parse_batch_sizes(args.batch_sizes or DEFAULT_BATCH_SIZES[device])
    except ValueError as e:
        return _error(f"{e}")
    if args.warmup < 0 or args.iters < 1 or args.max_iters < 1:
        return _error("--warmup must be >= 0, --iters and --max-iters >= 1")
    if device == "cuda":
        if default_device() != "cuda":
            return _error("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if args.model and not Path(args.model).is_file():
        return _error(f"--model {args.model}: no such file")
    modes = MODE_CHOICES[args.mode]

    machine = machine_info(device)
    outputs = {"json": args.json, "markdown": args.markdown, "plot": args.plot}
    if args.results_dir:
        stem = Path(args.results_dir) / results_stem(device, machine)
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        outputs = {"json": outputs["json"] or f"{stem}.json", "markdown": outputs["markdown"] or f"{stem}.md",
                   "plot": outputs["plot"] or f"{stem}.png"}
    interleave = device == "cpu" if args.interleave is None else args.interleave
    STOP_REQUESTED["reason"] = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `timeout` -> keep partial results
    try:
        rows = run_benchmark(
            device, [v.label for v in variants], sizes, batches, args.warmup, args.iters,
            "end-to-end" in modes, network="network" in modes, device_resident="device" in modes,
            min_time=args.min_time, max_iters=args.max_iters, interleave=interleave, model=args.model,
            baseline=args.baseline,
            time_budget=args.time_budget, progress=not args.no_progress,
        )
    except (CheckpointError, ValueError) as e:
        return _error(str(e))
    finally:
        signal.signal(signal.SIGTERM, previous)
    settings = {
        "backends": [v.label for v in variants], "sizes": [f"{h}x{w}" for h, w in sizes], "batch_sizes": batches,
        "modes": list(modes), "warmup": args.warmup, "iters": args.iters, "min_time": args.min_time,
        "max_iters": args.max_iters, "interleave": interleave, "time_budget": args.time_budget, "model": args.model, "seed": 0,
        "baseline": args.baseline, "macs_per_pixel": macs_per_pixel(), "note": args.note,
        "argv": list(sys.argv),
    }
    report = report_dict(rows, machine, settings)
    print(format_table(rows, machine))
    status = 0
    try:
        written = write_outputs(report, outputs["json"], outputs["markdown"], None)
        if outputs["plot"]:
            try:
                from ..bench.plot import write_plot  # matplotlib is optional: only --plot needs it

                write_plot(report, outputs["plot"])
                written.append(outputs["plot"])
            except ImportError:
                print(f"glcic-fast {NAME}: error: matplotlib is not installed (pip install matplotlib); "
                      f"no plot written to {outputs['plot']}", file=sys.stderr)
                status = 1
    except OSError as e:
        print(f"glcic-fast {NAME}: error: cannot write results: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    errors = [r for r in rows if r["status"] == "error"]
    if errors:
        print(f"glcic-fast {NAME}: {len(errors)} case(s) failed with errors (see 'not measured')", file=sys.stderr)
        status = 1
    if any(r["status"] == "skipped" and "interrupted" in (r["reason"] or "") for r in rows):
        print(f"glcic-fast {NAME}: interrupted; the files hold the cases measured before that", file=sys.stderr)
        status = 1
    return status


def _run_large_photo(args: argparse.Namespace) -> int:
    from ..bench.large_photo import MODES, run_large_photo, write_large_photo

    try:
        device = resolve_device(args.device)
        windows, whole = (int(v) for v in args.large_photo_calls.split(","))
    except ValueError as e:
        return _error(f"--large-photo-calls {args.large_photo_calls!r}: expected two whole numbers ({e})")
    if args.backends == "all":  # the CPU's two fast paths; on a GPU the one "auto" picks
        backends = ["onnxruntime", "torch"] if device == "cpu" else ["auto"]
    else:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows = run_large_photo(tuple(MODES), {"hole windows": windows, "whole image": whole}, backends=backends,
                           device=device, model=args.model)
    for r in rows:
        print(f"{r['mode']:>12}: {r['backend']} {r['size']}, hole {r['hole']}, network {', '.join(r['network_inputs'])}: "
              f"{r['median_s']:.1f} s per call (median of {r['calls']}), peak {r['peak_rss_gib']:.2f} GiB "
              f"({r['peak_over_loaded_gib']:.2f} above the loaded model)")
    for path in write_large_photo(rows, device, args.json, args.markdown, args.results_dir, args.note):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m glcic_fast.bench ...``: the same as ``glcic-fast bench ...``."""
    parser = argparse.ArgumentParser(prog="glcic-fast bench", description="see: glcic-fast bench --help")
    add_arguments(parser)
    return run(parser.parse_args(argv))
