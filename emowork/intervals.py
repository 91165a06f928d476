"""Bootstrap confidence intervals for accuracies (optionally resampling clusters, e.g. dataset groups)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

N_BOOT = 2000


def bootstrap_ci(successes: Sequence[bool] | np.ndarray, clusters: Sequence[str] | None = None, n_boot: int = N_BOOT,
                 alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the accuracy and its percentile bootstrap ``1 - alpha`` interval.

    With ``clusters`` whole clusters are resampled (items of one cluster, e.g. the six prompts of a group, are not
    independent). Empty input gives NaNs.
    """
    values = np.asarray(successes, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if clusters is None:
        draws = rng.integers(0, len(values), size=(n_boot, len(values)))
        boots = values[draws].mean(1)
    else:
        names, inverse = np.unique(np.asarray(clusters), return_inverse=True)
        sums = np.bincount(inverse, weights=values, minlength=len(names))
        counts = np.bincount(inverse, minlength=len(names)).astype(float)
        draws = rng.integers(0, len(names), size=(n_boot, len(names)))
        boots = sums[draws].sum(1) / counts[draws].sum(1)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(values.mean()), float(low), float(high)


def accuracy_summary(successes: Sequence[bool] | np.ndarray, clusters: Sequence[str] | None = None,
                     key: str = "accuracy") -> dict[str, float]:
    """``{key: share, "low", "high", "n"}``: a share of successes with its 95% bootstrap interval (:func:`bootstrap_ci`;
    whole ``clusters`` resampled when given) and the number of items — the one summary every accuracy and rate uses."""
    mean, low, high = bootstrap_ci(successes, clusters)
    return {key: mean, "low": low, "high": high, "n": int(len(successes))}
