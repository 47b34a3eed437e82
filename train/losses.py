"""GLCIC's losses.

* ``completion_loss``: the weighted MSE ``|| Mc * (C(x, Mc) - x) ||^2``, normalised by the
  number of hole values so its scale does not depend on the hole or image size (the paper
  gives the unnormalised norm; normalising only rescales the gradient).
* ``discriminator_loss``: the discriminator's side of ``log D(x, Md) + log(1 - D(C(x,Mc), Mc))``
  as binary cross-entropy on logits (real -> 1, completed -> 0), numerically stable.
* ``generator_adversarial_loss`` and ``joint_completion_loss``: the completion network's side
  of the joint objective, ``MSE + alpha * adversarial``. As is standard (and as the paper's
  released code does with its criterion), the completion network minimises
  ``-log D(C(x, Mc), Mc)`` (BCE towards "real") rather than ``log(1 - D(...))``, which has the
  same fixed point and does not saturate early in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The paper's weight of the adversarial term in the joint objective.
PAPER_ALPHA = 0.0004


def completion_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole: sum(M * (out - x)^2) / (number of hole values).

    ``output`` and ``target`` are (N, C, H, W); ``mask`` is (N, 1, H, W) with 1 = hole. A
    batch without any hole gives 0.
    """
    mask = mask.to(output.dtype).expand_as(output)
    squared = (mask * (output.float() - target.float())) ** 2
    return squared.sum() / mask.float().sum().clamp_min(1.0)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(real -> 1) + BCE(fake -> 0), each averaged over the batch."""
    real = F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return real + fake


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(fake -> 1): small when the discriminator takes completions for real."""
    return F.binary_cross_entropy_with_logits(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))


def joint_completion_loss(mse: torch.Tensor, adversarial: torch.Tensor, alpha: float = PAPER_ALPHA) -> torch.Tensor:
    """The completion network's joint objective: ``mse + alpha * adversarial``."""
    return mse + alpha * adversarial
