"""The app's completion engine: the API's own ``Completer``, loaded once per backend, one call at a time.

The server loads the startup backend before it listens, and any other backend the page asks
for on first use, then keeps it. Completions are serialized (one lock): the network already
uses every core (or the whole GPU), so running two at once would only make both slower, and
the backends keep per-shape state that is not meant to be shared between threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import backends as backend_registry
from ..api import Completer, load
from ..preprocess import AUTHORS_MASK_THRESHOLD
from ..resolve import is_engine_path


class NetworkClock:
    """Stands in for a Completer's backend and times each network call (the rest is delegated)."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.seconds = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.backend(x)
        self.backend.synchronize()
        self.seconds += time.perf_counter() - start
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


@dataclass
class Completion:
    pixels: np.ndarray
    network_ms: float
    backend: str
    device: str
    precision: str


class Engine:
    """Completers for one model on one device, by backend name."""

    def __init__(self, model: Any = None, backend: str = "auto", device: str = "auto", precision: str = "auto"):
        self.model = model
        self.precision = precision
        self._is_engine_file = is_engine_path(model)
        self._completers: dict[str, Completer] = {}
        self._lock = threading.Lock()
        first = self._load(backend, device)
        self.default_backend = first.backend.name
        self.device = first.backend.device
        self.default_precision = first.backend.precision

    def _load(self, backend: str, device: str) -> Completer:
        completer = load(self.model, backend=backend, device=device, precision=self.precision)
        completer.backend = NetworkClock(completer.backend)
        self._completers[completer.backend.name] = completer
        return completer

    def backends(self) -> list[dict]:
        """Every backend the package knows, with whether it can run this model here and why not."""
        rows = []
        for name in backend_registry.REGISTRY:
            reason: Optional[str]
            if name in self._completers:
                reason = None
            elif self._is_engine_file:
                reason = "the model is a TensorRT engine, which only the tensorrt backend runs"
            elif name == "tensorrt":
                reason = "runs engines built with glcic-fast build-engine (start the app with --model engine.plan)"
            else:
                reason = backend_registry.unavailable_reason(name, self.device)
            rows.append({"name": name, "available": reason is None, "reason": reason})
        return rows

    def complete(
        self, pixels: np.ndarray, mask: np.ndarray, backend: Optional[str] = None,
        postprocess: bool = False, authors_mode: bool = False,
    ) -> Completion:
        """``Completer.complete`` on the named backend (loaded on first use); waits for any call in progress."""
        with self._lock:
            name = backend or self.default_backend
            completer = self._completers.get(name) or self._load(name, self.device)
            options: dict[str, Any] = {"postprocess": postprocess}
            if authors_mode:  # what load(authors_mode=True) sets, per call
                options = {"postprocess": True, "resize": "authors", "mask_threshold": AUTHORS_MASK_THRESHOLD}
            clock = completer.backend
            clock.seconds = 0.0
            result = completer.complete(pixels, mask, **options)
            return Completion(result, clock.seconds * 1000.0, name, clock.device, clock.precision)
