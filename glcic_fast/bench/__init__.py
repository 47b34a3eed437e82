"""Latency benchmarks: ``glcic-fast bench`` and ``run_benchmark``.

Every backend x precision variant ("torch-fp16", "onnxruntime", ...) is timed side by side in
one run, over the batch sizes and resolutions asked for, in up to three modes:

- ``network``: ``backend(x)`` on a prepared float32 numpy array (N, 4, H, W); on a GPU this
  includes the host <-> device copies, as a caller of the backend sees it;
- ``end-to-end``: uint8 images and masks in, uint8 images out, through
  ``Completer.complete`` (pre-processing, network, compositing);
- ``device``: the network on a tensor already on the device (``backend.run_tensor``), for
  backends that have that entry point: the number to compare with kernel timings.

Each case gets a first call (timed apart: graph capture, autotuning, compilation happen
there), warm-up calls, then timed calls with device synchronisation (CUDA events on a GPU,
``perf_counter`` + ``backend.synchronize()`` on a CPU). Rows report min / p50 / p90 / p99 /
mean latency in ms, images/s, achieved GFLOP/s (FLOPs = 2 x MACs per pixel x H x W x batch,
from ``layers.macs_per_pixel``) and % of the device's peak where it is known. Variants that
cannot run here are kept as rows with ``status`` "unavailable" and the reason, never dropped.

Random weights are fine for latency: by default the network is a seeded ``CompletionNetwork``
folded with ``fold_batchnorm``; ``--model`` takes a checkpoint instead.

The modules, in the order a run uses them: ``variants`` (what to time), ``machine`` (what it
runs on), ``inputs`` and ``builders`` (what is fed, to what), ``timing`` (one case, honestly),
``runner`` (the whole grid), ``report`` and ``plot`` (what is written). The command line is
``glcic_fast.cli.bench``.
"""

from __future__ import annotations

from .builders import build_backend
from .inputs import bench_inputs, network_batch, random_layers
from .machine import GPU_PEAK_TFLOPS, gpu_peak_tflops, machine_info, results_stem
from .report import SCHEMA, best_summary, format_markdown, format_table, report_dict, unavailable_summary, write_outputs
from .runner import STOP_REQUESTED, add_speedups, run_benchmark
from .timing import Timer, enough_iterations, latency_stats, time_calls
from .variants import (
    DEFAULT_BASELINE,
    DEFAULT_BATCH_SIZES,
    DEFAULT_SIZES,
    DEFAULT_VARIANTS,
    MODE_CHOICES,
    MODES,
    MODIFIERS,
    PRECISIONS,
    Variant,
    parse_batch_sizes,
    parse_sizes,
    parse_variant,
    parse_variants,
)

__all__ = [
    "DEFAULT_BASELINE", "DEFAULT_BATCH_SIZES", "DEFAULT_SIZES", "DEFAULT_VARIANTS", "GPU_PEAK_TFLOPS", "MODES",
    "MODE_CHOICES", "MODIFIERS", "PRECISIONS", "SCHEMA", "STOP_REQUESTED", "Timer", "Variant", "add_speedups",
    "bench_inputs", "best_summary", "build_backend", "enough_iterations", "format_markdown", "format_table",
    "gpu_peak_tflops", "latency_stats", "machine_info", "network_batch", "parse_batch_sizes", "parse_sizes",
    "parse_variant", "parse_variants", "random_layers", "report_dict", "results_stem", "run_benchmark",
    "time_calls", "unavailable_summary", "write_outputs",
]
