"""Decision rules: when does a judge with emotion scores accept a reply for a target emotion?

A rule reads the six emotion scores ``[n, 6]`` (what is left to 1 is "neutral") and a target per row:

- ``global``: ``p(target) >= threshold``;
- ``per_emotion``: ``p(target) >= thresholds[target]`` (one threshold per emotion);
- ``argmax``: the target beats every other emotion and neutral (no threshold).

Rules are chosen on out-of-fold predictions by :func:`acceptance_balance`: the mean of three rates that a good
instrument gets right — accepting replies written in the target emotion, rejecting style-neutral replies for every
target, rejecting replies written in another emotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..emotions import EMOTIONS

RULE_KINDS = ("global", "per_emotion", "argmax")
TAUS = np.round(np.arange(0.05, 0.951, 0.01), 2)


@dataclass
class AcceptRule:
    """``kind`` and its thresholds (``threshold`` for global; ``thresholds`` per emotion for per_emotion)."""

    kind: str = "global"
    threshold: float | None = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"unknown rule {self.kind!r}: use one of {', '.join(RULE_KINDS)}")
        if self.kind == "per_emotion" and set(self.thresholds) != set(EMOTIONS):
            raise ValueError("a per_emotion rule needs one threshold for each of the six emotions")

    def accept(self, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Bool ``[n]`` for scores ``[n, 6]`` and target indices ``[n]`` (into :data:`EMOTIONS`)."""
        rows = np.arange(len(targets))
        own = scores[rows, targets]
        if self.kind == "global":
            return own >= float(self.threshold if self.threshold is not None else 0.5)
        if self.kind == "per_emotion":
            return own >= np.array([self.thresholds[e] for e in EMOTIONS])[targets]
        others = scores.copy()
        others[rows, targets] = -np.inf
        neutral = 1.0 - scores.sum(1)
        return (own > others.max(1)) & (own > neutral)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": self.threshold, "thresholds": self.thresholds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AcceptRule":
        return cls(data["kind"], data.get("threshold"), dict(data.get("thresholds") or {}))

    def __str__(self) -> str:
        if self.kind == "global":
            return f"accept iff p(target) >= {self.threshold:.2f}"
        if self.kind == "per_emotion":
            return "accept iff p(target) >= its emotion's threshold (" + ", ".join(
                f"{e} {t:.2f}" for e, t in self.thresholds.items()) + ")"
        return "accept iff the target emotion has the highest probability, above every other emotion and neutral"


def pair_rates(rule: AcceptRule, probs7: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """For rows with 7-class probabilities ``[n, 7]`` and labels (0-5 emotions, 6 neutral):
    ``own`` share of emotion rows accepted for their own emotion; ``neutral`` share of (neutral row, any target)
    pairs accepted; ``other`` share of (emotion row, another emotion) pairs accepted."""
    scores = probs7[:, :6]
    n = len(labels)
    emotion_rows = labels < 6
    own = rule.accept(scores[emotion_rows], labels[emotion_rows]) if emotion_rows.any() else np.zeros(0, bool)
    all_targets = np.tile(np.arange(6), n)
    all_rows = np.repeat(np.arange(n), 6)
    accepted = rule.accept(scores[all_rows], all_targets)
    row_labels = labels[all_rows]
    neutral_pairs = row_labels == 6
    other_pairs = (row_labels < 6) & (row_labels != all_targets)
    mean = lambda a: float(a.mean()) if a.size else float("nan")  # noqa: E731
    return {"own": mean(own), "neutral": mean(accepted[neutral_pairs]), "other": mean(accepted[other_pairs])}


def acceptance_balance(rates: dict[str, float]) -> float:
    """Mean of accepting own-emotion replies and rejecting neutral and other-emotion pairs (1 is perfect)."""
    return (rates["own"] + (1 - rates["neutral"]) + (1 - rates["other"])) / 3


def fit_rule(kind: str, probs7: np.ndarray, labels: np.ndarray) -> AcceptRule:
    """The rule of ``kind`` whose thresholds maximise :func:`acceptance_balance` on these (out-of-fold) rows.

    ``per_emotion`` thresholds are chosen one emotion at a time on the pairs whose target is that emotion.
    """
    if kind == "argmax":
        return AcceptRule("argmax", None)
    if kind == "global":
        best = max(TAUS, key=lambda t: (acceptance_balance(pair_rates(AcceptRule("global", float(t)), probs7, labels)), -abs(t - 0.5)))
        return AcceptRule("global", float(best))
    thresholds = {}
    for k, emotion in enumerate(EMOTIONS):
        own = probs7[labels == k, k]
        neutral = probs7[labels == 6, k]
        other = probs7[(labels < 6) & (labels != k), k]

        def balance(t: float) -> float:
            parts = [(own >= t).mean() if own.size else 0.0, 1 - (neutral >= t).mean() if neutral.size else 1.0,
                     1 - (other >= t).mean() if other.size else 1.0]
            return float(np.mean(parts))

        thresholds[emotion] = float(max(TAUS, key=lambda t: (balance(float(t)), -abs(t - 0.5))))
    return AcceptRule("per_emotion", float(np.mean(list(thresholds.values()))), thresholds)
