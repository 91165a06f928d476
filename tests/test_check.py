import math

import pytest

import emowork
from emowork.hooks.self_check import TOLERANCES


def test_every_tiny_model_passes(tiny):
    report = tiny.check()
    assert report.ok, str(report)
    names = [r.name for r in report.results]
    for expected in ("resid_pre + attn_out = resid_mid", "resid_mid + mlp_out = resid_post", "sum_h z_h W_O[h] + b_O = attn_out",
                     "mlp.hook_post width = d_mlp", "mlp_post W_out + b_out = mlp_out", "steering: KV cache = no cache",
                     "batched (left-padded) = unbatched"):
        assert expected in names
    table = str(report)
    assert "ALL PASS" in table and "max rel err" in table
    assert report.as_dict()["ok"] is True


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_half_precision_passes_with_its_tolerances(name):
    """bf16 tolerances (seen on an H200 too): identities at 3e-2, whole-stack comparisons at 1e-1."""
    handle = emowork.load_model(name, device="cpu", dtype="bfloat16")
    report = handle.check()
    assert report.ok, str(report)
    tolerance = {r.name: r.tolerance for r in report.results}
    assert tolerance["resid_pre + attn_out = resid_mid"] == 3e-2
    assert tolerance["batched (left-padded) = unbatched"] == 1e-1


def test_broken_kv_cache_is_caught(monkeypatch):
    """A model whose decode steps ignore the KV cache (what transformers 5.24 + TL 4.3 did) must fail the check."""
    handle = emowork.load_model("tiny-llama", device="cpu")
    original = handle.hf_model.forward

    def forgetful(*args, **kwargs):
        kwargs.pop("past_key_values", None)
        return original(*args, **kwargs)

    monkeypatch.setattr(handle.hf_model, "forward", forgetful)
    report = handle.check()
    assert not report.ok
    assert [r.name for r in report.failed] == ["steering: KV cache = no cache"]
    assert "FAILED" in str(report)


def test_broken_weight_accessor_is_caught(monkeypatch):
    handle = emowork.load_model("tiny-qwen2", device="cpu")
    monkeypatch.setattr(type(handle), "W_O", lambda self, layer: self.bridge.blocks[layer].attn.W_O * 1.01)
    report = handle.check()
    failed = [r.name for r in report.failed]
    assert failed == ["sum_h z_h W_O[h] + b_O = attn_out"]
    assert report.results[[r.name for r in report.results].index(failed[0])].max_rel_error > TOLERANCES[handle.dtype]


def test_exceptions_become_failed_rows(monkeypatch):
    handle = emowork.load_model("tiny-gpt2", device="cpu")
    monkeypatch.setattr(type(handle), "W_out", lambda self, layer: (_ for _ in ()).throw(RuntimeError("boom")))
    report = handle.check()
    (row,) = report.failed
    assert row.name == "mlp_post W_out + b_out = mlp_out" and "boom" in row.detail and math.isinf(row.max_rel_error)


@pytest.mark.embedded
def test_embedded_model_passes(embedded):
    report = embedded.check()
    assert report.ok, str(report)
