"""Bad values fail where they are made, with a message that says what to fix."""

import math

import pytest
import torch

from emowork.data import load_sev
from emowork.data.validate import DatasetError
from emowork.errors import SiteError
from emowork.hooks.intervention import Intervention
from emowork.analysis.steering import SteeringSetting, layer_window


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf, "strong"])
def test_non_finite_strength_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        SteeringSetting(0.2, 0.6, alpha)


@pytest.mark.parametrize("start, stop, what", [(0.6, 0.2, "reversed"), (0.5, 0.5, "empty"), (-0.1, 0.5, "outside"),
                                               (0.2, 1.5, "outside"), (math.nan, 0.5, "start")])
def test_impossible_layer_windows_are_refused(start, stop, what):
    with pytest.raises((SiteError, ValueError), match=what):
        SteeringSetting(start, stop, 2.0)
    with pytest.raises((SiteError, ValueError), match=what):
        layer_window(30, start, stop)


def test_unknown_mode_and_site_are_refused():
    with pytest.raises(ValueError, match="mode"):
        SteeringSetting(0.2, 0.6, 2.0, mode="everywhere")
    with pytest.raises(SiteError, match="site"):
        SteeringSetting(0.2, 0.6, 2.0, site="resid")
    assert SteeringSetting(0.2, 0.6, 2.0).layers(30) == list(range(6, 18))


def test_interventions_refuse_non_finite_values_and_unknown_rules():
    with pytest.raises(ValueError, match="NaN or infinite"):
        Intervention("resid_post", 3, "add", torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="finite"):
        Intervention("z", 3, "scale", math.inf)
    with pytest.raises(ValueError, match="when"):
        Intervention("resid_post", 3, "add", torch.ones(2), when="everywhere")
    with pytest.raises(ValueError, match="positions"):
        Intervention("resid_post", 3, "add", torch.ones(2), when=(-1,))
    Intervention("resid_post", 3, "add", torch.ones(2))  # a valid one is accepted


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_dataset_file_is_an_error(tmp_path, content):
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match="no rows"):
        load_sev(path)
