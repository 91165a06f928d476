"""Where emowork keeps its files: the cache folder and its sub-folders."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EMOWORK_CACHE_DIR"


def cache_dir() -> Path:
    """Return the root cache folder, creating it.

    ``$EMOWORK_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/emowork``, else ``~/.cache/emowork``.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "emowork"
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    """Folder holding models converted once (e.g. the de-quantized embedded GGUF)."""
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def activations_dir() -> Path:
    """Folder holding cached activation captures (one sub-folder per capture key)."""
    path = cache_dir() / "activations"
    path.mkdir(parents=True, exist_ok=True)
    return path
