import pytest

from emowork.errors import SiteError
from emowork.hooks.sites import SITE_HOOKS, resolve_layers, resolve_sites


def test_widths_follow_model_sizes():
    specs = resolve_sites(["resid_post", "mlp_post", "z"], d_model=10, d_mlp=30, n_heads=3, d_head=4)
    assert [s.width for s in specs] == [10, 30, 12]
    assert specs[0].hook_name(7) == "blocks.7.hook_resid_post"


def test_method_aliases_map_to_residual_sites():
    specs = resolve_sites(["attn", "mlp"], 8, 8, 2, 4)
    assert [s.name for s in specs] == ["resid_mid", "resid_post"]


def test_unknown_site_lists_valid_ones():
    with pytest.raises(SiteError) as info:
        resolve_sites("resid_middle", 8, 8, 2, 4)
    for name in SITE_HOOKS:
        assert name in str(info.value)


def test_duplicate_and_empty_sites():
    with pytest.raises(SiteError, match="twice"):
        resolve_sites(["mlp", "resid_post"], 8, 8, 2, 4)
    with pytest.raises(SiteError, match="No site"):
        resolve_sites([], 8, 8, 2, 4)


def test_layers():
    assert resolve_layers(None, 4) == [0, 1, 2, 3]
    assert resolve_layers([-1, 0, 3], 4) == [0, 3]
    assert resolve_layers(range(1, 3), 4) == [1, 2]
    with pytest.raises(SiteError, match="4 layers"):
        resolve_layers([4], 4)
    with pytest.raises(SiteError, match="Empty"):
        resolve_layers([], 4)
    with pytest.raises(SiteError, match="not an integer"):
        resolve_layers([1.5], 4)
