"""Timing one call honestly: device synchronisation, CUDA events on a GPU, warm-up, enough
iterations, and the statistics (min / p50 / p90 / p99 / mean) a row reports."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np


def _cuda_events_available(device: str) -> bool:
    if device != "cuda":
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


class Timer:
    """Times one call (plus synchronisation) in ms: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: str):
        self.use_events = _cuda_events_available(device)
        if self.use_events:
            import torch

            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def once(self, fn: Callable[[], Any], synchronize: Callable[[], None]) -> float:
        if self.use_events:
            self._start.record()
            fn()
            synchronize()
            self._end.record()
            self._end.synchronize()
            return float(self._start.elapsed_time(self._end))
        t0 = time.perf_counter()
        fn()
        synchronize()
        return (time.perf_counter() - t0) * 1e3


def enough_iterations(n: int, iters: int, min_time: Optional[float], elapsed: float, max_iters: int) -> bool:
    """Stop after ``iters`` calls and, with ``min_time``, ``min_time`` seconds; never past ``max_iters``."""
    return n >= max_iters or (n >= iters and (min_time is None or elapsed >= min_time))


def time_calls(
    fn: Callable[[], Any],
    synchronize: Callable[[], None],
    device: str,
    warmup: int,
    iters: int,
    min_time: Optional[float] = None,
    max_iters: int = 10_000,
) -> list[float]:
    """Latencies in ms of ``fn`` (each call followed by ``synchronize``).

    Runs ``warmup`` untimed calls, then timed calls until ``iters`` are done and, when
    ``min_time`` is given, at least ``min_time`` seconds have passed (at most ``max_iters``).
    On CUDA each call is bracketed by CUDA events on the current stream.
    """
    for _ in range(warmup):
        fn()
        synchronize()
    timer = Timer(device)
    times: list[float] = []
    begin = time.perf_counter()
    while not times or not enough_iterations(len(times), iters, min_time, time.perf_counter() - begin, max_iters):
        times.append(timer.once(fn, synchronize))
    return times


def latency_stats(times_ms: Sequence[float], batch: int, flops: float, peak_tflops: Optional[float]) -> dict[str, Any]:
    a = np.asarray(times_ms, dtype=np.float64)
    mean = float(a.mean())
    stats: dict[str, Any] = {
        "iters": int(a.size),
        "min_ms": float(a.min()),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": mean,
        "std_ms": float(a.std()),
        "images_per_s": batch * 1e3 / mean,
        "gflops": flops / (mean * 1e-3) / 1e9,
    }
    stats["peak_tflops"] = peak_tflops
    stats["pct_peak"] = 100.0 * stats["gflops"] / (peak_tflops * 1e3) if peak_tflops else None
    return stats
