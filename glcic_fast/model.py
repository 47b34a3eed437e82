"""The GLCIC networks in PyTorch: the reference every fast backend is checked against.

``CompletionNetwork`` is built by walking ``layers.COMPLETION_LAYERS``; the discriminators by
walking their channel lists. Read side by side with section 3 of the paper and
``../shared/docs/glcic.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    COMPLETION_IN_CHANNELS,
    COMPLETION_LAYERS,
    DISCRIMINATOR_FEATURES,
    DISCRIMINATOR_KERNEL,
    GLOBAL_DISCRIMINATOR_CHANNELS,
    LOCAL_DISCRIMINATOR_CHANNELS,
    SIZE_MULTIPLE,
    ConvSpec,
    layer_in_channels,
)

# Layer orders a completion network can have. "glcic" is the paper's Conv -> BN -> ReLU;
# "glcic-pytorch" is the GLCIC-PyTorch reimplementation's Conv -> ReLU -> BN, a different
# function of the same weights (see ``glcic_fast.weights_import``).
LAYER_ORDERS = ("glcic", "glcic-pytorch")


def make_conv(cin: int, spec: ConvSpec) -> nn.Module:
    if spec.transposed:
        return nn.ConvTranspose2d(cin, spec.out_channels, spec.kernel, spec.stride, spec.padding)
    return nn.Conv2d(
        cin, spec.out_channels, spec.kernel, spec.stride, spec.padding, dilation=spec.dilation
    )


class CompletionBlock(nn.Module):
    """Conv (or transposed conv) -> BatchNorm -> activation; the last layer has no BN."""

    def __init__(self, cin: int, spec: ConvSpec, batchnorm: bool, order: str = "glcic"):
        super().__init__()
        self.spec = spec
        self.order = order
        self.conv = make_conv(cin, spec)
        self.bn = nn.BatchNorm2d(spec.out_channels) if batchnorm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.spec.activation == "sigmoid":
            x = self.bn(x) if self.bn is not None else x
            return torch.sigmoid(x)
        if self.order == "glcic-pytorch":
            x = F.relu(x)
            return self.bn(x) if self.bn is not None else x
        x = self.bn(x) if self.bn is not None else x
        return F.relu(x)


class CompletionNetwork(nn.Module):
    """Completion network C: (N, 4, H, W) -> (N, 3, H, W) in [0, 1].

    Input channels are RGB with the hole blanked (see ``preprocess``) and the binary mask
    (1 = hole). H and W must be multiples of 4. ``order`` picks the paper's layer order
    (default) or GLCIC-PyTorch's.
    """

    def __init__(self, order: str = "glcic"):
        super().__init__()
        if order not in LAYER_ORDERS:
            raise ValueError(f"unknown layer order {order!r}; expected one of {LAYER_ORDERS}")
        self.order = order
        ins = layer_in_channels()
        last = len(COMPLETION_LAYERS) - 1
        self.layers = nn.ModuleList(
            CompletionBlock(cin, spec, batchnorm=i != last, order=order)
            for i, (cin, spec) in enumerate(zip(ins, COMPLETION_LAYERS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != COMPLETION_IN_CHANNELS:
            raise ValueError(f"expected input of shape (N, 4, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"H and W must be multiples of {SIZE_MULTIPLE}, got {h}x{w}")
        for layer in self.layers:
            x = layer(x)
        return x


def _conv_bn_relu_stack(channels: tuple[int, ...], cin: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    pad = DISCRIMINATOR_KERNEL // 2
    for cout in channels:
        mods += [
            nn.Conv2d(cin, cout, DISCRIMINATOR_KERNEL, stride=2, padding=pad),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        cin = cout
    return nn.Sequential(*mods)


class _ContextBranch(nn.Module):
    """Strided conv stack, flatten, FC -> 1024, ReLU.

    The paper does not say whether a ReLU follows the 1024-wide FC; we apply one (as
    GLCIC-PyTorch does), so the 2048-wide concatenation is of non-negative features.
    """

    def __init__(self, channels: tuple[int, ...], input_size: int):
        super().__init__()
        downsample = 2 ** len(channels)
        if input_size % downsample:
            raise ValueError(f"discriminator input size {input_size} must be a multiple of {downsample}")
        self.input_size = input_size
        self.features = _conv_bn_relu_stack(channels)
        side = input_size // downsample
        self.fc = nn.Linear(channels[-1] * side * side, DISCRIMINATOR_FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"expected {self.input_size}x{self.input_size} input, got {tuple(x.shape[-2:])}"
            )
        return F.relu(self.fc(torch.flatten(self.features(x), 1)))


class ContextDiscriminator(nn.Module):
    """Global + local context discriminators joined by a 2048 -> 1 layer.

    ``forward(image, local_patch)`` returns the logit of "real"; ``torch.sigmoid`` of it is
    the paper's probability (kept as a logit so the loss can use the stable
    ``binary_cross_entropy_with_logits``). The default sizes are the paper's (256 / 128, giving
    the 8192-wide FC inputs); smaller runs scale both.
    """

    def __init__(self, image_size: int = 256, local_size: int = 128):
        super().__init__()
        self.global_branch = _ContextBranch(GLOBAL_DISCRIMINATOR_CHANNELS, image_size)
        self.local_branch = _ContextBranch(LOCAL_DISCRIMINATOR_CHANNELS, local_size)
        self.head = nn.Linear(2 * DISCRIMINATOR_FEATURES, 1)

    def forward(self, image: torch.Tensor, local_patch: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.global_branch(image), self.local_branch(local_patch)], dim=1)
        return self.head(joined).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
