import pytest
import torch

from emowork.interventions import add_to_residual, position_mask


def greedy(handle, prompt, vectors, mode, use_cache, n=6):
    enc = handle.encode([prompt])
    T = enc["input_ids"].shape[1]
    with torch.inference_mode(), add_to_residual(handle, vectors, prompt_length=T, mode=mode):
        out = handle.hf_model.generate(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=n, do_sample=False,
            use_cache=use_cache, pad_token_id=handle.tokenizer.pad_token_id, eos_token_id=None,
        )
    return out[0, T:].tolist()


def big_vector(handle, layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(handle.facts.d_model, generator=g)
    return {layer: 30.0 * v / v.norm() * handle.facts.d_model ** 0.5}


@pytest.mark.parametrize("mode", ["last_prompt", "from_last_prompt"])
def test_generate_with_and_without_kv_cache_agree(tiny, mode):
    prompt = tiny.format_chat("I went to the bank today.")
    vectors = big_vector(tiny, tiny.facts.n_layers // 2)
    assert greedy(tiny, prompt, vectors, mode, True) == greedy(tiny, prompt, vectors, mode, False)


def test_steering_changes_generation_and_modes_differ(tiny_llama):
    prompt = tiny_llama.format_chat("I went to the bank today.")
    plain = greedy(tiny_llama, prompt, {}, "last_prompt", True)
    once = greedy(tiny_llama, prompt, big_vector(tiny_llama, 1), "last_prompt", True)
    every = greedy(tiny_llama, prompt, big_vector(tiny_llama, 1), "from_last_prompt", True)
    assert once != plain and every != once


def test_hooks_are_removed_afterwards(tiny_llama):
    prompt = tiny_llama.format_chat("Hi")
    before = greedy(tiny_llama, prompt, {}, "last_prompt", True)
    greedy(tiny_llama, prompt, big_vector(tiny_llama, 2), "last_prompt", True)
    assert greedy(tiny_llama, prompt, {}, "last_prompt", True) == before


def test_position_mask_modes():
    absolute = torch.arange(3, 7)
    assert position_mask(absolute, 5, "last_prompt").tolist() == [False, True, False, False]
    assert position_mask(absolute, 5, "from_last_prompt").tolist() == [False, True, True, True]
    assert position_mask(absolute, 5, "all").all()
    with pytest.raises(ValueError):
        position_mask(absolute, 5, "everywhere")


def test_resid_mid_is_refused(tiny_llama):
    with pytest.raises(ValueError, match="read-only"):
        with add_to_residual(tiny_llama, big_vector(tiny_llama, 0), prompt_length=3, site="resid_mid"):
            pass
