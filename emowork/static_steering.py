"""Steered batch-1 decoding with a static KV cache, so that transformers can compile the decoding step (GPUs).

With a dynamic cache every decoding step is a Python walk over the model; at batch 1 on a GPU that overhead, not the
arithmetic, sets the speed. A static cache of fixed size lets ``generate`` compile the decoding step (CUDA graphs),
which notes outside this repository report at ~4x on an H200 (not measured here). A compiled step cannot run Python that reads tensor
values, nor can its hooks change between calls without a recompilation, so steering here is built differently from
:func:`emowork.interventions.add_to_residual`:

- :class:`ResidualSteer` describes the steering (vectors per layer, position mode) instead of being a context;
- :class:`SteeringSlots` attaches one forward hook to every decoder layer of the unwrapped model, once, for the
  handle's lifetime. Each hook adds ``rms(h) * slot[L]``: at the last position of the prefill pass (the last prompt
  token) and, when ``every_token`` is 1, at each decoded token. Loading a steer copies its vectors into the slots in
  place, so the compiled step sees them without recompiling; all-zero slots leave the model unchanged;
- one :class:`~transformers.StaticCache` per handle is reused across calls (reset each time), sized in steps of
  :data:`CACHE_STEP` tokens, so its shape and address stay the same.

The per-token gauge cannot be recorded inside a compiled step; :func:`record_residuals` recomputes it afterwards
with one teacher-forced forward pass over the reply (the same values, as the model is causal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .interventions import PositionMode, add_to_residual, attach_plain_hooks, residual_rms

if TYPE_CHECKING:  # pragma: no cover
    from .generate import InterventionFactory
    from .handle import ModelHandle

CACHE_STEP = 512
STATIC_MODES = ("last_prompt", "from_last_prompt")


@dataclass(frozen=True)
class ResidualSteer:
    """Add ``rms(h) * vectors[L]`` (``[d_model]``: alpha times a unit direction) to resid_post of each layer L, at the
    last prompt token (``last_prompt``) or there and at every generated token (``from_last_prompt``)."""

    vectors: dict[int, torch.Tensor]
    mode: PositionMode = "last_prompt"

    def __post_init__(self) -> None:
        if self.mode not in ("last_prompt", "from_last_prompt"):
            raise ValueError(f"mode={self.mode!r}: residual steering is 'last_prompt' or 'from_last_prompt'.")
        for layer, vector in self.vectors.items():
            if not bool(torch.isfinite(vector).all()):
                raise ValueError(f"the steering vector for layer {layer} holds NaN or infinite values "
                                 "(a NaN or infinite strength?); use finite numbers.")

    def intervention(self, handle: "ModelHandle") -> "InterventionFactory":
        """The same steering as a dynamic-cache intervention for :func:`emowork.generate.generate`."""
        return lambda T, indices: add_to_residual(handle, self.vectors, T, mode=self.mode, site="resid_post", relative=True)


class SteeringSlots:
    """Persistent, tensor-driven steering hooks on every decoder layer of the handle's unwrapped model."""

    def __init__(self, handle: "ModelHandle") -> None:
        from .unwrapped import decoder_layer

        f = handle.facts
        self.vectors = torch.zeros(f.n_layers, f.d_model, device=handle.device, dtype=handle.dtype)  # [L, D]
        self.every_token = torch.zeros((), device=handle.device, dtype=handle.dtype)
        self._handles = [decoder_layer(handle, layer).register_forward_hook(self._hook(layer)) for layer in range(f.n_layers)]

    def _hook(self, layer: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output  # [batch, seq, d_model]
            vector = self.vectors[layer]
            if hidden.shape[1] > 1:  # prefill: the last prompt token only
                last = hidden[:, -1:]
                new = torch.cat([hidden[:, :-1], last + residual_rms(last) * vector], dim=1)
            else:  # one decoded token
                new = hidden + self.every_token * residual_rms(hidden) * vector
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return hook

    def load(self, steer: ResidualSteer | None) -> None:
        """Set the slots to ``steer`` (None: all zero), in place."""
        self.vectors.zero_()
        self.every_token.zero_()
        if steer is None:
            return
        if steer.mode not in STATIC_MODES:
            raise ValueError(f"static-cache steering supports the modes {STATIC_MODES}, not {steer.mode!r}")
        for layer, vector in steer.vectors.items():
            self.vectors[layer].copy_(vector.to(self.vectors.device, self.vectors.dtype))
        if steer.mode == "from_last_prompt":
            self.every_token.fill_(1.0)

    def remove(self) -> None:
        """Detach the hooks (the handle then needs new slots for static decoding)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def steering_slots(handle: "ModelHandle") -> SteeringSlots:
    """The handle's :class:`SteeringSlots`, created (and hooked in) on first use."""
    slots = getattr(handle, "_steering_slots", None)
    if slots is None:
        slots = SteeringSlots(handle)
        handle._steering_slots = slots
    return slots


def static_cache(handle: "ModelHandle", length: int) -> Any:
    """A reset :class:`~transformers.StaticCache` for batch 1 holding at least ``length`` tokens, reused across calls
    while it is large enough (its size is a multiple of :data:`CACHE_STEP`)."""
    from transformers import StaticCache

    from .unwrapped import unwrapped_model

    cache = getattr(handle, "_static_cache", None)
    if cache is None or handle._static_cache_len < length:
        size = -(-length // CACHE_STEP) * CACHE_STEP
        cache = StaticCache(config=unwrapped_model(handle).config, max_cache_len=size)
        handle._static_cache, handle._static_cache_len = cache, size
    else:
        cache.reset()
    return cache


@torch.inference_mode()
def record_residuals(handle: "ModelHandle", input_ids: torch.Tensor, prompt_length: int, n_new: int, layer: int,
                     steer: ResidualSteer | None) -> list[torch.Tensor]:
    """resid_post of ``layer`` at each position that produced one of the ``n_new`` generated tokens (positions
    ``T-1 .. T+n_new-2``), from one teacher-forced pass over ``input_ids`` ``[1, T + n_new]`` with ``steer`` applied as
    during generation. Returns ``n_new`` float32 CPU tensors ``[d_model]``."""
    from contextlib import nullcontext

    from .unwrapped import unwrapped_model

    if n_new == 0:
        return []
    ids = input_ids[:, : prompt_length + n_new - 1]
    seen: list[torch.Tensor] = []
    record = {layer: lambda act, hook: seen.append(act[0, prompt_length - 1:].float().cpu())}
    slots = getattr(handle, "_steering_slots", None)
    if slots is not None:
        slots.load(None)
    steering = (add_to_residual(handle, steer.vectors, prompt_length, mode=steer.mode, site="resid_post", relative=True)
                if steer is not None else nullcontext())
    with steering, attach_plain_hooks(handle, "resid_post", record):
        unwrapped_model(handle)(input_ids=ids, use_cache=False)
    return list(seen[0].unbind(0))
