"""``glcic-fast bench-serve``: throughput and latency on a real Triton Inference Server against the
in-process API (the library is ``glcic_fast.bench.serving``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import UsageError

NAME = "bench-serve"


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"{what} must be >= 1, got {text!r}")
    return values


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="serving benchmark: throughput and p50/p90/p99 latency on Triton vs the in-process API",
        description=(
            "Measure GLCIC served by a real Triton Inference Server: completed images per second and p50/p90/p99 "
            "latency at each client concurrency, over HTTP and gRPC, with the network model's dynamic batching on "
            "and off, and the in-process API (glcic_fast.load, onnxruntime) under the same load as the baseline. "
            "Starts its own servers (the server environment of glcic-fast serve) on free loopback ports, unless "
            "--http-url/--grpc-url name a running one. Every response is checked against the in-process bytes. "
            "Writes bench/results/<machine>-<date>-serve.{json,md}."
        ),
        epilog="example:\n  glcic-fast bench-serve --size 128x128 --concurrency 1,4,16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--size", default="128x128", help="image size HxW (default 128x128)")
    p.add_argument("--concurrency", default="1,4,16", help="client threads per level, comma-separated (default 1,4,16)")
    p.add_argument("--requests", type=int, default=None, help="requests per level (default max(16, 3 x concurrency))")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds per level, the targets taking turns in each (default 3; evens out a shared machine's load)")
    p.add_argument("--protocols", default="http,grpc", help="http, grpc or both (default http,grpc)")
    p.add_argument("--batching", default="on,off", help="dynamic batching modes to measure: on, off or on,off (default)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads, server and in-process (default: one per core)")
    p.add_argument("--http-url", help="measure a running server at this HTTP address (host:port) instead of starting one")
    p.add_argument("--grpc-url", help="... and this gRPC address")
    p.add_argument("--server-env", help="server environment (see glcic-fast serve --help)")
    p.add_argument("--output-dir", default="bench/results", help="where the JSON and Markdown go (default bench/results)")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench.machine import machine_info, results_stem
    from ..bench.serving import format_markdown, report_dict, serve_benchmark, write_report

    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be HxW, e.g. 128x128, got {args.size!r}") from None
    concurrencies = _ints(args.concurrency, "--concurrency")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not protocols or set(protocols) - {"http", "grpc"}:
        raise UsageError(f"--protocols must be http, grpc or http,grpc, got {args.protocols!r}")
    modes = {"on": True, "off": False}
    batching = [b.strip() for b in args.batching.split(",") if b.strip()]
    if not batching or set(batching) - set(modes):
        raise UsageError(f"--batching must be on, off or on,off, got {args.batching!r}")
    url = None
    if args.http_url or args.grpc_url:
        url = {"http": args.http_url, "grpc": args.grpc_url}
        protocols = [p for p in protocols if url[p]]
    if args.requests is not None and args.requests < 1 or args.rounds < 1:
        raise UsageError("--requests and --rounds must be >= 1")
    from ..serving import ServerSetupError

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        result = serve_benchmark(args.model, (h, w), concurrencies, args.requests, protocols, [modes[b] for b in batching],
                                 url=url, server_env=args.server_env, threads=args.threads, rounds=args.rounds)
    except ServerSetupError as e:
        print(f"glcic-fast {NAME}: error: {e}")
        return 1
    machine = machine_info("cpu")
    # The machine may be shared: the 1-minute load average around the run says how much.
    machine["load_average_1min"] = [load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else None]
    settings = {"size": [h, w], "concurrency": concurrencies, "requests": args.requests, "rounds": args.rounds,
                "protocols": protocols,
                "batching": batching, "threads": args.threads, "model": args.model}
    report = report_dict(result, machine, settings)
    print()
    print(format_markdown(report))
    if not args.no_save:
        stem = Path(args.output_dir) / f"{results_stem('cpu', machine)}-serve"
        for path in write_report(report, str(stem)):
            print("wrote", path)
    return 0
