"""A per-layer latency model of our kernels on an H200, to print beside measured times.

    python -m glcic_fast.kernels.latency_table --size 256 --batch 1 --dtype fp16 -o table.md

Written before any GPU run (issue 18), so every number below is an assumption a GPU run
checks: the benchmark prints the model next to what it measures, and the difference shows
where the model is wrong. Per launch (one layer):

- CTAs = output tiles x split-K (x 4 parities for the transposed conv); resident CTAs per SM
  from shared memory, threads and an accumulator-based register estimate; waves = CTAs over
  (SMs x resident).
- Compute: the busiest SM runs ceil(CTAs / SMs) CTAs, each ``K-steps / split`` MMA steps of
  2 x BLOCK_M x BLOCK_N x BLOCK_K flops (padding included, so an 8-wide N tile for 3 channels
  costs 8/3 of the useful work), at the SM's share of the dense peak times an efficiency that
  grows with the warpgroups resident on it (one warpgroup cannot both wait on loads and keep
  the tensor cores busy: ``WARPGROUP_EFFICIENCY``).
- Memory: input and output activations once from / to HBM, weights once per wave of
  M tiles; from L2 into the SMs, every CTA's operand tiles at every K-step (what makes thin
  tiles slow) and the split-K partial sums written and read back. HBM and L2 overlap: the
  slower of the two counts.
- Time = max(compute, memory) + a pipeline fill per wave (DRAM latency) + the split-K fix-up
  (one extra L2 round trip) + one launch gap (kernels run back to back in a CUDA graph).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .shapes import H200_SMS, LayerShape, Tile


@dataclass(frozen=True)
class GpuModel:
    name: str
    sms: int
    dense_tflops_16: float  # fp16/bf16 tensor cores, fp32 accumulate
    dense_tflops_tf32: float
    fp32_tflops: float  # exact fp32 (CUDA-core FMA)
    hbm_tbs: float
    l2_tbs: float
    shared_per_sm: int  # bytes
    launch_us: float  # gap between dependent kernels in a CUDA graph
    dram_latency_us: float  # a pipeline's first loads, once per wave


# Figures from issue 18's static model and NVIDIA's H200 data sheet (the 790 TFLOP/s fp16 is
# the sustained estimate, below the 989 TFLOP/s data-sheet peak). L2-to-SM bandwidth
# (16 TB/s) is an upper bound: 64 bytes per clock per SM x 132 SMs x 1.98 GHz. launch_us: the issue
# puts 17 dependent launches at 35-70 us; we take the low end.
H200 = GpuModel("NVIDIA H200", H200_SMS, 790.0, 395.0, 60.0, 4.3, 16.0, 228 * 1024, 2.0, 0.8)
# Share of an SM's dense peak by resident warpgroups (4 warps each); an assumption to calibrate.
WARPGROUP_EFFICIENCY = {1: 0.6, 2: 0.85}
MAX_EFFICIENCY = 0.9
REGISTERS_PER_SM = 65536


def _peak_tflops(gpu: GpuModel, element_bytes: int, fp32_ieee: bool) -> float:
    if element_bytes < 4:
        return gpu.dense_tflops_16
    return gpu.fp32_tflops if fp32_ieee else gpu.dense_tflops_tf32


def resident_ctas(tile: Tile, element_bytes: int, gpu: GpuModel = H200) -> int:
    """CTAs one SM holds at once: limited by shared memory, threads (2048) and registers
    (estimate: the fp32 accumulator per thread + 64 for addresses and operands)."""
    threads = 32 * tile.num_warps
    regs = min(255, tile.block_m * tile.block_n // threads + 64)
    by_smem = gpu.shared_per_sm // max(1, tile.shared_bytes(element_bytes) + 1024)
    by_threads = 2048 // threads
    by_regs = REGISTERS_PER_SM // (regs * threads)
    return max(1, min(by_smem, by_threads, by_regs, 32))


def model_launch(shape: LayerShape, tile: Tile, element_bytes: int, gpu: GpuModel = H200,
                 fp32_ieee: bool = False, sms: Optional[int] = None) -> dict:
    """Modelled microseconds of one layer launch, with the terms that make it up."""
    sms = sms or gpu.sms
    ctas = shape.ctas(tile)
    steps_per_cta = shape.k_steps(tile) // tile.split_k
    resident = resident_ctas(tile, element_bytes, gpu)
    waves = math.ceil(ctas / (sms * resident))
    busiest = math.ceil(ctas / sms)
    warpgroups = min(busiest, resident) * max(1, tile.num_warps // 4)
    efficiency = WARPGROUP_EFFICIENCY.get(warpgroups, MAX_EFFICIENCY)
    step_flops = 2 * tile.block_m * tile.block_n * tile.block_k
    per_sm_tflops = _peak_tflops(gpu, element_bytes, fp32_ieee) / sms
    compute_us = busiest * steps_per_cta * step_flops / (per_sm_tflops * efficiency * 1e6)

    in_bytes = shape.batch * shape.h_in * shape.w_in * shape.cin * shape.in_bytes
    out_bytes = shape.batch * shape.h_out * shape.w_out * shape.cout * shape.out_bytes
    weight_bytes = shape.k_total * shape.cout * shape.parities * element_bytes
    m_waves = max(1, math.ceil(ctas / (sms * resident)))
    hbm_bytes = in_bytes + out_bytes + weight_bytes * m_waves
    split_bytes = 2 * ctas * tile.block_m * tile.block_n * 4 if tile.split_k > 1 else 0
    operand_bytes = ctas * steps_per_cta * (tile.block_m * tile.block_k + tile.block_k * tile.block_n) * element_bytes
    l2_bytes = operand_bytes + split_bytes
    memory_us = max(hbm_bytes / (gpu.hbm_tbs * 1e6), l2_bytes / (gpu.l2_tbs * 1e6))
    fixup_us = gpu.dram_latency_us / 2 if tile.split_k > 1 else 0.0
    model_us = max(compute_us, memory_us) + waves * gpu.dram_latency_us + fixup_us + gpu.launch_us
    return {
        "layer": shape.index, "kind": shape.kind, "m": shape.m_total * shape.parities, "n": shape.cout,
        "k": shape.k_total, "tile": tile.label, "ctas": ctas, "resident_per_sm": resident, "waves": waves,
        "k_steps_per_cta": steps_per_cta, "mma_waste": round(tile.block_n / shape.cout, 2) if shape.cout < tile.block_n else 1.0,
        "hbm_mb": hbm_bytes / 1e6, "l2_mb": l2_bytes / 1e6, "compute_us": compute_us,
        "memory_us": memory_us, "model_us": model_us,
        "bound": "compute" if compute_us >= memory_us else "memory",
    }
