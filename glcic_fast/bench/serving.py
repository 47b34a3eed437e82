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
measures a server that is already running instead. Each level runs in rounds, every target
(in-process, each server and protocol) taking its turn in each round, so that a change in the
machine's load during the run (a shared machine) hits all targets alike.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_data
from .inputs import bench_inputs
from .timing import latency_stats

SCHEMA = "glcic-fast-bench-serve/1"
DEFAULT_CONCURRENCY = (1, 4, 16)
DEFAULT_SIZE = (128, 128)
INPUT_VARIETY = 4  # distinct images cycled through, so no cache could answer
DEFAULT_ROUNDS = 3


def default_requests(concurrency: int) -> int:
    """Enough requests that every client thread sends several (and at least 16 in all)."""
    return max(16, 3 * concurrency)


@dataclass
class Load:
    """What one target did at one concurrency, summed over its rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    requests: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)

    def row(self, target: str, mode: Optional[bool], concurrency: int) -> dict[str, Any]:
        row: dict[str, Any] = {"target": target, "dynamic_batching": mode, "concurrency": concurrency,
                               "requests": self.requests, "errors": len(self.errors), "wrong": self.wrong,
                               "wall_s": self.wall_s, "first_error": self.errors[0] if self.errors else None}
        if self.latencies_ms:
            stats = latency_stats(self.latencies_ms, 1, 0.0, None)
            row.update({k: stats[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms")})
            row["images_per_s"] = len(self.latencies_ms) / self.wall_s  # throughput, not 1 / latency
        return row


def run_load(call: Callable[[int], Any], check: Callable[[int, Any], bool], concurrency: int, requests: int,
             into: Optional[Load] = None) -> Load:
    """Send ``requests`` calls ``call(i)`` from ``concurrency`` closed-loop threads; add to ``into``."""
    load = into if into is not None else Load()
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
                    load.errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            elapsed = (time.perf_counter() - t0) * 1e3
            ok = check(i, result)
            with lock:
                load.latencies_ms.append(elapsed)
                load.wrong += not ok

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.wall_s += time.perf_counter() - t0
    load.requests += requests
    return load


def measure_interleaved(targets: Sequence[tuple[str, Optional[bool], Callable[[int], Any]]],
                        check: Callable[[int, Any], bool], concurrencies: Sequence[int], requests: Optional[int],
                        rounds: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each concurrency level in ``rounds`` rounds, every target taking its turn in each round, so
    a change in the machine's load (it may be shared) hits all targets alike."""
    rows = []
    for c in concurrencies:
        total = requests or default_requests(c)
        per_round = [total // rounds + (r < total % rounds) for r in range(rounds)]
        loads = [Load() for _ in targets]
        for _, _, call in targets:  # warm-up: connections, sessions, the first batch of each size
            for i in range(min(c, 4)):
                call(i)
        for n in per_round:
            for (_, _, call), load in zip(targets, loads):
                if n:
                    run_load(call, check, c, n, into=load)
        for (name, mode, _), load in zip(targets, loads):
            rows.append(load.row(name, mode, c))
            log(_progress_line(rows[-1]))
    return rows


def serve_benchmark(model: Any = None, size: tuple[int, int] = DEFAULT_SIZE,
                    concurrencies: Sequence[int] = DEFAULT_CONCURRENCY, requests: Optional[int] = None,
                    protocols: Sequence[str] = ("http", "grpc"), batching: Sequence[bool] = (True, False),
                    url: Optional[dict[str, str]] = None, server_env: Optional[str] = None, threads: int = 0,
                    rounds: int = DEFAULT_ROUNDS, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rows for the in-process API and each (batching mode, protocol), per concurrency.

    url: {"http": "host:port", "grpc": "host:port"} of a running server to measure instead of
    starting one per batching mode (its batching mode is whatever it was exported with).
    """
    from .. import load
    from ..client import Client

    images, masks = bench_inputs(INPUT_VARIETY, size)
    completer = load(model, backend="onnxruntime", device="cpu", threads=threads or None)
    expected = [completer.complete(images[i], masks[i]) for i in range(INPUT_VARIETY)]
    masks_u8 = masks.astype(np.uint8) * 255

    def check(i: int, result: Any) -> bool:
        return bool(np.array_equal(result, expected[i % INPUT_VARIETY]))

    def served(client: Client) -> Callable[[int], Any]:
        return lambda i: client.complete(images[i % INPUT_VARIETY], masks_u8[i % INPUT_VARIETY])

    targets: list[tuple[str, Optional[bool], Callable[[int], Any]]] = [
        ("in-process API (onnxruntime)", None, lambda i: completer.complete(images[i % INPUT_VARIETY], masks[i % INPUT_VARIETY]))]
    if url:
        targets += [(f"triton {p}", None, served(Client(url[p], protocol=p, timeout=300))) for p in protocols]
        return {"rows": measure_interleaved(targets, check, concurrencies, requests, rounds, log), "server": {"url": url}}
    from ..serving import TritonServer, find_server, prepare_repository

    server = find_server(server_env=server_env, log=log)
    with contextlib.ExitStack() as stack:
        for mode in batching:  # one server per batching mode, all up at once so their turns interleave
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="glcic-bench-serve-"))
            repository, _ = prepare_repository(model, tmp, runtime="onnxruntime", dynamic_batching=mode, threads=threads,
                                               max_size=max(1024, *size))
            triton = stack.enter_context(TritonServer(repository, server, http_port=0, grpc_port=0, metrics_port=0))
            assert triton.endpoints is not None
            e = triton.endpoints
            targets += [(f"triton {p}", mode, served(Client(e.http_url if p == "http" else e.grpc_url, protocol=p,
                                                                   timeout=300))) for p in protocols]
        rows = measure_interleaved(targets, check, concurrencies, requests, rounds, log)
    return {"rows": rows, "server": {"server": server.description, "versions": server.versions}}


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
        f"inputs cycled; per level `requests` completions from `concurrency` closed-loop client threads, in "
        f"{settings.get('rounds', DEFAULT_ROUNDS)} rounds with the targets taking turns; latency per "
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
