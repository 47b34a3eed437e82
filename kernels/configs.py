"""Tile configurations for the convolution kernels, and the switch for Triton's interpreter.

Three ways a launch gets its tile (``conv2d.launchable``):
- on a GPU, by default: ``heuristic_config``, one rule-chosen tile per layer shape, so a first
  call compiles one kernel variant per layer kind instead of autotuning ~10 per layer shape;
- on a GPU with ``autotune=True``: Triton's autotuner over ``GPU_CONFIGS`` (Hopper-sized
  tiles), keyed on the layer shape (``AUTOTUNE_KEY``) and dtype, timed once and cached;
- under ``TRITON_INTERPRET=1`` (numpy on the CPU): ``interpreter_tile``, a fixed wide tile,
  and nothing is benchmarked. Any launch can also pass an explicit tile (tests use
  ``SMALL_TILE`` so small tensors span several masked tiles).

The interpreter flag is read once, when this module is imported, because Triton decides
between compiling and interpreting a ``@triton.jit`` function at decoration time, which is
the same moment: the two can then never disagree.
"""

from __future__ import annotations

import os

import triton

# Same truthiness rule as Triton's own knob (``TRITON_INTERPRET=1`` / ``true`` / ``on``).
INTERPRETER_MODE: bool = os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")

# Argument names the autotuner keys its cache on (besides the tensor dtypes, which Triton adds
# itself): a layer's shape, so every layer of the network gets its own best tile.
AUTOTUNE_KEY = ["BATCH", "H", "W", "CIN", "COUT", "KH", "STRIDE", "DILATION"]
TRANSPOSED_AUTOTUNE_KEY = ["BATCH", "H", "W", "CIN", "COUT"]  # always 4x4, stride 2

# Interpreter: no autotuning. The interpreter's cost is Python overhead per tile operation
# (plus a slow, non-BLAS numpy matmul), so per-program tile work is nearly free and the number
# of (program, reduction step) pairs is what counts: the launchers pick one wide tile per layer
# with ``interpreter_tile``. Tests that want a layer to span several masked tiles pass a small
# tile explicitly (``SMALL_TILE``). The autotune decorator gets the small tile as its single
# config (never used by the launchers in interpreter mode; it only keeps the decorator valid).
SMALL_TILE = {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 4}
INTERPRETER_CONFIGS = [triton.Config(dict(SMALL_TILE), num_warps=4, num_stages=1)]


INTERPRETER_MAX_TILE_VOLUME = 1 << 23


def interpreter_tile(cin: int, cout: int, m_total: int, flat_k_total: int = 0) -> dict:
    """The tile the launchers use under TRITON_INTERPRET=1.

    m_total: output pixels (GEMM M); flat_k_total: K of a FLAT_K layer, else 0.
    """
    pow2 = _next_pow2_at_least_16
    block_k = min(128, pow2(flat_k_total)) if flat_k_total else min(256, pow2(cin))
    block_n = min(256, pow2(cout))
    block_m = min(512, pow2(m_total))
    # Numpy's matmul in the interpreter is a slow non-BLAS loop: bound the work per step.
    while block_m > 16 and block_m * block_n * block_k > INTERPRETER_MAX_TILE_VOLUME:
        block_m //= 2
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "GROUP_M": 4}


def _gpu_configs() -> list:
    """Candidate tiles for fp16/bf16 tensor-core MMA (fp32 is pruned down by shared memory).

    The big 256-channel layers want 128x128 / 128x256 tiles with a 3-4 stage cp.async
    pipeline; small batches and the narrow layers (32 / 64 / 3 output channels) want smaller
    tiles so enough programs exist to fill all SMs.
    """
    shapes = [
        # BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 128, 64, 8, 4),
        (128, 128, 64, 4, 4),
        (128, 128, 32, 4, 4),
        (128, 64, 64, 4, 4),
        (64, 128, 64, 4, 4),
        (64, 64, 64, 4, 4),
        (128, 32, 64, 4, 4),
        (128, 16, 64, 4, 4),
        (64, 32, 32, 4, 4),
    ]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in shapes
    ]


GPU_CONFIGS = _gpu_configs()

# Hopper has 228 KB of shared memory per SM (227 KB usable per block); stay under it.
SHARED_MEMORY_BUDGET = 200 * 1024


def heuristic_config(m_total: int, cin: int, cout: int, element_bytes: int, flat_k_total: int, num_sms: int,
                     parities: int = 1, fp32_ieee: bool = True) -> dict:
    """A good tile for one layer on a Hopper-class GPU, chosen without benchmarking.

    The default on GPUs: autotuning every layer shape compiles and times ~10 variants per
    layer, minutes on a first call. Rules: the channel tile covers the output channels up to
    128 (256 for 256-channel layers when that still leaves a full wave of programs; 8 for the
    3-channel output, the smallest warpgroup-MMA width); 64-deep K steps (128-byte rows of
    fp16) when there are enough input channels; 128 output pixels per program unless that
    leaves SMs idle (counting the transposed conv's 4 parity sub-grids, ``parities``); the
    deepest cp.async pipeline that fits shared memory. Tiles that spill registers on sm_90
    (``aot_proof`` checks every launched variant) are avoided: flattened-K tiles get 8 warps
    (128 rows) and a 2-stage pipeline, and 4-byte tiles stay at most 64 channels wide (8 warps; exact fp32, whose dot runs
    on FMA units, also at most 64 rows). ``autotune=True`` on the launchers searches
    ``GPU_CONFIGS`` instead.
    """
    pow2 = _next_pow2_at_least_16
    if flat_k_total:
        block_k = 32 if flat_k_total > 16 else 16
    else:
        block_k = 64 if cin >= 64 else pow2(cin)
    block_m = 128
    block_n = 128 if cout > 64 else (8 if cout <= 8 else pow2(cout))
    if element_bytes >= 4:
        block_k = min(block_k, 32)
        block_n = min(block_n, 64)
        if fp32_ieee:
            block_m = 64
    elif cout >= 256 and triton.cdiv(m_total, 128) * triton.cdiv(cout, 256) * parities >= num_sms:
        block_n = 256
    if triton.cdiv(m_total, block_m) * triton.cdiv(cout, block_n) * parities < num_sms:
        block_m = 64
    num_warps = 8 if block_m * block_n >= 128 * 128 or element_bytes >= 4 or (flat_k_total and block_m >= 128) else 4
    # 128x256 tiles: 3 stages, as Triton's own Hopper matmuls use; 4 would leave too little
    # shared memory for the epilogue's layout conversion of the fp32 accumulator. 4-byte
    # operands: 3 (registers, not shared memory, run out first).
    num_stages = 3 if block_m * block_n >= 128 * 256 or element_bytes >= 4 else 4
    if flat_k_total:
        num_stages = 2  # gathered operands: deeper pipelines spill (sm_80); the layer is memory bound
    while num_stages > 2 and (block_m * block_k + block_k * block_n) * element_bytes * num_stages > SHARED_MEMORY_BUDGET:
        num_stages -= 1
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "GROUP_M": 8,
            "num_warps": num_warps, "num_stages": num_stages}


def conv_configs() -> list:
    """The configs the kernels are decorated with (depends on the interpreter switch)."""
    return INTERPRETER_CONFIGS if INTERPRETER_MODE else GPU_CONFIGS


def _next_pow2_at_least_16(n: int) -> int:
    return max(16, triton.next_power_of_2(int(n)))


def prune_configs(configs, named_args, **kwargs):
    """Drop tiles that are wasteful or cannot fit for this layer (Triton's early_config_prune).

    A tile wider than the (power-of-two rounded) output channels only computes padding; a
    channel tile deeper than the input channels likewise (unless the reduction is flattened
    over kernel taps, ``FLAT_K``); a pipeline whose stages overflow shared memory would fail
    to launch. Always returns at least one config.
    """
    cin, cout = named_args["CIN"], named_args["COUT"]
    element_bytes = named_args["w_ptr"].element_size()
    flat_k = kwargs.get("FLAT_K", False)
    max_n = _next_pow2_at_least_16(cout)
    max_k = 64 if flat_k else _next_pow2_at_least_16(cin)
    kept = []
    for config in configs:
        bm, bn, bk = (config.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        smem = (bm * bk + bk * bn) * element_bytes * max(1, config.num_stages)
        if bn <= max_n and bk <= max_k and smem <= SHARED_MEMORY_BUDGET:
            kept.append(config)
    if not kept:
        kept = [min(configs, key=lambda c: c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] * c.kwargs["BLOCK_K"])]
    return kept
