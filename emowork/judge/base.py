"""What every judge offers: ``scores``, ``predict``, ``accept``, and a description for the run record."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..emotions import EMOTIONS, check_emotion


class Judge:
    """Base class. A judge rates the emotion that a reply's STYLE expresses (tone, attitude), not its content.

    Subclasses implement :meth:`scores` (and may override :meth:`accept`); ``name``, ``version`` and
    ``threshold`` are recorded with every result.
    """

    name: str = "judge"
    version: str = ""
    threshold: float | None = None
    text_only_scores: bool = False  # True when scores depend on the text alone (then they may be cached: score_cache.py)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``[n, 6]`` for the six emotions in the order of docs/method.md section 1 (rows may sum to
        < 1: the rest is neutral)."""
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely emotion of each text (``"neutral"`` when the judge has that class and it wins)."""
        return self.predict_from_scores(self.scores(texts))

    def accept(self, texts: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        """Bool ``[n]``: does text i's style express ``targets[i]``? (default: ``p(target) >= threshold``)."""
        return self.verdicts(texts, targets)[1]

    def verdicts(self, texts: Sequence[str], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(scores [n, 6], accepted [n], predicted labels)`` from one pass over the texts."""
        texts, targets = list(texts), [check_emotion(t) for t in targets]
        if len(texts) != len(targets):
            raise ValueError(f"accept() needs one target per text ({len(texts)} texts, {len(targets)} targets)")
        if not texts:
            return np.zeros((0, len(EMOTIONS))), np.zeros(0, dtype=bool), []
        scores = self.scores(texts)
        return scores, self.accept_from_scores(scores, targets), self.predict_from_scores(scores)

    def accept_from_scores(self, scores: np.ndarray, targets: Sequence[str]) -> np.ndarray:
        """``scores[i, target_i] >= threshold`` (0.5 when the judge has none)."""
        column = np.array([EMOTIONS.index(check_emotion(t)) for t in targets])
        threshold = 0.5 if self.threshold is None else self.threshold
        return scores[np.arange(len(column)), column] >= threshold

    @staticmethod
    def predict_from_scores(scores: np.ndarray) -> list[str]:
        """Argmax label per row; ``"neutral"`` when the probability left over (1 - sum) is the largest."""
        out = []
        for row in scores:
            rest = 1.0 - float(row.sum())
            out.append("neutral" if rest > float(row.max()) else EMOTIONS[int(row.argmax())])
        return out

    def describe(self) -> dict[str, Any]:
        """Name, version and threshold (JSON-ready)."""
        return {"name": self.name, "version": self.version, "threshold": self.threshold}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, version {self.version!r}, threshold {self.threshold})"
