"""Depth fractions to layer indices: the one place where "40% of depth" becomes a block number.

Two shapes, one rounding rule (round half to even, Python's ``round``):

- :func:`layer_at` — one block at fraction ``f`` of depth: ``round(f * (n_layers - 1))`` (0 is the first block, 1 the
  last); e.g. the read-out layer at 85% of 30 blocks is block 25.
- :func:`layer_window` — the blocks in ``[start, stop)`` as fractions of depth: ``round(start * n_layers)`` up to, not
  including, ``round(stop * n_layers)``, at least one block; e.g. (0.4, 0.7) of 28 blocks is 11..19 (the paper's
  steering window).
"""

from __future__ import annotations

from .errors import SiteError, check_finite

STABLE_COSINE = 0.9  # mean adjacent-layer cosine from which a direction counts as carried unchanged to the next layer


def check_window(start: float, stop: float) -> None:
    """A layer window in fractions of depth must satisfy ``0 <= start < stop <= 1`` (finite numbers)."""
    check_finite("start", start), check_finite("stop", stop)
    if not 0 <= start < stop <= 1:
        what = "empty or reversed" if start >= stop else "outside the model"
        raise SiteError(f"layer window ({start}, {stop}) is {what}: it must satisfy 0 <= start < stop <= 1 "
                        "(fractions of depth, e.g. (0.4, 0.7)).")


def _check_depth(n_layers: int) -> None:
    if n_layers < 1:
        raise SiteError(f"a model with {n_layers} layers has no layers to choose from")


def layer_at(n_layers: int, fraction: float) -> int:
    """The block at ``fraction`` of depth (``0 <= fraction <= 1``): ``round(fraction * (n_layers - 1))``."""
    _check_depth(n_layers)
    if not 0 <= check_finite("fraction", fraction) <= 1:
        raise SiteError(f"fraction of depth {fraction} is outside 0..1")
    return int(round(fraction * (n_layers - 1)))


def layer_window(n_layers: int, start: float, stop: float) -> list[int]:
    """Blocks in ``[start, stop)`` as fractions of depth (at least one block); e.g. (0.4, 0.7) of 28 -> 11..19.

    Raises :class:`~emowork.errors.SiteError` for an impossible window.
    """
    check_window(start, stop)
    _check_depth(n_layers)
    first = int(round(start * n_layers))
    last = max(first + 1, int(round(stop * n_layers)))
    return list(range(min(first, n_layers - 1), min(last, n_layers)))
