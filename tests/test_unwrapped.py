"""Fast generation on the unwrapped model must give exactly what the bridge-wrapped model gives."""

from contextlib import contextmanager

import pytest
import torch

from emowork.components.editing import Edit, edits_at_prompt_end
from emowork.generate import DecodingConfig, generate, generation_model
from emowork.interventions import add_to_residual
from emowork.streaming import stream_generate
from emowork.unwrapped import decoder_layer, unwrapped_model


@contextmanager
def bridge_only(handle):
    handle.fast_generation = False
    try:
        yield
    finally:
        handle.fast_generation = True


def prompts(handle):
    return [handle.format_chat(t) for t in ("Hi", "Tell me about the weather in spring.", "I lost my keys at the station.")]


def test_unwrapped_model_shares_the_weights_and_gives_the_same_logits(tiny):
    plain = unwrapped_model(tiny)
    assert unwrapped_model(tiny) is plain
    wrapped = {t.data_ptr() for t in tiny.hf_model.parameters()}
    assert all(p.data_ptr() in wrapped for p in plain.parameters())  # no copy
    assert not any(t.is_meta for t in plain.state_dict().values())
    enc = tiny.encode(prompts(tiny))
    with torch.inference_mode():
        a = tiny.hf_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        b = plain(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert (a - b).abs().max().item() < 1e-4
    assert len({id(decoder_layer(tiny, layer)) for layer in range(tiny.facts.n_layers)}) == tiny.facts.n_layers


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
@pytest.mark.parametrize("site", ["resid_post", "resid_pre"])
def test_steered_generation_is_the_same_on_both_paths(tiny_llama, mode, site):
    handle = tiny_llama
    layer = handle.facts.n_layers // 2
    vector = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(0))
    factory = lambda T, idx: add_to_residual(handle, {layer: 4.0 * vector / vector.norm()}, T, mode=mode, site=site, relative=True)  # noqa: E731
    config = DecodingConfig(max_new_tokens=10)
    fast = generate(handle, prompts(handle), config, intervention=factory, batch_size=3, progress=False)
    with bridge_only(handle):
        slow = generate(handle, prompts(handle), config, intervention=factory, batch_size=3, progress=False)
    plain = generate(handle, prompts(handle), config, batch_size=3, progress=False)
    assert [g.text for g in fast] == [g.text for g in slow]
    assert [g.text for g in fast] != [g.text for g in plain]  # the steering did something


def test_streamed_gauge_is_the_same_on_both_paths(tiny_llama):
    handle = tiny_llama
    prompt = prompts(handle)[1]
    fast = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=8), record_layer=2)
    with bridge_only(handle):
        slow = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=8), record_layer=2)
    assert fast.token_ids == slow.token_ids and len(fast.residuals) == len(slow.residuals) > 0
    assert max((a - b).abs().max().item() for a, b in zip(fast.residuals, slow.residuals)) < 1e-4


def test_interventions_on_other_sites_run_through_the_bridge(tiny_llama):
    handle = tiny_llama
    with add_to_residual(handle, {0: torch.zeros(handle.facts.d_model)}, 3, site="resid_post") as state:
        assert generation_model(handle, state, intervened=True) is unwrapped_model(handle)
    with add_to_residual(handle, {0: torch.zeros(handle.facts.d_model)}, 3, site="mlp_out") as state:
        assert generation_model(handle, state, intervened=True) is handle.hf_model
    edit = Edit("neuron", 1, (0, 1), "ablate")
    with edits_at_prompt_end(handle, [edit], 3) as state:
        assert generation_model(handle, state, intervened=True) is handle.hf_model
    assert generation_model(handle) is unwrapped_model(handle)
    with bridge_only(handle):
        assert generation_model(handle) is handle.hf_model


@contextmanager
def static(handle):
    handle.static_cache = True
    try:
        yield
    finally:
        handle.static_cache = False


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
def test_static_cache_streaming_equals_dynamic_with_the_same_gauge(tiny_llama, mode):
    """The static path (slots + reused static cache + teacher-forced gauge) must reproduce the dynamic one."""
    from emowork.static_steering import ResidualSteer

    handle = tiny_llama
    vector = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(1))
    steers = [ResidualSteer({1: 30.0 * vector / vector.norm(), 2: 10.0 * vector / vector.norm()}, mode),
              ResidualSteer({2: -6.0 * vector / vector.norm()}, mode), None]
    config = DecodingConfig(max_new_tokens=10)
    for prompt in prompts(handle)[1:]:
        for steer in steers:  # several calls: the slots and the reused cache must not leak between them
            dynamic = stream_generate(handle, prompt, config, record_layer=2, steer=steer)
            with static(handle):
                fixed = stream_generate(handle, prompt, config, record_layer=2, steer=steer)
            assert fixed.token_ids == dynamic.token_ids
            assert len(fixed.residuals) == len(dynamic.residuals) == len(fixed.token_ids)
            assert max((a - b).abs().max().item() for a, b in zip(fixed.residuals, dynamic.residuals)) < 1e-4
    with static(handle):
        steered = stream_generate(handle, prompts(handle)[1], config, steer=steers[0])
        assert steered.token_ids != stream_generate(handle, prompts(handle)[1], config).token_ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_compiled_static_steering_on_cuda_matches_the_dynamic_path():
    """On CUDA transformers compiles the static-cache decoding step (CUDA graphs): the slots, loaded in place between
    calls, must still steer every call as the dynamic path does."""
    import emowork
    from emowork.static_steering import ResidualSteer

    handle = emowork.load_model("tiny-llama", device="cuda", dtype="float32")
    handle.static_cache = True
    vector = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(1)).cuda()
    config = DecodingConfig(max_new_tokens=12)
    prompt = prompts(handle)[1]
    for steer in (ResidualSteer({1: 30.0 * vector / vector.norm()}, "from_last_prompt"), None,
                  ResidualSteer({2: -20.0 * vector / vector.norm()}, "last_prompt"),
                  ResidualSteer({1: 30.0 * vector / vector.norm()}, "from_last_prompt")):
        fixed = stream_generate(handle, prompt, config, record_layer=2, steer=steer)
        handle.static_cache = False
        dynamic = stream_generate(handle, prompt, config, record_layer=2, steer=steer)
        handle.static_cache = True
        assert fixed.token_ids == dynamic.token_ids, steer
        assert max((a - b).abs().max().item() for a, b in zip(fixed.residuals, dynamic.residuals)) < 1e-3
