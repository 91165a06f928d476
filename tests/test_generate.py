import pytest
import torch

from emowork.generation.generate import DecodingConfig, generate, stop_token_ids
from emowork.hooks.intervention import Intervention


def prompts(handle):
    return [handle.format_chat(t) for t in ("Hi", "Tell me about the weather in spring.", "I lost my keys at the station.")]


def test_batched_greedy_equals_one_at_a_time(tiny):
    config = DecodingConfig(max_new_tokens=8)
    batched = generate(tiny, prompts(tiny), config, batch_size=3, progress=False)
    single = [generate(tiny, [p], config, batch_size=1, progress=False)[0] for p in prompts(tiny)]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.n_tokens <= 8 for g in batched)
    assert [g.prompt for g in batched] == prompts(tiny)


def test_stops_at_end_of_turn(tiny_llama):
    stops = stop_token_ids(tiny_llama.tokenizer)
    assert tiny_llama.tokenizer.convert_tokens_to_ids("<|im_end|>") in stops
    end = tiny_llama.tokenizer.convert_tokens_to_ids("<|im_end|>")
    layer = tiny_llama.facts.n_layers - 1
    # Push the final residual towards the unembedding of <|im_end|>: the reply must stop at once.
    push = 1000.0 * tiny_llama.hf_model.lm_head.weight[end].detach()
    factory = lambda idx: [Intervention("resid_post", layer, "add", push, when="from_last_prompt")]  # noqa: E731
    (reply,) = generate(tiny_llama, prompts(tiny_llama)[:1], DecodingConfig(max_new_tokens=5), intervention=factory, progress=False)
    assert reply.finished and reply.n_tokens == 0 and reply.text == ""


def test_sampling_is_reproducible_and_seeded(tiny_llama):
    config = DecodingConfig(max_new_tokens=12, do_sample=True, temperature=1.5, seed=3)
    a = generate(tiny_llama, prompts(tiny_llama), config, progress=False)
    b = generate(tiny_llama, prompts(tiny_llama), config, progress=False)
    c = generate(tiny_llama, prompts(tiny_llama), DecodingConfig(max_new_tokens=12, do_sample=True, temperature=1.5, seed=4), progress=False)
    assert [g.text for g in a] == [g.text for g in b] != [g.text for g in c]


def test_repetition_penalty_changes_output(tiny_llama):
    plain = generate(tiny_llama, prompts(tiny_llama), DecodingConfig(max_new_tokens=20), progress=False)
    penal = generate(tiny_llama, prompts(tiny_llama), DecodingConfig(max_new_tokens=20, repetition_penalty=3.0), progress=False)
    assert [g.text for g in plain] != [g.text for g in penal]


def test_bad_configs():
    with pytest.raises(ValueError):
        DecodingConfig(max_new_tokens=0)
    with pytest.raises(ValueError):
        DecodingConfig(temperature=0)
    with pytest.raises(ValueError):
        DecodingConfig(top_p=1.5)


@pytest.mark.embedded
def test_embedded_generation_is_deterministic(embedded):
    text = [embedded.format_chat("I returned a kettle to the shop.", "Keep the reply to at most two sentences.")]
    a = generate(embedded, text, DecodingConfig(max_new_tokens=20), progress=False)
    b = generate(embedded, text, DecodingConfig(max_new_tokens=20), progress=False)
    assert a[0].text == b[0].text and len(a[0].text) > 0
