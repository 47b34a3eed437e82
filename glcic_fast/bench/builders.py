"""Each benchmark variant's backend, built the way a user would build it (``load_folded``, or an
engine from ``build_engine`` for TensorRT), and freed between variants."""

from __future__ import annotations

import gc
import os
from typing import Optional

from .. import backends
from ..api import load_folded
from ..photo_samples import InputConvention
from .variants import AUTO, Variant


def _build_tensorrt(layers, device: str, precision: str, sizes, batch_sizes, workdir: str, options: dict):
    """Build one engine covering every benchmarked shape, then load it as a backend.

    The profile's opt shape (what TensorRT tunes its tactics for) is the first size at the
    smallest batch: the latency-critical case.
    """
    from ..backends.tensorrt_backend import TensorRTBackend  # tensorrt only when that variant runs
    from ..export.tensorrt import build_engine

    engine = os.path.join(workdir, f"bench-{precision}.plan")
    hs = [h for h, _ in sizes]
    ws = [w for _, w in sizes]
    opt_h, opt_w = sizes[0]
    options = dict(options)
    build_engine(
        layers,
        engine,
        precision=precision,
        batch=(min(batch_sizes), min(batch_sizes), max(batch_sizes)),
        height=(min(hs), opt_h, max(hs)),
        width=(min(ws), opt_w, max(ws)),
        plugins=options.pop("plugins", "none"),
    )
    shapes = len(set(sizes)) * len(set(batch_sizes))
    return TensorRTBackend.from_engine(engine, device=device, max_shapes=max(8, shapes), **options)


def build_backend(variant: Variant, layers, device: str, precision: str, sizes, batch_sizes, workdir: str,
                  convention: Optional[InputConvention] = None):
    """A ready backend, or raises BackendUnavailable / ValueError with the reason it cannot run.

    The "auto" variant is what ``load()`` picks with the defaults (on a CPU: ``cpu_auto.choose``,
    which may quantize and run the accuracy gate first); int8 variants calibrate with the
    model's input ``convention``.
    """
    convention = convention or InputConvention()
    if variant.backend == AUTO:
        if device == "cpu":
            from ..backends import cpu_auto

            choice = cpu_auto.choose(layers, convention)
            assert choice is not None
            name, precision, options = choice.backend, choice.precision, dict(choice.options)
        else:
            name = backends.resolve("auto", device)
            precision, options = backends.default_precision(name, device), {}
        if precision == "int8":
            options["convention"] = convention
        return load_folded(layers, name, device, precision, **options)
    reason = backends.unavailable_reason(variant.backend, device)
    if reason:
        raise backends.BackendUnavailable(reason)
    cls = backends.backend_class(variant.backend)
    if precision not in cls.precisions:
        raise backends.BackendUnavailable(f"supports precision {'/'.join(cls.precisions)} only, not {precision}")
    if variant.backend == "tensorrt":
        return _build_tensorrt(layers, device, precision, sizes, batch_sizes, workdir, dict(variant.options))
    options = dict(variant.options)
    if precision == "int8":
        options.setdefault("convention", convention)
    return load_folded(layers, variant.backend, device, precision, **options)


def free_device_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch  # a cuda run always has torch

        torch.cuda.empty_cache()
