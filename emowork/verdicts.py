"""Words from numbers: the one place where a measured value with its 95% interval becomes a verdict.

Every sentence that states a result (stage summaries, the report's findings, notebooks) is built from these
functions, so a finding that stops holding changes its words by itself. The rules are stated in the words:
"above chance: the 95% interval (31%-44%) excludes 16.7%"; two results differ only when their 95% intervals do not
overlap (a conservative rule: overlapping intervals can still differ, and then we say "not distinguishable").

A *summary* is a dict with a point value under ``key`` (``"accuracy"``, ``"value"`` or ``"mean"``) and ``"low"``,
``"high"`` — what :func:`emowork.intervals.accuracy_summary` returns.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np

Relation = Literal["above", "below", "within"]


def point(summary: Mapping[str, Any]) -> float:
    """The point value of a summary (its ``accuracy``, ``value`` or ``mean``)."""
    for key in ("accuracy", "value", "mean"):
        if key in summary:
            return float(summary[key])
    raise KeyError(f"a summary needs 'accuracy', 'value' or 'mean' with 'low' and 'high'; got keys {sorted(summary)}")


def pct(x: float, digits: int = 1) -> str:
    """``0.4231 -> '42.3%'``; NaN -> 'n/a'."""
    return "n/a" if x != x else f"{100 * x:.{digits}f}%"


def interval(summary: Mapping[str, Any], percent: bool = True, digits: int = 1) -> str:
    """``'42.3% (95% interval 35.0%-49.1%)'`` or, for plain numbers, ``'+0.42 (95% interval +0.30 to +0.55)'``."""
    if percent:
        return f"{pct(point(summary), digits)} (95% interval {pct(summary['low'], digits)}-{pct(summary['high'], digits)})"
    return f"{point(summary):+.{digits}f} (95% interval {summary['low']:+.{digits}f} to {summary['high']:+.{digits}f})"


def within(value: float, summary: Mapping[str, Any]) -> bool:
    """Whether ``value`` lies inside the 95% interval of ``summary`` (ends included)."""
    return bool(summary["low"] <= value <= summary["high"])


def relation(summary: Mapping[str, Any], reference: float) -> Relation:
    """Where the 95% interval lies relative to ``reference``: wholly above, wholly below, or containing it."""
    if summary["low"] > reference:
        return "above"
    if summary["high"] < reference:
        return "below"
    return "within"


def against_range(value: float, low: float, high: float) -> Relation:
    """Where a value lies relative to a control's range (e.g. the middle 95% of what shuffled labels give)."""
    return "above" if value > high else "below" if value < low else "within"


def vs_reference(summary: Mapping[str, Any], reference: float, name: str = "chance", percent: bool = True) -> str:
    """``'above chance: the 95% interval (31.0%-44.2%) excludes 16.7%'`` / ``'not distinguishable from chance: ...'``."""
    fmt = (lambda x: pct(x)) if percent else (lambda x: f"{x:+.2f}")
    span = f"the 95% interval ({fmt(summary['low'])}{'-' if percent else ' to '}{fmt(summary['high'])})"
    rel = relation(summary, reference)
    if rel == "within":
        return f"not distinguishable from {name}: {span} contains {fmt(reference)}"
    return f"{rel} {name}: {span} excludes {fmt(reference)}"


def overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two 95% intervals overlap."""
    return not (a["low"] > b["high"] or b["low"] > a["high"])


def compare(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str, name_b: str, percent: bool = True) -> str:
    """``'steering (40.1%, ...) is higher than unsteered (17.0%, ...): their 95% intervals do not overlap'`` or
    ``'... and ... are not distinguishable: their 95% intervals overlap'``."""
    text_a, text_b = interval(a, percent), interval(b, percent)
    if overlap(a, b):
        return f"{name_a} at {text_a} and {name_b} at {text_b} are not distinguishable: their 95% intervals overlap"
    word = "higher" if point(a) > point(b) else "lower"
    return f"{name_a} at {text_a} is {word} than {name_b} at {text_b}: their 95% intervals do not overlap"


def share_summary(successes: int, n: int) -> dict[str, float]:
    """A share of ``successes`` out of ``n`` independent items with its 95% bootstrap interval."""
    from .intervals import accuracy_summary

    return accuracy_summary(np.r_[np.ones(successes), np.zeros(n - successes)])


def layers_text(layers: Sequence[int]) -> str:
    """``[3, 4, 5, 9] -> '3-5, 9'``; empty -> 'none'."""
    layers = sorted(int(x) for x in layers)
    if not layers:
        return "none"
    runs, start, prev = [], layers[0], layers[0]
    for layer in layers[1:] + [None]:
        if layer is not None and layer == prev + 1:
            prev = layer
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if layer is not None:
            start = prev = layer
    return ", ".join(runs)


def count_above(values: Sequence[float], control: Sequence[float] | float, margin: float = 0.0) -> list[int]:
    """The indices (layers) where ``values`` exceeds ``control`` (a curve or a constant) by more than ``margin``."""
    control = [control] * len(values) if np.isscalar(control) else control
    return [i for i, (v, c) in enumerate(zip(values, control)) if v - c > margin]
