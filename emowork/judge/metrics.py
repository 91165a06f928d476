"""Classification metrics and agreement between two labelings (no scikit-learn needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def confusion_matrix(truth: Sequence[int], pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``[n_classes, n_classes]`` counts; rows are ``truth``, columns ``pred``."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=int), np.asarray(pred, dtype=int)), 1)
    return matrix


def accuracy(truth: Sequence[int], pred: Sequence[int]) -> float:
    """Fraction of equal labels."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    return float((truth == pred).mean()) if len(truth) else float("nan")


def macro_f1(truth: Sequence[int], pred: Sequence[int], classes: Sequence[int]) -> float:
    """Unweighted mean over ``classes`` of the per-class F1 (a class absent from both gives F1 0)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    scores = []
    for c in classes:
        tp = int(((pred == c) & (truth == c)).sum())
        fp = int(((pred == c) & (truth != c)).sum())
        fn = int(((pred != c) & (truth == c)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def cohen_kappa(a: Sequence[int], b: Sequence[int], n_classes: int) -> float:
    """Cohen's kappa of two labelings of the same items (1 = perfect, 0 = chance)."""
    matrix = confusion_matrix(a, b, n_classes).astype(float)
    total = matrix.sum()
    if total == 0:
        return float("nan")
    observed = np.trace(matrix) / total
    expected = float((matrix.sum(0) * matrix.sum(1)).sum()) / total**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


@dataclass
class Agreement:
    """How two labelings of the same items agree."""

    n: int
    percent: float
    kappa: float
    confusion: np.ndarray  # rows: first labeling, columns: second
    labels: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "percent": self.percent, "kappa": self.kappa, "labels": list(self.labels),
                "confusion": self.confusion.tolist()}

    def __str__(self) -> str:
        return f"agreement on {self.n} items: {100 * self.percent:.1f}% (Cohen's kappa {self.kappa:.3f})"


def agreement(a: Sequence[str], b: Sequence[str], labels: Sequence[str] | None = None) -> Agreement:
    """Percent agreement, Cohen's kappa and the confusion matrix of two label sequences (strings or bools)."""
    a, b = [str(x) for x in a], [str(x) for x in b]
    if len(a) != len(b):
        raise ValueError(f"agreement needs two labelings of the same items ({len(a)} != {len(b)})")
    names = tuple(labels) if labels is not None else tuple(sorted(set(a) | set(b)))
    index = {name: i for i, name in enumerate(names)}
    ia, ib = [index[x] for x in a], [index[x] for x in b]
    return Agreement(len(a), accuracy(ia, ib), cohen_kappa(ia, ib, len(names)), confusion_matrix(ia, ib, len(names)), names)


def best_threshold(target_probs: np.ndarray, is_target: np.ndarray, target_ids: np.ndarray, n_targets: int) -> tuple[float, float]:
    """The acceptance threshold on ``p(target)`` that maximises the macro F1 (over targets) of accept decisions.

    Inputs are flat over (text, target) pairs. Returns ``(threshold, macro_f1 at it)``.
    """
    best = (0.5, -1.0)
    for tau in np.round(np.arange(0.05, 0.951, 0.01), 2):
        accept = target_probs >= tau
        f1s = []
        for t in range(n_targets):
            sel = target_ids == t
            tp = int((accept[sel] & is_target[sel]).sum())
            fp = int((accept[sel] & ~is_target[sel]).sum())
            fn = int((~accept[sel] & is_target[sel]).sum())
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        score = float(np.mean(f1s))
        if score > best[1]:
            best = (float(tau), score)
    return best
