"""Shared test setup.

Without a GPU, Triton kernels run in the interpreter: set TRITON_INTERPRET before anything
imports triton, so the kernel tests and the triton backend in the parity test run on the CPU.
"""

import os

import pytest


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


HAS_CUDA = _cuda_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])


@pytest.fixture(scope="session")
def random_network():
    """A completion network with random weights and non-trivial BatchNorm statistics."""
    import torch

    from glcic_fast import CompletionNetwork

    return make_random_network(CompletionNetwork, torch, seed=0)


def make_random_network(cls, torch, seed=0, **kwargs):
    gen = torch.Generator().manual_seed(seed)
    net = cls(**kwargs)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
    return net.eval()
