"""Which absolute positions a forward pass computes, tracked one way for every dynamic backend.

During generation with a KV cache each pass computes only the new tokens, so "the last prompt token" is index
``T-1`` of the prefill pass and absent afterwards. :class:`PositionTracker` reads, before every pass of the decoder
stack, how many tokens the cache already holds: the pass computes absolute (left-padded) positions
``offset .. offset + length - 1``. The static-cache executor, whose decoding steps may be compiled, cannot run this
Python per step; it applies the same rule with a prefill flag instead (:mod:`emowork.hooks.executors`).
"""

from __future__ import annotations

from typing import Any

import torch


class PositionTracker:
    """Tracks the absolute positions of each forward pass of one decoder stack (a context manager)."""

    def __init__(self, stack: torch.nn.Module) -> None:
        self.stack = stack
        self.offset = 0
        self.length = 0
        self._handle: Any = None

    def __enter__(self) -> "PositionTracker":
        self._handle = self.stack.register_forward_pre_hook(self._before, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _before(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        tokens = kwargs.get("input_ids")
        if tokens is None:
            tokens = kwargs.get("inputs_embeds")
        if tokens is None and args:
            tokens = args[0]
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        if cache is None and len(args) > 1 and hasattr(args[1], "get_seq_length"):
            cache = args[1]
        self.offset = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
        self.length = int(tokens.shape[1])

    def positions(self) -> torch.Tensor:
        """Absolute positions ``[seq]`` (on the CPU, so no device sync) of the pass in progress."""
        return torch.arange(self.offset, self.offset + self.length)
