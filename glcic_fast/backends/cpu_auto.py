"""``precision="auto"`` on a CPU: the fastest variant that passes the accuracy gate here.

Candidates, fastest first, depend on the CPU class (``cpu_isa``); the order comes from
measurements at 256x256 batch 1 against torch eager fp32 (bench/results/cpu-*-cpu-path-*.md,
a shared 2-core AVX-512 BF16/VNNI EPYC: OpenVINO int8 5-8x, onnxruntime int8 4-5x, OpenVINO
bf16 2.6-4.6x, OpenVINO fp32 1.2-2.2x, onnxruntime fp32 1.3-1.9x) and, for AMX, from the numbers
in issue 16 (a Xeon with AMX: OpenVINO bf16 4.5x ahead of onnxruntime int8's 4.1x). bf16 is a
candidate only where it is native (AVX-512 BF16, AMX): emulated it is slower than fp32. int8
is a candidate everywhere (AVX2 uses 7-bit weights), the gate decides whether it is good enough.

The first reduced-precision candidate whose gate verdict passes wins; the fp32 variants
always qualify (they are the reference). An int8 candidate is tried with every conv in int8
first, then with the first and last conv in float (``quantize.RECIPES``) before moving on. A
verdict is measured once per (model, variant, recipe, runtime version, CPU class) -- which
for int8 includes building the quantized model -- with a progress bar, and cached next to the quantized models (``quantize.cache_dir()``).
``GLCIC_FAST_CPU_AUTO=fp32`` makes "auto" mean the exact fp32 path (what the test suite
uses, so that other tests do not depend on the CPU they run on).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..accuracy_gate import GateReport, evaluate, heldout_samples
from ..atomic import atomic_write_data
from ..cpu_isa import CpuIsa, detect
from ..errors import BackendUnavailable
from ..photo_samples import InputConvention
from ..quantize import RECIPES, cache_dir, model_key, runtime_version
from . import backend_class, unavailable_reason

if TYPE_CHECKING:
    from ..folding import FoldedLayer

AUTO_ENV = "GLCIC_FAST_CPU_AUTO"
EXACT = ("onnxruntime", "fp32")
# (backend, precision), fastest first, per CPU class.
CANDIDATES: dict[str, tuple[tuple[str, str], ...]] = {
    "amx": (("openvino", "int8"), ("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "fp32"), EXACT),
    "avx512-bf16": (("openvino", "int8"), ("onnxruntime", "int8"), ("openvino", "bf16"), ("openvino", "fp32"), EXACT),
    "vnni": (("openvino", "int8"), ("onnxruntime", "int8"), ("openvino", "fp32"), EXACT),
    "avx2": (("openvino", "int8"), ("onnxruntime", "int8"), ("openvino", "fp32"), EXACT),
    "baseline": (("openvino", "fp32"), EXACT),
}


@dataclass
class Choice:
    backend: str
    precision: str
    reason: str
    isa: str
    # per candidate tried: "backend precision [recipe]" -> verdict line
    considered: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # backend options (the int8 recipe)

    def describe(self) -> str:
        what = f"{self.backend} {self.precision}" + (f" ({self.options['recipe']})" if "recipe" in self.options else "")
        lines = [f"{what} on a CPU with {self.isa}: {self.reason}"]
        lines += [f"  {k}: {v}" for k, v in self.considered.items()]
        return "\n".join(lines)


def candidates(isa: CpuIsa, backend: str = "auto") -> list[tuple[str, str]]:
    """The candidates for this CPU (restricted to ``backend`` unless "auto"), fastest first."""
    order = CANDIDATES[isa.tier]
    return [c for c in order if backend in ("auto", c[0])]


def _verdict_path(key: str, backend: str, precision: str, isa: CpuIsa, recipe: Optional[str]):
    variant = f"{precision}-{recipe}" if recipe else precision
    return cache_dir() / "gate" / f"{key}-{backend}-{variant}-{runtime_version(backend)}-{isa.tier}.json"


def _recipes(precision: str) -> tuple[Optional[str], ...]:
    """int8: the quantization recipes, fastest first (the fallback keeps layers in float)."""
    return RECIPES if precision == "int8" else (None,)


def gate_verdict(
    layers: Sequence["FoldedLayer"], convention: InputConvention, backend: str, precision: str,
    isa: Optional[CpuIsa] = None, reference: Any = None, recipe: Optional[str] = None,
) -> GateReport:
    """The gate's report for one variant on this CPU: from the cache, or measured now."""
    isa = isa or detect()
    cached = cached_verdict(layers, convention, backend, precision, isa, recipe)
    if cached is not None:
        return cached
    from tqdm.auto import tqdm

    what = f"{backend} {precision}" + (f" ({recipe})" if recipe else "")
    print(f"glcic-fast: checking {what} against fp32 on held-out photos (once per model and CPU)",
          file=sys.stderr)
    variant = backend_class(backend)(layers, "cpu", precision, **_options(precision, convention, recipe))
    reference = reference or backend_class(EXACT[0])(layers, "cpu", EXACT[1])
    samples = heldout_samples(convention)
    total = sum(len(v) for v in samples.values())
    with tqdm(total=total, desc=f"accuracy gate {what}", unit="image", file=sys.stderr,
              leave=False, disable=None) as bar:
        report = evaluate(variant, reference, convention, samples, progress=bar.update)
    path = _verdict_path(model_key(layers, convention), backend, precision, isa, recipe)
    atomic_write_data(path, json.dumps(report.to_dict(), indent=1))
    return report


def cached_verdict(
    layers: Sequence["FoldedLayer"], convention: InputConvention, backend: str, precision: str, isa: CpuIsa,
    recipe: Optional[str] = None,
) -> Optional[GateReport]:
    path = _verdict_path(model_key(layers, convention), backend, precision, isa, recipe)
    try:
        return GateReport.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: to be measured
        return None


def _options(precision: str, convention: InputConvention, recipe: Optional[str]) -> dict:
    return {"convention": convention, "recipe": recipe} if precision == "int8" else {}


def choose(
    layers: Sequence["FoldedLayer"], convention: InputConvention, backend: str = "auto", isa: Optional[CpuIsa] = None,
    measure: bool = True,
) -> Optional[Choice]:
    """The variant ``precision="auto"`` runs on this CPU, and why. ``measure=False`` only reads
    cached verdicts: None if one it needs has not been measured yet."""
    isa = isa or detect()
    if os.environ.get(AUTO_ENV, "").lower() == "fp32":
        b = EXACT[0] if backend == "auto" else backend
        return Choice(b, "fp32", f"{AUTO_ENV}=fp32 asks for the exact path", isa.summary())
    considered: dict[str, str] = {}
    reference = None
    for name, precision in candidates(isa, backend):
        reason = unavailable_reason(name, "cpu")
        if reason:
            considered[f"{name} {precision}"] = f"not available ({reason})"
            continue
        if precision == "fp32":
            why = "the fastest exact variant here" if not considered else "no faster variant passed the gate or is installed"
            return Choice(name, precision, why, isa.summary(), considered)
        for recipe in _recipes(precision):
            label = f"{name} {precision}" + (f" ({recipe})" if recipe else "")
            try:
                if not measure:
                    report = cached_verdict(layers, convention, name, precision, isa, recipe)
                    if report is None:
                        return None
                else:
                    if reference is None:
                        reference = backend_class(EXACT[0])(layers, "cpu", EXACT[1])
                    report = gate_verdict(layers, convention, name, precision, isa, reference, recipe)
            except Exception as e:  # a variant that cannot be built here is skipped, with its reason
                considered[label] = f"could not be built ({type(e).__name__}: {e})"
                break
            considered[label] = "gate " + report.summary()
            if report.passed:
                return Choice(name, precision, "the fastest variant on this CPU class that passes the accuracy gate",
                              isa.summary(), considered, {"recipe": recipe} if recipe else {})
    by_verdict: dict[str, list[str]] = {}  # "openvino int8, openvino fp32: not available (... pip install ...)"
    for label, verdict in considered.items():
        by_verdict.setdefault(verdict, []).append(label)
    raise BackendUnavailable("no CPU variant can run here: "
                             + "; ".join(f"{', '.join(labels)}: {verdict}" for verdict, labels in by_verdict.items()))


__all__ = ["AUTO_ENV", "CANDIDATES", "Choice", "cached_verdict", "candidates", "choose", "gate_verdict"]
