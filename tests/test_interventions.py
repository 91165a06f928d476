"""One intervention type, every backend: each operation on each site gives the same logits and the same greedy text on
the bridge and on the unwrapped model, with and without a KV cache; the embedded model too."""

import pytest
import torch

from emowork.errors import SiteError
from emowork.generation.generate import DecodingConfig, generate
from emowork.hooks.executors import intervene
from emowork.hooks.intervention import Intervention, position_mask


def test_position_rules():
    absolute = torch.arange(3, 7)  # a pass computing positions 3..6 of a prompt of 5 tokens
    assert position_mask(absolute, 5, "last_prompt").tolist() == [False, True, False, False]
    assert position_mask(absolute, 5, "from_last_prompt").tolist() == [False, True, True, True]
    assert position_mask(absolute, 5, "prompt").tolist() == [True, True, False, False]
    assert position_mask(absolute, 5, "generated").tolist() == [False, False, True, True]
    assert position_mask(absolute, 5, "all").all()
    assert position_mask(absolute, 5, (3, 6)).tolist() == [True, False, False, True]
    with pytest.raises(ValueError):
        position_mask(absolute, 5, "everywhere")


def test_bad_interventions_say_what_to_fix(tiny_llama):
    f = tiny_llama.facts
    with pytest.raises(SiteError, match="read-only"):
        Intervention("resid_mid", 0, "add", torch.ones(f.d_model))
    with pytest.raises(SiteError, match="neurons .*heads"):
        Intervention("resid_post", 0, "ablate", units=(1,))
    with pytest.raises(ValueError, match="needs a value"):
        Intervention("mlp_post", 0, "set")
    with pytest.raises(ValueError, match="no value"):
        Intervention("mlp_post", 0, "ablate", torch.ones(3))
    with pytest.raises(ValueError, match="rms_units"):
        Intervention("mlp_post", 0, "set", torch.ones(3), rms_units=True)
    with pytest.raises(SiteError, match="does not exist"):
        Intervention("resid_post", 99, "add", torch.ones(f.d_model)).check(f)
    with pytest.raises(SiteError, match="heads .* do not exist"):
        Intervention("z", 0, "ablate", units=(f.n_heads,)).check(f)
    with pytest.raises(ValueError, match="width"):
        Intervention("mlp_post", 0, "add", torch.ones(f.d_model + 1)).check(f)
    with pytest.raises(SiteError, match="cannot apply"):  # GPT-2's fused projections: heads only on the bridge
        from tests.conftest import load_tiny

        gpt2 = load_tiny("tiny-gpt2")
        with intervene(gpt2, [Intervention("z", 0, "ablate", units=(0,))], 3, backend="unwrapped"):
            pass


def edits(handle, T):
    """One intervention of every operation on every writable site (per-row values and rows included)."""
    f = handle.facts
    g = torch.Generator().manual_seed(0)
    layer = min(1, f.n_layers - 1)
    return {
        "add resid_post rms last_prompt": Intervention("resid_post", layer, "add", 8 * torch.randn(f.d_model, generator=g) / f.d_model ** 0.5, rms_units=True),
        "add resid_pre from_last_prompt": Intervention("resid_pre", layer, "add", torch.randn(f.d_model, generator=g), when="from_last_prompt"),
        "add attn_out per row": Intervention("attn_out", 0, "add", torch.randn(3, f.d_model, generator=g), when="all"),
        "scale mlp_out one row": Intervention("mlp_out", layer, "scale", 0.0, when="all", rows=(1,)),
        "set neurons prompt": Intervention("mlp_post", 0, "set", 3 * torch.randn(f.d_mlp, generator=g), units=(1, 3, 5), when="prompt"),
        "ablate neurons generated": Intervention("mlp_post", layer, "ablate", units=tuple(range(0, f.d_mlp, 3)), when="generated"),
        "scale heads all": Intervention("z", 0, "scale", 4.0, units=(1,), when="all"),
        "ablate heads positions": Intervention("z", layer, "ablate", units=(0,), when=(T - 2, T - 1, T + 1)),
        "add heads": Intervention("z", layer, "add", torch.randn(f.n_heads * f.d_head, generator=g), units=(0,), when="from_last_prompt"),
    }


def prompts(handle):
    return [handle.format_chat(t) for t in ("Hi", "Tell me about the weather in spring.", "I lost my keys at the station.")]


def backends(handle, item):
    from emowork.hooks.executors import UnwrappedExecutor

    return ["bridge"] + (["unwrapped"] if UnwrappedExecutor(handle).unsupported(item) is None else [])


def test_every_operation_gives_the_same_logits_on_every_backend(tiny):
    enc = tiny.encode(prompts(tiny))
    T = int(enc["input_ids"].shape[1])
    with torch.inference_mode():
        plain = tiny.hf_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        for name, item in edits(tiny, T).items():
            logits = {}
            for backend in backends(tiny, item):
                with intervene(tiny, [item], T, backend=backend) as run:
                    logits[backend] = run.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            if item.when != "generated":  # a forward over the prompt only: "generated" must change nothing
                assert (logits["bridge"] - plain).abs().max() > 1e-3, f"{name} changed nothing"
            else:
                assert (logits["bridge"] - plain).abs().max() == 0, f"{name} touched the prompt"
            if "unwrapped" in logits:
                torch.testing.assert_close(logits["unwrapped"], logits["bridge"], rtol=1e-4, atol=1e-4, msg=name)


def _greedy(handle, item, backend, use_cache):
    handle.use_unwrapped = backend == "unwrapped"
    handle.hf_model.generation_config.use_cache = use_cache
    try:
        return [g.text for g in generate(handle, prompts(handle), DecodingConfig(max_new_tokens=6),
                                         intervention=lambda idx: [item], batch_size=3, progress=False)]
    finally:
        handle.use_unwrapped = True
        handle.hf_model.generation_config.use_cache = True


def test_every_operation_gives_the_same_greedy_text_on_every_backend_with_and_without_kv_cache(tiny_llama):
    handle = tiny_llama
    T = int(handle.encode(prompts(handle))["input_ids"].shape[1])
    plain = [g.text for g in generate(handle, prompts(handle), DecodingConfig(max_new_tokens=6), batch_size=3, progress=False)]
    changed = 0
    for name, item in edits(handle, T).items():
        texts = {(b, c): _greedy(handle, item, b, c) for b in backends(handle, item) for c in (True, False)}
        assert len({tuple(t) for t in texts.values()}) == 1, f"{name}: {texts}"
        changed += next(iter(texts.values())) != plain
    assert changed >= len(edits(handle, T)) - 2, "most edits must change the greedy text of a random-weight model"


def test_hooks_are_removed_afterwards(tiny_llama):
    handle = tiny_llama
    enc = handle.encode(prompts(handle))
    T = int(enc["input_ids"].shape[1])
    with torch.inference_mode():
        before = handle.hf_model(**enc).logits
        for backend in ("bridge", "unwrapped"):
            with pytest.raises(RuntimeError, match="boom"):
                with intervene(handle, list(edits(handle, T).values()), T, backend=backend):
                    raise RuntimeError("boom")
        after = handle.hf_model(**enc).logits
        plain_after = handle.caches.unwrapped_model(**enc).logits
    assert torch.equal(before, after) and torch.allclose(plain_after, before, atol=1e-5)


def test_the_embedded_model_gives_the_same_text_on_every_backend(embedded):
    """Neuron, head and residual edits on the real model: the unwrapped and bridge backends agree, cached or not."""
    f = embedded.facts
    layer = f.n_layers // 2
    g = torch.Generator().manual_seed(0)
    vector = torch.randn(f.d_model, generator=g)
    items = [Intervention("resid_post", layer, "add", 4 * vector / vector.norm(), rms_units=True),
             Intervention("mlp_post", layer, "ablate", units=tuple(range(0, f.d_mlp, 5))),
             Intervention("z", layer - 1, "scale", 3.0, units=(0, 1), when="from_last_prompt")]
    texts = {}
    for backend in ("bridge", "unwrapped"):
        for use_cache in (True, False):
            texts[backend, use_cache] = _greedy(embedded, items[0], backend, use_cache) + [
                g for item in items[1:] for g in _greedy(embedded, item, backend, use_cache)]
    assert len({tuple(t) for t in texts.values()}) == 1, texts
    assert embedded.check().ok


def test_scale_is_exact_in_half_precision():
    """A small scale must not round to 0 or drift near 1 in bfloat16 (gain is chosen with where, not 1 + m(s - 1))."""
    from emowork.hooks.executors import PreparedEdit, apply_prepared
    from emowork.model.handle import ModelFacts

    facts = ModelFacts("x", 2, 8, 2, 2, 4, 16, 10, True, "RMS", 0)
    for scale in (0.01, 0.001, 1.001):
        item = Intervention("mlp_post", 0, "scale", scale, units=(3,), when="all")
        gain, bias = item.affine(facts, "cpu", torch.bfloat16)
        assert gain[3] == torch.tensor(scale, dtype=torch.bfloat16) and gain.sum() - gain[3] == 15 and not bias.any()
        act = torch.full((1, 2, 16), 3.0, dtype=torch.bfloat16)
        out = apply_prepared(act, [PreparedEdit(gain, bias, False, False, "all", None)], torch.arange(2), 2)
        assert torch.equal(out[..., 3], act[..., 3] * torch.tensor(scale, dtype=torch.bfloat16))
        assert torch.equal(out[..., :3], act[..., :3])


def test_a_bad_edit_leaves_the_last_token_runner_usable(tiny_llama):
    from emowork.components.editing import LastTokenRunner

    runner = LastTokenRunner(tiny_llama, prompts(tiny_llama))
    read = "blocks.2.hook_resid_post"
    before = runner.run([], [read])[read]
    with pytest.raises(SiteError):
        runner.run([Intervention("mlp_post", 99, "ablate", units=(0,))], [read])
    torch.testing.assert_close(runner.run([], [read])[read], before)


def test_a_stopped_pass_rolls_back_only_the_layers_it_reached(tiny_llama):
    from emowork.components.editing import LastTokenRunner

    runner = LastTokenRunner(tiny_llama, prompts(tiny_llama))
    lengths = [int(layer.get_seq_length()) for layer in runner.cache.layers]
    for _ in range(3):
        runner.run([], ["blocks.0.hook_resid_post"])  # stops after block 0
    assert [int(layer.get_seq_length()) for layer in runner.cache.layers] == lengths
