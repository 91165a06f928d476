"""Fast generation on the unwrapped model must give exactly what the bridge-wrapped model gives; the static-cache
backend must give what the dynamic one gives."""

from contextlib import contextmanager

import pytest
import torch

from emowork.generation.generate import DecodingConfig, generate
from emowork.hooks.executors import choose_backend
from emowork.hooks.intervention import Intervention
from emowork.generation.streaming import stream_generate
from emowork.model.unwrapped import decoder_layer, unwrapped_model


@contextmanager
def bridge_only(handle):
    handle.use_unwrapped = False
    try:
        yield
    finally:
        handle.use_unwrapped = True


@contextmanager
def static(handle):
    handle.static_cache = True
    try:
        yield
    finally:
        handle.static_cache = False


def prompts(handle):
    return [handle.format_chat(t) for t in ("Hi", "Tell me about the weather in spring.", "I lost my keys at the station.")]


def test_unwrapped_model_shares_the_weights_and_gives_the_same_logits(tiny):
    plain = unwrapped_model(tiny)
    assert unwrapped_model(tiny) is plain and tiny.caches.unwrapped_model is plain
    wrapped = {t.data_ptr() for t in tiny.hf_model.parameters()}
    assert all(p.data_ptr() in wrapped for p in plain.parameters())  # no copy
    assert not any(t.is_meta for t in plain.state_dict().values())
    enc = tiny.encode(prompts(tiny))
    with torch.inference_mode():
        a = tiny.hf_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        b = plain(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert (a - b).abs().max().item() < 1e-4
    assert len({id(decoder_layer(tiny, layer)) for layer in range(tiny.facts.n_layers)}) == tiny.facts.n_layers


def test_streamed_gauge_is_the_same_on_both_paths(tiny_llama):
    handle = tiny_llama
    prompt = prompts(handle)[1]
    fast = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=8), record_layer=2)
    with bridge_only(handle):
        slow = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=8), record_layer=2)
    assert fast.token_ids == slow.token_ids and len(fast.residuals) == len(slow.residuals) > 0
    assert max((a - b).abs().max().item() for a, b in zip(fast.residuals, slow.residuals)) < 1e-4


def test_the_backend_rule(tiny_llama, tiny_gpt2):
    handle = tiny_llama
    steer = [Intervention("resid_post", 1, "add", torch.ones(handle.facts.d_model), rms_units=True)]
    neurons = [Intervention("mlp_post", 1, "ablate", units=(0, 1))]
    assert choose_backend(handle) == choose_backend(handle, steer) == choose_backend(handle, neurons) == "unwrapped"
    assert choose_backend(handle, steer, streaming=True) == "unwrapped"  # static cache off
    with static(handle):
        assert choose_backend(handle, steer, streaming=True) == "static"
        assert choose_backend(handle, neurons, streaming=True) == "unwrapped"  # the slots only add to the residual
        assert choose_backend(handle, steer) == "unwrapped"  # batched generation never uses the static cache
    with bridge_only(handle):
        assert choose_backend(handle, steer) == "bridge"
    # GPT-2's fused Conv1D projections have no Linear input for neurons or heads: those edits run on the bridge
    heads = [Intervention("z", 0, "ablate", units=(0,))]
    assert choose_backend(tiny_gpt2, heads) == "bridge" and choose_backend(tiny_gpt2, steer[:1]) == "unwrapped"


def _steers(handle, mode):
    vector = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(1))
    unit = vector / vector.norm()
    return [[Intervention("resid_post", 1, "add", 30.0 * unit, when=mode, rms_units=True),
             Intervention("resid_post", 2, "add", 10.0 * unit, when=mode, rms_units=True)],
            [Intervention("resid_post", 2, "add", -6.0 * unit, when=mode, rms_units=True)], []]


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
def test_static_cache_streaming_equals_dynamic_with_the_same_gauge(tiny_llama, mode):
    """The static backend (slots + reused static cache + teacher-forced gauge) must reproduce the dynamic one."""
    handle = tiny_llama
    steers = _steers(handle, mode)
    config = DecodingConfig(max_new_tokens=10)
    for prompt in prompts(handle)[1:]:
        for steer in steers:  # several calls: the slots and the reused cache must not leak between them
            dynamic = stream_generate(handle, prompt, config, steer, record_layer=2)
            with static(handle):
                fixed = stream_generate(handle, prompt, config, steer, record_layer=2)
            assert fixed.token_ids == dynamic.token_ids
            assert len(fixed.residuals) == len(dynamic.residuals) == len(fixed.token_ids)
            assert max((a - b).abs().max().item() for a, b in zip(fixed.residuals, dynamic.residuals)) < 1e-4
    with static(handle):
        steered = stream_generate(handle, prompts(handle)[1], config, steers[0])
        assert steered.token_ids != stream_generate(handle, prompts(handle)[1], config).token_ids


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
def test_a_one_token_prompt_is_steered_at_its_prompt_token_on_the_static_path(tiny_llama, mode):
    """A one-token prompt's prefill pass is as long as a decoding step; the static slots must still treat it as the
    prompt (they did not, when they guessed the pass from its length)."""
    handle = tiny_llama
    prompt = "a"
    assert handle.n_tokens([prompt]) == [1]
    config = DecodingConfig(max_new_tokens=8)
    steer = _steers(handle, mode)[0]
    dynamic = stream_generate(handle, prompt, config, steer)
    with static(handle):
        fixed = stream_generate(handle, prompt, config, steer)
    assert fixed.token_ids == dynamic.token_ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_compiled_static_steering_on_cuda_matches_the_dynamic_path():
    """On CUDA transformers compiles the static-cache decoding step (CUDA graphs): the slots, loaded in place between
    calls, must still steer every call as the dynamic path does."""
    import emowork

    handle = emowork.load_model("tiny-llama", device="cuda", dtype="float32")
    handle.static_cache = True
    vector = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(1)).cuda()
    unit = vector / vector.norm()
    config = DecodingConfig(max_new_tokens=12)
    prompt = prompts(handle)[1]
    for steer in ([Intervention("resid_post", 1, "add", 30.0 * unit, when="from_last_prompt", rms_units=True)], [],
                  [Intervention("resid_post", 2, "add", -20.0 * unit, when="last_prompt", rms_units=True)],
                  [Intervention("resid_post", 1, "add", 30.0 * unit, when="from_last_prompt", rms_units=True)]):
        fixed = stream_generate(handle, prompt, config, steer, record_layer=2)
        handle.static_cache = False
        dynamic = stream_generate(handle, prompt, config, steer, record_layer=2)
        handle.static_cache = True
        assert fixed.token_ids == dynamic.token_ids, steer
        assert max((a - b).abs().max().item() for a, b in zip(fixed.residuals, dynamic.residuals)) < 1e-3
