"""Ensembles of judges and agreement between two judges on the same texts."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .base import Judge
from .labels import CLASSES
from .metrics import Agreement, agreement


class EnsembleJudge(Judge):
    """Several judges together: ``scores`` is their weighted mean; ``accept`` is a weighted majority vote
    (more than half of the weight must accept; a tie rejects)."""

    def __init__(self, judges: Sequence[Judge], weights: Sequence[float] | None = None) -> None:
        if len(judges) < 2:
            raise ValueError("an ensemble needs at least two judges")
        self.judges = list(judges)
        w = np.ones(len(judges)) if weights is None else np.asarray(weights, dtype=float)
        if len(w) != len(judges) or (w <= 0).any():
            raise ValueError("one positive weight per judge")
        self.weights = w / w.sum()
        self.name = "ensemble(" + "+".join(j.name for j in judges) + ")"
        self.version = "+".join(j.version for j in judges)
        self.threshold = None

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return sum(w * j.scores(texts) for w, j in zip(self.weights, self.judges))

    def verdicts(self, texts: Sequence[str], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        parts = [j.verdicts(texts, targets) for j in self.judges]
        scores = sum(w * p[0] for w, p in zip(self.weights, parts))
        votes = sum(w * p[1].astype(float) for w, p in zip(self.weights, parts))
        return scores, votes > 0.5 + 1e-9, self.predict_from_scores(scores)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "members": [j.describe() for j in self.judges], "weights": self.weights.tolist()}


def judge_agreement(first: Judge, second: Judge, texts: Sequence[str], targets: Sequence[str] | None = None) -> Agreement:
    """Agreement of two judges on ``texts``: on their predicted emotion (7 labels incl. neutral), or, with
    ``targets``, on their accept/reject decisions for those targets."""
    if targets is None:
        return agreement(first.predict(texts), second.predict(texts), CLASSES)
    a = ["accept" if x else "reject" for x in first.accept(texts, targets)]
    b = ["accept" if x else "reject" for x in second.accept(texts, targets)]
    return agreement(a, b, ("accept", "reject"))
