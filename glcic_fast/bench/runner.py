"""The benchmark run: build each variant's backend, time every case, keep a row per case.

Variants that cannot run here become rows with status "unavailable" and the reason; cases not
started within the time budget or after an interrupt become "skipped" rows, so a report
always shows the whole grid.
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..api import Completer, resolve_device
from ..errors import BackendUnavailable
from ..layers import PLACES2_MEAN, macs_per_pixel
from ..photo_samples import InputConvention
from ..resolve import resolve_model
from .builders import build_backend, free_device_memory
from .inputs import bench_inputs, network_batch, random_layers
from .machine import machine_info
from .timing import Timer, enough_iterations, latency_stats, time_calls
from .variants import DEFAULT_BASELINE, Variant, parse_batch_sizes, parse_sizes, parse_variants

# Set by the CLI's SIGTERM handler; checked before every case.
STOP_REQUESTED: dict[str, Optional[str]] = {"reason": None}


# ----------------------------------------------------------------------------- the run


@dataclass
class _Case:
    size: tuple[int, int]
    batch: int
    mode: str


def _base_row(variant: Variant, device: str, precision: str, case: _Case, macs: int) -> dict[str, Any]:
    h, w = case.size
    return {
        "backend": variant.label,
        "backend_name": variant.backend,
        "precision": precision,
        "options": dict(variant.options),
        "device": device,
        "mode": case.mode,
        "height": h,
        "width": w,
        "size": f"{h}x{w}",
        "batch": case.batch,
        "flops": 2.0 * macs * h * w * case.batch,
        "status": "ok",
        "reason": None,
    }


def _short_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return first[:500]


def run_benchmark(
    device: str = "auto",
    backends: Optional[str | Sequence[str]] = None,
    sizes: str | Sequence = ((256, 256),),
    batch_sizes: str | Sequence = (1,),
    warmup: int = 2,
    iters: int = 10,
    end_to_end: bool = True,
    *,
    network: bool = True,
    device_resident: bool = False,
    min_time: Optional[float] = None,
    max_iters: int = 10_000,
    interleave: bool = False,
    model: Any = None,
    baseline: Optional[str] = DEFAULT_BASELINE,
    time_budget: Optional[float] = None,
    progress: bool = True,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time every variant x size x batch x mode; one dict per case (see the module docstring).

    ``backends``: variant labels (comma-separated or a list; None = DEFAULT_VARIANTS).
    ``sizes``: "256x256,512x512" or [(H, W), ...]. Modes: ``network`` (backend(x) on a float32
    array), ``end_to_end`` (uint8 through ``Completer.complete``), ``device_resident`` (the
    network on a device tensor). ``interleave``: build every backend first, then for each case
    take turns (one timed call per variant per round, rotating who goes first), so load from
    other processes on a shared machine hits every variant alike; otherwise each variant is
    timed in one stretch. ``model``: a checkpoint path or ``CompletionNetwork`` (None: seeded
    random weights). ``time_budget`` (s): cases not started within it are kept as "skipped"
    rows. A KeyboardInterrupt (or SIGTERM under the CLI) stops timing early and likewise marks
    the rest "skipped".

    Rows have ``status`` "ok" (with min_ms, p50_ms, p90_ms, p99_ms, mean_ms, std_ms, iters,
    images_per_s, gflops, pct_peak, first_call_ms, setup_s), or "unavailable" / "error" /
    "skipped" with ``reason``. ``speedup`` is the baseline variant's p50 over this row's, for
    the same size, batch and mode.
    """
    dev = resolve_device(device)
    variants = parse_variants(backends)
    size_list = parse_sizes(sizes)
    batch_list = parse_batch_sizes(batch_sizes)
    modes = [m for m, on in (("network", network), ("end-to-end", end_to_end), ("device", device_resident)) if on]
    if not modes:
        raise ValueError("no mode selected: enable network, end_to_end or device_resident")
    if warmup < 0 or iters < 1 or max_iters < 1:
        raise ValueError("warmup must be >= 0, iters and max_iters >= 1")
    if model is None:
        layers, mean, fill, meta = random_layers(seed), PLACES2_MEAN, "subtract-mean", None
    else:
        layers, mean, fill, meta = resolve_model(model)
    run = _Run(dev, variants, size_list, batch_list, modes, layers, mean, fill, seed,
               warmup, iters, min_time, max_iters, time_budget, progress, meta)
    with tempfile.TemporaryDirectory(prefix="glcic-bench-") as workdir:
        run.workdir = workdir
        if interleave:
            run.interleaved()
        else:
            run.sequential()
    run.bar.close()
    order = {v.label: i for i, v in enumerate(variants)}
    case_order = {(c.size, c.batch, c.mode): i for i, c in enumerate(run.cases)}
    rows = sorted(run.rows, key=lambda r: (order[r["backend"]], case_order[((r["height"], r["width"]), r["batch"], r["mode"])]))
    add_speedups(rows, baseline)
    return rows


class _Unsupported(Exception):
    """This backend cannot run this mode (e.g. no device-tensor entry point)."""


@dataclass
class _Built:
    variant: Variant
    precision: str
    backend: Any
    completer: Any
    setup_s: float


class _Run:
    """State of one benchmark run: the grid, the inputs, the rows so far, the time budget."""

    def __init__(self, dev, variants, sizes, batches, modes, layers, mean, fill, seed,
                 warmup, iters, min_time, max_iters, time_budget, progress, meta=None):
        self.dev, self.variants, self.sizes, self.batches = dev, variants, sizes, batches
        self.layers, self.mean, self.fill = layers, mean, fill
        self.convention = InputConvention(tuple(mean), fill) if meta is None else InputConvention.from_metadata(mean, fill, meta)
        self.warmup, self.iters, self.min_time, self.max_iters = warmup, iters, min_time, max_iters
        self.time_budget = time_budget
        self.macs = macs_per_pixel()
        self.peaks = machine_info(dev)["peak_tflops"]
        self.cases = [_Case(s, b, m) for s in sizes for b in batches for m in modes]
        self.inputs = {(s, b): bench_inputs(b, s, seed) for s in sizes for b in batches}
        self.bar = tqdm(total=len(variants) * len(self.cases), unit="case", file=sys.stderr, dynamic_ncols=True,
                        leave=False, disable=not progress)
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.interrupted: Optional[str] = None
        self.workdir = ""
        self.timer = Timer(dev)

    def over_budget(self) -> Optional[str]:
        if STOP_REQUESTED["reason"] and not self.interrupted:
            self.interrupted = STOP_REQUESTED["reason"]
        if self.interrupted:
            return self.interrupted
        if self.time_budget is not None and time.perf_counter() - self.started > self.time_budget:
            return f"time budget of {self.time_budget:g} s used up before this case"
        return None

    def _all_cases(self, variant: Variant, precision: str, status: str, reason: str) -> None:
        self.rows += _rows_with_status(variant, self.dev, precision, self.cases, self.macs, status, reason)
        self.bar.update(len(self.cases))

    def build(self, variant: Variant) -> Optional[_Built]:
        """The variant's backend, or None after recording why it cannot run."""
        try:
            precision = variant.resolved_precision(self.dev)
        except ValueError as e:
            self._all_cases(variant, variant.precision or "?", "unavailable", str(e))
            return None
        skip = self.over_budget()
        if skip:
            self._all_cases(variant, precision, "skipped", skip)
            return None
        self.bar.set_description(variant.label)
        try:
            t0 = time.perf_counter()
            backend = build_backend(variant, self.layers, self.dev, precision, self.sizes, self.batches, self.workdir,
                                    self.convention)
            precision = backend.precision  # "auto" resolves to what was picked
            setup_s = time.perf_counter() - t0
        except KeyboardInterrupt:
            self.interrupted = STOP_REQUESTED["reason"] or "interrupted (Ctrl-C) before this case"
            self._all_cases(variant, precision, "skipped", self.interrupted)
            return None
        except Exception as e:  # noqa: BLE001 - every failure is reported, never raised
            if STOP_REQUESTED["reason"]:
                self.interrupted = STOP_REQUESTED["reason"]
                self._all_cases(variant, precision, "skipped", self.interrupted)
                return None
            # ValueError is how backends refuse a precision/device pair (e.g. fp16 on a CPU).
            unavailable = isinstance(e, (BackendUnavailable, ValueError, ImportError))
            if not unavailable:
                traceback.print_exc(file=sys.stderr)
            self._all_cases(variant, precision, "unavailable" if unavailable else "error",
                            str(e) if unavailable else _short_error(e))
            return None
        if variant.backend == "auto":  # rows name what "auto" picked
            variant = Variant(variant.label, backend.name, backend.precision, variant.options)
        return _Built(variant, precision, backend, Completer(backend, self.mean, self.fill), setup_s)

    def _row(self, built: _Built, case: _Case) -> dict[str, Any]:
        return _base_row(built.variant, self.dev, built.precision, case, self.macs)

    def _fail(self, row: dict, e: BaseException) -> None:
        if isinstance(e, _Unsupported):
            row.update(status="unavailable", reason=str(e))
        elif isinstance(e, KeyboardInterrupt) or STOP_REQUESTED["reason"]:
            self.interrupted = STOP_REQUESTED["reason"] or "interrupted (Ctrl-C) before this case finished"
            row.update(status="skipped", reason=self.interrupted)
        else:
            traceback.print_exc(file=sys.stderr)
            row.update(status="error", reason=_short_error(e))

    def _finish(self, row: dict, built: _Built, first_ms: float, times: list[float]) -> None:
        row["first_call_ms"] = first_ms
        row.update(latency_stats(times, row["batch"], row["flops"], (self.peaks or {}).get(built.precision)))
        row["setup_s"] = built.setup_s

    def _prepare(self, built: _Built, case: _Case) -> tuple[Callable[[], Any], float]:
        """(the call to time, first-call ms) after the first call and the warm-up calls."""
        fn = _case_call(built.backend, built.completer, case, self.inputs[(case.size, case.batch)],
                        self.mean, self.fill, self.dev)
        first_ms = _first_call(fn, built.backend, case)
        for _ in range(self.warmup):
            fn()
            built.backend.synchronize()
        return fn, first_ms

    def _release(self, built: _Built) -> None:
        built.backend = built.completer = None
        free_device_memory(self.dev)

    def sequential(self) -> None:
        """Each variant in one stretch: build, every case, release (least memory)."""
        for variant in self.variants:
            built = self.build(variant)
            if built is None:
                continue
            for case in self.cases:
                row = self._row(built, case)
                skip = self.over_budget()
                if skip:
                    row.update(status="skipped", reason=skip)
                else:
                    self._time_one_case(built, case, row)
                self.rows.append(row)
                self.bar.update(1)
            self._release(built)

    def _time_one_case(self, built: _Built, case: _Case, row: dict) -> None:
        # A method of its own so the timed closure (which holds the backend) dies on return.
        try:
            fn, first_ms = self._prepare(built, case)
            times = time_calls(fn, built.backend.synchronize, self.dev, 0, self.iters, self.min_time, self.max_iters)
            self._finish(row, built, first_ms, times)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
            self._fail(row, e)

    def interleaved(self) -> None:
        """Every variant built up front; per case, one timed call per variant per round."""
        built_all = [b for b in (self.build(v) for v in self.variants) if b is not None]
        for case in self.cases:
            skip = self.over_budget()
            active: list[tuple[dict, _Built, Callable[[], Any], float, list[float]]] = []
            for built in built_all:
                row = self._row(built, case)
                if skip:
                    row.update(status="skipped", reason=skip)
                    self.rows.append(row)
                    continue
                try:
                    fn, first_ms = self._prepare(built, case)
                    active.append((row, built, fn, first_ms, []))
                except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                    self._fail(row, e)
                    self.rows.append(row)
                    skip = skip or self.interrupted
            begin, rounds = time.perf_counter(), 0
            while active and not enough_iterations(rounds, self.iters, self.min_time, time.perf_counter() - begin, self.max_iters):
                if self.interrupted:
                    break
                k = rounds % len(active)
                for entry in active[k:] + active[:k]:  # rotate who goes first
                    row, built, fn, _, times = entry
                    if row["status"] != "ok":
                        continue
                    try:
                        times.append(self.timer.once(fn, built.backend.synchronize))
                    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                        self._fail(row, e)
                        if self.interrupted:
                            break
                rounds += 1
            for row, built, _, first_ms, times in active:
                if row["status"] == "ok":
                    if times and not self.interrupted:
                        self._finish(row, built, first_ms, times)
                    elif self.interrupted:
                        row.update(status="skipped", reason=self.interrupted)
                self.rows.append(row)
            self.bar.update(len(built_all))
            active.clear()
        for built in built_all:
            self._release(built)


def _rows_with_status(variant, device, precision, cases, macs, status, reason) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        row = _base_row(variant, device, precision, case, macs)
        row.update(status=status, reason=reason)
        rows.append(row)
    return rows


def _case_call(backend, completer, case: _Case, data, mean, fill, device) -> Callable[[], Any]:
    """The call a case times: end-to-end complete(), backend(x), or backend.run_tensor(x)."""
    images, masks = data
    if case.mode == "end-to-end":
        return lambda: completer.complete(images, masks)
    x = network_batch(images, masks, mean, fill)
    if case.mode == "network":
        return lambda: backend(x)
    run_tensor = getattr(backend, "run_tensor", None)
    if run_tensor is None:
        raise _Unsupported(f"the {backend.name} backend has no device-tensor entry point (run_tensor)")
    import torch  # the device mode exists only for torch-based GPU backends

    xt = torch.from_numpy(x).to(device)
    return lambda: run_tensor(xt)


def _first_call(fn: Callable[[], Any], backend, case: _Case) -> float:
    """Run ``fn`` once (graph capture, autotuning, compilation happen here), check its output; ms."""
    h, w = case.size
    expect = (case.batch, h, w, 3) if case.mode == "end-to-end" else (case.batch, 3, h, w)
    t0 = time.perf_counter()
    out = fn()
    backend.synchronize()
    first_ms = (time.perf_counter() - t0) * 1e3
    if tuple(out.shape) != expect:
        raise RuntimeError(f"{case.mode} output has shape {tuple(out.shape)}, expected {expect}")
    if case.mode == "end-to-end" and out.dtype != np.uint8:
        raise RuntimeError(f"end-to-end output is {out.dtype}, expected uint8")
    return first_ms


def add_speedups(rows: list[dict[str, Any]], baseline: Optional[str]) -> None:
    """Set ``speedup`` (baseline p50 / row p50) and ``baseline`` on every measured row."""
    if not baseline:
        return
    base = {
        (r["size"], r["batch"], r["mode"]): r["p50_ms"]
        for r in rows
        if r["backend"] == baseline and r["status"] == "ok"
    }
    for r in rows:
        ref = base.get((r["size"], r["batch"], r["mode"]))
        if r["status"] == "ok" and ref:
            r["speedup"] = ref / r["p50_ms"]
            r["baseline"] = baseline
