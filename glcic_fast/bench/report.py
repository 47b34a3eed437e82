"""Reports of a benchmark run: the terminal table, Markdown, JSON, and the "fastest per case"
summary."""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from tabulate import tabulate

from ..atomic import atomic_write_data
from .variants import MODES

SCHEMA = "glcic-fast-bench/1"


def unavailable_summary(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """One entry per variant (and mode) that did not run, with its reason."""
    seen: dict[tuple, dict] = {}
    for r in rows:
        if r["status"] == "ok":
            continue
        key = (r["backend"], r["status"], r["reason"])
        entry = seen.setdefault(key, {"backend": r["backend"], "precision": r["precision"], "status": r["status"],
                                      "reason": r["reason"], "modes": []})
        if r["mode"] not in entry["modes"]:
            entry["modes"].append(r["mode"])
    return list(seen.values())


def report_dict(rows: Sequence[dict], machine: dict, settings: dict) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "machine": machine,
        "settings": settings,
        "rows": list(rows),
        "unavailable": unavailable_summary(rows),
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("backend", "backend", None),
    ("precision", "prec", None),
    ("mode", "mode", None),
    ("size", "size", None),
    ("batch", "batch", None),
    ("p50_ms", "p50 ms", 2),
    ("mean_ms", "mean ms", 2),
    ("min_ms", "min ms", 2),
    ("p90_ms", "p90 ms", 2),
    ("p99_ms", "p99 ms", 2),
    ("images_per_s", "img/s", 1),
    ("gflops", "GFLOP/s", 1),
    ("pct_peak", "% peak", 1),
    ("speedup", "speedup", 2),
    ("iters", "iters", None),
)


def _table_cells(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    header = [title for _, title, _ in TABLE_COLUMNS]
    body = [[_fmt(r.get(key), digits or 2) for key, _, digits in TABLE_COLUMNS] for r in rows if r["status"] == "ok"]
    return header, body


def _machine_line(machine: dict) -> str:
    parts = [f"{machine.get('device_name')}"]
    if machine.get("device") == "cpu":
        parts.append(f"{machine.get('cpu_affinity') or machine.get('cpu_count')} cores available")
        if machine.get("cpu_isa"):
            parts.append(machine["cpu_isa"])
    if machine.get("gpu_memory_gib"):
        parts.append(f"{machine['gpu_memory_gib']} GiB")
    versions = [f"{k} {machine[k]}" for k in ("torch", "onnxruntime", "openvino", "nncf", "triton", "tensorrt") if machine.get(k)]
    if machine.get("torch_cuda"):
        versions.append(f"CUDA {machine['torch_cuda']}")
    commit = (machine.get("git_commit") or "unknown")[:10] + ("+dirty" if machine.get("git_dirty") else "")
    return f"{', '.join(parts)}; {', '.join(versions)}; {machine.get('date')}; commit {commit}"


def format_table(rows: Sequence[dict], machine: Optional[dict] = None) -> str:
    """Plain-text table for the terminal, then the variants that did not run."""
    header, body = _table_cells(rows)
    lines = [_machine_line(machine)] if machine else []
    lines.append(tabulate(body, header, tablefmt="simple", disable_numparse=True, stralign="right"))
    missing = unavailable_summary(rows)
    if missing:
        lines.append("")
        lines.append("not measured:")
        lines += [f"  {m['backend']} ({m['precision']}, {'/'.join(m['modes'])}): {m['status']}: {m['reason']}" for m in missing]
    return "\n".join(lines)


def best_summary(rows: Sequence[dict], baseline: Optional[str]) -> list[str]:
    """For each size x batch x mode: the fastest variant and its speedup over the baseline."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["height"] * r["width"], r["size"], r["batch"], MODES.index(r["mode"]), r["mode"]), []).append(r)
    out = []
    for key in sorted(groups):
        best = min(groups[key], key=lambda r: r["p50_ms"])
        _, size, batch, _, mode = key
        speed = f", {best['speedup']:.2f}x vs {baseline}" if best.get("speedup") is not None and baseline else ""
        out.append(f"{size} batch {batch} {mode}: fastest {best['backend']} ({best['precision']}) "
                   f"{best['p50_ms']:.2f} ms p50{speed}")
    return out


def format_markdown(report: dict) -> str:
    machine, settings, rows = report["machine"], report["settings"], report["rows"]
    header, body = _table_cells(rows)
    lines = [
        f"# glcic-fast latency: {machine.get('device_name')} ({machine.get('device')})",
        "",
        f"- Machine: {_machine_line(machine)}",
        f"- Settings: warm-up {settings.get('warmup')}, timed iterations >= {settings.get('iters')}"
        + (f" and >= {settings['min_time']} s" if settings.get("min_time") else "")
        + ("; backends timed in turns (interleaved)" if settings.get("interleave") else "")
        + f"; timing: {'CUDA events' if machine.get('device') == 'cuda' else 'perf_counter + synchronize'}; "
        f"model: {settings.get('model') or 'random weights (seed ' + str(settings.get('seed')) + '), BN folded'}",
        "- Modes: `network` = backend(x) on a float32 (N,4,H,W) array (host copies included); "
        "`end-to-end` = uint8 image + mask in, uint8 out through `Completer.complete`; "
        "`device` = network on a tensor already on the device.",
        f"- FLOPs = 2 x {settings.get('macs_per_pixel'):,} MACs/pixel x H x W x batch; "
        f"speedup = p50 of `{settings.get('baseline')}` / p50 of the row (same size, batch, mode).",
    ]
    if machine.get("device") == "cpu" and machine.get("cpu_isa"):
        lines.append(f"- CPU instruction set: {machine['cpu_isa']} (class `{machine.get('cpu_class')}`)")
    if machine.get("cpu_gemm_peaks"):
        peaks = "; ".join(
            f"{kind} {max(rates.values()):.0f} {'GOP/s' if kind == 'int8' else 'GFLOP/s'} ("
            + ", ".join(f"{lib} {rate:.0f}" for lib, rate in rates.items()) + ")"
            for kind, rates in machine["cpu_gemm_peaks"].items()
        )
        lines.append(f"- % peak against the measured GEMM peak (2048^3 matmul, best library): {peaks}")
    elif machine.get("peak_tflops"):
        peaks = ", ".join(f"{k} {v:g}" for k, v in machine["peak_tflops"].items())
        lines.append(f"- % peak against dense TFLOP/s: {peaks} (fp32 = non-tensor-core rate; "
                     f"cuDNN TF32 allowed: {machine.get('cudnn_allow_tf32')})")
    if settings.get("note"):
        lines.append(f"- Note: {settings['note']}")
    # Compact rows (no padding): the file is read rendered; the names left, the numbers right.
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 4 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    best = best_summary(rows, settings.get("baseline"))
    if best:
        lines += ["", "## Fastest per case", ""] + [f"- {b}" for b in best]
    missing = report["unavailable"]
    if missing:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{m['backend']}` ({m['precision']}, {'/'.join(m['modes'])}): {m['status']}: {m['reason']}" for m in missing]
    return "\n".join(lines) + "\n"


def write_outputs(report: dict, json_path=None, markdown_path=None, plot_path=None) -> list[str]:
    """Write the requested files atomically; returns the paths written."""
    written = []
    if json_path:
        atomic_write_data(json_path, json.dumps(report, indent=1, default=str))
        written.append(str(json_path))
    if markdown_path:
        atomic_write_data(markdown_path, format_markdown(report))
        written.append(str(markdown_path))
    if plot_path:
        from .plot import write_plot  # matplotlib is optional: only a plot needs it

        write_plot(report, plot_path)
        written.append(str(plot_path))
    return written
