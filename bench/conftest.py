"""Shared setup of the pytest-benchmark suite (`pytest bench/ --benchmark-only`).

The suite times the network per backend and the end-to-end ``Completer.complete`` call, on the
CPU here and on CUDA where a GPU is visible. It is not part of ``pytest tests/`` (setup.cfg sets
``testpaths = tests``): run it on purpose, e.g. ``pytest bench/ --benchmark-only``.
"""

from __future__ import annotations

import pytest


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


HAS_CUDA = _cuda_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip (with the reason) where PyTorch sees no CUDA GPU."""
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU visible to PyTorch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")


@pytest.fixture(scope="session")
def folded_layers():
    """BN-folded layers of a seeded random completion network (latency ignores the values)."""
    from glcic_fast.bench import random_layers

    return random_layers(seed=0)


class BackendCache:
    """Build each (variant, device) backend once per session; a variant that cannot run skips."""

    def __init__(self, layers):
        self.layers = layers
        self.built: dict[tuple[str, str], object] = {}

    def get(self, label: str, device: str, sizes, batch_sizes):
        from glcic_fast.backends import BackendUnavailable
        from glcic_fast.bench import build_backend, parse_variant

        key = (label, device)
        if key not in self.built:
            variant = parse_variant(label)
            try:
                import tempfile

                workdir = tempfile.mkdtemp(prefix="glcic-bench-")
                self.built[key] = build_backend(
                    variant, self.layers, device, variant.resolved_precision(device), sizes, batch_sizes, workdir
                )
            except (BackendUnavailable, ValueError, ImportError) as e:
                self.built[key] = f"{label} on {device}: {e}"
        backend = self.built[key]
        if isinstance(backend, str):
            pytest.skip(backend)
        return backend


@pytest.fixture(scope="session")
def backends(folded_layers):
    return BackendCache(folded_layers)


@pytest.fixture
def timed(benchmark):
    """``timed(fn, synchronize, rounds, warmup_rounds, **info)``: see ``run_benchmark_case``."""
    return lambda *args, **info: run_benchmark_case(benchmark, *args, **info)


def run_benchmark_case(benchmark, fn, synchronize, rounds: int, warmup_rounds: int, **info):
    """Time ``fn`` + ``synchronize`` with a fixed number of rounds (so the suite's length is known)."""
    from glcic_fast.layers import macs_per_pixel

    def call():
        out = fn()
        synchronize()
        return out

    size = info.get("size")
    if size is not None:
        h, w = size
        info["size"] = f"{h}x{w}"
        info["flops"] = 2.0 * macs_per_pixel() * h * w * info.get("batch", 1)
    benchmark.extra_info.update(info)
    return benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
