"""An append-only, resumable store of generated replies, keyed by model, decoding settings and intervention.

One JSONL file per (model fingerprint, dtype, decoding config, tag) under ``<cache>/generations/``; each line is
``{"key", "text", "n_tokens", "finished"}`` where ``key`` hashes the prompt and an optional per-item variant (e.g.
the emotion a row is steered towards). Lines are appended and fsynced after every chunk, so a crash loses at most the
chunk in progress; a truncated last line is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .generate import DecodingConfig, Generation, InterventionFactory, generate
from ..paths import cache_dir

GENERATION_CACHE_VERSION = 2
CHUNK = 96


def item_key(prompt: str, variant: str = "") -> str:
    """The cache key of one item: SHA-256 of the prompt and its variant."""
    return hashlib.sha256(f"{variant}\x00{prompt}".encode("utf-8")).hexdigest()


class GenerationStore:
    """Cached replies of one (model fingerprint, dtype, decoding config, intervention tag)."""

    def __init__(self, fingerprint: str, dtype: str, config: DecodingConfig, tag: str = "none", root: Path | None = None) -> None:
        blob = json.dumps({"v": GENERATION_CACHE_VERSION, "fingerprint": fingerprint, "dtype": dtype,
                           "decoding": config.as_dict(), "tag": tag}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        folder = (root or cache_dir()) / "generations"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.key}.jsonl"
        self._known: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        known: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return known
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                known[row["key"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash
        return known

    def has(self, key: str) -> bool:
        return key in self._known

    def __contains__(self, prompt: str) -> bool:
        return item_key(prompt) in self._known

    def get(self, prompt: str, variant: str = "") -> Generation | None:
        row = self._known.get(item_key(prompt, variant))
        return None if row is None else Generation(prompt, row["text"], row["n_tokens"], row["finished"])

    def add(self, keys: Sequence[str], generations: Sequence[Generation]) -> None:
        """Append ``generations`` (one per key) durably."""
        lines = []
        for key, g in zip(keys, generations):
            row = {"key": key, "text": g.text, "n_tokens": g.n_tokens, "finished": g.finished}
            self._known[key] = row
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                needs_newline = existing.read(1) != b"\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            if needs_newline:
                handle.write("\n")  # after a line cut by a crash
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())


def generate_cached(handle: Any, prompts: Sequence[str], config: DecodingConfig, tag: str = "none",
                    intervention: InterventionFactory | None = None, variants: Sequence[str] | None = None,
                    chunk: int = CHUNK, progress: bool = True, desc: str = "generate") -> list[Generation]:
    """Like :func:`emowork.generation.generate.generate`, reusing and extending the store for (model, config, ``tag``).

    ``tag`` names the intervention (replies of different interventions never mix); ``variants`` (one per prompt)
    distinguishes items that share a prompt but not an intervention (e.g. the emotion each row is steered to).
    ``intervention(indices)`` receives indices into ``prompts``. Missing replies are generated ``chunk`` at a
    time and saved after each chunk.
    """
    from ..progress import progress_bar

    prompts = list(prompts)
    variants = list(variants) if variants is not None else [""] * len(prompts)
    if len(variants) != len(prompts):
        raise ValueError("one variant per prompt")
    store = GenerationStore(handle.fingerprint, str(handle.dtype), config, tag)
    keys = [item_key(p, v) for p, v in zip(prompts, variants)]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if not store.has(key):
            first.setdefault(key, i)
    missing = list(first.values())
    bar = progress_bar(len(missing), desc, enabled=progress and bool(missing), unit="reply")
    try:
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            factory = None
            if intervention is not None:
                factory = lambda idx, _part=part: intervention([_part[j] for j in idx])  # noqa: E731
            generations = generate(handle, [prompts[i] for i in part], config, intervention=factory, progress=False)
            store.add([keys[i] for i in part], generations)
            bar.update(len(part))
    finally:
        bar.close()
    return [store.get(p, v) for p, v in zip(prompts, variants)]  # type: ignore[misc]
