"""The GLCIC layer tables, as data.

Every consumer (the PyTorch reference model, BatchNorm folding, the ONNX exporter, the
Triton backend, the TensorRT builder, the Torch7 importer) walks these lists, so the
architecture is written down exactly once. Numbers are the paper's / the authors' released
model (``../shared/docs/glcic.md``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvSpec:
    """One layer of the completion network.

    ``transposed`` layers are the 4x4 stride-2 "deconvolutions" (ConvTranspose2d, padding 1),
    which double the resolution. All other layers use "same" padding,
    ``dilation * (kernel - 1) // 2``, so only their stride changes the resolution.
    """

    out_channels: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    transposed: bool = False
    activation: str = "relu"  # "relu" or "sigmoid"

    @property
    def padding(self) -> int:
        if self.transposed:
            return 1  # 4x4 kernel, stride 2, padding 1: exactly 2x upsampling
        return self.dilation * (self.kernel - 1) // 2


# The mean pixel stored with the authors' Places2 model (RGB in [0, 1]): the default fill.
PLACES2_MEAN = (0.4560, 0.4472, 0.4155)

# Completion network C: 4 channels in (RGB with the hole blanked, plus the mask), 3 out.
COMPLETION_LAYERS: tuple[ConvSpec, ...] = (
    ConvSpec(64, 5),  # 1
    ConvSpec(128, 3, stride=2),  # 2  -> H/2
    ConvSpec(128, 3),  # 3
    ConvSpec(256, 3, stride=2),  # 4  -> H/4
    ConvSpec(256, 3),  # 5
    ConvSpec(256, 3),  # 6
    ConvSpec(256, 3, dilation=2),  # 7
    ConvSpec(256, 3, dilation=4),  # 8
    ConvSpec(256, 3, dilation=8),  # 9
    ConvSpec(256, 3, dilation=16),  # 10
    ConvSpec(256, 3),  # 11
    ConvSpec(256, 3),  # 12
    ConvSpec(128, 4, stride=2, transposed=True),  # 13 -> H/2
    ConvSpec(128, 3),  # 14
    ConvSpec(64, 4, stride=2, transposed=True),  # 15 -> H
    ConvSpec(32, 3),  # 16
    ConvSpec(3, 3, activation="sigmoid"),  # 17 (no BatchNorm)
)
COMPLETION_IN_CHANNELS = 4
COMPLETION_OUT_CHANNELS = 3
# H and W must be multiples of this (two stride-2 convs, then two 2x transposed convs).
SIZE_MULTIPLE = 4

# Context discriminators: 5x5 stride-2 convs, each Conv -> BN -> ReLU, then FC -> 1024.
LOCAL_DISCRIMINATOR_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
GLOBAL_DISCRIMINATOR_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512, 512)
DISCRIMINATOR_KERNEL = 5
DISCRIMINATOR_FEATURES = 1024


def layer_in_channels(layers: tuple[ConvSpec, ...] = COMPLETION_LAYERS) -> list[int]:
    """Input channel count of each layer."""
    ins = [COMPLETION_IN_CHANNELS]
    for spec in layers[:-1]:
        ins.append(spec.out_channels)
    return ins


def macs_per_pixel(layers: tuple[ConvSpec, ...] = COMPLETION_LAYERS) -> int:
    """Multiply-adds per input pixel of the completion network (496,736 for GLCIC).

    A transposed conv is counted as the dense work it does: each input pixel scatters
    ``kernel**2 * cin * cout`` products.
    """
    total = 0.0
    scale = 1.0  # output pixels of the current layer per input pixel
    for cin, spec in zip(layer_in_channels(layers), layers):
        if spec.transposed:
            total += scale * spec.kernel**2 * cin * spec.out_channels
            scale *= spec.stride**2
        else:
            scale /= spec.stride**2
            total += scale * spec.kernel**2 * cin * spec.out_channels
    return int(round(total))
