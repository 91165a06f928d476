"""The judge's classification head: a linear softmax layer over sentence embeddings, saved as safetensors + JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..analysis.logistic_probe import fit_softmax
from .labels import CLASSES


@dataclass
class LinearHead:
    """``probs = softmax(E @ W.T + b)`` over :data:`CLASSES`; ``W`` is ``[7, dim]``, ``b`` is ``[7]``."""

    weight: np.ndarray
    bias: np.ndarray

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, 7]`` for embeddings ``[n, dim]``."""
        logits = embeddings @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        expd = np.exp(logits)
        return expd / expd.sum(axis=1, keepdims=True)

    def save(self, folder: str | Path, card: dict[str, Any]) -> None:
        """Write ``head.safetensors`` and ``judge.json`` (the card) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": torch.from_numpy(self.weight.astype(np.float32)), "bias": torch.from_numpy(self.bias.astype(np.float32))},
                  str(folder / "head.safetensors"))
        (folder / "judge.json").write_text(json.dumps(card, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> tuple["LinearHead", dict[str, Any]]:
        """Read a head and its card from ``folder``."""
        folder = Path(folder)
        tensors = load_file(str(folder / "head.safetensors"))
        card = json.loads((folder / "judge.json").read_text())
        if tuple(card["classes"]) != CLASSES:
            raise ValueError(f"{folder}: head classes {card['classes']} differ from {CLASSES}")
        return cls(tensors["weight"].numpy(), tensors["bias"].numpy()), card


def fit_head(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, weight_decay: float, steps: int = 200) -> LinearHead:
    """Fit the head (multinomial logistic regression over :data:`CLASSES`, L2 penalty, L-BFGS); returns it."""
    weight, bias = fit_softmax(x, y, len(CLASSES), sample_weight, weight_decay, steps)
    return LinearHead(weight, bias)
