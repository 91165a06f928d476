"""Memory of a model from its config alone: the shape (no weights loaded), what each part of a run needs, and the
batch sizes that fit a given amount of free memory.

One set of formulas serves ``emowork plan`` (offline, before any weight is downloaded) and the run itself (batch sizes
from the GPU's free memory). They are estimates of the peaks of an eager forward pass, stated per token:

* weights: ``n_params * bytes`` (parameters counted on the meta device, so every architecture is exact);
* KV cache: ``2 * n_layers * n_kv_heads * d_head * bytes`` per token of every row;
* one layer's transient activations during a forward: ``bytes * (6 * d_model + 3 * d_mlp + 2 * n_heads * seq)`` per
  token (residual copies and norms, the MLP's gate/up/activation, the attention scores and probabilities), plus the
  last position's logits in float32 (``4 * d_vocab`` per row).

A generated batch is the largest with ``rows * per_row <= share * free`` (``free``: the memory the weights leave;
``share`` 0.8 by default); a captured forward pass takes ``CAPTURE_SHARE`` (0.3) of it as a token budget
(:func:`capture_token_budget`), at most ``MAX_CAPTURE_ROWS`` prompts at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotAvailableError
from .handle import ModelFacts

GIB = 1024 ** 3
CAPTURE_SHARE = 0.3
MAX_CAPTURE_ROWS = 128
BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}


def _config(name: str) -> Any:
    from transformers import AutoConfig

    path = Path(name).expanduser()
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelNotAvailableError(f"{path} is not valid JSON ({exc}): give a model's config.json.") from None
        if "model_type" not in raw:
            raise ModelNotAvailableError(f"{path} has no 'model_type': give a Hugging Face config.json.")
        return AutoConfig.for_model(**raw)
    if name == "embedded":  # the GGUF's metadata holds the config; nothing is de-quantised
        from .embedded import gguf_path

        source = gguf_path()
        return AutoConfig.from_pretrained(source.parent, gguf_file=source.name)
    from .tiny_models import TINY_CONFIGS, byte_level_tokenizer

    if name in TINY_CONFIGS:
        return TINY_CONFIGS[name](len(byte_level_tokenizer()))
    try:
        return AutoConfig.from_pretrained(name, local_files_only=path.is_dir() or None)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"Cannot read the config of {name!r} ({type(exc).__name__}): give a config.json file, a model folder, a "
            "Hugging Face id whose config is in the local cache (or reachable), 'embedded' or a tiny model name. "
            "Shapes of Llama-3.2-3B, Qwen2.5-7B and Llama-3.1-70B are in benchmarks/configs/.") from None


def shape_from_config(name: str) -> ModelFacts:
    """The :class:`~emowork.model.handle.ModelFacts` of ``name`` (a config.json, a model folder, an HF id with its
    config cached, ``embedded`` or a tiny model name) without its weights: the model is built on the meta device,
    which counts the parameters exactly (shared ones once) and shows its MLP and norm kinds."""
    from transformers import AutoModelForCausalLM

    config = _config(name)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    names = [n for n, _ in model.named_parameters()]
    norms = {type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}
    n_heads = int(text.num_attention_heads)
    d_model = int(text.hidden_size)
    return ModelFacts(architecture=type(model).__name__, n_layers=int(text.num_hidden_layers), d_model=d_model,
                      n_heads=n_heads, n_kv_heads=int(getattr(text, "num_key_value_heads", None) or n_heads),
                      d_head=int(getattr(text, "head_dim", None) or d_model // n_heads),
                      d_mlp=int(getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * d_model),
                      d_vocab=int(text.vocab_size), gated_mlp=any("gate" in n for n in names),
                      normalization="RMS" if any("RMS" in n for n in norms) else "LN",
                      n_params=int(sum(p.numel() for p in model.parameters())))


def weight_bytes(shape: ModelFacts, dtype: torch.dtype) -> int:
    return shape.n_params * BYTES[dtype]


def kv_bytes_per_token(shape: ModelFacts, dtype: torch.dtype) -> int:
    """KV cache of one token across every layer."""
    return 2 * shape.n_layers * shape.n_kv_heads * shape.d_head * BYTES[dtype]


def forward_bytes_per_token(shape: ModelFacts, dtype: torch.dtype, seq_len: int) -> int:
    """One layer's transient activations per token of a forward pass over ``seq_len`` tokens."""
    return BYTES[dtype] * (6 * shape.d_model + 3 * shape.d_mlp + 2 * shape.n_heads * seq_len)


def generation_row_bytes(shape: ModelFacts, dtype: torch.dtype, prompt_tokens: int, new_tokens: int) -> int:
    """Peak memory one generated row adds: its KV cache at full length, the prefill's transient activations, the
    last position's float32 logits (and a sampling copy)."""
    total = prompt_tokens + new_tokens
    return (kv_bytes_per_token(shape, dtype) * total + forward_bytes_per_token(shape, dtype, prompt_tokens) * prompt_tokens
            + 2 * 4 * shape.d_vocab)


def rows_that_fit(free_bytes: float, row_bytes: int, share: float = 0.8, cap: int = 512) -> int:
    """The largest batch whose rows fit in ``share`` of ``free_bytes`` (at least 1, at most ``cap``)."""
    return int(max(1, min(cap, share * free_bytes // max(row_bytes, 1))))


def capture_token_budget(facts: ModelFacts, dtype: torch.dtype, free_bytes: float, max_len: int) -> int:
    """Tokens per captured forward pass: ``CAPTURE_SHARE`` of the free memory over one layer's transient
    activations per token (and the last position's logits), at least one prompt of ``max_len`` tokens."""
    per_token = forward_bytes_per_token(facts, dtype, max_len) + 4 * facts.d_vocab // max(1, max_len)
    return max(max_len, int(CAPTURE_SHARE * free_bytes / per_token))


def capture_rows(facts: ModelFacts, dtype: torch.dtype, free_bytes: float, seq_len: int) -> int:
    """Prompts of ``seq_len`` tokens per captured forward pass (what ``capture(batch_size="auto")`` uses on CUDA)."""
    return max(1, min(MAX_CAPTURE_ROWS, capture_token_budget(facts, dtype, free_bytes, seq_len) // seq_len))


def cuda_free_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device now."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def model_free_bytes(handle: Any) -> int:
    """Free memory on the fullest CUDA device the handle's model uses (its only one, unless split over several GPUs:
    then the batch is sized by the device with least room, a conservative choice since each holds part of the KV cache)."""
    devices = {handle.device, *(handle.layer_device(layer) for layer in range(handle.facts.n_layers))}
    return min(cuda_free_bytes(d) for d in devices if d.type == "cuda")
