"""Implicit-GEMM 2-D convolution for NHWC (channels-last) tensors, in Triton.

The convolution is computed as a matrix product that is never materialised:

    out[m, co] = sum_k A[m, k] * Wp[k, co]

with ``m`` one output pixel (M = batch * H_out * W_out), ``co`` one output channel and ``k``
one (kh, kw, ci) tap of the receptive field (K = KH * KW * CIN). ``A`` is gathered on the fly
from the input (im2col without the buffer); zero padding is a load mask. The packed weight
``Wp`` is (KH*KW*CIN, COUT), K-major, so a BLOCK_K x BLOCK_N weight tile is BLOCK_K contiguous
rows, and an activation tile is BLOCK_M pixels x BLOCK_K contiguous channels (NHWC): every
load is a run of contiguous memory.

The reduction walks (kh, kw, channel block) in one flat loop so Triton can software-pipeline
it (``num_stages``). Layers with few input channels (the 4-channel first layer) instead
flatten (kh, kw, ci) into one K axis (``FLAT_K``), so a 5x5x4 receptive field is 100 useful
K entries rather than 25 tiles of 16 channels with 4 used.

Epilogue, fused: + bias (fp32), then ReLU or sigmoid, then an optional per-channel affine
(``post_scale`` / ``post_shift``: BatchNorm placed after the activation, as GLCIC-PyTorch
models have it), then a cast to the output tensor's dtype. Inputs and outputs are addressed
through explicit strides, so the first layer reads the caller's NCHW float32 tensor and the
last layer writes NCHW float32 directly, with the layout change and casts fused in.

One module on purpose (~500 lines): the kernel, its weight packing and its launcher change
together (the launcher's grid and the kernel's tiling are one decision), as in Triton's tutorials.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl

from .configs import AUTOTUNE_KEY, INTERPRETER_MODE, conv_configs, heuristic_config, interpreter_tile, prune_configs

ACTIVATIONS = {"none": 0, "relu": 1, "sigmoid": 2}

# Below this many input channels the reduction is flattened over (kh, kw, ci).
FLAT_K_MAX_CHANNELS = 16
# Integer arguments Triton should not specialise on (by default it compiles a variant per
# "== 1" and "divisible by 16" pattern of every integer). These only enter index arithmetic,
# so one compiled kernel serves every batch, image size, stride and dilation; channel counts
# and strides stay specialised because they decide whether loads vectorise.
SHAPE_ARGUMENTS = ["BATCH", "H", "W", "H_OUT", "W_OUT", "STRIDE", "DILATION", "PADDING"]


@triton.jit
def _grouped_tile(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) from a 1-D program id: GROUP_M pixel tiles x every channel tile at a time.

    Programs running together then read the same few activation tiles (from L2 after the
    first), rather than each channel tile streaming the whole activation from HBM; the weights
    are small enough to stay in L2 regardless.
    """
    group_size = GROUP_M * num_pid_n
    group = pid // group_size
    first_m = group * GROUP_M
    rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group_size) % rows
    pid_n = (pid % group_size) // rows
    return pid_m, pid_n


@triton.jit
def _finish_tile(
    acc, tile_id, split, ws_ptr, count_ptr, out_row, offs_n, mask_m, mask_n, bias_ptr, scale_ptr, shift_ptr,
    stride_oc, ACTIVATION: tl.constexpr, HAS_POST: tl.constexpr, SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Split-K fix-up (when SPLIT_K > 1), then bias -> activation -> affine -> cast -> store.

    Split-K: each of the SPLIT_K programs of a tile writes its fp32 partial sum to its own
    workspace slot, then counts itself in with an atomic; the last to arrive adds the slots
    up in split order (so the result does not depend on arrival order: bit-for-bit
    reproducible), resets the counter for the next launch (and the next CUDA-graph replay),
    and alone runs the epilogue. One launch, no separate reduction kernel.
    """
    if SPLIT_K > 1:
        tile_elems = BLOCK_M * BLOCK_N
        offs = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        slots = ws_ptr + tile_id.to(tl.int64) * (SPLIT_K * tile_elems)
        tl.store(slots + split * tile_elems + offs, acc)
        # Every thread's partial is written before one thread publishes the arrival (release);
        # the last arrival's acquire then makes all slots visible to it.
        tl.debug_barrier()
        arrived = tl.atomic_add(count_ptr + tile_id, 1, sem="acq_rel")
        if arrived == SPLIT_K - 1:
            acc = tl.load(slots + offs, cache_modifier=".cg")
            for s in range(1, SPLIT_K):
                acc += tl.load(slots + s * tile_elems + offs, cache_modifier=".cg")
            tl.store(count_ptr + tile_id, 0)
            _epilogue_store(acc, out_row, offs_n, mask_m, mask_n, bias_ptr, scale_ptr, shift_ptr,
                            stride_oc, ACTIVATION, HAS_POST)
    else:
        _epilogue_store(acc, out_row, offs_n, mask_m, mask_n, bias_ptr, scale_ptr, shift_ptr,
                        stride_oc, ACTIVATION, HAS_POST)


@triton.jit
def _epilogue_store(
    acc, out_row, offs_n, mask_m, mask_n, bias_ptr, scale_ptr, shift_ptr,
    stride_oc, ACTIVATION: tl.constexpr, HAS_POST: tl.constexpr,
):
    """bias -> activation -> optional affine -> cast -> store one BLOCK_M x BLOCK_N tile."""
    bias = tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    acc = acc + bias[None, :]
    if ACTIVATION == 1:
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == 2:
        # Sigmoid from exp(-|x|), which never overflows (the interpreter warns on exp(+large)).
        e = tl.exp(-tl.abs(acc))
        acc = tl.where(acc >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if HAS_POST:
        scale = tl.load(scale_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        shift = tl.load(shift_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
        acc = acc * scale[None, :] + shift[None, :]
    out_ptrs = out_row[:, None] + offs_n[None, :] * stride_oc
    tl.store(out_ptrs, acc.to(out_row.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.autotune(
    configs=conv_configs(),
    key=AUTOTUNE_KEY,
    prune_configs_by={"early_config_prune": prune_configs},
)
@triton.heuristics({"EVEN_K": lambda args: args["CIN"] % args["BLOCK_K"] == 0})
@triton.jit(do_not_specialize=SHAPE_ARGUMENTS)
def conv2d_nhwc_kernel(
    x_ptr, w_ptr, bias_ptr, scale_ptr, shift_ptr, out_ptr, ws_ptr, count_ptr,
    BATCH, H, W, CIN: tl.constexpr, H_OUT, W_OUT, COUT,
    stride_xn, stride_xh, stride_xw, stride_xc,
    stride_on, stride_oh, stride_ow, stride_oc,
    KH: tl.constexpr, KW: tl.constexpr,
    STRIDE, DILATION, PADDING,
    ACTIVATION: tl.constexpr, HAS_POST: tl.constexpr, FLAT_K: tl.constexpr,
    COMPUTE_FP32: tl.constexpr, FP32_IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr, W_TMA: tl.constexpr, EVEN_K: tl.constexpr,
):
    """One BLOCK_M (output pixels) x BLOCK_N (output channels) tile of the convolution, or one
    of its SPLIT_K slices of the reduction.

    The dot accumulates in fp32; the activation tile is cast to the weight dtype as loaded.
    COMPUTE_FP32 upcasts both operands first (fp32 layers, and bf16 in the interpreter, whose
    numpy dot mishandles bf16); FP32_IEEE keeps fp32 products exact instead of TF32. (The dot
    is written out at each use, not in a helper, and no local variable holds a trip count:
    every @triton.jit call costs ~10-20 ms in the interpreter, and its AST rewrite turns each
    assigned local into a 1-element array, which ``range`` cannot take under numpy >= 2.4 with
    Triton 3.6. Hence also CIN is a compile-time constant: the trip counts are constants.)

    x: logical (BATCH, H, W, CIN) with the given strides (any layout; NHWC is the fast one).
    w: packed (KH*KW*CIN, COUT) contiguous, row = (kh*KW + kw)*CIN + ci (see ``pack_weight``);
    with W_TMA, a ``TensorDescriptor`` over it with block [BLOCK_K, BLOCK_N] (Hopper's tensor
    memory accelerator loads the weight tiles; needs EVEN_K or FLAT_K, its zero fill past the
    edges stands in for the masks).
    out: logical (BATCH, H_OUT, W_OUT, COUT) with the given strides.
    ws / count: split-K workspace (fp32, tiles * SPLIT_K * BLOCK_M * BLOCK_N) and per-tile
    arrival counters (int32, zero), unused when SPLIT_K == 1.
    Grid: (cdiv(BATCH*H_OUT*W_OUT, BLOCK_M) * cdiv(COUT, BLOCK_N), SPLIT_K); SPLIT_K must
    divide the number of reduction steps.
    """
    pid = tl.program_id(0)
    split = tl.program_id(1)
    m_total = BATCH * H_OUT * W_OUT
    num_pid_m = (m_total + BLOCK_M - 1) // BLOCK_M
    num_pid_n = (COUT + BLOCK_N - 1) // BLOCK_N
    pid_m, pid_n = _grouped_tile(pid, num_pid_m, num_pid_n, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_n = tl.max_contiguous(tl.multiple_of(offs_n, BLOCK_N), BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < m_total
    mask_n = offs_n < COUT

    # Output pixel -> (image, row, column); the top-left input tap of its receptive field.
    n = offs_m // (H_OUT * W_OUT)
    rem = offs_m % (H_OUT * W_OUT)
    oh = rem // W_OUT
    ow = rem % W_OUT
    ih0 = oh * STRIDE - PADDING
    iw0 = ow * STRIDE - PADDING
    # 64-bit image offset: a batch of large activations can pass 2**31 elements.
    x_row = x_ptr + n.to(tl.int64) * stride_xn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if FLAT_K:
        # K = (kh, kw, ci) flattened; each K entry decodes its own tap.
        tl.static_assert(((KH * KW * CIN + BLOCK_K - 1) // BLOCK_K) % SPLIT_K == 0)
        for i in range(0, (KH * KW * CIN + BLOCK_K - 1) // BLOCK_K // SPLIT_K):
            k0 = (split * ((KH * KW * CIN + BLOCK_K - 1) // BLOCK_K // SPLIT_K) + i) * BLOCK_K
            kk = k0 + offs_k
            mask_k = kk < KH * KW * CIN
            tap = kk // CIN
            ci = kk % CIN
            kh = tap // KW
            kw = tap % KW
            ih = ih0[:, None] + kh[None, :] * DILATION
            iw = iw0[:, None] + kw[None, :] * DILATION
            valid = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & mask_m[:, None] & mask_k[None, :]
            if W_TMA:
                b = w_ptr.load([k0, pid_n * BLOCK_N])
            else:
                b = tl.load(w_ptr + kk[:, None] * COUT + offs_n[None, :], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            a_ptrs = x_row[:, None] + ih * stride_xh + iw * stride_xw + ci[None, :] * stride_xc
            a = tl.load(a_ptrs, mask=valid, other=0.0).to(b.dtype)
            if COMPUTE_FP32:
                if FP32_IEEE:
                    acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
                else:
                    acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
            else:
                acc = tl.dot(a, b, acc)
    else:
        # K = (kh, kw, channel block); one flat loop so it software-pipelines.
        tl.static_assert((KH * KW * ((CIN + BLOCK_K - 1) // BLOCK_K)) % SPLIT_K == 0)
        for i in range(0, KH * KW * ((CIN + BLOCK_K - 1) // BLOCK_K) // SPLIT_K):
            step = split * (KH * KW * ((CIN + BLOCK_K - 1) // BLOCK_K) // SPLIT_K) + i
            tap = step // ((CIN + BLOCK_K - 1) // BLOCK_K)
            c0 = (step % ((CIN + BLOCK_K - 1) // BLOCK_K)) * BLOCK_K
            kh = tap // KW
            kw = tap % KW
            ih = ih0 + kh * DILATION
            iw = iw0 + kw * DILATION
            valid_m = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & mask_m
            ci = c0 + offs_k
            ci = tl.max_contiguous(tl.multiple_of(ci, BLOCK_K), BLOCK_K)
            a_ptrs = x_row[:, None] + (ih * stride_xh + iw * stride_xw)[:, None] + ci[None, :] * stride_xc
            if W_TMA:
                b = w_ptr.load([tap * CIN + c0, pid_n * BLOCK_N])
                a = tl.load(a_ptrs, mask=valid_m[:, None], other=0.0)
            elif EVEN_K:
                b = tl.load(w_ptr + (tap * CIN + ci)[:, None] * COUT + offs_n[None, :], mask=mask_n[None, :], other=0.0)
                a = tl.load(a_ptrs, mask=valid_m[:, None], other=0.0)
            else:
                mask_k = ci < CIN
                b = tl.load(w_ptr + (tap * CIN + ci)[:, None] * COUT + offs_n[None, :],
                            mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                a = tl.load(a_ptrs, mask=valid_m[:, None] & mask_k[None, :], other=0.0)
            a = a.to(b.dtype)
            if COMPUTE_FP32:
                if FP32_IEEE:
                    acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
                else:
                    acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
            else:
                acc = tl.dot(a, b, acc)

    out_row = out_ptr + n.to(tl.int64) * stride_on + oh * stride_oh + ow * stride_ow
    _finish_tile(acc, pid, split, ws_ptr, count_ptr, out_row, offs_n, mask_m, mask_n, bias_ptr, scale_ptr, shift_ptr,
                 stride_oc, ACTIVATION, HAS_POST, SPLIT_K, BLOCK_M, BLOCK_N)


def conv2d_grid(batch: int, h_out: int, w_out: int, cout: int):
    """The launch grid of ``conv2d_nhwc_kernel``: a function of the chosen config (``meta``)."""

    def grid(meta):
        return (triton.cdiv(batch * h_out * w_out, meta["BLOCK_M"]) * triton.cdiv(cout, meta["BLOCK_N"]),
                meta.get("SPLIT_K", 1))

    return grid


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def launchable(
    autotuned_kernel, *, cin: int, cout: int, m_total: int, flat_k_total: int, weight: torch.Tensor,
    config: Optional[dict] = None, autotune: bool = False, parities: int = 1, fp32_ieee: bool = True,
):
    """(kernel to index with a grid, explicit launch kwargs) for one launch.

    ``config``: an explicit tile, {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"} plus optional
    "num_warps" / "num_stages" / "SPLIT_K" / "W_TMA" (``plan.Tile.config()`` gives one),
    launched on the kernel under the autotuner (``.fn``, which still applies the EVEN_K
    heuristic). Without one: in the interpreter the tile from ``configs.interpreter_tile``; on
    a GPU the autotuner if ``autotune``, else ``configs.heuristic_config`` (``parities``: 4
    sub-grids for the transposed conv). The returned kwargs always hold SPLIT_K and W_TMA.
    """
    if config is None:
        if INTERPRETER_MODE:
            config = interpreter_tile(cin, cout, m_total, flat_k_total)
        elif autotune:
            return autotuned_kernel, {"SPLIT_K": 1, "W_TMA": False}
        else:
            device_index = weight.device.index if weight.device.index is not None else torch.cuda.current_device()
            config = heuristic_config(m_total, cin, cout, weight.element_size(), flat_k_total, _sm_count(device_index),
                                      parities=parities, fp32_ieee=fp32_ieee)
    missing = {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"} - set(config)
    if missing:
        raise ValueError(f"config lacks {sorted(missing)}")
    config = {"SPLIT_K": 1, "W_TMA": False, **config}
    if INTERPRETER_MODE:  # launch options mean nothing to the interpreter
        config = {k: v for k, v in config.items() if k not in ("num_warps", "num_stages")}
    return autotuned_kernel.fn, config


def weight_operand(weight_packed: torch.Tensor, tile: dict):
    """What the kernels take as ``w_ptr``: the packed weight, or with ``W_TMA`` a tensor
    descriptor over its 2-D (rows, COUT) view with a [BLOCK_K, BLOCK_N] box."""
    if not tile.get("W_TMA"):
        return weight_packed
    from triton.tools.tensor_descriptor import TensorDescriptor

    cout = weight_packed.shape[-1]
    rows = weight_packed.numel() // cout
    return TensorDescriptor(weight_packed.view(rows, cout), [rows, cout], [cout, 1],
                            [tile["BLOCK_K"], tile["BLOCK_N"]])


def split_k_buffers(tile: dict, m_total: int, cout: int, device, buffers=None, parities: int = 1):
    """(workspace, counters) for a split-K launch of ``tile`` (None without split-K).

    ``buffers``: a caller's preallocated pair to reuse (the backend keeps one per layer, so a
    CUDA graph replays with fixed addresses); checked for size. Counters start at zero and
    the kernel leaves them at zero.
    """
    split = tile.get("SPLIT_K", 1)
    if split == 1:
        return None
    tiles = triton.cdiv(m_total, tile["BLOCK_M"]) * triton.cdiv(cout, tile["BLOCK_N"]) * parities
    need = tiles * split * tile["BLOCK_M"] * tile["BLOCK_N"]
    if buffers is not None:
        workspace, counters = buffers
        if workspace.numel() < need or counters.numel() < tiles:
            raise ValueError(f"split-K buffers too small: need {need} floats and {tiles} counters")
        return workspace, counters
    return (torch.empty(need, device=device, dtype=torch.float32), torch.zeros(tiles, device=device, dtype=torch.int32))


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, padding: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pack_weight(weight: torch.Tensor, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """(COUT, CIN, KH, KW) conv weight -> (KH*KW*CIN, COUT) contiguous, K-major.

    Row ``(kh*KW + kw)*CIN + ci`` holds the weights of tap (kh, kw), input channel ci, for all
    output channels: the order the kernel's reduction loop reads them in.
    """
    if weight.dim() != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"expected a (out, in, k, k) conv weight, got shape {tuple(weight.shape)}")
    cout, cin, kh, kw = weight.shape
    packed = weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, cout)
    return packed.to(device=device or weight.device, dtype=dtype or weight.dtype).contiguous()


def uses_fp32_compute(weight_dtype: torch.dtype) -> bool:
    """Whether tl.dot runs on fp32 operands for this weight dtype.

    fp32 layers always do; in the interpreter bf16 does too, because Triton's numpy dot
    multiplies the raw bf16 bit patterns (bf16 x bf16 products are exact in fp32, so the
    result equals a real bf16 dot with fp32 accumulation).
    """
    return weight_dtype == torch.float32 or (INTERPRETER_MODE and weight_dtype == torch.bfloat16)


def check_device(x: torch.Tensor, weight: torch.Tensor) -> None:
    """Compiled kernels take CUDA tensors; the interpreter takes CPU (or CUDA) tensors."""
    if weight.device != x.device:
        raise ValueError(f"x is on {x.device} but the packed weight is on {weight.device}")
    if x.device.type != "cuda" and not INTERPRETER_MODE:
        raise ValueError(
            f"the Triton kernels run on CUDA tensors, got {x.device}; to run them on the CPU (slowly, for tests) "
            "set TRITON_INTERPRET=1 before glcic_fast.kernels is first imported"
        )


def _check_vector(t: Optional[torch.Tensor], n: int, what: str, device) -> None:
    if t is None:
        return
    if t.shape != (n,) or t.device != device or not t.is_contiguous():
        raise ValueError(f"{what} must be a contiguous ({n},) tensor on {device}, got {tuple(t.shape)} on {t.device}")


def conv2d_nhwc(
    x: torch.Tensor,
    weight_packed: torch.Tensor,
    bias: torch.Tensor,
    *,
    kernel: int,
    stride: int = 1,
    dilation: int = 1,
    padding: Optional[int] = None,
    activation: str = "relu",
    post_scale: Optional[torch.Tensor] = None,
    post_shift: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
    fp32_ieee: bool = True,
    config: Optional[dict] = None,
    autotune: bool = False,
    workspace: Optional[tuple] = None,
) -> torch.Tensor:
    """Convolution + bias + activation (+ affine) on a logical NHWC tensor.

    x: (N, H, W, CIN), any strides and any float dtype (it is cast to the weight dtype as it
    is loaded, so an ``nchw.permute(0, 2, 3, 1)`` float32 view works as the input).
    weight_packed: ``pack_weight(w)``, (kernel*kernel*CIN, COUT) contiguous; its dtype is the
    compute dtype (fp16 / bf16 / fp32; accumulation is always fp32).
    bias: (COUT,) contiguous (fp32 recommended). post_scale / post_shift: optional (COUT,),
    applied after the activation. padding: default "same", ``dilation * (kernel - 1) // 2``.
    out: optional (N, H_OUT, W_OUT, COUT) destination, any strides (e.g. an NCHW buffer's
    permuted view); else a new contiguous NHWC tensor of ``out_dtype`` (default: weight dtype).
    fp32_ieee: fp32 layers multiply in full fp32 (True) or TF32 on tensor cores (False).
    config: an explicit tile; autotune: on a GPU without ``config``, benchmark
    ``configs.GPU_CONFIGS`` once per layer shape instead of the heuristic tile (see
    ``launchable``). workspace: for a split-K config, a reusable (fp32 workspace, int32
    counters) pair (``split_k_buffers``); allocated per call when omitted. Returns ``out``.
    """
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D (N, H, W, C) tensor, got shape {tuple(x.shape)}")
    batch, h, w, cin = x.shape
    k_rows, cout = weight_packed.shape
    if k_rows != kernel * kernel * cin:
        raise ValueError(f"packed weight has {k_rows} rows; a {kernel}x{kernel} conv over {cin} channels needs {kernel * kernel * cin}")
    if not weight_packed.is_contiguous():
        raise ValueError("weight_packed must be contiguous (use pack_weight)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if (post_scale is None) != (post_shift is None):
        raise ValueError("post_scale and post_shift go together")
    check_device(x, weight_packed)
    device = x.device
    _check_vector(bias, cout, "bias", device)
    _check_vector(post_scale, cout, "post_scale", device)
    _check_vector(post_shift, cout, "post_shift", device)
    h_out = conv_output_size(h, kernel, stride, dilation, padding)
    w_out = conv_output_size(w, kernel, stride, dilation, padding)
    if h_out <= 0 or w_out <= 0:
        raise ValueError(f"a {kernel}x{kernel} conv (stride {stride}, dilation {dilation}, padding {padding}) leaves no output for {h}x{w}")
    if out is None:
        out = torch.empty((batch, h_out, w_out, cout), device=device, dtype=out_dtype or weight_packed.dtype)
    elif tuple(out.shape) != (batch, h_out, w_out, cout):
        raise ValueError(f"out must have shape {(batch, h_out, w_out, cout)}, got {tuple(out.shape)}")
    _check_int32_extent(x, out)
    has_post = post_scale is not None
    flat_k = cin < FLAT_K_MAX_CHANNELS
    launch, tile = launchable(
        conv2d_nhwc_kernel, cin=cin, cout=cout, m_total=batch * h_out * w_out,
        flat_k_total=kernel * kernel * cin if flat_k else 0, weight=weight_packed, config=config, autotune=autotune,
        fp32_ieee=fp32_ieee,
    )
    split = split_k_buffers(tile, batch * h_out * w_out, cout, device, workspace) or (bias, bias)
    launch[conv2d_grid(batch, h_out, w_out, cout)](
        x, weight_operand(weight_packed, tile), bias, post_scale if has_post else bias, post_shift if has_post else bias,
        out, *split,
        batch, h, w, cin, h_out, w_out, cout,
        *x.stride(), *out.stride(),
        KH=kernel, KW=kernel, STRIDE=stride, DILATION=dilation, PADDING=padding,
        ACTIVATION=ACTIVATIONS[activation], HAS_POST=has_post, FLAT_K=flat_k,
        COMPUTE_FP32=uses_fp32_compute(weight_packed.dtype), FP32_IEEE=fp32_ieee,
        **tile,
    )
    return out


def _check_int32_extent(*tensors: torch.Tensor) -> None:
    """Within one image, offsets are 32-bit: refuse (rather than corrupt) larger images."""
    for t in tensors:
        per_image = sum((size - 1) * abs(st) for size, st in zip(t.shape[1:], t.stride()[1:])) + 1
        if per_image >= 2**31:
            raise ValueError(f"one image of a {tuple(t.shape)} tensor spans {per_image} elements; the kernels address < 2**31")


def reference_conv2d_nhwc(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    stride: int = 1,
    dilation: int = 1,
    padding: Optional[int] = None,
    activation: str = "relu",
    post_scale: Optional[torch.Tensor] = None,
    post_shift: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """What ``conv2d_nhwc`` computes, with torch in float32: NHWC in, NHWC float32 out.

    ``weight`` is the unpacked (COUT, CIN, k, k) weight. For tests.
    """
    k = weight.shape[-1]
    if padding is None:
        padding = dilation * (k - 1) // 2
    y = torch.nn.functional.conv2d(
        x.permute(0, 3, 1, 2).float(), weight.float(), bias.float(), stride=stride, padding=padding, dilation=dilation
    )
    y = _reference_activation(y, activation, post_scale, post_shift)
    return y.permute(0, 2, 3, 1)


def _reference_activation(y, activation, post_scale, post_shift):
    if activation == "relu":
        y = torch.relu(y)
    elif activation == "sigmoid":
        y = torch.sigmoid(y)
    if post_scale is not None:
        y = y * post_scale.float().reshape(1, -1, 1, 1) + post_shift.float().reshape(1, -1, 1, 1)
    return y
