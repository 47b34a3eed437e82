"""Pass/fail criteria for a kernel's (or a network's) output against a float32 reference.

Absolute tolerances cannot fail where it matters: a network whose output is 0.4992 +- 0.0124
passes a 0.06 bf16 tolerance with a kernel that returns a constant 0.5. These criteria scale
with the signal instead: the error is measured in units of the reference's own spread
(standard deviation over all elements), as

- ``nrmse``: root-mean-square error / spread (a constant or uncorrelated output scores ~1;
  a wrong dilation or tap order ~0.5-1.4), and
- ``max_error``: largest absolute error / spread (one bad tile or border row),

each against a per-precision limit sized from the precision's rounding (fp16 keeps 11
significant bits, bf16 8) with room for the accumulation order. ``negative_controls`` in the
tests runs deliberately wrong kernels (wrong dilation, wrong tap order, constant output) and
asserts these criteria reject every one.
"""

from __future__ import annotations

from typing import Any

# (nrmse, max_error), both in units of the reference's standard deviation.
LAYER_LIMITS = {"fp32": (1e-5, 1e-4), "fp16": (2e-3, 2e-2), "bf16": (1.5e-2, 1.2e-1)}
# A whole network: 17 layers of rounding compound, and the sigmoid output's spread is small
# compared with its value (0.5 +- 0.01), so its rounding is large in units of the spread.
NETWORK_LIMITS = {"fp32": (1e-4, 1e-3), "fp16": (0.05, 0.4), "bf16": (0.25, 2.0)}


def parity_errors(actual: Any, reference: Any) -> dict:
    """{"nrmse", "max_error", "spread"} of ``actual`` against ``reference`` (torch or numpy)."""
    import numpy as np

    a = _as_float64(actual)
    r = _as_float64(reference)
    if a.shape != r.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {r.shape}")
    spread = float(r.std())
    if not spread > 0:
        raise ValueError("the reference is constant: no signal to scale the error by (pick other test data)")
    diff = a - r
    if not np.isfinite(diff).all():
        return {"nrmse": float("inf"), "max_error": float("inf"), "spread": spread}
    return {"nrmse": float(np.sqrt((diff**2).mean())) / spread, "max_error": float(np.abs(diff).max()) / spread,
            "spread": spread}


def parity_problems(actual: Any, reference: Any, precision: str, network: bool = False) -> list[str]:
    """What fails (an empty list when ``actual`` passes) for ``precision`` (fp32/fp16/bf16)."""
    nrmse_limit, max_limit = (NETWORK_LIMITS if network else LAYER_LIMITS)[precision]
    e = parity_errors(actual, reference)
    problems = []
    if not e["nrmse"] <= nrmse_limit:
        problems.append(f"RMS error {e['nrmse']:.3g} x the reference's spread ({e['spread']:.3g}) > {nrmse_limit:g}")
    if not e["max_error"] <= max_limit:
        problems.append(f"max error {e['max_error']:.3g} x the reference's spread ({e['spread']:.3g}) > {max_limit:g}")
    return problems


def assert_parity(actual: Any, reference: Any, precision: str, network: bool = False, what: str = "") -> None:
    problems = parity_problems(actual, reference, precision, network)
    if problems:
        raise AssertionError(f"{what + ': ' if what else ''}" + "; ".join(problems))


def _as_float64(x: Any):
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
