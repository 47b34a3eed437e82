"""A model card for a budgeted run, from what the run wrote.

    python -m glcic_fast.train.card --export OUT --pack .photos [--eval OUT/eval.json] -o OUT/MODEL_CARD.md

It gathers the run's ``summary.json`` (plan, speed, validations, options), the evaluation
(``glcic-fast eval --json`` and the ``--markdown`` tables beside it: the network-vs-baseline
differences with 95% intervals), and the photo pack's ``SOURCES.md`` (every source and licence) into one Markdown
file: a draft that states only measured numbers, for a person to complete and ship.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional


def _verdict(report: dict[str, Any]) -> list[str]:
    """One line per baseline: does the network alone beat it on hole PSNR, L1 and SSIM (95% interval)?"""
    lines = []
    for kind, pairs in report.get("comparisons", {}).items():
        if kind != "paper":
            continue
        for pair, c in pairs.items():
            if not pair.startswith("glcic vs"):
                continue
            wins = [c["psnr_hole"]["ci95"][0] > 0, c["l1_hole"]["ci95"][1] < 0, c["ssim_hole"]["ci95"][0] > 0]
            losses = [c["psnr_hole"]["ci95"][1] < 0, c["l1_hole"]["ci95"][0] > 0, c["ssim_hole"]["ci95"][1] < 0]
            if all(wins):
                word = "beats (PSNR, L1 and SSIM, 95% intervals clear of zero)"
            elif all(losses):
                word = "loses to"
            else:
                word = "does not clearly beat"
            lines.append(f"- {report['settings']['image_size']}x{report['settings']['image_size']}, paper holes: the network "
                         f"alone {word} {pair.split(' vs ')[1]} (PSNR {c['psnr_hole']['diff']:+.2f} dB "
                         f"[{c['psnr_hole']['ci95'][0]:+.2f}, {c['psnr_hole']['ci95'][1]:+.2f}], "
                         f"better on {100 * c['psnr_hole']['better']:.0f}% of holes)")
    return lines


def model_card(export: Path, pack: Optional[Path], evaluation: Optional[Path]) -> str:
    summary = json.loads((export / "summary.json").read_text())
    o, plan, best = summary["options"], summary.get("plan", {}), summary.get("best") or {}
    lines = [
        "# glcic-fast model trained at the paper's scale (draft)",
        "",
        f"Trained with `bash train/gpu_train.sh` on {summary.get('gpu') or summary['device']} (torch {summary['torch']}): "
        f"{o['image_size']}x{o['image_size']} crops, one {o['hole_min']}-{o['hole_max']} px hole in a "
        f"{o['local_size']} px local region, batch {o['batch_size']}, {o['optimizer'].upper()} lr {o.get('lr') or 1.0}.",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| speed | {plan.get('measured_steps_per_s', '?')} steps/s measured, {plan.get('planned_steps', '?')} steps planned |",
        f"| phases | MSE {plan.get('iters_c', '?')} steps, discriminator {plan.get('iters_d', 0)}, joint "
        f"{(plan.get('planned_steps') or 0) - (plan.get('iters_c') or 0) - (plan.get('iters_d') or 0)} |",
        f"| steps done | {summary['step']} |",
        f"| shipped snapshot | step {best.get('step', '?')}, validation hole PSNR {best.get('val_psnr_hole', '?')} dB "
        "(BatchNorm statistics re-estimated with the final weights) |",
        f"| training photos | {summary['photos']} (skipped: {len(summary.get('skipped') or {})}) |",
        "",
        "Validation (package-disjoint split, seeded paper holes), every snapshot:",
        "",
        "| step | hole PSNR (dB) |",
        "|---:|---:|",
        *[f"| {v['step']} | {v['val_psnr_hole']:.2f} |" for v in summary.get("validations", [])],
        "",
    ]
    if evaluation and evaluation.is_file():
        runs = json.loads(evaluation.read_text())["runs"]
        lines += ["## Evaluation (held-out test split, package-disjoint)", ""]
        for report in runs:
            lines += _verdict(report)
        tables = evaluation.with_suffix(".md")  # glcic-fast eval --markdown, beside the JSON
        lines += [""] + (tables.read_text().splitlines() if tables.is_file() else [])
    if pack and (pack / "SOURCES.md").is_file():
        lines += ["## Training data", "", "Splits are by package; per-photo licences are in the pack's manifest.csv.", ""]
        lines += (pack / "SOURCES.md").read_text().splitlines()[1:]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse

    from ..atomic import atomic_write_data

    p = argparse.ArgumentParser(prog="python -m glcic_fast.train.card", description=__doc__.split("\n\n")[0])
    p.add_argument("--export", required=True, help="the run's export folder (summary.json)")
    p.add_argument("--pack", default=None, help="the photo pack (SOURCES.md)")
    p.add_argument("--eval", default=None, help="glcic-fast eval --json output")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    atomic_write_data(a.output, model_card(Path(a.export), Path(a.pack) if a.pack else None, Path(a.eval) if a.eval else None))
    print(a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
