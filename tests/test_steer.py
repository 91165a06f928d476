import numpy as np
import pytest
import torch

from emowork.analysis import consistency as C
from emowork.data import load_sev
from emowork.errors import SiteError
from emowork.generation.fluency import is_degenerate, repeated_ngram_share, reply_perplexity
from emowork.generation.generate import DecodingConfig, generate
from .helpers import LengthJudge
from emowork.analysis.steering import SteeringSetting, layer_window, steered_generate, steering_factory, steering_interventions
from emowork.analysis.steering_sweep import run_sweep


@pytest.fixture
def tiny_dirs(tiny_llama):
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(12, 6, tiny_llama.facts.n_layers, tiny_llama.facts.d_model, generator=g)
    return C.as_directions({"mlp": acts})


def test_layer_windows_scale_with_depth():
    assert layer_window(28, 0.4, 0.7) == list(range(11, 20))
    assert layer_window(30, 0.4, 0.7) == list(range(12, 21))
    assert layer_window(4, 0.5, 0.55) == [2]
    for bad in ((0.7, 0.4), (-0.1, 0.5), (0.2, 1.5)):
        with pytest.raises(SiteError):
            layer_window(28, *bad)


def test_steering_rejects_layers_that_do_not_exist(tiny_llama, tiny_dirs):
    with pytest.raises(SiteError, match="do not exist"):
        steering_interventions(tiny_llama, tiny_dirs, "anger", [99], 4.0)


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
def test_kv_cache_on_and_off_give_the_same_text(tiny_llama, tiny_dirs, mode):
    prompts = [tiny_llama.format_chat("I went to the bank."), tiny_llama.format_chat("The train was late again today.")]
    setting = SteeringSetting(0.25, 0.75, 6.0, mode)
    factory = steering_factory(tiny_llama, tiny_dirs, ["anger", "fear"], setting)
    cached = generate(tiny_llama, prompts, DecodingConfig(max_new_tokens=8), intervention=factory, progress=False)
    tiny_llama.hf_model.generation_config.use_cache = False
    try:
        uncached = generate(tiny_llama, prompts, DecodingConfig(max_new_tokens=8), intervention=factory, progress=False)
    finally:
        tiny_llama.hf_model.generation_config.use_cache = True
    assert [g.text for g in cached] == [g.text for g in uncached]


def test_mixed_emotion_batches_equal_separate_runs(tiny_llama, tiny_dirs, fresh_cache):
    prompts = [tiny_llama.format_chat(t) for t in ("Hello there.", "My landlord called about the rent today.")]
    setting = SteeringSetting(0.25, 0.75, 6.0)
    config = DecodingConfig(max_new_tokens=6)
    mixed = steered_generate(tiny_llama, prompts * 2, tiny_dirs, ["anger", "anger", "joy", "joy"], setting, config, progress=False)
    anger = steered_generate(tiny_llama, prompts, tiny_dirs, "anger", setting, config, progress=False)
    happy = [generate(tiny_llama, [p], config, intervention=steering_factory(tiny_llama, tiny_dirs, ["happiness"], setting),
                      progress=False)[0] for p in prompts]
    assert [g.text for g in mixed] == [g.text for g in anger] + [g.text for g in happy]
    plain = generate(tiny_llama, prompts, config, progress=False)
    assert [g.text for g in plain] != [g.text for g in anger]


def test_relative_strength_scales_with_the_residual(tiny_llama, tiny_dirs):
    prompt = tiny_llama.format_chat("Hi")
    enc = tiny_llama.encode([prompt])
    T = enc["input_ids"].shape[1]
    layer = 1
    seen = {}

    def grab(name):
        def hook(act, hook):
            seen[name] = act[0, -1].clone()
        return hook

    from emowork.hooks.executors import intervene

    with torch.inference_mode():
        with tiny_llama.bridge.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", grab("before"))]):
            tiny_llama.hf_model(**enc)
        with intervene(tiny_llama, steering_interventions(tiny_llama, tiny_dirs, "fear", [layer], 3.0), T, backend="bridge"):
            with tiny_llama.bridge.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", grab("after"))]):
                tiny_llama.hf_model(**enc)
    added = seen["after"] - seen["before"]
    rms = seen["before"].pow(2).mean().sqrt()
    torch.testing.assert_close(added, 3.0 * rms * tiny_dirs.vector("fear", layer), rtol=1e-4, atol=1e-4)


def test_perplexity_matches_a_direct_computation(tiny_llama):
    prompt, reply = tiny_llama.format_chat("Hi"), "Hello you"
    (ppl,) = reply_perplexity(tiny_llama, [prompt], [reply])
    ids = tiny_llama.tokenizer(prompt + reply, add_special_tokens=False)["input_ids"]
    n_reply = len(tiny_llama.tokenizer(reply, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logits = tiny_llama.hf_model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert ppl == pytest.approx(float(torch.exp(-logp[-n_reply:].mean())), rel=1e-4)
    assert np.isnan(reply_perplexity(tiny_llama, [prompt], [""])[0])


def test_batched_perplexity_shares_prompts_and_equals_one_reply_at_a_time(tiny):
    """Replies to the same prompt share its cache; prompts of different lengths, empty replies, and batches that split
    the distinct prompts must not change any value."""
    tok = tiny.tokenizer
    prompts = [tiny.format_chat(t) for t in ("Hi", "Tell me about the weather in spring.", "I lost my keys.")]
    items = [(prompts[i % 3], reply) for i, reply in enumerate(["Hello you", "Oh no", "", "It rains a lot and the wind is cold",
                                                                  "Fine.", "Keys!", "Sunny, mostly", "Again"])]
    for batch_size, unwrapped in ((1, True), (2, True), (16, True), (2, False)):
        tiny.use_unwrapped = unwrapped  # False: through the bridge
        try:
            got = reply_perplexity(tiny, [p for p, _ in items], [r for _, r in items], batch_size=batch_size)
        finally:
            tiny.use_unwrapped = True
        for value, (prompt, reply) in zip(got, items):
            reply_ids = tok(reply, add_special_tokens=False)["input_ids"]
            if not reply_ids:
                assert np.isnan(value)
                continue
            ids = tok(prompt, add_special_tokens=False)["input_ids"] + reply_ids
            with torch.inference_mode():
                logits = tiny.hf_model(input_ids=torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
            assert value == pytest.approx(float(torch.exp(-logp[-len(reply_ids):].mean())), rel=1e-4), (batch_size, reply)


def test_repetition_measures():
    assert repeated_ngram_share("the cat sat on the mat") == 0.0
    assert repeated_ngram_share("I'm sure you're right. " * 6) > 0.7
    assert is_degenerate("") and is_degenerate("2018-2018-2018-2018-2018-2018-2018-2018")
    assert not is_degenerate("That sounds like a fair outcome, and the landlord acted quickly.")


def test_sweep_structure_and_best_rule(tiny_llama, tiny_dirs, fresh_cache):
    groups = load_sev("test").select(per_theme=1).groups[:3]
    settings = [SteeringSetting(0.25, 0.75, 2.0), SteeringSetting(0.5, 1.0, 6.0)]
    result = run_sweep(tiny_llama, tiny_dirs, groups, LengthJudge(), settings, DecodingConfig(max_new_tokens=5), progress=False)
    assert len(result.settings) == 2 and result.baseline["n"] == 18
    for s in result.settings:
        assert s["n"] == 18 and set(s["by_emotion"]) == set(result.emotions) and 0 <= s["accuracy"] <= 1
        assert s["low"] <= s["accuracy"] <= s["high"] and s["perplexity"] > 0
    best = result.best()
    assert best["label"] in [s["label"] for s in result.settings] and "rule" in best
    assert len(result.rows) == 18 * 3
