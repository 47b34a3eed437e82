"""The large-photo case: a 12-megapixel photo with a small hole, end to end, time and peak memory.

``glcic-fast bench --large-photo`` (or ``run_large_photo``) completes a 4000x3000 photo (the
bundled demo photo scaled up) with one centred square hole of 5% of its area through
``Completer.complete``, uint8 in and out, in two ways:

- ``hole windows``: the default path, the network sees only what the hole needs
  (``glcic_fast.regions``);
- ``whole image``: ``crop_to_holes=False``, the whole photo through the network (what every
  call did before the windows existed).

Each way runs in a fresh process, because peak memory is a process's high-water mark
(``ru_maxrss``): the row gives the peak with the model loaded and the photo in memory, and the
peak after the calls. Times are wall-clock seconds per call (the first call included: a large
photo is usually completed once).
"""

from __future__ import annotations

import datetime as _dt
import json
import multiprocessing
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from ..atomic import atomic_write_data
from .machine import machine_info, results_stem

SCHEMA = "glcic-fast-bench-large-photo/1"
DEFAULT_SIZE = (3000, 4000)  # 12 megapixels, a phone photo
DEFAULT_HOLE_FRACTION = 0.05
MODES = {"hole windows": True, "whole image": False}  # mode -> crop_to_holes


def photo_and_hole(size: tuple[int, int] = DEFAULT_SIZE, hole_fraction: float = DEFAULT_HOLE_FRACTION):
    """(uint8 HxWx3 photo, bool HxW mask with one centred square hole of ``hole_fraction`` of the area)."""
    import numpy as np
    from PIL import Image

    h, w = size
    demo = Path(__file__).resolve().parent.parent / "data" / "demo.jpg"
    with Image.open(demo) as im:
        photo = np.asarray(im.convert("RGB").resize((w, h), Image.BICUBIC))
    side = int(round((hole_fraction * h * w) ** 0.5))
    hole = np.zeros((h, w), dtype=bool)
    top, left = (h - side) // 2, (w - side) // 2
    hole[top : top + side, left : left + side] = True
    return photo, hole


def _measure(mode: str, size, hole_fraction, backend, device, model, calls) -> dict[str, Any]:
    """One mode in this (fresh) process: load, build the photo, time ``calls`` calls, read the peak."""
    import resource
    import time

    import numpy as np

    from ..api import load
    from ..regions import hole_windows

    completer = load(model, backend=backend, device=device, crop_to_holes=MODES[mode])
    photo, hole = photo_and_hole(size, hole_fraction)
    loaded_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        out = completer.complete(photo, hole)
        completer.backend.synchronize()
        times.append(time.perf_counter() - t0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not np.array_equal(out[~hole], photo[~hole]):
        raise RuntimeError("pixels outside the hole changed")
    windows = [(win.height, win.width) for win in hole_windows(hole)] if MODES[mode] else [size]
    return {
        "mode": mode,
        "backend": completer.backend.name,
        "precision": completer.backend.precision,
        "device": completer.backend.device,
        "size": f"{size[0]}x{size[1]}",
        "megapixels": round(size[0] * size[1] / 1e6, 2),
        "hole": f"{int(hole.any(1).sum())}x{int(hole.any(0).sum())}",
        "hole_fraction": round(float(hole.mean()), 4),
        "network_inputs": [f"{h}x{w}" for h, w in windows],
        "network_megapixels": round(sum(h * w for h, w in windows) / 1e6, 2),
        "calls": calls,
        "seconds": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "loaded_rss_gib": round(loaded_kib / 2**20, 2),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "peak_over_loaded_gib": round((peak_kib - loaded_kib) / 2**20, 2),
    }


def run_large_photo(
    modes: Sequence[str] = tuple(MODES),
    calls: dict[str, int] | int = 3,
    size: tuple[int, int] = DEFAULT_SIZE,
    hole_fraction: float = DEFAULT_HOLE_FRACTION,
    backends: Sequence[str] = ("auto",),
    device: str = "cpu",
    model: Any = None,
) -> list[dict[str, Any]]:
    """One row per backend and mode, each measured in its own fresh process (see the module docstring)."""
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for backend in backends:
        measured = []
        for mode in modes:
            if mode not in MODES:
                raise ValueError(f"unknown large-photo mode {mode!r}; expected one of {tuple(MODES)}")
            n = calls if isinstance(calls, int) else calls.get(mode, 1)
            if n >= 1:
                with ctx.Pool(1) as pool:
                    measured.append(pool.apply(_measure, (mode, tuple(size), hole_fraction, backend, device, model, n)))
        base = next((r for r in measured if r["mode"] == "whole image"), None)
        for r in measured:
            if base is not None and r is not base:
                r["speedup_vs_whole_image"] = round(base["median_s"] / r["median_s"], 2)
                r["memory_ratio_vs_whole_image"] = round(base["peak_over_loaded_gib"] / max(r["peak_over_loaded_gib"], 1e-3), 1)
        rows += measured
    return rows


def format_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Large photo: 12 MP with a small hole, end to end",
        "",
        f"{m.get('device_name')}, {m.get('cpu_affinity') or m.get('cpu_count')} cores available; "
        f"torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}; {m.get('date')}; "
        f"commit {(m.get('git_commit') or 'unknown')[:10]}{'+dirty' if m.get('git_dirty') else ''}",
    ]
    if report["settings"].get("note"):
        lines += ["", report["settings"]["note"]]
    lines += [
        "",
        "| mode | backend | photo | hole | network input | s per call (median) | calls | peak RSS GiB | "
        "over loaded model GiB |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['mode']} | {r['backend']} {r['precision']} | {r['size']} | {r['hole']} "
                     f"({100 * r['hole_fraction']:.1f}%) | {', '.join(r['network_inputs'])} | {r['median_s']:.1f} | "
                     f"{r['calls']} | {r['peak_rss_gib']:.2f} | {r['peak_over_loaded_gib']:.2f} |")
    for r in report["rows"]:
        if "speedup_vs_whole_image" in r:
            lines += ["", f"{r['backend']}, {r['mode']}: {r['speedup_vs_whole_image']:.1f}x faster than the whole image, "
                      f"{r['memory_ratio_vs_whole_image']:.1f}x less memory above the loaded model."]
    return "\n".join(lines) + "\n"


def write_large_photo(rows: list[dict], device: str, json_path=None, markdown_path=None, results_dir=None,
                      note: Optional[str] = None) -> list[str]:
    """Write the report (JSON and/or Markdown; ``results_dir``: <machine>-<date>-large-photo.*)."""
    machine = machine_info(device)
    report = {"schema": SCHEMA, "machine": machine, "settings": {"note": note}, "rows": rows}
    if results_dir:
        stem = Path(results_dir) / f"{results_stem(device, machine, _dt.date.today().isoformat())}-large-photo"
        json_path, markdown_path = json_path or f"{stem}.json", markdown_path or f"{stem}.md"
    files = [(json_path, lambda: json.dumps(report, indent=1, default=str)), (markdown_path, lambda: format_markdown(report))]
    for path, text in files:
        if path:
            atomic_write_data(path, text())
    return [str(path) for path, _ in files if path]
