"""The app's completion engine: the API's own ``Completer``, loaded once per backend and mode, one call at a time.

The server loads the startup backend before it listens, and any other backend the page asks
for on first use, then keeps it. Authors' mode is ``load(..., authors_mode=True)`` itself: a
second Completer per backend, loaded that way on first use and kept (it holds its own copy of
the network: the authors' pipeline lives in the Completer, and the app re-implements none of
it). Its results come back at the script's network resolution, which differs from the photo's
size when the photo is larger than 600 px or not a multiple of 4. Completions are serialized
(one lock): the network already uses every core (or the whole GPU), so running two at once
would only make both slower, and the backends keep per-shape state that is not meant to be
shared between threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import backends as backend_registry
from ..api import Completer, load
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
        # (backend name, authors mode) -> its Completer, loaded on first use and kept
        self._completers: dict[tuple[str, bool], Completer] = {}
        self._lock = threading.Lock()
        first = self._load(backend, device, authors_mode=False)
        self.default_backend = first.backend.name
        self.device = first.backend.device
        self.default_precision = first.backend.precision

    def _load(self, backend: str, device: str, authors_mode: bool) -> Completer:
        completer = load(self.model, backend=backend, device=device, precision=self.precision, authors_mode=authors_mode)
        completer.backend = NetworkClock(completer.backend)
        self._completers[completer.backend.name, authors_mode] = completer
        return completer

    def completer(self, backend: Optional[str] = None, authors_mode: bool = False) -> Completer:
        """The Completer for ``backend`` (default: the startup one) in the default or authors' mode,
        loaded on first use. Call it under the lock (``complete`` does)."""
        key = (backend or self.default_backend, authors_mode)
        if key not in self._completers:  # kept under the name asked for too ("auto" loads once)
            self._completers[key] = self._load(key[0], self.device, authors_mode)
        return self._completers[key]

    def backends(self) -> list[dict]:
        """Every backend the package knows, with whether it can run this model here and why not."""
        rows = []
        for name in backend_registry.REGISTRY:
            reason: Optional[str]
            if name in {loaded for loaded, _ in self._completers}:
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
        """``Completer.complete`` on the named backend (loaded on first use); waits for any call in progress.

        ``authors_mode``: the Completer of ``load(..., authors_mode=True)``, whose ``postprocess``
        is the script's ``--postproc``; its result has the script's size, not the photo's."""
        with self._lock:
            completer = self.completer(backend, authors_mode)
            clock = completer.backend
            clock.seconds = 0.0
            result = completer.complete(pixels, mask, postprocess=postprocess)
            return Completion(result, clock.seconds * 1000.0, clock.name, clock.device, clock.precision)
