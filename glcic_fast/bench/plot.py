"""The benchmark's picture: p50 latency vs batch, one line per variant, one panel per size."""

from __future__ import annotations

from ..atomic import atomic_write_bytes
from .variants import MODES


def write_plot(report: dict, path: str) -> None:
    """p50 latency vs batch, one line per variant (line style per mode), one panel per size."""
    import matplotlib  # optional (the bench extra): only --plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["status"] == "ok"]
    sizes = sorted({(r["height"], r["width"]) for r in rows}, key=lambda s: s[0] * s[1]) or [(0, 0)]
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.5), squeeze=False)
    labels = list(dict.fromkeys(r["backend"] for r in rows))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    styles = {"network": "-", "end-to-end": "--", "device": ":"}
    for ax, (h, w) in zip(axes[0], sizes):
        for lab in labels:
            for mode in MODES:
                pts = sorted((r["batch"], r["p50_ms"]) for r in rows
                             if r["backend"] == lab and r["mode"] == mode and (r["height"], r["width"]) == (h, w))
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, styles[mode], marker="o", color=colors[lab], label=f"{lab} ({mode})")
        ax.set_title(f"{h}x{w}")
        ax.set_xlabel("batch")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted({r["batch"] for r in rows})
        if batches:
            ax.set_xticks(batches)
            ax.set_xticklabels([str(b) for b in batches])
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    machine = report["machine"]
    fig.suptitle(f"glcic-fast latency on {machine.get('device_name')} ({machine.get('date', '')[:10]})")
    fig.tight_layout()
    atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
