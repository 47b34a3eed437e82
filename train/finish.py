"""Finishing touches on a trained completion network before it ships: BatchNorm statistics
re-estimated with the final weights, dilated taps that training never reached set to zero."""

from __future__ import annotations

import torch
from torch import nn

from ..model import CompletionNetwork
from .data import PhotoCropDataset


def network_input(images: torch.Tensor, masks: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """The paper's input: (image - mean) with the hole zeroed, and the mask (N, 4, H, W)."""
    return torch.cat([(images - mean) * (1.0 - masks), masks], dim=1)


def recalibrate_batchnorm(
    network: CompletionNetwork, dataset: PhotoCropDataset, mean, batches: int = 32, batch_size: int = 16
) -> CompletionNetwork:
    """Re-estimate the BatchNorm running statistics of ``network`` with its final weights.

    Training keeps exponential averages (momentum 0.1) of batch statistics taken while the
    weights were still moving; averaging the statistics of ``batches`` fresh training batches
    with the weights frozen matches what the network sees at inference (evaluation mode) more
    closely. Weights are not touched. Returns ``network`` (in eval mode).
    """
    bns = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    saved_momentum = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    network.train()
    with torch.no_grad():
        for b in range(batches):
            items = [dataset[b * batch_size + i] for i in range(batch_size)]
            images = torch.stack([it[0] for it in items])
            masks = torch.stack([it[1] for it in items])
            network(network_input(images, masks, mean_t))
    for m, mom in zip(bns, saved_momentum):
        m.momentum = mom
    return network.eval()


def zero_unreached_dilated_taps(network: CompletionNetwork, image_size: int) -> list[int]:
    """Zero the off-centre taps of dilated convs that training at ``image_size`` never reached.

    At 64x64 the dilated layers run on 16x16 maps, so a dilation-16 conv's off-centre taps
    always read zero padding: they get no gradient and keep their random initial values. On
    larger images those random taps suddenly see features and print noise. Zeroing them leaves
    the network's output at the training size exactly as it was and makes larger inputs behave
    like the trained function. Returns the indices of the layers changed.
    """
    changed = []
    for i, block in enumerate(network.layers):
        spec = block.spec
        if spec.transposed or spec.dilation <= 1:
            continue
        # Feature-map side at this layer: the network halves twice before the dilated stack.
        side = image_size // 4
        reach = spec.dilation * (spec.kernel - 1) // 2
        if reach >= side:
            with torch.no_grad():
                centre = block.conv.weight[:, :, spec.kernel // 2, spec.kernel // 2].clone()
                block.conv.weight.zero_()
                block.conv.weight[:, :, spec.kernel // 2, spec.kernel // 2] = centre
            changed.append(i)
    return changed
