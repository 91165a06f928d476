"""Tiny random-weight models for tests: built from a config with a byte-level tokenizer, no files, no network.

Each tiny model has the architecture of a real family (Llama: gated MLP, GQA, RMSNorm, RoPE; Qwen2: the same
plus q/k/v biases; GPT-2: non-gated MLP, LayerNorm, biases everywhere, learned absolute positions) at a few
thousand parameters per layer, with weights drawn from a fixed seed so their fingerprint is stable.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_SEED = 1234


def byte_level_tokenizer(chat_template: str | None = CHATML_TEMPLATE) -> PreTrainedTokenizerFast:
    """Return a byte-level tokenizer: 256 byte tokens (no merges) + 3 special tokens, ChatML template.

    It has no BOS token, ``<|im_end|>`` ends a turn and ``<|endoftext|>`` pads. Vocabulary size 259.
    """
    byte_to_unicode = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel.alphabet() is the 256-character alphabet; order it by the byte it stands for.
    ordered = sorted(byte_to_unicode, key=_byte_of_char)
    vocab = {char: index for index, char in enumerate(ordered)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )
    tokenizer.chat_template = chat_template
    tokenizer.padding_side = "left"
    return tokenizer


def _byte_of_char(char: str) -> int:
    """The byte value a GPT-2 byte-level alphabet character encodes."""
    code = ord(char)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def _llama_config(vocab_size: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=None, eos_token_id=2, pad_token_id=0,
    )


def _qwen2_config(vocab_size: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=112, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=2, pad_token_id=0,
    )


def _gpt2_config(vocab_size: int) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size, n_embd=48, n_layer=3, n_head=4, n_positions=512, n_inner=128,
        bos_token_id=None, eos_token_id=2, pad_token_id=0,
    )


TINY_CONFIGS: dict[str, Callable[[int], Any]] = {
    "tiny-llama": _llama_config,
    "tiny-qwen2": _qwen2_config,
    "tiny-gpt2": _gpt2_config,
}


def build_tiny(name: str, dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build tiny model ``name`` (a key of :data:`TINY_CONFIGS`) with seeded random weights.

    Returns ``(model, tokenizer)``; the model is in eval mode, on the CPU, in ``dtype``. Weights are scaled up
    from the default initialisation (std 0.02 gives near-constant activations) so that hook identities are
    tested on activations of order one.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = byte_level_tokenizer()
    config = TINY_CONFIGS[name](len(tokenizer))
    config.initializer_range = 0.2
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(TINY_SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(generator_state)
    model = model.to(dtype).eval()
    model.config.name_or_path = name
    return model, tokenizer
