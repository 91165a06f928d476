"""Streamed generation of one reply: tokens arrive through a callback, a request can be cancelled mid-way, and the
residual that produced each token can be recorded. Same decoding arguments and intervention path as
:func:`emowork.generate.generate`."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from .generate import DecodingConfig, InterventionFactory, generation_kwargs, generation_model, stop_token_ids
from .interventions import attach_hooks, attach_plain_hooks
from .static_steering import record_residuals, static_cache, steering_slots

if TYPE_CHECKING:  # pragma: no cover
    from .handle import ModelHandle
    from .static_steering import ResidualSteer


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
                    intervention: InterventionFactory | None = None, on_token: Callable[[str, int], None] | None = None,
                    cancel: threading.Event | None = None, record_layer: int | None = None,
                    steer: "ResidualSteer | None" = None) -> StreamResult:
    """Generate one reply to ``prompt`` token by token.

    ``on_token(text_so_far, n_tokens)`` is called after every token; setting ``cancel`` stops at the next token;
    ``record_layer`` records resid_post of that layer at the position that produced each token. Steer either with
    ``steer`` (a declarative residual steering) or with any ``intervention``, not both. Unsteered or ``steer``-ed
    replies decode with a static KV cache when ``handle.static_cache`` is on (:mod:`emowork.static_steering`);
    the gauge is then recomputed after decoding by one teacher-forced pass.
    """
    from transformers import StoppingCriteriaList

    if steer is not None and intervention is not None:
        raise ValueError("give either steer or intervention, not both")
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
    if handle.static_cache and handle.fast_generation and intervention is None:
        out = _static_generate(handle, inputs, kwargs, T + config.max_new_tokens, steer)
        seconds = time.perf_counter() - start
        if record_layer is not None:
            residuals = record_residuals(handle, out, T, len(ids), record_layer, steer)
    else:
        if steer is not None:
            intervention = steer.intervention(handle)
        out = _dynamic_generate(handle, inputs, kwargs, T, intervention, record_layer, residuals)
        seconds = time.perf_counter() - start
    new = out[0, T:].tolist()
    finished = any(t in stops for t in new)
    cancelled = kwargs["stopping_criteria"][0].event.is_set()
    return StreamResult(handle.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                        [handle.tokenizer.decode([t]) for t in ids], ids, residuals[: len(ids)],
                        first[0] if first else float("nan"), seconds, finished, cancelled)


def _dynamic_generate(handle: "ModelHandle", inputs: dict[str, torch.Tensor], kwargs: dict[str, Any], T: int,
                      intervention: InterventionFactory | None, record_layer: int | None,
                      residuals: list[torch.Tensor]) -> torch.Tensor:
    """``generate`` with a dynamic cache on the model :func:`generation_model` picks; records into ``residuals``."""
    context = intervention(T, [0]) if intervention is not None else nullcontext()
    record = lambda act, hook: residuals.append(act[0, -1].float().cpu())  # noqa: E731
    with context as state:
        model = generation_model(handle, state, intervened=intervention is not None)
        if record_layer is None:
            recording = nullcontext()
        elif model is handle.hf_model:
            recording = attach_hooks(handle, [(f"blocks.{record_layer}.hook_resid_post", record)])
        else:
            recording = attach_plain_hooks(handle, "resid_post", {record_layer: record})
        with recording:
            return model.generate(**inputs, **kwargs)


def _static_generate(handle: "ModelHandle", inputs: dict[str, torch.Tensor], kwargs: dict[str, Any], length: int,
                     steer: "ResidualSteer | None") -> torch.Tensor:
    """``generate`` on the unwrapped model with the handle's static cache and steering slots loaded with ``steer``."""
    from .unwrapped import unwrapped_model

    slots = steering_slots(handle)
    slots.load(steer)
    try:
        return unwrapped_model(handle).generate(**inputs, past_key_values=static_cache(handle, length), **kwargs)
    finally:
        slots.load(None)
