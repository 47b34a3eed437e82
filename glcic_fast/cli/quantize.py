"""``glcic-fast quantize``: build the int8 CPU models and run the accuracy gate now, so the first
``load()`` with ``precision="auto"`` does not have to (``glcic_fast.quantize``,
``glcic_fast.accuracy_gate``, ``glcic_fast.backends.cpu_auto``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import error

NAME = "quantize"


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="build int8 CPU models (OpenVINO/NNCF, onnxruntime) and check every fast CPU variant against fp32",
        description=(
            "For this CPU, in the automatic choice's order (fastest first: int8, then bf16 where the CPU "
            "has it natively), build each reduced-precision variant -- int8 is calibrated on the packaged "
            "real photos with holes drawn as in use -- and run the accuracy gate on held-out photos: at "
            "most 0.1 dB hole-PSNR loss against the ground truth, >= 40 dB mean and >= 30 dB worst-case "
            "hole PSNR against fp32's output. Models and verdicts are cached (GLCIC_FAST_CACHE, else "
            "$XDG_CACHE_HOME/glcic-fast or ~/.cache/glcic-fast) per model, runtime version and CPU class; later runs and load() reuse "
            "them. Prints each verdict and what precision='auto' will pick."
        ),
        epilog="example:\n  glcic-fast quantize --model model.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="checkpoint (.safetensors); default: the packaged model")
    p.add_argument("--backend", default="auto", choices=("auto", "openvino", "onnxruntime"),
                   help="only this runtime's variants (default: all that are installed)")
    p.add_argument("--all", action="store_true",
                   help="check every candidate, not only up to the first that passes")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backends import cpu_auto, unavailable_reason
    from ..cpu_isa import detect
    from ..photo_samples import InputConvention
    from ..quantize import RECIPES
    from ..resolve import resolve_model

    if args.model is not None and not Path(args.model).is_file():
        return error(NAME, f"{args.model}: no such checkpoint file", 2)
    layers, mean, fill, meta = resolve_model(args.model)
    convention = InputConvention.from_metadata(mean, fill, meta)
    isa = detect()
    print(f"CPU: {isa.model or 'unknown'}, {isa.summary()} (class {isa.tier})")
    if args.all:
        for backend, precision in cpu_auto.candidates(isa, args.backend):
            reason = unavailable_reason(backend, "cpu")
            if precision == "fp32" or reason:
                print(f"  {backend} {precision}: {'exact (the reference)' if not reason else 'not available: ' + reason}")
                continue
            for recipe in RECIPES if precision == "int8" else (None,):
                report = cpu_auto.gate_verdict(layers, convention, backend, precision, isa, recipe=recipe)
                print(f"  {backend} {precision}{f' ({recipe})' if recipe else ''}: gate {report.summary()}")
    choice = cpu_auto.choose(layers, convention, args.backend, isa)
    assert choice is not None  # measure=True always decides
    print(f"precision='auto' picks: {choice.describe()}")
    return 0
