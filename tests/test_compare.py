"""Comparing runs: the geometry similarity and its permutation control, and bad folders."""

import itertools

import numpy as np
import pytest

from emowork.cli import main
from emowork.pipeline.compare import comparison_findings, geometry_similarity


def _cosines(seed):
    v = np.random.default_rng(seed).normal(size=(6, 16))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v @ v.T


def test_geometry_similarity_has_an_interval_and_a_permutation_null():
    a = _cosines(0)
    same = geometry_similarity(a, a)
    assert same["r"] == pytest.approx(1.0) and same["n_pairs"] == 15
    assert same["r"] > same["null_high"]  # identical geometry sits outside the null of shuffled labels
    assert same["null_share_at_least"] == pytest.approx(sum(1 for p in itertools.permutations(range(6))
                                                            if np.allclose(a[np.ix_(p, p)], a)) / 720)
    # relabelling one model by a permutation gives exactly one of the null's values
    p = [1, 0, 2, 3, 4, 5]
    moved = geometry_similarity(a, a[np.ix_(p, p)])
    assert moved["null_low"] == same["null_low"] and moved["null_high"] == same["null_high"]
    other = geometry_similarity(a, _cosines(1))
    assert other["low"] <= other["r"] <= other["high"] and -1 <= other["null_low"] < other["null_high"] <= 1


def test_compare_refuses_folders_that_are_not_runs(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    assert "no run.json" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a")]) == 2
    assert "at least two" in capsys.readouterr().err
    (tmp_path / "a" / "run.json").write_text("{broken")
    (tmp_path / "b").mkdir()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_geometry_findings_follow_the_side_of_the_null():
    def findings(r):
        pair = {"a": "A", "b": "B", "r": r, "low": r - 0.1, "high": r + 0.1, "n_pairs": 15, "null_low": -0.5, "null_high": 0.6}
        data = {"runs": [{"label": "A", "complete": True}, {"label": "B", "complete": False}], "headline": {"A": {}, "B": {}},
                "geometry": {"pairs": [pair]}, "stability": {}}
        return " ".join(comparison_findings(data))
    assert "share more" in findings(0.9) and "less alike" in findings(-0.8) and "not shown to share" in findings(0.1)
    assert "B: the run did not finish" in findings(0.1)
