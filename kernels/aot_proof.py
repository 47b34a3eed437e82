"""Ahead-of-time proof of the GPU kernels, without a GPU.

    python -m glcic_fast.kernels.aot_proof --markdown bench/results/aot-proof.md --jobs 2

For every kernel variant the triton backend launches for the paper's network (both launch
plans; 256x256 and 512x512; batch 1 and 32; fp16 and bf16; plus the default plan's fp32 and
TF32 variants on sm_90) it compiles the kernel with ``triton.compile`` for an explicit
``GPUTarget`` (sm_90 and sm_80: Triton's bundled LLVM and ptxas, no driver) and asserts:

- it compiles;
- on sm_90, every 16-bit and TF32 variant's PTX uses warpgroup MMA (``wgmma``);
- it does not spill: the cubin's per-thread local memory (stack frame + local, what the CUDA
  driver reports as LOCAL_SIZE_BYTES and Triton as ``n_spills``) is zero, read with the
  ``cuobjdump`` Triton ships;
- its shared memory fits one block's limit (227 KiB on sm_90, 163 KiB on sm_80).

It writes a table (registers, spill bytes, shared memory, MMA kind, per variant) and exits 1
when any check fails. The Triton cache is pointed at a fresh temporary folder, so every
variant really compiles. Runs with TRITON_INTERPRET unset (it sets 0 for itself).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Optional

from ..atomic import atomic_write_data

SHARED_LIMIT = {90: 227 * 1024, 80: 163 * 1024}
POINTER = {"fp16": "*fp16", "bf16": "*bf16", "fp32": "*fp32", "tf32": "*fp32"}
ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4, "tf32": 4}
SIZES, BATCHES = (256, 512), (1, 32)


@dataclass(frozen=True)
class Variant:
    """One compiled kernel: everything that changes the generated code."""

    arch: int
    dtype: str  # fp16 / bf16 / fp32 (exact) / tf32
    transposed: bool
    cin: int
    kernel: int
    flat_k: bool
    tile: object  # plan.Tile
    signature: tuple  # ((name, type), ...) as Triton's launcher would specialise the real launch
    constexprs: tuple  # ((name, value), ...)
    aligned: tuple  # argument indices Triton would mark divisible by 16

    @property
    def name(self) -> str:
        kind = "convT" if self.transposed else f"conv{self.kernel}x{self.kernel}" + (" flat-K" if self.flat_k else "")
        return f"sm_{self.arch} {self.dtype} {kind} cin {self.cin} {self.tile.label}"


def _launch_arguments(shape, tile, dtype: str) -> dict:
    """The backend's launch arguments of one layer (pointers as dtype strings, ints as values),
    from which Triton's own specialisation rule (``native_specialize_impl``: ints equal to 1
    become constants, multiples of 16 and pointers get a divisibility-16 hint) derives the
    compiled signature, exactly as a real launch would."""
    from .conv2d import ACTIVATIONS

    ptr = POINTER[dtype]
    element = ptr[1:]
    h, w, ho, wo = shape.h_in, shape.w_in, shape.h_out, shape.w_out
    first, last = shape.in_bytes == 4, shape.out_bytes == 4
    x_strides = (shape.cin * h * w, w, 1, h * w) if first else (h * w * shape.cin, w * shape.cin, shape.cin, 1)
    o_strides = (shape.cout * ho * wo, wo, 1, ho * wo) if last else (ho * wo * shape.cout, wo * shape.cout, shape.cout, 1)
    args = {
        "x_ptr": "*fp32" if first else ptr,
        "w_ptr": f"tensordesc<{element}[{tile.block_k}, {tile.block_n}]>" if tile.w_tma else ptr,
        "bias_ptr": "*fp32", "scale_ptr": "*fp32", "shift_ptr": "*fp32",
        "out_ptr": "*fp32" if last else ptr,
        "ws_ptr": "*fp32", "count_ptr": "*i32" if tile.split_k > 1 else "*fp32",
        "BATCH": shape.batch, "H": h, "W": w, "COUT": shape.cout,
        "stride_xn": x_strides[0], "stride_xh": x_strides[1], "stride_xw": x_strides[2], "stride_xc": x_strides[3],
        "stride_on": o_strides[0], "stride_oh": o_strides[1], "stride_ow": o_strides[2], "stride_oc": o_strides[3],
    }
    const = {"CIN": shape.cin, "ACTIVATION": ACTIVATIONS[shape.activation], "HAS_POST": False,
             "COMPUTE_FP32": dtype in ("fp32", "tf32"), "FP32_IEEE": dtype == "fp32",
             "BLOCK_M": tile.block_m, "BLOCK_N": tile.block_n, "BLOCK_K": tile.block_k, "GROUP_M": tile.group_m,
             "SPLIT_K": tile.split_k, "W_TMA": tile.w_tma,
             "EVEN_K": shape.cin % tile.block_k == 0}
    if not shape.transposed:
        args.update({"H_OUT": ho, "W_OUT": wo, "STRIDE": shape.stride, "DILATION": shape.dilation,
                     "PADDING": shape.padding})
        const.update({"KH": shape.kernel, "KW": shape.kernel, "FLAT_K": shape.flat_k})
    return {"args": args, "const": const}


def make_variant(shape, tile, dtype: str, arch: int) -> Variant:
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl

    from .conv2d import SHAPE_ARGUMENTS, conv2d_nhwc_kernel
    from .conv_transpose2d import conv_transpose2d_nhwc_kernel
    from .trt_plugins import _raw_kernel

    fn = _raw_kernel(conv_transpose2d_nhwc_kernel if shape.transposed else conv2d_nhwc_kernel)
    launch = _launch_arguments(shape, tile, dtype)
    const = dict(launch["const"])
    signature, aligned = [], []
    for index, name in enumerate(fn.arg_names):
        if name in const:
            signature.append((name, "constexpr"))
            continue
        value = launch["args"][name]
        if isinstance(value, str):  # a pointer or descriptor: torch allocations are 256-byte aligned
            signature.append((name, value))
            if value.startswith("*"):
                aligned.append(index)
            continue
        specialise = name not in SHAPE_ARGUMENTS
        kind, key = native_specialize_impl(BaseBackend, value, False, specialise, True)
        if kind == "constexpr":
            const[name] = key
            signature.append((name, "constexpr"))
        else:
            signature.append((name, kind))
            if key == "D":
                aligned.append(index)
    return Variant(arch, dtype, shape.transposed, shape.cin, shape.kernel, shape.flat_k, tile, tuple(signature),
                   tuple(sorted(const.items())), tuple(aligned))


def variants(archs=(90, 80), plans=None) -> dict:
    """{Variant: [where it is launched, ...]} over the plans / sizes / batches / dtypes."""
    from .plan import PLANS, network_plan, paper_layer_shapes

    found: dict = {}
    jobs = [(arch, dtype, plan) for arch in archs for plan in (plans or PLANS) for dtype in ("fp16", "bf16")]
    jobs += [(90, dtype, "default") for dtype in ("fp32", "tf32") if 90 in archs]  # issue 10 item 7
    for arch, dtype, plan in jobs:
        for size in SIZES:
            for batch in BATCHES:
                eb = ELEMENT_BYTES[dtype]
                shapes = paper_layer_shapes(batch, size, eb)
                for shape, tile in network_plan(shapes, eb, plan, tma=arch >= 90, fp32_ieee=dtype == "fp32"):
                    v = make_variant(shape, tile, dtype, arch)
                    found.setdefault(v, []).append(f"{plan} L{shape.index} {size}/b{batch}")
    return found


def _resources(cubin: bytes) -> dict:
    """Registers and local memory per thread from the cubin (Triton's own cuobjdump)."""
    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([knobs.nvidia.cuobjdump.path, "-res-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text))
    return {k.lower(): int(v) for k, v in fields.items()}


def compile_variant(variant: Variant) -> dict:
    """Compile one variant and measure it (runs in a worker process)."""
    os.environ["TRITON_INTERPRET"] = "0"
    import triton
    from triton.backends.compiler import GPUTarget

    from .conv2d import conv2d_nhwc_kernel
    from .conv_transpose2d import conv_transpose2d_nhwc_kernel
    from .trt_plugins import _raw_kernel

    fn = _raw_kernel(conv_transpose2d_nhwc_kernel if variant.transposed else conv2d_nhwc_kernel)
    signature, const = dict(variant.signature), dict(variant.constexprs)
    attrs = {(i,): [["tt.divisibility", 16]] for i in variant.aligned}
    started = time.monotonic()
    result = {"variant": variant, "error": None}
    try:
        source = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=const, attrs=attrs)
        options = {"num_warps": variant.tile.num_warps, "num_stages": variant.tile.num_stages}
        compiled = triton.compile(source, target=GPUTarget("cuda", variant.arch, 32), options=options)
    except Exception as e:  # reported as a failed check, with the compiler's message
        result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        return result
    ptx = compiled.asm["ptx"]
    res = _resources(compiled.asm["cubin"])
    result.update({
        "seconds": time.monotonic() - started,
        "registers": res.get("reg"),
        "spill_bytes": res.get("stack", 0) + res.get("local", 0),
        "shared": int(compiled.metadata.shared) + res.get("shared", 0),
        "mma": "wgmma" if "wgmma.mma_async" in ptx else ("mma.sync" if "mma.sync" in ptx else "fma"),
        "tma": "cp.async.bulk.tensor" in ptx,
    })
    return result


def check(result: dict) -> list[str]:
    """The failed checks of one compiled variant ([] when it passes)."""
    v = result["variant"]
    if result["error"]:
        return [f"{v.name}: does not compile: {result['error']}"]
    problems = []
    if v.arch >= 90 and v.dtype != "fp32" and result["mma"] != "wgmma":
        problems.append(f"{v.name}: PTX uses {result['mma']}, not wgmma")
    if result["spill_bytes"]:
        problems.append(f"{v.name}: spills ({result['spill_bytes']} bytes of local memory per thread)")
    if result["shared"] > SHARED_LIMIT[v.arch]:
        problems.append(f"{v.name}: {result['shared']} bytes of shared memory > {SHARED_LIMIT[v.arch]}")
    if v.tile.w_tma and not result["tma"]:
        problems.append(f"{v.name}: asked for TMA weight loads but the PTX has no cp.async.bulk.tensor")
    return problems


def markdown(results: list, where: dict, triton_version: str, seconds: float) -> str:
    lines = [
        "# Ahead-of-time compile proof of the Triton kernels (no GPU)",
        "",
        f"Generated by `python -m glcic_fast.kernels.aot_proof` with Triton {triton_version}: every kernel variant the "
        "triton backend launches for the paper's network (plans default and small-batch, 256x256 and 512x512, "
        "batch 1 and 32, fp16 and bf16; default plan fp32 and TF32 on sm_90), compiled for sm_90 and sm_80 "
        f"with `triton.compile` and an explicit `GPUTarget`; {len(results)} variants in {seconds:.0f} s. "
        "Checks: compiles, wgmma on sm_90 (16-bit and TF32), no spills (local memory per thread = 0), "
        "shared memory within one block's limit.",
        "",
        "| target | dtype | kernel | cin | tile | registers | spill bytes | shared KiB | MMA | TMA | launched for | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (-r["variant"].arch, r["variant"].dtype, r["variant"].name)):
        v = r["variant"]
        used = where[v]
        launched = ", ".join(used[:3]) + (f" (+{len(used) - 3})" if len(used) > 3 else "")
        kind = "convT 4x4/2" if v.transposed else f"conv {v.kernel}x{v.kernel}" + (" flat-K" if v.flat_k else "")
        if r["error"]:
            lines.append(f"| sm_{v.arch} | {v.dtype} | {kind} | {v.cin} | {v.tile.label} | - | - | - | - | - | {launched} | "
                         f"**no**: {r['error'][:80]} |")
            continue
        ok = "yes" if not check(r) else "**no**"
        lines.append(f"| sm_{v.arch} | {v.dtype} | {kind} | {v.cin} | {v.tile.label} | {r['registers']} | "
                     f"{r['spill_bytes']} | {r['shared'] / 1024:.0f} | {r['mma']} | {'yes' if r['tma'] else '-'} | "
                     f"{launched} | {ok} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m glcic_fast.kernels.aot_proof", description=__doc__.split("\n\n")[0])
    p.add_argument("--markdown", help="write the per-variant table here")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel compiles (default 2)")
    p.add_argument("--archs", default="90,80", help="compute capabilities x10 (default 90,80)")
    args = p.parse_args(argv)
    os.environ["TRITON_INTERPRET"] = "0"
    cache = tempfile.mkdtemp(prefix="glcic-aot-cache-")
    os.environ["TRITON_CACHE_DIR"] = cache  # nothing cached across runs: every variant compiles
    import triton

    where = variants(tuple(int(a) for a in args.archs.split(",") if a))
    todo = list(where)
    started = time.monotonic()
    print(f"aot_proof: compiling {len(todo)} kernel variants with Triton {triton.__version__} ({args.jobs} jobs)",
          file=sys.stderr, flush=True)
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for i, result in enumerate(pool.map(compile_variant, todo), start=1):
            results.append(result)
            status = "FAILED" if check(result) else "ok"
            print(f"aot_proof: [{i}/{len(todo)}] {result['variant'].name}: {status}", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    failures = [msg for r in results for msg in check(r)]
    if args.markdown:
        atomic_write_data(args.markdown, markdown(results, where, triton.__version__, elapsed))
    for msg in failures:
        print(f"aot_proof: FAILED: {msg}", file=sys.stderr)
    print(f"aot_proof: {sum(1 for r in results if not check(r))} of {len(results)} variants pass "
          f"in {elapsed:.0f} s", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
