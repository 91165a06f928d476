"""A multinomial logistic-regression probe (full-batch L-BFGS), used by the judge head and the layer probes."""

from __future__ import annotations

import numpy as np
import torch


def fit_softmax(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, n_classes: int,
                sample_weight: np.ndarray | None = None, weight_decay: float = 1e-4, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``softmax(x @ W.T + b)`` with an L2 penalty ``weight_decay * |W|^2``; returns ``(W [C, D], b [C])``.

    ``sample_weight`` (normalised to sum 1) defaults to uniform. Deterministic (zero initialisation).
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    if sample_weight is None:
        wt = torch.full((len(yt),), 1.0 / len(yt))
    else:
        wt = torch.as_tensor(sample_weight / sample_weight.sum(), dtype=torch.float32)
    layer = torch.nn.Linear(xt.shape[1], n_classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimiser = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        losses = torch.nn.functional.cross_entropy(layer(xt), yt, reduction="none")
        loss = (losses * wt).sum() + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and scale both by the train set's per-feature mean and overall std (a scale-free probe)."""
    mean = train.mean(0, keepdim=True)
    scale = (train - mean).pow(2).mean().sqrt().clamp(min=1e-12)
    return (train - mean) / scale, (test - mean) / scale
