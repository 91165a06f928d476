"""Memory of a model from its config alone: the shape (no weights loaded), what each part of a run needs, and the
batch sizes that fit a given amount of free memory.

One set of formulas serves ``emowork plan`` (offline, before any weight is downloaded) and the run itself (batch sizes
from the GPU's free memory). They are estimates of the peaks of an eager forward pass, stated per token:

* weights: ``n_params * bytes`` (parameters counted on the meta device, so every architecture is exact);
* KV cache: ``2 * n_layers * n_kv_heads * d_head * bytes`` per token of every row;
* one layer's transient activations during a forward: ``bytes * (6 * d_model + 3 * d_mlp + 2 * n_heads * seq)`` per
  token (residual copies and norms, the MLP's gate/up/activation, the attention scores and probabilities), plus the
  last position's logits in float32 (``4 * d_vocab`` per row).

A batch size is the largest that keeps ``weights + rows * per_row`` within ``share`` (default 0.8) of the memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModelNotAvailableError

if TYPE_CHECKING:  # pragma: no cover
    from .handle import ModelFacts

GIB = 1024 ** 3
BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a model that memory depends on (read from a config; no weights)."""

    name: str
    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_params: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_from_facts(facts: "ModelFacts", name: str = "") -> ModelShape:
    """The shape of a loaded model (its :class:`~emowork.model.handle.ModelFacts`)."""
    return ModelShape(name, facts.architecture, facts.n_layers, facts.d_model, facts.n_heads, facts.n_kv_heads,
                      facts.d_head, facts.d_mlp, facts.d_vocab, facts.n_params)


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


def shape_from_config(name: str) -> ModelShape:
    """The shape of ``name`` (a config.json, a model folder, an HF id with its config cached, ``embedded`` or a tiny
    model name), parameters counted by building the model on the meta device (no memory, no weights)."""
    from transformers import AutoModelForCausalLM

    config = _config(name)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    n_heads = int(text.num_attention_heads)
    d_model = int(text.hidden_size)
    d_head = int(getattr(text, "head_dim", None) or d_model // n_heads)
    return ModelShape(name=str(name), architecture=type(model).__name__, n_layers=int(text.num_hidden_layers),
                      d_model=d_model, n_heads=n_heads, n_kv_heads=int(getattr(text, "num_key_value_heads", None) or n_heads),
                      d_head=d_head, d_mlp=int(getattr(text, "intermediate_size", None) or 4 * d_model),
                      d_vocab=int(text.vocab_size), n_params=int(n_params))


def weight_bytes(shape: ModelShape, dtype: torch.dtype) -> int:
    return shape.n_params * BYTES[dtype]


def kv_bytes_per_token(shape: ModelShape, dtype: torch.dtype) -> int:
    """KV cache of one token across every layer."""
    return 2 * shape.n_layers * shape.n_kv_heads * shape.d_head * BYTES[dtype]


def forward_bytes_per_token(shape: ModelShape, dtype: torch.dtype, seq_len: int) -> int:
    """One layer's transient activations per token of a forward pass over ``seq_len`` tokens."""
    return BYTES[dtype] * (6 * shape.d_model + 3 * shape.d_mlp + 2 * shape.n_heads * seq_len)


def generation_row_bytes(shape: ModelShape, dtype: torch.dtype, prompt_tokens: int, new_tokens: int) -> int:
    """Peak memory one generated row adds: its KV cache at full length, the prefill's transient activations, the
    last position's float32 logits (and a sampling copy)."""
    total = prompt_tokens + new_tokens
    return (kv_bytes_per_token(shape, dtype) * total + forward_bytes_per_token(shape, dtype, prompt_tokens) * prompt_tokens
            + 2 * 4 * shape.d_vocab)


def forward_row_bytes(shape: ModelShape, dtype: torch.dtype, seq_len: int) -> int:
    """Peak memory one row of a plain forward (capture, last-token passes) adds, logits at one position."""
    return forward_bytes_per_token(shape, dtype, seq_len) * seq_len + 4 * shape.d_vocab


def rows_that_fit(free_bytes: float, row_bytes: int, share: float = 0.8, cap: int = 512) -> int:
    """The largest batch whose rows fit in ``share`` of ``free_bytes`` (at least 1, at most ``cap``)."""
    return int(max(1, min(cap, share * free_bytes // max(row_bytes, 1))))


def cuda_free_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device now."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)
