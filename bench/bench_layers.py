#!/usr/bin/env python
"""GPU benchmark of our Triton kernels: every layer against cuDNN, the whole network against torch.

    python bench/bench_layers.py                       # results in bench/results/<gpu>-layers.{json,md}
    python bench/bench_layers.py -o bench/results/h100-fp16-layers
    python bench/bench_layers.py --json a.json --markdown a.md --time-budget 500 --compile

Per layer of the completion network (17: 5x5, strided, dilated 2/4/8/16, transposed, sigmoid
output), at batch 1 / 8 / 32 and 256x256 / 512x512 network inputs: our kernel
(``glcic_fast.kernels``, bias + activation fused) against ``torch.nn.functional.conv2d`` /
``conv_transpose2d`` on cuDNN (channels-last, same dtype, ``cudnn.benchmark``, bias included,
activation not), both replayed from CUDA graphs so Python launch overhead is not timed.
Reported: milliseconds, achieved TFLOP/s (2 x multiply-adds, a transposed conv counted as its
dense work), % of the GPU's dense fp16/bf16 tensor-core peak, speedup over cuDNN.

Whole network (device-resident input and output, float32 NCHW in and out as the backends
take them): the ``triton`` backend (one launch per layer, CUDA graph per shape) against the
``torch`` backend eager (channels-last, no graph: what "torch eager" costs), with CUDA graphs,
and with ``torch.compile(mode="max-autotune")`` (``--compile``, slow to build).

Both launch plans (``--plans default,small-batch``; ``glcic_fast.kernels.plan``) are timed per
layer and per network, each beside its modelled time (``glcic_fast.kernels.latency_model``),
so a GPU run shows where the model is wrong. ``--precompile`` only builds every plan's kernels
(one process per case, ``--jobs`` at a time) so that the timed runs find them compiled.
``--rehearse`` runs the same code on the CPU in Triton's interpreter (TRITON_INTERPRET=1, tiny
sizes, wall-clock timing): the GPU suite's dress rehearsal, so its first real run cannot fail
on a typo.

Cases run in priority order (the issue's targets first) and stop at ``--time-budget``; cases
not started are recorded as skipped. SIGTERM (e.g. ``timeout``) also stops it, and what was
measured is still written. Exit status: 0 when every case that ran succeeded, 1 if any failed
or the run was interrupted, 2 when it cannot run here (no CUDA GPU, or TRITON_INTERPRET set).

One file on purpose (~680 lines): the GPU suite runs it as a script on a bare machine, per
layer and whole network, so its timing, cases and report travel together.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

PROG = "bench_layers.py"
REPO = Path(__file__).resolve().parent.parent

# Dense (no sparsity) fp16/bf16 tensor-core peaks with fp32 accumulation, TFLOP/s, by the
# first matching substring of torch.cuda.get_device_name(). Boost clocks; vendor data sheets.
PEAK_TFLOPS_16BIT = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),
    ("H800", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
]
# The targets (fp16, H100).
TARGET_LAYER_SPEEDUP = 1.0
TARGET_LAYER_PEAK_FRACTION = 0.60
TARGET_NET_VS_EAGER = 0.5
TARGET_NET_MS = {256: 0.35, 512: 0.8}


class Interrupted(Exception):
    """SIGTERM / SIGINT arrived: stop measuring, write what we have."""


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Time each GLCIC layer on our Triton kernels vs cuDNN, and the whole network vs "
        "the torch backend (eager, CUDA graphs, torch.compile). Needs a CUDA GPU.",
    )
    p.add_argument("-o", "--output", help="path stem: writes STEM.json and STEM.md")
    p.add_argument("--json", help="JSON results path (overrides --output)")
    p.add_argument("--markdown", help="Markdown report path (overrides --output)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16", help="compute dtype (default fp16)")
    p.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes (default 1,8,32)")
    p.add_argument("--sizes", default="256,512", help="comma-separated square network input sizes (default 256,512)")
    p.add_argument("--autotune", action="store_true", help="autotune tiles per layer shape (default: rule-chosen tiles)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(mode='max-autotune') (minutes per shape)")
    p.add_argument("--no-network", action="store_true", help="per-layer benchmark only")
    p.add_argument("--no-layers", action="store_true", help="whole-network benchmark only")
    p.add_argument("--time-budget", type=float, default=85.0, help="seconds; cases not started by then are skipped (default 85)")
    p.add_argument("--min-time", type=float, default=0.05, help="seconds of GPU time per measurement (default 0.05)")
    p.add_argument("--plans", default="default,small-batch", help="launch plans to time (default: default,small-batch)")
    p.add_argument("--precompile", action="store_true", help="only compile every plan's kernels (in parallel), time nothing")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile processes for --precompile")
    p.add_argument("--layers", default="", help="comma-separated layer numbers to time (default: all 17)")
    p.add_argument("--rehearse", action="store_true",
                   help="CPU dress rehearsal: Triton's interpreter (TRITON_INTERPRET=1), wall-clock timing, no GPU")
    args = p.parse_args(argv)
    args.plans = [x for x in args.plans.split(",") if x]
    try:
        args.layers = {int(x) for x in args.layers.split(",") if x}
    except ValueError:
        p.error("--layers takes comma-separated layer numbers, e.g. --layers 1,5,13,17")
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b]
        args.sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        p.error("--batches and --sizes take comma-separated integers, e.g. --batches 1,8,32 --sizes 256,512")
    if any(s % 4 for s in args.sizes) or any(b < 1 for b in args.batches):
        p.error("sizes must be multiples of 4 and batches positive")
    return args


def peak_tflops(gpu_name: str, dtype: str) -> Optional[float]:
    if dtype == "fp32":
        return None  # exact fp32 runs on CUDA cores; a tensor-core % would mislead
    for key, value in PEAK_TFLOPS_16BIT:
        if key.lower() in gpu_name.lower():
            return value
    return None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --------------------------------------------------------------------------- timing


DEVICE = "cuda"  # "cpu" in --rehearse


def time_graph(fn: Callable[[], Any], min_time: float) -> float:
    """Milliseconds per ``fn()``, replayed from a CUDA graph (no Python launch overhead)."""
    import torch

    if DEVICE == "cpu":
        return time_calls(fn, min_time)
    fn()  # compile / autotune / cuDNN algorithm search, outside the capture
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    inner = 5
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    return _time_loop(graph.replay, min_time) / inner


def time_calls(fn: Callable[[], Any], min_time: float) -> float:
    """Milliseconds per ``fn()`` called from Python back to back (launch overhead included)."""
    import torch

    if DEVICE == "cpu":  # rehearsal: one call, wall clock (the interpreter is slow)
        started = time.perf_counter()
        fn()
        return 1000 * (time.perf_counter() - started)
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    return _time_loop(fn, min_time)


def _time_loop(fn: Callable[[], Any], min_time: float) -> float:
    """Median over 5 timed batches of calls; batch size grows until one batch lasts min_time/5."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 1
    while True:
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end)
        if elapsed >= 1000 * min_time / 5 or reps >= 4096:
            break
        reps *= 2
    samples = []
    for _ in range(5):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / reps)
    samples.sort()
    return samples[len(samples) // 2]


# --------------------------------------------------------------------------- cases


def layer_shapes(size: int) -> list[dict]:
    """Per layer of the completion network at a size x size input: shapes and work."""
    from glcic_fast.layers import COMPLETION_LAYERS, layer_in_channels

    rows, h = [], size
    for index, (cin, spec) in enumerate(zip(layer_in_channels(), COMPLETION_LAYERS), start=1):
        if spec.transposed:
            h_out = 2 * h
            macs_per_image = h * h * cin * spec.out_channels * spec.kernel**2
            kind = "transposed 4x4/2"
        else:
            h_out = h // spec.stride
            macs_per_image = h_out * h_out * cin * spec.out_channels * spec.kernel**2
            kind = f"{spec.kernel}x{spec.kernel}" + (f"/{spec.stride}" if spec.stride > 1 else "") + (
                f" d{spec.dilation}" if spec.dilation > 1 else ""
            )
        rows.append(dict(layer=index, size=size, kind=kind, spec=spec, cin=cin, cout=spec.out_channels, h_in=h, h_out=h_out,
                         macs_per_image=macs_per_image))
        h = h_out
    return rows


def bench_layer(row: dict, batch: int, dtype, autotune: bool, min_time: float, peak: Optional[float],
                plans: tuple = ("default",)) -> dict:
    """One layer: each plan's tile (and its modelled time) against cuDNN / torch."""
    import dataclasses

    import torch
    import torch.nn.functional as F

    from glcic_fast import kernels
    from glcic_fast.kernels import latency_model
    from glcic_fast.kernels import plan as launch_plans

    spec, cin, cout, h = row["spec"], row["cin"], row["cout"], row["h_in"]
    eb = torch.empty((), dtype=dtype).element_size()
    shape = launch_plans.paper_layer_shapes(batch, row["size"], eb)[row["layer"] - 1]
    shape = dataclasses.replace(shape, in_bytes=eb, out_bytes=eb)  # this benchmark feeds NHWC in dtype
    sms = launch_plans.H200_SMS if DEVICE == "cpu" else torch.cuda.get_device_properties(0).multi_processor_count
    tma = launch_plans.tma_available(DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(row["layer"])
    x = torch.randn(batch, h, h, cin, device=DEVICE, generator=gen).to(dtype)
    x_cl = x.permute(0, 3, 1, 2)  # an NCHW view of NHWC memory = channels_last
    bias = torch.randn(cout, device=DEVICE, generator=gen) * 0.1
    fan_in = cin * spec.kernel**2
    h_out = 2 * h if spec.transposed else row["h_out"]
    out = torch.empty(batch, h_out, h_out, cout, device=DEVICE, dtype=dtype)
    if spec.transposed:
        w = (torch.randn(cin, cout, 4, 4, device=DEVICE, generator=gen) / math.sqrt(fan_in / 4)).to(dtype)
        packed = kernels.pack_transposed_weight(w)
    else:
        w = (torch.randn(cout, cin, spec.kernel, spec.kernel, device=DEVICE, generator=gen) / math.sqrt(fan_in)).to(dtype)
        packed = kernels.pack_weight(w)
    w_cl = w.contiguous(memory_format=torch.channels_last)

    def ours_with(tile):
        config = None if tile is None else tile.config()
        workspace = None if tile is None else kernels.split_k_buffers(
            config, shape.m_total, cout, DEVICE, parities=shape.parities)
        if spec.transposed:
            return lambda: kernels.conv_transpose2d_nhwc(x, packed, bias, activation=spec.activation, out=out,
                                                         autotune=autotune, config=config, workspace=workspace)
        return lambda: kernels.conv2d_nhwc(x, packed, bias, kernel=spec.kernel, stride=spec.stride,
                                           dilation=spec.dilation, padding=spec.padding, activation=spec.activation,
                                           out=out, autotune=autotune, config=config, workspace=workspace)

    def cudnn():
        if spec.transposed:
            return F.conv_transpose2d(x_cl, w_cl, bias.to(dtype), stride=2, padding=1)
        return F.conv2d(x_cl, w_cl, bias.to(dtype), stride=spec.stride, padding=spec.padding, dilation=spec.dilation)

    flops = 2 * row["macs_per_image"] * batch
    cudnn_ms = time_graph(cudnn, min_time)
    result = {
        "layer": row["layer"], "kind": row["kind"], "batch": batch, "cin": cin, "cout": cout,
        "h_in": h, "h_out": row["h_out"], "gflop": flops / 1e9, "cudnn_ms": cudnn_ms, "cudnn_tflops": flops / cudnn_ms / 1e9,
    }
    with torch.no_grad():
        expected = cudnn().float()
        expected = torch.sigmoid(expected) if spec.activation == "sigmoid" else torch.relu(expected)
    for plan in plans:
        tile = None if autotune else launch_plans.choose_tile(shape, eb, plan, sms, tma, fp32_ieee=eb == 4)
        prefix = "triton" if plan == "default" else f"triton_{plan.replace('-', '_')}"
        ms = time_graph(ours_with(tile), min_time)
        result[f"{prefix}_ms"] = ms
        result[f"{prefix}_tflops"] = flops / ms / 1e9
        result[f"{prefix}_tile"] = tile.label if tile else "autotuned"
        if tile is not None:
            result[f"{prefix}_model_ms"] = latency_model.model_launch(shape, tile, eb)["model_us"] / 1000
        result[f"{prefix}_max_abs_err_vs_cudnn"] = float((out.permute(0, 3, 1, 2).float() - expected).abs().max())
        if peak:
            result[f"{prefix}_pct_peak"] = 100 * result[f"{prefix}_tflops"] / peak
    result["speedup_vs_cudnn"] = cudnn_ms / result["triton_ms"] if "triton_ms" in result else None
    result["max_abs_err_vs_cudnn"] = result.get("triton_max_abs_err_vs_cudnn")
    if peak:
        result["cudnn_pct_peak"] = 100 * result["cudnn_tflops"] / peak
    del x, out, packed, w, w_cl
    return result


def network_layers():
    """Folded layers of a seeded random completion network with non-trivial BatchNorm."""
    import torch

    from glcic_fast.folding import fold_batchnorm
    from glcic_fast.model import CompletionNetwork

    torch.manual_seed(0)
    net = CompletionNetwork()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.8, 1.2)
    return fold_batchnorm(net.eval())


def bench_network(kind: str, layers, batch: int, size: int, precision: str, autotune: bool, min_time: float,
                  cache: dict) -> dict:
    """One backend configuration on one shape: device-resident milliseconds per call."""
    import torch

    from glcic_fast.backends.torch_backend import TorchBackend
    from glcic_fast.backends.triton_backend import TritonBackend

    if kind not in cache:
        if kind.startswith("triton"):  # "triton" (default plan) or "triton-small-batch"
            plan = kind[len("triton-"):] or "default" if kind != "triton" else "default"
            cache[kind] = TritonBackend(layers, device=DEVICE, precision=precision, autotune=autotune and plan == "default",
                                        plan=plan)
        elif kind == "torch-eager":
            cache[kind] = TorchBackend(layers, device=DEVICE, precision=precision, cuda_graphs=False)
        elif kind == "torch-graphs":
            cache[kind] = TorchBackend(layers, device=DEVICE, precision=precision, cuda_graphs=True)
        elif kind == "torch-compile":
            cache[kind] = TorchBackend(layers, device=DEVICE, precision=precision, compile=True)
        else:
            raise ValueError(kind)
    backend = cache[kind]
    gen = torch.Generator(device=DEVICE).manual_seed(batch)
    x = torch.rand(batch, 4, size, size, device=DEVICE, generator=gen)
    started = time.monotonic()
    first = backend.run_tensor(x).clone()  # builds buffers / graphs / compiled code
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    first_call_s = time.monotonic() - started
    ms = time_calls(lambda: backend.run_tensor(x), min_time)
    return {"ms": ms, "first_call_s": first_call_s, "output": first}


def network_kinds(plans, compile_only: bool = False) -> list:
    triton = ["triton" if p == "default" else f"triton-{p}" for p in plans]
    if compile_only:
        return ["torch-compile"]
    return triton + ["torch-eager"] + (["torch-graphs"] if DEVICE == "cuda" else [])


def modelled_network_ms(plan: str, batch: int, size: int, precision: str) -> Optional[float]:
    from glcic_fast.kernels import latency_table

    if precision == "fp32":
        return None
    return sum(r["model_us"] for r in latency_table.model_network(batch, size, precision, plan)) / 1000


def _precompile_case(case: tuple) -> str:
    """Worker: build one backend and run it once, which compiles (and caches) its kernels."""
    kind, batch, size, precision = case
    bench_network(kind, network_layers(), batch, size, precision, False, 0.0, {})
    return f"{kind} b{batch} {size}x{size}"


def precompile(args, precision: str) -> int:
    """Compile every plan's kernels for every case, --jobs processes at a time (Triton's on-disk
    cache then serves the timed runs)."""
    from concurrent.futures import ProcessPoolExecutor

    cases = [(k, b, s, precision) for s in args.sizes for b in args.batches
             for k in network_kinds(args.plans) if k.startswith("triton")]
    failures = 0
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(cases)))) as pool:
        for case, future in [(c, pool.submit(_precompile_case, c)) for c in cases]:
            try:
                print(f"{PROG}: compiled {future.result()}", flush=True)
            except Exception as e:  # reported; the timed step reports it again if it persists
                failures += 1
                print(f"{PROG}: error compiling {case}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return 1 if failures else 0


# --------------------------------------------------------------------------- driver


def main(argv: Optional[list[str]] = None) -> int:
    global DEVICE
    args = parse_args(argv)
    interpret = os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")
    if args.rehearse:
        if not interpret:
            print(f"{PROG}: error: --rehearse runs the kernels in Triton's interpreter: set TRITON_INTERPRET=1",
                  file=sys.stderr)
            return 2
        DEVICE = "cpu"
    try:
        import torch
    except ImportError:
        print(f"{PROG}: error: PyTorch is not installed; this benchmark needs PyTorch with CUDA and Triton", file=sys.stderr)
        return 2
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print(f"{PROG}: error: no CUDA GPU is visible to PyTorch (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda}). This benchmark times Triton GPU kernels against cuDNN; run it on a machine "
              "with an NVIDIA GPU (the CPU kernel tests are: pytest tests/test_kernels.py)", file=sys.stderr)
        return 2
    if DEVICE == "cuda" and interpret:
        print(f"{PROG}: error: TRITON_INTERPRET is set, so the kernels would be interpreted on the CPU; "
              "unset it to benchmark the compiled kernels", file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError:
        print(f"{PROG}: error: Triton is not installed (pip install triton)", file=sys.stderr)
        return 2
    try:
        from glcic_fast import kernels  # noqa: F401
    except ImportError as e:
        print(f"{PROG}: error: cannot import glcic_fast.kernels ({e}); install the package first: "
              "pip install --no-deps -e .", file=sys.stderr)
        return 2

    from glcic_fast.kernels.plan import PLANS

    unknown = [x for x in args.plans if x not in PLANS]
    if unknown:
        print(f"{PROG}: error: unknown plan(s) {unknown}; choose from {', '.join(PLANS)}", file=sys.stderr)
        return 2
    if args.precompile:
        return precompile(args, args.dtype)
    gpu = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu-rehearsal"
    json_path, md_path = _output_paths(args, gpu)
    precision = args.dtype
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    peak = peak_tflops(gpu, precision)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # fp32 comparisons: exact fp32 on both sides
    torch.backends.cuda.matmul.allow_tf32 = False

    report: dict[str, Any] = {
        "gpu": gpu, "dtype": precision, "peak_tflops": peak, "tuning": "autotune" if args.autotune else "heuristic",
        "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "time_budget_s": args.time_budget, "layers": [], "network": [], "skipped": [], "errors": [],
    }
    deadline = time.monotonic() + args.time_budget
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    interrupted = None
    try:
        for task in _tasks(args):
            if time.monotonic() > deadline:
                report["skipped"].append({**task, "why": "time budget"})
                continue
            _run_task(task, report, dtype, precision, peak, args)
    except Interrupted as e:
        interrupted = str(e)
        report["interrupted"] = interrupted
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["targets"] = evaluate_targets(report)
    _write(json_path, json.dumps(report, indent=1, default=str) + "\n")
    _write(md_path, markdown(report))
    print(f"{PROG}: wrote {json_path} and {md_path}")
    if interrupted:
        print(f"{PROG}: interrupted ({interrupted}); partial results written", file=sys.stderr)
    for failure in report["errors"]:
        print(f"{PROG}: error in {failure['case']}: {failure['error']}", file=sys.stderr)
    return 1 if interrupted or report["errors"] else 0


def _tasks(args) -> list[dict]:
    """Cases in priority order: the issue's target cases first, torch.compile last."""
    combos = [(b, s) for s in args.sizes for b in args.batches]
    first_layers = [(b, s) for (b, s) in combos if (b, s) == (32, 256)]
    first_net = [(b, s) for (b, s) in combos if b == 1]
    tasks: list[dict] = []
    if not args.no_layers:
        tasks += [{"what": "layers", "batch": b, "size": s} for b, s in first_layers]
    if not args.no_network:
        tasks += [{"what": "network", "batch": b, "size": s} for b, s in first_net]
    if not args.no_layers:
        tasks += [{"what": "layers", "batch": b, "size": s} for b, s in combos if (b, s) not in first_layers]
    if not args.no_network:
        tasks += [{"what": "network", "batch": b, "size": s} for b, s in combos if (b, s) not in first_net]
        if args.compile:
            tasks += [{"what": "compile", "batch": b, "size": s} for b, s in first_net + [c for c in combos if c not in first_net]]
    return tasks


_NETWORK_STATE: dict[str, Any] = {}


def _run_task(task: dict, report: dict, dtype, precision: str, peak: Optional[float], args) -> None:
    import torch

    from glcic_fast.layers import macs_per_pixel

    batch, size = task["batch"], task["size"]
    name = f"{task['what']} batch {batch} {size}x{size}"
    print(f"{PROG}: {name}", flush=True)
    if task["what"] == "layers":
        for row in layer_shapes(size):
            if args.layers and row["layer"] not in args.layers:
                continue
            case = f"layer {row['layer']} batch {batch} {size}x{size}"
            try:
                result = bench_layer(row, batch, dtype, args.autotune, args.min_time, peak, tuple(args.plans))
                report["layers"].append({"size": size, **result})
            except Interrupted:
                raise
            except Exception as e:  # one failing layer must not cost the rest of the table
                report["errors"].append({"case": case, "error": f"{type(e).__name__}: {e}"})
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
        return
    if "layers" not in _NETWORK_STATE:
        _NETWORK_STATE["layers"] = network_layers()
        _NETWORK_STATE["backends"] = {}
    layers, cache = _NETWORK_STATE["layers"], _NETWORK_STATE["backends"]
    kinds = network_kinds(args.plans, compile_only=task["what"] == "compile")
    flops = 2 * macs_per_pixel() * batch * size * size
    entry = next((n for n in report["network"] if n["batch"] == batch and n["size"] == size), None)
    if entry is None:
        entry = {"batch": batch, "size": size, "gflop": flops / 1e9}
        report["network"].append(entry)
    outputs = {}
    for kind in kinds:
        try:
            r = bench_network(kind, layers, batch, size, precision, args.autotune, args.min_time, cache)
        except Interrupted:
            raise
        except Exception as e:
            report["errors"].append({"case": f"{kind} {name}", "error": f"{type(e).__name__}: {e}"})
            continue
        outputs[kind] = r.pop("output")
        entry[f"{kind}_ms"] = r["ms"]
        entry[f"{kind}_first_call_s"] = r["first_call_s"]
        entry[f"{kind}_tflops"] = flops / r["ms"] / 1e9
        if peak:
            entry[f"{kind}_pct_peak"] = 100 * entry[f"{kind}_tflops"] / peak
        if kind.startswith("triton"):
            model = modelled_network_ms("default" if kind == "triton" else kind[len("triton-"):], batch, size, precision)
            if model is not None:
                entry[f"{kind}_model_ms"] = model
    if "triton" in outputs and "torch-eager" in outputs:
        entry["max_abs_diff_triton_vs_torch"] = float((outputs["triton"] - outputs["torch-eager"]).abs().max())
    for kind in ("torch-eager", "torch-graphs", "torch-compile"):
        if entry.get("triton_ms") and entry.get(f"{kind}_ms"):
            entry[f"triton_speedup_vs_{kind}"] = entry[f"{kind}_ms"] / entry["triton_ms"]
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def evaluate_targets(report: dict) -> list[dict]:
    """The issue's targets, each with the measured value and pass / fail / not measured."""
    targets = []
    big = [r for r in report["layers"] if r["batch"] == 32 and r["size"] == 256 and 5 <= r["layer"] <= 12
           and r.get("speedup_vs_cudnn")]
    for r in big:
        ok_speed = r["speedup_vs_cudnn"] >= TARGET_LAYER_SPEEDUP
        pct = r.get("triton_pct_peak")
        ok_peak = pct is not None and pct >= 100 * TARGET_LAYER_PEAK_FRACTION
        targets.append({
            "target": f"layer {r['layer']} ({r['kind']}, 256 ch) batch 32 256x256: >= {TARGET_LAYER_SPEEDUP:.1f}x cuDNN "
                      f"and >= {100 * TARGET_LAYER_PEAK_FRACTION:.0f}% of peak",
            "measured": f"{r['speedup_vs_cudnn']:.2f}x cuDNN, " + (f"{pct:.0f}% of peak" if pct is not None else "peak unknown"),
            "met": ok_speed and ok_peak,
        })
    if not big:
        targets.append({"target": "256-channel layers at batch 32 256x256", "measured": "not measured", "met": None})
    for size, limit in TARGET_NET_MS.items():
        n = next((n for n in report["network"] if n["batch"] == 1 and n["size"] == size), None)
        if not n or "triton_ms" not in n:
            targets.append({"target": f"network batch 1 {size}x{size} < {limit} ms", "measured": "not measured", "met": None})
            continue
        targets.append({"target": f"network batch 1 {size}x{size} < {limit} ms", "measured": f"{n['triton_ms']:.3f} ms",
                        "met": n["triton_ms"] < limit})
        if size == 256:
            if "torch-eager_ms" in n:
                ratio = n["triton_ms"] / n["torch-eager_ms"]
                targets.append({"target": f"network batch 1 256x256 <= {TARGET_NET_VS_EAGER}x torch eager",
                                "measured": f"{ratio:.2f}x ({n['torch-eager_ms']:.3f} ms eager)", "met": ratio <= TARGET_NET_VS_EAGER})
    return targets


def markdown(report: dict) -> str:
    peak = report["peak_tflops"]
    lines = [
        f"# Triton kernels vs cuDNN / torch: {report['gpu']}, {report['dtype']}",
        "",
        f"torch {report['torch']}, triton {report['triton']}, CUDA {report['cuda']}, cuDNN {report['cudnn']}; "
        f"tiles: {report['tuning']}; peak used for %: {peak if peak else 'unknown'} TFLOP/s dense "
        f"{report['dtype']}. Started {report['started']}, finished {report['finished']}."
        + (f" **Interrupted ({report['interrupted']}).**" if report.get("interrupted") else ""),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    if report["layers"]:
        lines += ["", "## Per layer (CUDA-graph replay; cuDNN: conv + bias, ours: conv + bias + activation)", ""]
        for (batch, size) in sorted({(r["batch"], r["size"]) for r in report["layers"]}, key=lambda k: (k[1], k[0])):
            rows = [r for r in report["layers"] if r["batch"] == batch and r["size"] == size]
            prefixes = sorted({k[: -len("_ms")] for r in rows for k in r
                               if k.startswith("triton") and k.endswith("_ms") and not k.endswith("_model_ms")})
            head = " | ".join(f"{p} ms | {p} model ms | {p} tile" for p in prefixes)
            lines += [f"### batch {batch}, {size}x{size} input", "",
                      f"| # | layer | in -> out ch | res in -> out | GFLOP | cuDNN ms | {head} | default vs cuDNN |",
                      "|---|---|---|---|---|---|" + "---|---|---|" * len(prefixes) + "---|"]
            for r in rows:
                cells = " | ".join(
                    f"{r[p + '_ms']:.4f} | " + (f"{r[p + '_model_ms']:.4f}" if p + "_model_ms" in r else "-")
                    + f" | {r.get(p + '_tile', '-')}" if p + "_ms" in r else "- | - | -" for p in prefixes)
                speed = f"{r['speedup_vs_cudnn']:.2f}x" if r.get("speedup_vs_cudnn") else "-"
                lines.append(f"| {r['layer']} | {r['kind']} | {r['cin']} -> {r['cout']} | {r['h_in']} -> {r['h_out']} | "
                             f"{r['gflop']:.1f} | {r['cudnn_ms']:.4f} | {cells} | {speed} |")
            totals = " | ".join(f"{sum(r.get(p + '_ms', 0) for r in rows):.4f} | "
                                f"{sum(r.get(p + '_model_ms', 0) for r in rows):.4f} | " for p in prefixes)
            lines += [f"| all | | | | | {sum(r['cudnn_ms'] for r in rows):.4f} | {totals} | |", ""]
    if report["network"]:
        kinds = sorted({k[: -len("_ms")] for n in report["network"] for k in n
                        if k.endswith("_ms") and not k.endswith("_model_ms")}, key=lambda k: (not k.startswith("triton"), k))
        models = sorted({k[: -len("_model_ms")] for n in report["network"] for k in n if k.endswith("_model_ms")})
        lines += ["## Whole network (device-resident, ms per call; TFLOP/s in brackets; model: latency_model)", "",
                  "| batch | size | " + " | ".join(kinds) + "".join(f" | {m} model" for m in models)
                  + " | triton vs eager | max abs diff |",
                  "|---|---|" + "---|" * (len(kinds) + len(models) + 2)]
        for n in sorted(report["network"], key=lambda n: (n["size"], n["batch"])):
            cells = [f"{n[k + '_ms']:.3f} ({n[k + '_tflops']:.0f})" if k + "_ms" in n else "-" for k in kinds]
            cells += [f"{n[m + '_model_ms']:.3f}" if m + "_model_ms" in n else "-" for m in models]
            speed = f"{n['triton_speedup_vs_torch-eager']:.2f}x faster" if "triton_speedup_vs_torch-eager" in n else "-"
            diff = f"{n['max_abs_diff_triton_vs_torch']:.2e}" if "max_abs_diff_triton_vs_torch" in n else "-"
            lines.append(f"| {n['batch']} | {n['size']}x{n['size']} | " + " | ".join(cells) + f" | {speed} | {diff} |")
    if report["skipped"]:
        lines += ["", "Skipped (time budget): " + ", ".join(f"{t['what']} b{t['batch']} {t['size']}" for t in report["skipped"])]
    if report["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e['case']}: {e['error']}" for e in report["errors"]]
    return "\n".join(lines) + "\n"


def _output_paths(args, gpu: str) -> tuple[Path, Path]:
    stem = Path(args.output) if args.output else REPO / "bench" / "results" / f"{slug(gpu)}-{args.dtype}-layers"
    if stem.suffix in (".json", ".md"):
        stem = stem.with_suffix("")
    json_path = Path(args.json) if args.json else stem.with_name(stem.name + ".json")
    md_path = Path(args.markdown) if args.markdown else stem.with_name(stem.name + ".md")
    return json_path, md_path


def _write(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
