"""The on-disk activation cache: safetensors chunks + JSON manifests, checksummed, resumable.

Layout under ``<cache>/activations/<key>/``::

    manifest.json                 what was captured (model, prompts hash, sites, layers, positions, chunking)
    chunk_00000.safetensors       one tensor per site for prompts [0, chunk_size)
    chunk_00000.safetensors.sha256   written last: its presence marks the chunk as complete

A capture interrupted after k chunks resumes at chunk k. A chunk whose checksum does not match (a
corrupt or half-copied file) gives a warning, is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ..paths import activations_dir, cache_dir, models_dir
from ..storage import atomic_write_json, load_tensors_checked, save_tensors_checked

EXTRACTOR_VERSION = 1
CHUNK_SIZE = 256


def prompts_digest(prompts: list[str]) -> str:
    """Hex SHA-256 of a list of prompt texts (order matters)."""
    digest = hashlib.sha256()
    for text in prompts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def capture_key(fields: dict[str, Any]) -> str:
    """The cache key (24 hex digits) of a capture described by ``fields`` (JSON-serialisable)."""
    blob = json.dumps({"extractor_version": EXTRACTOR_VERSION, **fields}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class CaptureStore:
    """The cache folder of one capture: load and save its chunks."""

    def __init__(self, key: str, manifest: dict[str, Any], root: Path | None = None) -> None:
        self.key = key
        self.folder = (root or activations_dir()) / key
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.exists():
            atomic_write_json(manifest_path, {"key": key, "extractor_version": EXTRACTOR_VERSION, "created": time.time(), **manifest})

    def chunk_path(self, index: int) -> Path:
        """Path of chunk ``index``'s safetensors file."""
        return self.folder / f"chunk_{index:05d}.safetensors"

    def load_chunk(self, index: int) -> dict[str, torch.Tensor] | None:
        """Return chunk ``index``'s tensors, or None when it is absent or corrupt (corrupt files are removed)."""
        path = self.chunk_path(index)
        if not path.exists() and not Path(f"{path}.sha256").exists():
            return None
        try:
            return load_tensors_checked(path)
        except FileNotFoundError:
            self._discard(path)
            return None
        except ValueError as exc:
            warnings.warn(f"emowork cache: {exc}; recomputing this chunk.", stacklevel=3)
            self._discard(path)
            return None

    def save_chunk(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        """Write chunk ``index`` atomically (tensors first, checksum last)."""
        save_tensors_checked(self.chunk_path(index), tensors, metadata={"key": self.key, "chunk": str(index)})

    @staticmethod
    def _discard(path: Path) -> None:
        for candidate in (path, Path(f"{path}.sha256")):
            candidate.unlink(missing_ok=True)


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def cache_info() -> dict[str, Any]:
    """Describe the cache: its root, total size, converted models and capture entries.

    Returns ``{"root", "total_bytes", "models": [{"name", "bytes"}], "captures": [{"key", "bytes", "chunks",
    "complete", "model", "n_prompts", "sites", ...}], "judge_scores": {"files", "bytes"}}``.
    """
    root = cache_dir()
    models = [{"name": p.name, "bytes": _folder_size(p)} for p in sorted(models_dir().iterdir()) if p.is_dir()]
    captures = []
    for folder in sorted(activations_dir().iterdir()):
        if not folder.is_dir():
            continue
        entry: dict[str, Any] = {"key": folder.name, "bytes": _folder_size(folder)}
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            manifest = {}
        done = len(list(folder.glob("chunk_*.safetensors.sha256")))
        expected = manifest.get("n_chunks")
        entry.update(
            model=manifest.get("model"), fingerprint=manifest.get("fingerprint"), n_prompts=manifest.get("n_prompts"),
            sites=manifest.get("sites"), positions=manifest.get("positions"), chunks=done, n_chunks=expected,
            complete=expected is not None and done >= expected,
        )
        captures.append(entry)
    scores = root / "judge-scores"
    judge_scores = {"files": len(list(scores.glob("*.safetensors"))), "bytes": _folder_size(scores)} if scores.is_dir() else {"files": 0, "bytes": 0}
    return {"root": str(root), "total_bytes": _folder_size(root), "models": models, "captures": captures, "judge_scores": judge_scores}


def clear_cache(what: str = "all") -> int:
    """Delete cached ``"activations"``, ``"models"``, ``"judge-scores"`` (judges' scores on fixed texts) or ``"all"``;
    return the number of bytes freed."""
    if what not in {"activations", "models", "judge-scores", "all"}:
        raise ValueError(f"clear_cache(what={what!r}): use 'activations', 'models', 'judge-scores' or 'all'.")
    targets = []
    if what in {"activations", "all"}:
        targets.append(activations_dir())
    if what in {"models", "all"}:
        targets.append(models_dir())
    if what in {"judge-scores", "all"}:
        targets.append(cache_dir() / "judge-scores")
    freed = 0
    for target in targets:
        if not target.is_dir():
            continue
        for child in target.iterdir():
            freed += _folder_size(child) if child.is_dir() else child.stat().st_size
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    return freed
