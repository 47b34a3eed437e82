"""The serving benchmark (``glcic-fast bench-serve``): throughput and latency of GLCIC on a real
Triton Inference Server at several client concurrencies, with dynamic batching on and off, and
the in-process completion API under the same load as the baseline.

A load level is ``requests`` completions sent by ``concurrency`` client threads, each sending its
next request when the last one returns (closed loop, as real clients do). Latency is per
request, client side (encode, network, queue, compute, decode); throughput is completed images
per wall-clock second of the level. Every response is compared with the in-process result for
the same input: a row counts the responses that differ (``wrong``; must be 0) and the failed
requests (``errors``).

Servers are started here from the model (one per batching mode: the repository differs only in
the network model's ``dynamic_batching``), on free loopback ports, and stopped after; ``url``
measures a server that is already running instead.
"""

from __future__ import annotations

import tempfile
import threading
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_data
from .inputs import bench_inputs
from .timing import latency_stats

SCHEMA = "glcic-fast-bench-serve/1"
DEFAULT_CONCURRENCY = (1, 4, 16)
DEFAULT_SIZE = (128, 128)
INPUT_VARIETY = 4  # distinct images cycled through, so no cache could answer


def default_requests(concurrency: int) -> int:
    """Enough requests that every client thread sends several (and at least 16 in all)."""
    return max(16, 3 * concurrency)


def run_load(call: Callable[[int], Any], check: Callable[[int, Any], bool], concurrency: int, requests: int,
             warmup: int = 0) -> dict[str, Any]:
    """Send ``requests`` calls ``call(i)`` from ``concurrency`` threads; stats of the level."""
    for i in range(warmup):
        call(i)
    latencies: list[float] = []
    wrong: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                result = call(i)
            except Exception as e:  # noqa: BLE001 (counted and reported, the level goes on)
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            elapsed = (time.perf_counter() - t0) * 1e3
            ok = check(i, result)
            with lock:
                latencies.append(elapsed)
                if not ok:
                    wrong.append(i)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"concurrency": concurrency, "requests": requests, "errors": len(errors),
                           "wrong": len(wrong), "wall_s": wall, "first_error": errors[0] if errors else None}
    if latencies:
        stats = latency_stats(latencies, 1, 0.0, None)
        row.update({k: stats[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms")})
        row["images_per_s"] = len(latencies) / wall  # throughput of the level, not 1 / latency
    return row


def serve_benchmark(model: Any = None, size: tuple[int, int] = DEFAULT_SIZE,
                    concurrencies: Sequence[int] = DEFAULT_CONCURRENCY, requests: Optional[int] = None,
                    protocols: Sequence[str] = ("http", "grpc"), batching: Sequence[bool] = (True, False),
                    url: Optional[dict[str, str]] = None, server_env: Optional[str] = None, threads: int = 0,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rows for the in-process API and each (batching mode, protocol), per concurrency.

    url: {"http": "host:port", "grpc": "host:port"} of a running server to measure instead of
    starting one (its batching mode is whatever it was exported with).
    """
    from .. import load
    from ..client import Client

    images, masks = bench_inputs(INPUT_VARIETY, size)
    completer = load(model, backend="onnxruntime", device="cpu", threads=threads or None)
    expected = [completer.complete(images[i], masks[i]) for i in range(INPUT_VARIETY)]
    masks_u8 = masks.astype(np.uint8) * 255

    def check(i: int, result: Any) -> bool:
        return bool(np.array_equal(result, expected[i % INPUT_VARIETY]))

    rows: list[dict[str, Any]] = []

    def level(target: str, mode: Optional[bool], call: Callable[[int], Any]) -> None:
        for c in concurrencies:
            n = requests or default_requests(c)
            row = {"target": target, "dynamic_batching": mode, **run_load(call, check, c, n, warmup=min(c, 4))}
            rows.append(row)
            log(_progress_line(row))

    level("in-process API (onnxruntime)", None,
          lambda i: completer.complete(images[i % INPUT_VARIETY], masks[i % INPUT_VARIETY]))
    server_info: dict[str, Any] = {}
    if url:
        for protocol in protocols:
            client = Client(url[protocol], protocol=protocol, timeout=300)
            level(f"triton {protocol}", None, lambda i: client.complete(images[i % INPUT_VARIETY], masks_u8[i % INPUT_VARIETY]))
        return {"rows": rows, "server": {"url": url}}
    from ..serving import TritonServer, find_server, prepare_repository

    server = find_server(server_env=server_env, log=log)
    server_info = {"server": server.description, "versions": server.versions}
    for mode in batching:
        with tempfile.TemporaryDirectory(prefix="glcic-bench-serve-") as tmp:
            repository, _ = prepare_repository(model, tmp, runtime="onnxruntime", dynamic_batching=mode, threads=threads,
                                               max_size=max(1024, *size))
            with TritonServer(repository, server, http_port=0, grpc_port=0, metrics_port=0) as triton:
                assert triton.endpoints is not None
                for protocol in protocols:
                    address = triton.endpoints.http_url if protocol == "http" else triton.endpoints.grpc_url
                    client = Client(address, protocol=protocol, timeout=300)
                    level(f"triton {protocol}", mode,
                          lambda i: client.complete(images[i % INPUT_VARIETY], masks_u8[i % INPUT_VARIETY]))
    return {"rows": rows, "server": server_info}


def _batching_text(mode: Optional[bool]) -> str:
    return "" if mode is None else ("on" if mode else "off")


def _progress_line(row: dict) -> str:
    if "p50_ms" not in row:
        return f"{row['target']} c={row['concurrency']}: all {row['requests']} requests failed ({row['first_error']})"
    return (f"{row['target']:<30} batching {_batching_text(row['dynamic_batching']) or '-':<3} c={row['concurrency']:<3} "
            f"{row['images_per_s']:6.2f} img/s  p50 {row['p50_ms']:7.1f}  p90 {row['p90_ms']:7.1f}  "
            f"p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}  wrong {row['wrong']}")


def markdown_table(rows: Sequence[dict]) -> list[str]:
    lines = ["| target | dynamic batching | concurrency | requests | img/s | p50 ms | p90 ms | p99 ms | errors | wrong |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "p50_ms" not in r:
            lines.append(f"| {r['target']} | {_batching_text(r['dynamic_batching'])} | {r['concurrency']} | {r['requests']} "
                         f"| | | | | {r['errors']} | {r['wrong']} |")
            continue
        lines.append(f"| {r['target']} | {_batching_text(r['dynamic_batching'])} | {r['concurrency']} | {r['requests']} | "
                     f"{r['images_per_s']:.2f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['errors']} | {r['wrong']} |")
    return lines


def format_markdown(report: dict) -> str:
    machine, settings, server = report["machine"], report["settings"], report.get("server", {})
    versions = server.get("versions") or {}
    lines = [
        f"# glcic-fast serving: {machine.get('device_name')} ({machine.get('cpu_affinity') or machine.get('cpu_count')} cores)",
        "",
        f"- Date {machine.get('date')}, commit {(machine.get('git_commit') or 'unknown')[:10]}"
        f"{'+dirty' if machine.get('git_dirty') else ''}; client side: numpy {machine.get('numpy')}, "
        f"onnxruntime {machine.get('onnxruntime')}"
        + (f"; 1-min load average {machine['load_average_1min'][0]:.1f} before, {machine['load_average_1min'][1]:.1f} after "
           "(the machine is shared)" if all(v is not None for v in machine.get("load_average_1min") or [None]) else ""),
        f"- Server: {server.get('server') or server.get('url')}"
        + (f" (numpy {versions.get('numpy')}, onnxruntime {versions.get('onnxruntime')})" if versions else "")
        + "; network runtime: onnxruntime in Triton's python backend, CPU, fp32; client and server on this machine",
        f"- Load: {settings['size'][0]}x{settings['size'][1]} uint8 images with a centred hole, {INPUT_VARIETY} distinct "
        f"inputs cycled; per level `requests` completions from `concurrency` closed-loop client threads; latency per "
        f"request, client side; img/s = completed requests / wall time of the level; `wrong` = responses that differ "
        "from the in-process API's bytes for the same input",
        f"- Model: {settings.get('model') or 'the packaged model'}",
        "",
        *markdown_table(report["rows"]),
    ]
    return "\n".join(lines) + "\n"


def report_dict(result: dict, machine: dict, settings: dict) -> dict[str, Any]:
    return {"schema": SCHEMA, "machine": machine, "settings": settings, "server": result.get("server", {}),
            "rows": result["rows"]}


def write_report(report: dict, stem: str) -> list[str]:
    """``stem``.json (everything) and ``stem``.md (the table), each written atomically."""
    import json

    texts = {f"{stem}.json": json.dumps(report, indent=1, default=str), f"{stem}.md": format_markdown(report)}
    for path, text in texts.items():
        atomic_write_data(path, text)
    return list(texts)
