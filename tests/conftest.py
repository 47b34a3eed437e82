"""Shared test setup.

Without a GPU, Triton kernels run in the interpreter: set TRITON_INTERPRET before anything
imports triton, so the kernel tests and the triton backend in the parity test run on the CPU.
"""

import atexit
import os
import shutil
import tempfile

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

# On a CPU, precision="auto" picks the fastest variant that passes the accuracy gate on the CPU
# at hand (int8 / bf16 / fp32): tests/test_cpu_auto.py tests that choice. Everywhere else "auto"
# means the exact fp32 path, so no other test depends on the CPU it runs on.
os.environ.setdefault("GLCIC_FAST_CPU_AUTO", "fp32")
# Quantized models and gate verdicts of this run go to a folder of its own, not ~/.cache.
if "GLCIC_FAST_CACHE" not in os.environ:
    os.environ["GLCIC_FAST_CACHE"] = tempfile.mkdtemp(prefix="glcic-fast-test-cache-")
    atexit.register(shutil.rmtree, os.environ["GLCIC_FAST_CACHE"], True)


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
