"""The default judge: a sentence embedder shipped in a wheel + a linear head trained by this project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..emotions import EMOTIONS, check_emotion
from .base import Judge
from .embedders import Embedder, load_embedder
from .head import LinearHead
from .labels import CLASSES
from .rules import AcceptRule

# The default is the head that meets the speed floor (50 replies/s on 2 CPU cores) and runs wherever torch runs;
# benchmarks/judges.py measures both heads side by side (quality and speed), and the README cites its output.
DEFAULT_HEAD = "minilm-tuned"


def trained_heads() -> list[str]:
    """Names of the committed heads (folders under ``emowork/resources/judge`` holding a ``judge.json``)."""
    root = Path(str(resources.files("emowork").joinpath("resources/judge")))
    return sorted(p.name for p in root.iterdir() if (p / "judge.json").exists()) if root.exists() else []


def head_folder(name: str) -> Path:
    """Folder of a committed head (``emowork/resources/judge/<name>``)."""
    folder = Path(str(resources.files("emowork").joinpath(f"resources/judge/{name}")))
    if not (folder / "judge.json").exists():
        available = sorted(p.name for p in folder.parent.iterdir() if (p / "judge.json").exists()) if folder.parent.exists() else []
        raise ValueError(f"No trained judge head {name!r} in {folder.parent}; available: {available or 'none'}. "
                         "Train one with `python -m emowork.judge.train` (see the model card).")
    return folder


class EmbeddingJudge(Judge):
    """Scores texts with ``softmax(head(embed(text)))`` over anger..disgust + neutral; accepts by the card's rule.

    ``threshold`` (optional) replaces the card's rule by ``p(target) >= threshold``.
    """

    text_only_scores = True  # a fixed embedder and head: the same text always gets the same scores

    def __init__(self, embedder: Embedder, head: LinearHead, card: dict[str, Any], threshold: float | None = None) -> None:
        self.embedder = embedder
        self.head = head
        self.card = card
        self.name = f"embedding-{card['embedder']}"
        self.version = card["version"]
        if threshold is not None:
            self.rule = AcceptRule("global", float(threshold))
        elif "rule" in card:
            self.rule = AcceptRule.from_dict(card["rule"])
        else:
            self.rule = AcceptRule("global", float(card["threshold"]))
        self.threshold = self.rule.threshold

    @classmethod
    def from_folder(cls, folder: str | Path, threshold: float | None = None) -> "EmbeddingJudge":
        head, card = LinearHead.load(folder)
        tuned = card.get("tuned_encoder")
        embedder = load_embedder(card["embedder"], Path(folder) / tuned["file"] if tuned else None)
        return cls(embedder, head, card, threshold)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, 7]`` probabilities over :data:`~emowork.judge.labels.CLASSES` (six emotions, then neutral)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        return self.head.probabilities(self.embedder.embed(texts))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.probabilities(texts)[:, :6]

    def accept_from_scores(self, scores: np.ndarray, targets: Sequence[str]) -> np.ndarray:
        """The card's decision rule (:class:`~emowork.judge.rules.AcceptRule`) on scores ``[n, 6]``."""
        return self.rule.accept(scores, np.array([EMOTIONS.index(check_emotion(t)) for t in targets], dtype=int))

    def heldout_accuracy(self) -> dict[str, float] | None:
        """The card's six-way accuracy on the held-out writers, ``{value, low, high}`` (None for an older card)."""
        return self.card.get("metrics", {}).get("heldout_writers", {}).get("accuracy_6way")

    def describe(self) -> dict[str, Any]:
        metrics = self.card.get("metrics", {})
        heldout = metrics.get("heldout_writers", {})
        return {**super().describe(), "rule": self.rule.as_dict(), "rule_text": str(self.rule),
                "embedder": self.card["embedder"], "embedder_version": self.card.get("embedder_version"),
                "macro_f1": metrics.get("goemotions_test", {}).get("macro_f1_6way"),
                "heldout_accuracy": self.heldout_accuracy(),
                "heldout_accept_in_register": heldout.get("accept_in_register"),
                "heldout_accept_style_neutral": heldout.get("accept_style_neutral_pairs"),
                "heldout_writers": heldout.get("writers")}
