"""Geometry of emotion directions: cosines between emotions, layers and sites; PCA; per-layer linear probes."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .directions import EmotionDirections, remove_group_means
from .logistic_probe import fit_softmax, standardise


def emotion_cosines(directions: EmotionDirections, site: str = "mlp") -> torch.Tensor:
    """``[n_layers, E, E]``: cosine between every pair of emotion directions at each layer."""
    v = directions.directions[site]  # [E, L, D], unit
    return torch.einsum("eld,fld->lef", v, v)


def adjacent_layer_cosine(directions: EmotionDirections, site: str = "mlp") -> torch.Tensor:
    """``[E, n_layers - 1]``: cosine of each emotion's direction at layer L with layer L+1."""
    v = directions.directions[site]
    return (v[:, :-1] * v[:, 1:]).sum(-1)


def site_similarity(directions: EmotionDirections) -> tuple[list[str], torch.Tensor]:
    """Labels ``attn0, mlp0, attn1, ...`` and ``[2L, 2L]``: mean over emotions of the cosine between sites."""
    sites = [s for s in ("attn", "mlp") if s in directions.directions]
    stacked = torch.stack([directions.directions[s] for s in sites], dim=2)  # [E, L, S, D]
    E, L, S, D = stacked.shape
    flat = stacked.reshape(E, L * S, D)
    sim = torch.einsum("eid,ejd->ij", flat, flat) / E
    labels = [f"{s}{layer}" for layer in range(L) for s in sites]
    return labels, sim


def between_emotion_share(coords: np.ndarray, labels: Sequence[str]) -> float:
    """The share of the points' variance that lies between the emotions' centres (``coords [N, k]``, one label per
    row): 1 for tight, separate clusters, 0 when every emotion's points have the same centre; NaN for no spread."""
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels)
    centred = coords - coords.mean(0)
    total = float((centred ** 2).sum())
    if total <= 0:
        return float("nan")
    between = sum(float((labels == e).sum() * (centred[labels == e].mean(0) ** 2).sum()) for e in np.unique(labels))
    return between / total


def mean_cosine_between(a: EmotionDirections, b: EmotionDirections, site: str = "mlp") -> dict[str, list[float]]:
    """Per layer: mean over emotions of cos(a[e], b[e]) ("same") and of cos(a[e], b[f]), e != f ("other")."""
    va, vb = a.directions[site], b.directions[site]
    cos = torch.einsum("eld,fld->lef", va, vb)  # [L, E, E]
    E = cos.shape[1]
    same = cos.diagonal(dim1=1, dim2=2).mean(-1)
    other = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / (E * (E - 1))
    return {"same": same.tolist(), "other": other.tolist()}


def pca_coordinates(acts: torch.Tensor, layer: int, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """PCA of the context-removed activations at ``layer``: ``(coords [G*E, k], explained variance ratio [k])``.

    ``acts`` is ``[G, E, L, D]``; rows are ordered group-major (the six emotions of group 0 first).
    """
    x = remove_group_means(acts)[:, :, layer].reshape(-1, acts.shape[-1]).double()
    x = x - x.mean(0, keepdim=True)
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:k].T
    explained = (s[:k] ** 2) / (s**2).sum()
    return coords.numpy(), explained.numpy()


def probe_accuracy_by_layer(acts: torch.Tensor, themes: Sequence[str], train_themes: Sequence[str],
                            weight_decay: float = 1e-3) -> list[float]:
    """Held-out accuracy per layer of a linear probe reading the emotion from ONE prompt's activation.

    ``acts`` ``[G, E, L, D]`` (raw, not context-removed); ``themes`` one per group. The probe is trained on the
    groups of ``train_themes`` and tested on the others (new scenarios, new themes). Chance is 1/E.
    """
    G, E, L, D = acts.shape
    train = torch.tensor([t in set(train_themes) for t in themes])
    if train.all() or not train.any():
        raise ValueError("train_themes must hold some but not all themes of the groups")
    labels = torch.arange(E).repeat(G, 1)  # [G, E]
    out = []
    for layer in range(L):
        xtr, xte = standardise(acts[train][:, :, layer].reshape(-1, D), acts[~train][:, :, layer].reshape(-1, D))
        w, b = fit_softmax(xtr, labels[train].reshape(-1), E, weight_decay=weight_decay, steps=100)
        pred = (xte.numpy() @ w.T + b).argmax(1)
        out.append(float((pred == labels[~train].reshape(-1).numpy()).mean()))
    return out
