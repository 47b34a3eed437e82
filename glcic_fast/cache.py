"""Where glcic-fast keeps what it builds once and reuses (quantized models, gate verdicts,
TensorRT timing caches): one rule for every such file.

``cache_dir()``: ``$GLCIC_FAST_CACHE`` if set, else ``$XDG_CACHE_HOME/glcic-fast``, else
``~/.cache/glcic-fast``. ``user_cache_dir()`` is the same without ``GLCIC_FAST_CACHE``: for
what must outlive a redirected cache (the Triton server environment, a ~250 MB install that
the test suite, which points ``GLCIC_FAST_CACHE`` at a fresh folder per run, must not redo).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GLCIC_FAST_CACHE"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/glcic-fast``, else ``~/.cache/glcic-fast`` (the XDG base directory rule)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glcic-fast"


def cache_dir() -> Path:
    """``$GLCIC_FAST_CACHE``, else ``user_cache_dir()``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else user_cache_dir()
