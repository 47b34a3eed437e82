"""Accuracy of every reduced-precision CPU variant against fp32: the accuracy gate's numbers
for each, and a side-by-side picture of held-out samples to look at.

    python bench/cpu_accuracy.py [--model M] [--out bench/results/cpu-accuracy-<cpu>-<date>]

Writes <out>.md (a table: hole PSNR against the ground truth, change against fp32, PSNR of the
output against fp32's, mean and worst, per gate size, and the verdict) and <out>.png (rows:
held-out samples with the worst int8 error at 256 px and at the trained size; columns: input
with the hole, ground truth, fp32, each variant, then |variant - fp32| x 8). Variants that need
a missing runtime are listed as such. Quantized models and verdicts come from / go to the
usual cache (``glcic-fast quantize`` builds the same ones).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

import numpy as np

from glcic_fast import accuracy_gate
from glcic_fast.api import load_folded
from glcic_fast.atomic import atomic_write_data
from glcic_fast.backends import unavailable_reason
from glcic_fast.cpu_isa import detect
from glcic_fast.photo_samples import InputConvention
from glcic_fast.resolve import resolve_model

# (backend, precision, int8 recipe)
VARIANTS = (("openvino", "bf16", None), ("torch", "bf16", None), ("onnxruntime", "int8", "all"),
            ("onnxruntime", "int8", "first-last"), ("openvino", "int8", "all"), ("openvino", "int8", "first-last"))
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="checkpoint (default: the packaged model)")
    p.add_argument("--out", help="output path without suffix")
    args = p.parse_args(argv)
    isa = detect()
    layers, mean, fill, meta = resolve_model(args.model)
    convention = InputConvention.from_metadata(mean, fill, meta)
    samples = accuracy_gate.heldout_samples(convention)
    reference = load_folded(layers, "onnxruntime", "cpu", "fp32")
    runs, lines = {}, []
    for backend, precision, recipe in VARIANTS:
        label = f"{backend} {precision}" + (f" ({recipe})" if recipe else "")
        reason = unavailable_reason(backend, "cpu")
        if reason:
            lines.append(f"| {label} | not available: {reason} |")
            continue
        options = {"convention": convention, "recipe": recipe} if precision == "int8" else {}
        runs[label] = load_folded(layers, backend, "cpu", precision, **options)
        print(f"gate: {label} ...", file=sys.stderr)
        report = accuracy_gate.evaluate(runs[label], reference, convention, samples)
        for r in report.sizes:
            lines.append(
                f"| {label} | {r.size} | {r.samples} | {r.fp32_hole_psnr:.3f} | {r.hole_psnr:.3f} | {-r.loss_db:+.3f} | "
                f"{r.psnr_vs_fp32_mean:.1f} | {r.psnr_vs_fp32_worst:.1f} | {'pass' if report.passed else 'FAIL'} |"
            )
    stem = Path(args.out) if args.out else REPO / "bench" / "results" / (
        f"cpu-accuracy-{re.sub(r'[^a-z0-9]+', '-', isa.model.lower()).strip('-') or 'cpu'}-{datetime.date.today()}")
    text = "\n".join([
        f"# Reduced-precision CPU variants against fp32: {isa.model}, {isa.summary()}",
        "",
        f"Model: {args.model or 'packaged default'} (trained at {convention.trained_size} px). Held-out photos "
        f"(glcic_fast/data/photos/heldout, never used for calibration) with the paper's holes; fp32 = onnxruntime "
        f"fp32. Gate: hole PSNR at most {accuracy_gate.MAX_HOLE_PSNR_LOSS_DB} dB below fp32's, output vs fp32 "
        f">= {accuracy_gate.MIN_MEAN_PSNR_DB:.0f} dB mean and >= {accuracy_gate.MIN_WORST_PSNR_DB:.0f} dB worst "
        "(glcic_fast/accuracy_gate.py). torch bf16 is shown for comparison; it is not an automatic-choice candidate.",
        "",
        "| variant | size | samples | fp32 hole PSNR (dB) | variant hole PSNR | change | vs fp32 mean (dB) | vs fp32 worst | gate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *lines,
        "",
        f"Picture: {stem.name}.png (the held-out samples where openvino int8 (all) is furthest from fp32; columns: "
        "input, ground truth, fp32, " + ", ".join(runs) + ", then each variant's |difference from fp32| x 8).",
        "",
    ])
    atomic_write_data(stem.with_suffix(".md"), text)
    _picture(stem.with_suffix(".png"), samples, reference, runs)
    print(text)
    return 0


def _picture(path: Path, samples, reference, runs) -> None:
    from PIL import Image

    worst_of = runs.get("openvino int8 (all)") or next(iter(runs.values()))
    rows = []
    for size, items in sorted(samples.items()):
        ref = [accuracy_gate.composite(reference(s.x), s) for s in items]
        scores = [accuracy_gate.hole_psnr(accuracy_gate.composite(worst_of(s.x), s), r, s.hole) for s, r in zip(items, ref)]
        for i in np.argsort(scores)[:2]:
            s = items[i]
            truth = np.clip(np.rint(s.rgb * 255), 0, 255).astype(np.uint8)
            holed = truth.copy()
            holed[s.hole] = 255
            outs = [accuracy_gate.composite(run(s.x), s) for run in runs.values()]
            diffs = [np.clip(np.abs(o.astype(int) - ref[i].astype(int)) * 8, 0, 255).astype(np.uint8) for o in outs]
            row = np.concatenate([holed, truth, ref[i]] + outs + diffs, axis=1)
            scale = max(1, 256 // size)
            rows.append(np.kron(row, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    image = Image.fromarray(np.concatenate(rows, axis=0))
    atomic_write_data(path, _png_bytes(image))


def _png_bytes(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
