"""An append-only, resumable store of generated replies, keyed by model, decoding settings and intervention.

One JSONL file per key under ``<cache>/generations/``; each line is ``{"prompt_sha256", "text", "n_tokens",
"finished"}``. Lines are appended and fsynced after every chunk, so a crash loses at most the chunk in progress;
a truncated last line is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .generate import DecodingConfig, Generation, InterventionFactory, generate
from .paths import cache_dir

GENERATION_CACHE_VERSION = 1


def prompt_sha(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


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
                known[row["prompt_sha256"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash
        return known

    def __contains__(self, prompt: str) -> bool:
        return prompt_sha(prompt) in self._known

    def get(self, prompt: str) -> Generation | None:
        row = self._known.get(prompt_sha(prompt))
        return None if row is None else Generation(prompt, row["text"], row["n_tokens"], row["finished"])

    def add(self, generations: Sequence[Generation]) -> None:
        """Append ``generations`` durably."""
        lines = []
        for g in generations:
            row = {"prompt_sha256": prompt_sha(g.prompt), "text": g.text, "n_tokens": g.n_tokens, "finished": g.finished}
            self._known[row["prompt_sha256"]] = row
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
                    intervention: InterventionFactory | None = None, chunk: int = 32, progress: bool = True,
                    desc: str = "generate") -> list[Generation]:
    """Like :func:`emowork.generate.generate`, reusing and extending the store for (model, config, ``tag``).

    ``tag`` must name the intervention (e.g. ``"steer:anger:L10-20:a4"``): replies from different interventions
    never mix. Missing replies are generated ``chunk`` at a time and saved after each chunk.
    """
    from .progress import progress_bar

    store = GenerationStore(handle.fingerprint, str(handle.dtype), config, tag)
    prompts = list(prompts)
    missing = list(dict.fromkeys(p for p in prompts if p not in store))
    bar = progress_bar(len(missing), desc, enabled=progress and bool(missing), unit="reply")
    try:
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            store.add(generate(handle, part, config, intervention=intervention, progress=False))
            bar.update(len(part))
    finally:
        bar.close()
    return [store.get(p) for p in prompts]  # type: ignore[misc]
