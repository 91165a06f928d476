"""Judge scores kept on disk: a judge whose scores depend only on the text (an embedding judge) rates the same texts
the same way in every run, so its scores on a fixed set (the held-out writers' replies the judge stage measures it on)
are computed once per judge, text set and library versions, and read back afterwards.

The key covers the judge's name and version, the digest of its head's weights, the embedder actually loaded (its
version string names its package version and the digest of any fine-tuned layers; its device and dtype), the versions
of torch and transformers and the texts themselves: a reinstall or a new fine-tuned file changes the key and the scores
are computed again, so the judge stage still notices an embedder that no longer matches its model card.
``emowork cache clear --what judge-scores`` deletes them. Files are safetensors with a checksum
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
    """24 hex digits naming the judge, the embedder actually loaded (its own version string, which carries its package
    version and the digest of fine-tuned layers, its device and dtype), the head's weights, the libraries that compute
    the scores, and ``texts``."""
    embedder = getattr(judge, "embedder", None)
    head = getattr(judge, "head", None)
    head_digest = hashlib.sha256()
    for array in (getattr(head, "weight", None), getattr(head, "bias", None)):
        if array is not None:
            head_digest.update(np.ascontiguousarray(array).tobytes())
    model = getattr(embedder, "model", None)
    first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    libraries = {}
    for package in ("torch", "transformers"):
        try:
            libraries[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            libraries[package] = None
    blob = json.dumps({"judge": type(judge).__name__, "name": judge.name, "version": judge.version,
                       "embedder": getattr(embedder, "version", None), "embedder_device": str(getattr(embedder, "device", "")),
                       "embedder_dtype": str(first.dtype) if first is not None else None, "head": head_digest.hexdigest(),
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
