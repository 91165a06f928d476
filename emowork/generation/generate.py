"""Batched generation with one decoding configuration shared by every compared method.

Prompts are left-padded and grouped by length; generation runs through Hugging Face ``generate``, stops at the
end of the assistant turn, and is reproducible: greedy by default, and sampling is seeded per prompt. Interventions
(:class:`~emowork.hooks.intervention.Intervention`) run on the backend :func:`emowork.hooks.executors.choose_backend`
picks: the unwrapped model (same weights, no bridge overhead) when it supports them, else the bridge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ..hooks.executors import intervene
from ..progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle
    from ..hooks.intervention import Intervention

# End-of-turn markers of common chat formats; those present in a tokenizer's vocabulary stop generation.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
CPU_GENERATION_BATCH = 48


@dataclass(frozen=True)
class DecodingConfig:
    """How replies are decoded. One instance is shared by every method that is compared.

    Greedy with 100 new tokens by default (docs/method.md section 2). ``repetition_penalty`` None means none (1.0).
    With ``do_sample`` the generator is seeded with ``seed`` + the prompt's index, so a prompt gets the same
    sample whatever batch it lands in only at batch size 1; batched sampling is reproducible for the same
    prompts and batch size.
    """

    max_new_tokens: int = 100
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    """One reply: its text, the number of new tokens, and whether it ended at an end-of-turn token."""

    prompt: str
    text: str
    n_tokens: int
    finished: bool


# The interventions of one batch: given the batch's prompt indices, the list of interventions for its rows (per-row
# values or ``rows`` index the batch, in the order of the indices).
InterventionFactory = Callable[[list[int]], Sequence["Intervention"]]


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn for this tokenizer (its EOS plus known end-of-turn markers)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            ids.add(int(vocab[token]))
    return sorted(ids)


def generate(
    handle: "ModelHandle",
    prompts: Sequence[str],
    config: DecodingConfig = DecodingConfig(),
    intervention: InterventionFactory | None = None,
    batch_size: int | str = "auto",
    progress: bool = True,
    desc: str = "generate",
) -> list[Generation]:
    """Generate one reply per prompt (prompt texts from ``handle.format_chat``; no special tokens are added).

    ``intervention(indices)`` gives each batch's interventions (see :data:`InterventionFactory`); steering uses it.
    Returns the generations in the order of ``prompts``.
    """
    prompts = list(prompts)
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError("generate() takes a list of prompt strings")
    if not prompts:
        return []
    lengths = handle.n_tokens(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    size = _batch_size(handle, batch_size, config, max(lengths))
    results: list[Generation | None] = [None] * len(prompts)
    stops = stop_token_ids(handle.tokenizer)
    bar = progress_bar(len(prompts), desc, enabled=progress, unit="reply")
    try:
        for start in range(0, len(order), size):
            indices = order[start:start + size]
            for i, generation in zip(indices, _generate_batch(handle, [prompts[i] for i in indices], indices, config, stops, intervention)):
                results[i] = generation
            bar.update(len(indices))
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _batch_size(handle: "ModelHandle", batch_size: int | str, config: DecodingConfig, prompt_tokens: int) -> int:
    """``"auto"``: fixed on CPU and MPS; on CUDA the most rows whose KV cache and prefill fit 80% of the free memory
    (:func:`emowork.model.memory.generation_row_bytes`, the formula ``emowork plan`` uses)."""
    if batch_size != "auto":
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: use a positive integer or 'auto'.")
        return batch_size
    if handle.device.type == "cpu":
        return 1 if config.do_sample else CPU_GENERATION_BATCH  # per-prompt seeds are exact at batch size 1
    if handle.device.type != "cuda":  # MPS: no free-memory query
        return 32 if config.do_sample else 128
    from ..model.memory import generation_row_bytes, model_free_bytes, rows_that_fit

    row = generation_row_bytes(handle.facts, handle.dtype, prompt_tokens, config.max_new_tokens)
    return rows_that_fit(model_free_bytes(handle), row, cap=32 if config.do_sample else 512)


def generation_kwargs(handle: "ModelHandle", config: DecodingConfig, stops: list[int] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``hf_model.generate`` for ``config`` (shared by batched and streamed generation)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": config.do_sample,
        "eos_token_id": stops if stops is not None else stop_token_ids(handle.tokenizer),
        "pad_token_id": handle.tokenizer.pad_token_id,
        "repetition_penalty": config.repetition_penalty if config.repetition_penalty is not None else 1.0,
    }
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


@torch.inference_mode()
def _generate_batch(handle: "ModelHandle", prompts: list[str], indices: list[int], config: DecodingConfig,
                    stops: list[int], intervention: InterventionFactory | None) -> list[Generation]:
    enc = handle.encode(prompts)
    T = int(enc["input_ids"].shape[1])
    kwargs = generation_kwargs(handle, config, stops)
    if config.do_sample:
        torch.manual_seed(config.seed + indices[0])
    items = list(intervention(indices)) if intervention is not None else []
    with intervene(handle, items, T) as run:
        out = run.model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
    new = out[:, T:].tolist()
    generations = []
    stop_set = set(stops)
    for prompt, ids in zip(prompts, new):
        finished = False
        for cut, token in enumerate(ids):
            if token in stop_set:
                ids, finished = ids[:cut], True
                break
        text = handle.tokenizer.decode(ids, skip_special_tokens=True).strip()
        generations.append(Generation(prompt, text, len(ids), finished))
    return generations
