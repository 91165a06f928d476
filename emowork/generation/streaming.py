"""Streamed generation of one reply: tokens arrive through a callback, a request can be cancelled mid-way, and the
residual that produced each token can be recorded. Same decoding arguments and interventions as
:func:`emowork.generation.generate.generate`; with ``handle.static_cache`` on, batch-1 decoding uses a static KV cache, which
transformers compiles on CUDA (the ``static`` backend of :mod:`emowork.hooks.executors`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from .generate import DecodingConfig, generation_kwargs, stop_token_ids
from ..hooks.executors import intervene

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle
    from ..hooks.intervention import Intervention

CACHE_STEP = 512  # static caches are sized in steps of this many tokens


@dataclass
class StreamResult:
    """One streamed reply: text, its tokens as strings, the recorded residuals, timing, and how it ended."""

    text: str
    tokens: list[str]
    token_ids: list[int]
    residuals: list[torch.Tensor] = field(default_factory=list)  # [d_model] per generated token: the state that produced it
    ttft_s: float = float("nan")
    seconds: float = 0.0
    finished: bool = False
    cancelled: bool = False

    @property
    def tokens_per_s(self) -> float:
        """Decoding speed after the first token (tokens 2..n over their time)."""
        if len(self.token_ids) < 2 or self.seconds <= self.ttft_s:
            return float("nan")
        return (len(self.token_ids) - 1) / (self.seconds - self.ttft_s)


class _Streamer:
    """A transformers streamer: receives the prompt ids first, then each new token id."""

    def __init__(self, on_token: Callable[[int], None]) -> None:
        self.on_token = on_token
        self.seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.on_token(int(token))

    def end(self) -> None:
        pass


class _Cancel:
    """A stopping criterion that ends generation once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def stream_generate(handle: "ModelHandle", prompt: str, config: DecodingConfig = DecodingConfig(),
                    interventions: Sequence["Intervention"] = (), on_token: Callable[[str, int], None] | None = None,
                    cancel: threading.Event | None = None, record_layer: int | None = None) -> StreamResult:
    """Generate one reply to ``prompt`` token by token, with ``interventions`` applied (steering, edits, modulation).

    ``on_token(text_so_far, n_tokens)`` is called after every token; setting ``cancel`` stops at the next token;
    ``record_layer`` records resid_post of that layer at the position that produced each token. The backend is
    :func:`emowork.hooks.executors.choose_backend`'s (streaming) choice: with ``handle.static_cache`` on, unsteered or
    direction-steered replies decode with a static KV cache (the ``static`` backend), and the gauge is then
    recomputed after decoding by one teacher-forced pass (:func:`record_residuals`).
    """
    from transformers import StoppingCriteriaList

    enc = handle.encode([prompt])
    T = int(enc["input_ids"].shape[1])
    stops = stop_token_ids(handle.tokenizer)
    ids: list[int] = []
    residuals: list[torch.Tensor] = []
    start = time.perf_counter()
    first: list[float] = []

    def token_arrived(token: int) -> None:
        if not first:
            first.append(time.perf_counter() - start)
        if token in stops:
            return
        ids.append(token)
        if on_token is not None:
            on_token(handle.tokenizer.decode(ids, skip_special_tokens=True), len(ids))

    kwargs = generation_kwargs(handle, config, stops)
    kwargs.update(streamer=_Streamer(token_arrived), stopping_criteria=StoppingCriteriaList([_Cancel(cancel or threading.Event())]))
    if config.do_sample:
        torch.manual_seed(config.seed)
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    items = list(interventions)
    with intervene(handle, items, T, streaming=True) as run:
        if run.backend == "static":
            out = run.model.generate(**inputs, past_key_values=static_cache(handle, T + config.max_new_tokens), **kwargs)
        elif record_layer is None:
            out = run.model.generate(**inputs, **kwargs)
        else:
            with run.reading("resid_post", record_layer, lambda act: residuals.append(act[0, -1].float().cpu())):
                out = run.model.generate(**inputs, **kwargs)
    seconds = time.perf_counter() - start
    if run.backend == "static" and record_layer is not None:
        residuals = record_residuals(handle, out, T, len(ids), record_layer, items)
    new = out[0, T:].tolist()
    finished = any(t in stops for t in new)
    cancelled = kwargs["stopping_criteria"][0].event.is_set()
    return StreamResult(handle.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                        [handle.tokenizer.decode([t]) for t in ids], ids, residuals[: len(ids)],
                        first[0] if first else float("nan"), seconds, finished, cancelled)


def static_cache(handle: "ModelHandle", length: int) -> Any:
    """A reset :class:`~transformers.StaticCache` for batch 1 holding at least ``length`` tokens, kept in
    ``handle.caches`` and reused while it is large enough (its size is a multiple of :data:`CACHE_STEP`, so its shape
    and address stay the same and a compiled decoding step is not re-traced)."""
    from transformers import StaticCache

    from ..model.unwrapped import unwrapped_model

    caches = handle.caches
    if caches.static_cache is None or caches.static_cache_len < length:
        size = -(-length // CACHE_STEP) * CACHE_STEP
        caches.static_cache = StaticCache(config=unwrapped_model(handle).config, max_cache_len=size)
        caches.static_cache_len = size
    else:
        caches.static_cache.reset()
    return caches.static_cache


@torch.inference_mode()
def record_residuals(handle: "ModelHandle", input_ids: torch.Tensor, prompt_length: int, n_new: int, layer: int,
                     interventions: Sequence["Intervention"] = ()) -> list[torch.Tensor]:
    """resid_post of ``layer`` at each position that produced one of the ``n_new`` generated tokens (positions
    ``T-1 .. T+n_new-2``), from one teacher-forced pass over ``input_ids`` ``[1, T + n_new]`` with ``interventions``
    applied as during generation (the same values, as the model is causal). Returns ``n_new`` float32 CPU tensors
    ``[d_model]``."""
    if n_new == 0:
        return []
    ids = input_ids[:, : prompt_length + n_new - 1]
    seen: list[torch.Tensor] = []
    with intervene(handle, interventions, prompt_length) as run:
        with run.reading("resid_post", layer, lambda act: seen.append(act[0, prompt_length - 1:].float().cpu())):
            run.model(input_ids=ids, use_cache=False)
    return list(seen[0].unbind(0))
