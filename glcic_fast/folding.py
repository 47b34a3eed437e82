"""Fold eval-mode BatchNorm into the convolutions: the one network description fast backends use.

In eval mode BatchNorm is a per-channel affine map ``y = s * z + t`` with
``s = gamma / sqrt(var + eps)`` and ``t = beta - s * mean``. After a conv it folds exactly
into the conv's weights (scaled per output channel) and bias, leaving conv + bias + activation
everywhere. A transposed conv's weight is laid out (in, out, kh, kw), so there the scale runs
along dimension 1.

GLCIC-PyTorch models put BatchNorm *after* the ReLU; that affine map cannot move into the
conv, so it stays on the layer as ``post_scale`` / ``post_shift`` (applied after the
activation). Backends that cannot apply it refuse such models (``needs_post_affine``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import CompletionBlock, CompletionNetwork


class FoldedLayer(NamedTuple):
    weight: torch.Tensor  # conv: (out, in, k, k); transposed: (in, out, k, k); float32
    bias: torch.Tensor  # (out,)
    stride: int
    dilation: int
    padding: int
    activation: str  # "relu" | "sigmoid"
    transposed: bool = False
    post_scale: Optional[torch.Tensor] = None  # (out,), applied after the activation
    post_shift: Optional[torch.Tensor] = None

    @property
    def in_channels(self) -> int:
        return self.weight.shape[0] if self.transposed else self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[1] if self.transposed else self.weight.shape[0]

    @property
    def kernel(self) -> int:
        return self.weight.shape[-1]


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - scale * bn.running_mean
    return scale, shift


@torch.no_grad()
def fold_batchnorm(network: CompletionNetwork) -> list[FoldedLayer]:
    """Return the network as a list of ``FoldedLayer`` (float32, CPU, detached).

    Uses the BatchNorm running statistics, i.e. the network's eval-mode function, whatever
    mode the module is in.
    """
    folded: list[FoldedLayer] = []
    for block in network.layers:
        assert isinstance(block, CompletionBlock)
        conv, spec = block.conv, block.spec
        assert isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and conv.bias is not None
        weight = conv.weight.detach().float().cpu().clone()
        bias = conv.bias.detach().float().cpu().clone()
        post_scale = post_shift = None
        if block.bn is not None:
            scale, shift = (t.detach().float().cpu() for t in _bn_affine(block.bn))
            if block.order == "glcic" or spec.activation == "sigmoid":
                shape = (1, -1, 1, 1) if spec.transposed else (-1, 1, 1, 1)
                weight = weight * scale.reshape(shape)
                bias = bias * scale + shift
            else:
                post_scale, post_shift = scale.clone(), shift.clone()
        folded.append(
            FoldedLayer(
                weight=weight.contiguous(),
                bias=bias.contiguous(),
                stride=spec.stride,
                dilation=spec.dilation,
                padding=spec.padding,
                activation=spec.activation,
                transposed=spec.transposed,
                post_scale=post_scale,
                post_shift=post_shift,
            )
        )
    return folded


def needs_post_affine(layers: Sequence[FoldedLayer]) -> bool:
    return any(layer.post_scale is not None for layer in layers)


def apply_folded_layer(
    x: torch.Tensor, layer: FoldedLayer, weight=None, bias=None, post_scale=None, post_shift=None
) -> torch.Tensor:
    """Run one folded layer with ``torch.nn.functional`` (tensors may be moved / cast copies)."""
    weight = layer.weight if weight is None else weight
    bias = layer.bias if bias is None else bias
    post_scale = layer.post_scale if post_scale is None else post_scale
    post_shift = layer.post_shift if post_shift is None else post_shift
    if layer.transposed:
        x = F.conv_transpose2d(x, weight, bias, stride=layer.stride, padding=layer.padding)
    else:
        x = F.conv2d(x, weight, bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    x = torch.sigmoid(x) if layer.activation == "sigmoid" else F.relu(x)
    if post_scale is not None and post_shift is not None:
        x = x * post_scale.to(x).reshape(1, -1, 1, 1) + post_shift.to(x).reshape(1, -1, 1, 1)
    return x


class FoldedNetwork(nn.Module):
    """The folded layer list as a module (what the ``torch`` backend runs)."""

    def __init__(self, layers: Sequence[FoldedLayer]):
        super().__init__()
        self.folded = list(layers)
        self.weights = nn.ParameterList(nn.Parameter(l.weight.clone(), requires_grad=False) for l in layers)
        self.biases = nn.ParameterList(nn.Parameter(l.bias.clone(), requires_grad=False) for l in layers)
        # Per-layer post-activation affine (GLCIC-PyTorch order only); empty where absent.
        empty = torch.empty(0)
        self.post_scales = nn.ParameterList(
            nn.Parameter(empty if l.post_scale is None else l.post_scale.clone(), requires_grad=False)
            for l in layers
        )
        self.post_shifts = nn.ParameterList(
            nn.Parameter(empty if l.post_shift is None else l.post_shift.clone(), requires_grad=False)
            for l in layers
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = zip(self.folded, self.weights, self.biases, self.post_scales, self.post_shifts)
        for layer, w, b, ps, pt in params:
            x = apply_folded_layer(x, layer, w, b, ps if ps.numel() else None, pt if pt.numel() else None)
        return x
