"""Launch plans: the tile (and split-K, TMA) every layer of the network is launched with.

One function, ``network_plan``, answers "which kernel variant runs for layer i at this batch,
size and dtype", and everything that needs the answer asks it: the triton backend (its
launches), the CUDA parity test (it checks exactly those tiles), the ahead-of-time compile
proof (it compiles exactly those variants for sm_90 / sm_80) and the latency model.

Plans (``PLANS``):
- ``"default"``: ``configs.heuristic_config`` per layer: one rule-chosen tile, no split-K,
  pointer loads. What the backend has always run.
- ``"small-batch"``: for batch-1 latency on a Hopper-class GPU (many SMs, few output pixels).
  Per layer, every candidate tile and split-K factor is scored by ``latency_model`` and the
  fastest is kept; where the default launches one CTA per SM or fewer, only candidates that
  launch at least two per SM compete (where the layer's M allows). The 3-channel output layer gets an 8-wide N tile (the smallest wgmma N) instead of
  16; the first layer (K = 100, memory bound) a single deep K step; weight tiles come through
  the tensor memory accelerator (TMA) where Triton has tensor descriptors and the GPU is
  sm_90+ (``tma_available``).

The default plan changes only when a GPU run shows the other one faster (issue 18).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Optional, Sequence

import triton

from .configs import SHARED_MEMORY_BUDGET, heuristic_config
from .latency_model import model_launch
from .shapes import H200_SMS, LayerShape, Tile, layer_shapes, paper_layer_shapes  # noqa: F401 (the plan's vocabulary)

PLANS = ("default", "small-batch")


@functools.lru_cache(maxsize=None)
def tma_api_available() -> bool:
    """Whether this Triton has host-side tensor descriptors (Triton >= 3.4: 3.6 and 3.9 do)."""
    try:
        import triton.language as tl
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    return hasattr(tl, "make_tensor_descriptor")


def tma_available(device) -> bool:
    """TMA weight loads for launches on ``device``: the API exists and the GPU is sm_90+
    (in the interpreter, which emulates descriptors, whenever the API exists)."""
    from .configs import INTERPRETER_MODE

    if not tma_api_available():
        return False
    if INTERPRETER_MODE:
        return True
    import torch

    return torch.device(device).type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9


def tma_eligible(shape: LayerShape, tile: Tile, element_bytes: int) -> bool:
    """TMA needs 16-byte-aligned row strides and boxes of >= 16 bytes, and full K boxes
    (a channel block must not run into the next tap's rows, unless K is flattened)."""
    return ((shape.cout * element_bytes) % 16 == 0 and tile.block_n * element_bytes >= 16
            and (shape.flat_k or shape.cin % tile.block_k == 0))


def default_tile(shape: LayerShape, element_bytes: int, num_sms: int = H200_SMS, fp32_ieee: bool = True) -> Tile:
    """The default plan: the rule-chosen tile (``configs.heuristic_config``)."""
    config = heuristic_config(shape.m_total, shape.cin, shape.cout, element_bytes,
                              shape.k_total if shape.flat_k else 0, num_sms, parities=shape.parities,
                              fp32_ieee=fp32_ieee)
    return Tile.from_config(config)


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, triton.next_power_of_2(int(n)))


def _deepest_pipeline(tile: Tile, element_bytes: int, most: int) -> Optional[Tile]:
    for stages in range(most, 1, -1):
        candidate = replace(tile, num_stages=stages)
        if candidate.shared_bytes(element_bytes) <= SHARED_MEMORY_BUDGET:
            return candidate
    return None


def small_batch_candidates(shape: LayerShape, element_bytes: int, tma: bool) -> list[Tile]:
    """Every tile the small-batch plan considers for one layer (all spill-free on sm_90: the
    AOT proof checks the chosen ones)."""
    out: list[Tile] = []
    if shape.flat_k:
        # Memory bound (K = KH*KW*CIN is ~100): one or two deep K steps, no split-K; the
        # pipeline has nothing to overlap beyond two stages.
        # (A 128-deep step, or 4 warps, spills on sm_90 or sm_80: aot_proof.)
        bn = min(128, _pow2(shape.cout))
        for bm in (64, 128):
            out.append(Tile(bm, bn, 64 if element_bytes < 4 else 32, 8, 2))
    else:
        bk = min(32 if element_bytes >= 4 else 64, _pow2(shape.cin))
        if shape.cout < 16:
            widths = [8]  # the smallest wgmma N: 8/3 of the useful work instead of 16/3
        else:
            widths = [bn for bn in (32, 64, 128, 256) if bn <= _pow2(shape.cout) and not (element_bytes >= 4 and bn > 64)]
        for bm in (64, 128):
            for bn in widths:
                warps = 8 if bm * bn >= 128 * 128 or element_bytes >= 4 else 4
                base = _deepest_pipeline(Tile(bm, bn, bk, warps, 4), element_bytes, 3 if bm * bn >= 128 * 256 else 4)
                if base is None:
                    continue
                steps = shape.taps * triton.cdiv(shape.cin, bk)
                for split in (1, 2, 3, 4, 6, 8, 9):
                    if steps % split or steps // split < 4:
                        continue
                    out.append(replace(base, split_k=split))
    if tma:
        out = [replace(t, w_tma=tma_eligible(shape, t, element_bytes)) for t in out]
    return out


def small_batch_tile(shape: LayerShape, element_bytes: int, num_sms: int = H200_SMS, tma: bool = False) -> Tile:
    """The small-batch plan's tile: the modelled-fastest candidate; for layers the default
    plan runs as one CTA per SM or fewer (the H/4 layers at batch 1), the fastest among those
    that launch >= 2 CTAs per SM (when any does: the layer's M allows it)."""
    default = default_tile(shape, element_bytes, num_sms)
    candidates = small_batch_candidates(shape, element_bytes, tma)
    pool = candidates
    if shape.ctas(default) <= num_sms:
        # The default leaves one CTA (or none) per SM: a single warpgroup's serial K chain.
        pool = [t for t in candidates if shape.ctas(t) >= 2 * num_sms] or candidates

    def score(t: Tile):
        m = model_launch(shape, t, element_bytes, sms=num_sms)
        same_as_default = replace(t, w_tma=False) == default
        return (round(m["model_us"], 3), not same_as_default, t.split_k, -t.block_m * t.block_n)

    return min(pool, key=score)


def choose_tile(shape: LayerShape, element_bytes: int, plan: str = "default", num_sms: int = H200_SMS,
                tma: bool = False, fp32_ieee: bool = True) -> Tile:
    if plan == "default" or (element_bytes >= 4 and fp32_ieee):
        # Exact fp32 runs its dot on FMA units: the small-batch plan's MMA tiles do not apply.
        return default_tile(shape, element_bytes, num_sms, fp32_ieee)
    if plan == "small-batch":
        return small_batch_tile(shape, element_bytes, num_sms, tma)
    raise ValueError(f"unknown launch plan {plan!r}; choose from {', '.join(PLANS)}")


def network_plan(shapes: Sequence[LayerShape], element_bytes: int, plan: str = "default", num_sms: int = H200_SMS,
                 tma: bool = False, fp32_ieee: bool = True) -> list[tuple[LayerShape, Tile]]:
    """(shape, tile) per layer: what the triton backend launches for this plan."""
    return [(shape, choose_tile(shape, element_bytes, plan, num_sms, tma, fp32_ieee)) for shape in shapes]
