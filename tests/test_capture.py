import warnings

import pytest
import torch

import emowork
from emowork.hooks import activation_store as cache_module
from emowork.hooks import capture as capture_module
from emowork.errors import SiteError
from emowork.hooks.sites import SITE_HOOKS

from .conftest import load_tiny

SITES = ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "mlp_post", "z"]


def prompts_for(handle, n=5):
    topics = ["the bank", "my exam", "the landlord", "a refund", "the clinic", "a delayed train", "my manager"]
    return [handle.format_chat(f"I went to {topics[i % len(topics)]} today." + " Then I left." * (i % 3)) for i in range(n)]


def reference(handle, prompt, site, layer, offset=-1):
    """The activation read with TransformerLens' own run_with_cache, as ground truth."""
    enc = handle.encode([prompt])
    name = SITE_HOOKS[site].format(layer=layer)
    _, cache = handle.bridge.run_with_cache(enc["input_ids"], names_filter=[name])
    return cache[name][0, offset].reshape(-1).float()


def test_shapes_and_values_match_run_with_cache(tiny):
    prompts = prompts_for(tiny, 4)
    acts = emowork.capture(tiny, prompts, SITES, cache=False, progress=False)
    f = tiny.facts
    widths = {"mlp_post": f.d_mlp, "z": f.n_heads * f.d_head}
    for site in SITES:
        assert acts[site].shape == (4, f.n_layers, widths.get(site, f.d_model))
        assert acts[site].dtype == torch.float32 and acts[site].device.type == "cpu"
    for i in (0, 3):
        for site in ("resid_mid", "z", "mlp_post"):
            torch.testing.assert_close(acts[site][i, -1], reference(tiny, prompts[i], site, f.n_layers - 1), rtol=1e-4, atol=1e-5)


def test_positions_layers_and_aliases(tiny_llama):
    prompts = prompts_for(tiny_llama, 3)
    full = emowork.capture(tiny_llama, prompts, ["attn", "mlp"], positions=[-3, -1], cache=False, progress=False)
    assert set(full) == {"attn", "mlp"}
    assert full["mlp"].shape == (3, 2, tiny_llama.facts.n_layers, tiny_llama.facts.d_model)
    some = emowork.capture(tiny_llama, prompts, "resid_post", positions=-3, layers=[1, -1], cache=False, progress=False)
    torch.testing.assert_close(some["resid_post"], full["mlp"][:, 0, [1, tiny_llama.facts.n_layers - 1]])
    torch.testing.assert_close(full["mlp"][1, 0, 2], reference(tiny_llama, prompts[1], "resid_post", 2, offset=-3))


def test_batched_equals_one_at_a_time(tiny):
    prompts = prompts_for(tiny, 6)
    batched = emowork.capture(tiny, prompts, ["resid_post", "z"], batch_size=6, cache=False, progress=False)
    for i, prompt in enumerate(prompts):
        single = emowork.capture(tiny, [prompt], ["resid_post", "z"], batch_size=1, cache=False, progress=False)
        for site in single:
            torch.testing.assert_close(batched[site][i], single[site][0], rtol=1e-4, atol=1e-5)


def test_auto_batches_sort_by_length_under_a_token_budget(tiny_llama, monkeypatch):
    monkeypatch.setattr(capture_module, "CPU_TOKENS_PER_BATCH", 300)
    prompts = prompts_for(tiny_llama, 7)
    sizes = capture_module.describe_batches(tiny_llama, prompts)
    assert sum(sizes) == 7 and len(sizes) > 1


def test_bad_sites_positions_and_inputs(tiny_llama):
    prompts = prompts_for(tiny_llama, 2)
    with pytest.raises(SiteError, match="Valid sites"):
        emowork.capture(tiny_llama, prompts, ["resid_middle"], cache=False)
    with pytest.raises(SiteError, match="does not exist"):
        emowork.capture(tiny_llama, prompts, ["resid_post"], layers=[99], cache=False)
    with pytest.raises(ValueError, match="negative"):
        emowork.capture(tiny_llama, prompts, ["resid_post"], positions=[0], cache=False)
    with pytest.raises(ValueError, match="before the start"):
        emowork.capture(tiny_llama, ["ab"], ["resid_post"], positions=-5, cache=False)
    with pytest.raises(TypeError):
        emowork.capture(tiny_llama, "one string", ["resid_post"], cache=False)
    with pytest.raises(ValueError, match="batch_size"):
        emowork.capture(tiny_llama, prompts, ["resid_post"], batch_size=0, cache=False)


def count_forwards(monkeypatch):
    calls = []
    original = capture_module.run_sites

    def counting(handle, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return original(handle, prompts, *args, **kwargs)

    monkeypatch.setattr(capture_module, "run_sites", counting)
    return calls


def test_cache_hit_needs_no_forward(tiny_llama, fresh_cache, monkeypatch):
    prompts = prompts_for(tiny_llama, 5)
    first = emowork.capture(tiny_llama, prompts, ["resid_post", "mlp_post"], progress=False)
    calls = count_forwards(monkeypatch)
    second = emowork.capture(tiny_llama, prompts, ["resid_post", "mlp_post"], progress=False)
    assert calls == []
    for site in first:
        assert torch.equal(first[site], second[site])
    other = emowork.capture(tiny_llama, prompts[:4], ["resid_post", "mlp_post"], progress=False)
    assert sum(calls) == 4, "a different prompt list is a different cache entry"
    assert torch.equal(other["resid_post"], first["resid_post"][:4])


def test_interrupted_capture_resumes_at_the_missing_chunk(tiny_llama, fresh_cache, monkeypatch):
    monkeypatch.setattr(capture_module, "CHUNK_SIZE", 2)
    prompts = prompts_for(tiny_llama, 5)
    complete = emowork.capture(tiny_llama, prompts, ["resid_post"], progress=False)
    (entry,) = [p for p in (fresh_cache / "activations").iterdir()]
    chunks = sorted(entry.glob("chunk_*.safetensors"))
    assert len(chunks) == 3
    # Simulate a crash during chunk 1: its checksum (written last) never landed.
    chunks[1].with_name(chunks[1].name + ".sha256").unlink()
    calls = count_forwards(monkeypatch)
    resumed = emowork.capture(tiny_llama, prompts, ["resid_post"], progress=False)
    assert sum(calls) == 2
    assert torch.equal(resumed["resid_post"], complete["resid_post"])


def test_corrupt_chunk_warns_and_recomputes(tiny_llama, fresh_cache, monkeypatch):
    prompts = prompts_for(tiny_llama, 3)
    complete = emowork.capture(tiny_llama, prompts, ["z"], progress=False)
    (chunk,) = (fresh_cache / "activations").glob("*/chunk_00000.safetensors")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    calls = count_forwards(monkeypatch)
    with pytest.warns(UserWarning, match="checksum"):
        again = emowork.capture(tiny_llama, prompts, ["z"], progress=False)
    assert sum(calls) == 3
    assert torch.equal(again["z"], complete["z"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emowork.capture(tiny_llama, prompts, ["z"], progress=False)  # repaired: no warning now


def test_cache_info_and_clear(tiny_llama, fresh_cache):
    emowork.capture(tiny_llama, prompts_for(tiny_llama, 2), ["resid_post"], progress=False)
    info = cache_module.cache_info()
    assert len(info["captures"]) == 1 and info["captures"][0]["complete"]
    assert info["captures"][0]["model"] == "tiny-llama"
    freed = cache_module.clear_cache("activations")
    assert freed > 0 and cache_module.cache_info()["captures"] == []
    with pytest.raises(ValueError):
        cache_module.clear_cache("everything")


@pytest.mark.embedded
def test_embedded_capture_matches_reference(embedded):
    prompts = prompts_for(embedded, 3)
    acts = emowork.capture(embedded, prompts, ["resid_mid", "mlp_post"], layers=[3, 20], cache=False, progress=False)
    torch.testing.assert_close(acts["resid_mid"][2, 1], reference(embedded, prompts[2], "resid_mid", 20), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(acts["mlp_post"][0, 0], reference(embedded, prompts[0], "mlp_post", 3), rtol=1e-4, atol=1e-4)
