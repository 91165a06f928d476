"""Atomic, checksummed file writes: nothing half-written is ever read back as valid.

Every writer here writes to a temporary file in the target folder and renames it over the target
(``os.replace`` is atomic on POSIX and Windows), so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-finite floats become null)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False) + "\n")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON is standard (browsers reject NaN)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_tensors_checked(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Save ``tensors`` as safetensors at ``path`` atomically, plus ``<path>.sha256`` holding its checksum.

    The checksum file is written last, so its presence marks the tensor file as complete.
    Returns the hex checksum.
    """
    data = safetensors_save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    checksum = sha256_bytes(data)
    atomic_write_bytes(path, data)
    atomic_write_text(f"{path}.sha256", checksum + "\n")
    return checksum


def load_tensors_checked(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a file written by :func:`save_tensors_checked` after verifying its checksum.

    Raises ``FileNotFoundError`` when the file or its checksum is missing (an interrupted write) and
    ``ValueError`` when the content does not match the checksum or cannot be parsed (a corrupt file).
    Returns a dict of CPU tensors.
    """
    path = Path(path)
    checksum_path = Path(f"{path}.sha256")
    if not path.exists() or not checksum_path.exists():
        raise FileNotFoundError(f"{path} (or its .sha256) is missing")
    data = path.read_bytes()
    expected = checksum_path.read_text().strip()
    if sha256_bytes(data) != expected:
        raise ValueError(f"{path} does not match its checksum (corrupt or partly written)")
    try:
        return safetensors_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
