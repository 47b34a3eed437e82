"""4x4, stride-2, padding-1 transposed convolution for NHWC tensors, in Triton, without zero insertion.

A stride-2 transposed conv is four ordinary convolutions, one per output parity. For output
row ``oy = 2*i + py`` the taps that reach it are ``ky = 1 - py + 2*ty`` from input row
``iy = i + py - ty`` (ty in {0, 1}); columns likewise. So each parity (py, px) is a 2x2
convolution of the input at its own resolution, and its result lands on every second row and
column of the output, starting at (py, px). The kernel runs all four parities in one launch
(grid axis 1) and stores each straight into the interleaved NHWC output: no zero-stuffed
input, no 75%-zero multiply-adds, no scatter.

Weights are re-packed once (``pack_transposed_weight``) to (4 parities, 4 taps * CIN, COUT),
K-major like the plain conv, and the epilogue (bias, activation, affine, cast) is shared with
``conv2d``.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .configs import TRANSPOSED_AUTOTUNE_KEY, conv_configs, prune_configs
from .conv2d import (
    ACTIVATIONS,
    _check_int32_extent,
    _check_vector,
    _finish_tile,
    _grouped_tile,
    _reference_activation,
    check_device,
    launchable,
    split_k_buffers,
    uses_fp32_compute,
    weight_operand,
)

KERNEL = 4
STRIDE = 2
PADDING = 1


@triton.autotune(
    configs=conv_configs(),
    key=TRANSPOSED_AUTOTUNE_KEY,
    prune_configs_by={"early_config_prune": prune_configs},
)
@triton.heuristics({"EVEN_K": lambda args: args["CIN"] % args["BLOCK_K"] == 0})
@triton.jit(do_not_specialize=["BATCH", "H", "W"])  # index arithmetic only (see conv2d.SHAPE_ARGUMENTS)
def conv_transpose2d_nhwc_kernel(
    x_ptr, w_ptr, bias_ptr, scale_ptr, shift_ptr, out_ptr, ws_ptr, count_ptr,
    BATCH, H, W, CIN: tl.constexpr, COUT,
    stride_xn, stride_xh, stride_xw, stride_xc,
    stride_on, stride_oh, stride_ow, stride_oc,
    ACTIVATION: tl.constexpr, HAS_POST: tl.constexpr,
    COMPUTE_FP32: tl.constexpr, FP32_IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr, W_TMA: tl.constexpr, EVEN_K: tl.constexpr,
):
    """One BLOCK_M (input-resolution pixels) x BLOCK_N tile of one output parity (or one of
    its SPLIT_K reduction slices).

    x: logical (BATCH, H, W, CIN); out: logical (BATCH, 2H, 2W, COUT); w: packed
    (4, 4*CIN, COUT), parity p = 2*py + px, row (2*ty + tx)*CIN + ci; with W_TMA a tensor
    descriptor over its (16*CIN, COUT) view, block [BLOCK_K, BLOCK_N] (needs EVEN_K).
    ws / count: split-K workspace and counters as in ``conv2d_nhwc_kernel``.
    Grid: (cdiv(BATCH*H*W, BLOCK_M) * cdiv(COUT, BLOCK_N), 4, SPLIT_K).
    """
    pid = tl.program_id(0)
    parity = tl.program_id(1)
    split = tl.program_id(2)
    py = parity // 2
    px = parity % 2
    m_total = BATCH * H * W
    num_pid_m = (m_total + BLOCK_M - 1) // BLOCK_M
    num_pid_n = (COUT + BLOCK_N - 1) // BLOCK_N
    pid_m, pid_n = _grouped_tile(pid, num_pid_m, num_pid_n, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_n = tl.max_contiguous(tl.multiple_of(offs_n, BLOCK_N), BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < m_total
    mask_n = offs_n < COUT

    n = offs_m // (H * W)
    rem = offs_m % (H * W)
    i = rem // W
    j = rem % W
    x_row = x_ptr + n.to(tl.int64) * stride_xn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # The reduction below mirrors conv2d_nhwc_kernel's on purpose: a shared @triton.jit helper
    # costs 10-20 ms per call in the interpreter (CI), so the loop body is written out here.
    tl.static_assert((4 * ((CIN + BLOCK_K - 1) // BLOCK_K)) % SPLIT_K == 0)
    for s in range(0, 4 * ((CIN + BLOCK_K - 1) // BLOCK_K) // SPLIT_K):
        step = split * (4 * ((CIN + BLOCK_K - 1) // BLOCK_K) // SPLIT_K) + s
        tap = step // ((CIN + BLOCK_K - 1) // BLOCK_K)
        c0 = (step % ((CIN + BLOCK_K - 1) // BLOCK_K)) * BLOCK_K
        ty = tap // 2
        tx = tap % 2
        ih = i + py - ty
        iw = j + px - tx
        valid_m = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & mask_m
        ci = c0 + offs_k
        ci = tl.max_contiguous(tl.multiple_of(ci, BLOCK_K), BLOCK_K)
        a_ptrs = x_row[:, None] + (ih * stride_xh + iw * stride_xw)[:, None] + ci[None, :] * stride_xc
        w_rows = parity * (4 * CIN) + tap * CIN + ci
        if W_TMA:
            b = w_ptr.load([parity * (4 * CIN) + tap * CIN + c0, pid_n * BLOCK_N])
            a = tl.load(a_ptrs, mask=valid_m[:, None], other=0.0)
        elif EVEN_K:
            b = tl.load(w_ptr + w_rows[:, None] * COUT + offs_n[None, :], mask=mask_n[None, :], other=0.0)
            a = tl.load(a_ptrs, mask=valid_m[:, None], other=0.0)
        else:
            mask_k = ci < CIN
            b = tl.load(w_ptr + w_rows[:, None] * COUT + offs_n[None, :], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            a = tl.load(a_ptrs, mask=valid_m[:, None] & mask_k[None, :], other=0.0)
        a = a.to(b.dtype)
        if COMPUTE_FP32:
            if FP32_IEEE:
                acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
        else:
            acc = tl.dot(a, b, acc)

    out_row = out_ptr + n.to(tl.int64) * stride_on + (2 * i + py) * stride_oh + (2 * j + px) * stride_ow
    _finish_tile(acc, parity * (num_pid_m * num_pid_n) + pid, split, ws_ptr, count_ptr, out_row, offs_n, mask_m,
                 mask_n, bias_ptr, scale_ptr, shift_ptr, stride_oc, ACTIVATION, HAS_POST, SPLIT_K, BLOCK_M, BLOCK_N)


def conv_transpose2d_grid(batch: int, h: int, w: int, cout: int):
    """Launch grid of ``conv_transpose2d_nhwc_kernel`` (h, w: the *input* size)."""

    def grid(meta):
        return (triton.cdiv(batch * h * w, meta["BLOCK_M"]) * triton.cdiv(cout, meta["BLOCK_N"]), 4, meta.get("SPLIT_K", 1))

    return grid


def pack_transposed_weight(weight: torch.Tensor, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """(CIN, COUT, 4, 4) ConvTranspose2d weight -> (4, 4*CIN, COUT) contiguous.

    Entry [2*py + px, (2*ty + tx)*CIN + ci, co] = weight[ci, co, 1 - py + 2*ty, 1 - px + 2*tx].
    """
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (KERNEL, KERNEL):
        raise ValueError(f"expected a (in, out, 4, 4) transposed-conv weight, got shape {tuple(weight.shape)}")
    cin, cout = weight.shape[:2]
    parities = []
    for py in range(2):
        for px in range(2):
            taps = [weight[:, :, 1 - py + 2 * ty, 1 - px + 2 * tx] for ty in range(2) for tx in range(2)]
            parities.append(torch.cat(taps, dim=0))  # (4*CIN, COUT)
    packed = torch.stack(parities)
    return packed.to(device=device or weight.device, dtype=dtype or weight.dtype).contiguous()


def conv_transpose2d_nhwc(
    x: torch.Tensor,
    weight_packed: torch.Tensor,
    bias: torch.Tensor,
    *,
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
    """ConvTranspose2d(k=4, stride=2, padding=1) + bias + activation (+ affine), NHWC.

    x: (N, H, W, CIN), any strides; weight_packed: ``pack_transposed_weight(w)``; its dtype is
    the compute dtype. Output (N, 2H, 2W, COUT) into ``out`` (any strides) or a new contiguous
    tensor of ``out_dtype`` (default: weight dtype). ``fp32_ieee``, ``config``, ``autotune`` and
    ``workspace`` as in ``conv2d_nhwc``. Returns ``out``.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D (N, H, W, C) tensor, got shape {tuple(x.shape)}")
    batch, h, w, cin = x.shape
    if weight_packed.dim() != 3 or weight_packed.shape[:2] != (4, 4 * cin) or not weight_packed.is_contiguous():
        raise ValueError(f"weight_packed must be a contiguous (4, {4 * cin}, COUT) tensor from pack_transposed_weight, got {tuple(weight_packed.shape)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if (post_scale is None) != (post_shift is None):
        raise ValueError("post_scale and post_shift go together")
    cout = weight_packed.shape[2]
    check_device(x, weight_packed)
    device = x.device
    _check_vector(bias, cout, "bias", device)
    _check_vector(post_scale, cout, "post_scale", device)
    _check_vector(post_shift, cout, "post_shift", device)
    if out is None:
        out = torch.empty((batch, 2 * h, 2 * w, cout), device=device, dtype=out_dtype or weight_packed.dtype)
    elif tuple(out.shape) != (batch, 2 * h, 2 * w, cout):
        raise ValueError(f"out must have shape {(batch, 2 * h, 2 * w, cout)}, got {tuple(out.shape)}")
    _check_int32_extent(x, out)
    has_post = post_scale is not None
    launch, tile = launchable(
        conv_transpose2d_nhwc_kernel, cin=cin, cout=cout, m_total=batch * h * w, flat_k_total=0,
        weight=weight_packed, config=config, autotune=autotune, parities=4, fp32_ieee=fp32_ieee,
    )
    split = split_k_buffers(tile, batch * h * w, cout, device, workspace, parities=4) or (bias, bias)
    launch[conv_transpose2d_grid(batch, h, w, cout)](
        x, weight_operand(weight_packed, tile), bias, post_scale if has_post else bias,
        post_shift if has_post else bias, out, *split,
        batch, h, w, cin, cout,
        *x.stride(), *out.stride(),
        ACTIVATION=ACTIVATIONS[activation], HAS_POST=has_post,
        COMPUTE_FP32=uses_fp32_compute(weight_packed.dtype), FP32_IEEE=fp32_ieee,
        **tile,
    )
    return out


def reference_conv_transpose2d_nhwc(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    activation: str = "relu",
    post_scale: Optional[torch.Tensor] = None,
    post_shift: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """What ``conv_transpose2d_nhwc`` computes, with torch in float32 (unpacked (CIN, COUT, 4, 4) weight)."""
    y = torch.nn.functional.conv_transpose2d(
        x.permute(0, 3, 1, 2).float(), weight.float(), bias.float(), stride=STRIDE, padding=PADDING
    )
    return _reference_activation(y, activation, post_scale, post_shift).permute(0, 2, 3, 1)
