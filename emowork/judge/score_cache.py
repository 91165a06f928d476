"""Judge scores kept on disk: a judge whose scores depend only on the text (an embedding judge) rates the same texts
the same way in every run, so its scores on a fixed set (the held-out writers' replies the judge stage measures it on)
are computed once per judge, text set and library versions, and read back afterwards.

The key covers the judge's name and version (its head), the embedder's version, the versions of torch and
transformers and the texts themselves: a reinstall that changes any of them computes the scores again, so the judge
stage still notices an embedder that no longer matches its model card. Files are safetensors with a checksum
(:func:`emowork.storage.save_tensors_checked`); a damaged file is computed again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..paths import cache_dir
from ..storage import load_tensors_checked, save_tensors_checked
from .base import Judge


def scores_folder() -> Path:
    """``<cache>/judge-scores``, created."""
    path = cache_dir() / "judge-scores"
    path.mkdir(parents=True, exist_ok=True)
    return path


def scores_key(judge: Judge, texts: Sequence[str]) -> str:
    """24 hex digits naming the judge, its embedder, the libraries that compute its scores and ``texts``."""
    described = judge.describe()
    libraries = {}
    for package in ("torch", "transformers"):
        try:
            libraries[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            libraries[package] = None
    blob = json.dumps({"judge": type(judge).__name__, "name": judge.name, "version": judge.version,
                       "embedder": described.get("embedder"), "embedder_version": described.get("embedder_version"),
                       "libraries": libraries, "texts": hashlib.sha256("\x00".join(texts).encode()).hexdigest()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_scores(judge: Judge, texts: Sequence[str]) -> np.ndarray:
    """``judge.scores(texts)`` ``[n, 6]``, read from the cache when the same judge scored the same texts with the same
    libraries before; judges whose scores may vary between calls (``judge.text_only_scores`` False: LLM judges,
    ensembles) are always asked."""
    texts = list(texts)
    if not getattr(judge, "text_only_scores", False):
        return judge.scores(texts)
    path = scores_folder() / f"{scores_key(judge, texts)}.safetensors"
    try:
        scores = load_tensors_checked(path)["scores"].numpy()
        if scores.shape == (len(texts), 6):
            return scores
    except FileNotFoundError:
        pass
    except (ValueError, KeyError) as exc:
        warnings.warn(f"Judge scores in {path} are damaged ({exc}); computing them again.")
    scores = np.asarray(judge.scores(texts))
    save_tensors_checked(path, {"scores": torch.from_numpy(np.ascontiguousarray(scores))})
    return scores
