"""Interventions on the residual stream that stay correct with a KV cache.

During generation with a KV cache each forward pass computes only the new tokens, so "the last prompt
token" is index ``T-1`` in the first (prefill) pass and absent afterwards. :class:`PositionTracker` reads,
before every pass of the decoder stack, how many tokens the cache already holds, which gives the absolute
(left-padded) positions the pass computes. :func:`add_to_residual` uses it to add vectors at the chosen
absolute positions through TransformerBridge hook points, which fire whether the forward is the bridge's
or the wrapped Hugging Face model's own (``hf_model.generate``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Literal

import torch

from .sites import SITE_HOOKS

if TYPE_CHECKING:  # pragma: no cover
    from .handle import ModelHandle

PositionMode = Literal["last_prompt", "from_last_prompt", "all"]


@contextmanager
def attach_hooks(handle: "ModelHandle", hooks: list[tuple[str, Any]]) -> Iterator[None]:
    """Attach TransformerLens-style hooks ``fn(act, hook) -> act | None`` to bridge hook points by name, for the
    duration of the context; removed on exit even after an error.

    Cheaper than ``bridge.hooks()`` (which rebuilds the alias table on every call), so it suits loops that run
    thousands of short forward passes. Raises :class:`~emowork.errors.SiteError` for an unknown hook name.
    """
    from .errors import SiteError

    table = handle.bridge.hook_dict
    handles = []
    try:
        for name, fn in hooks:
            point = table.get(name)
            if point is None:
                raise SiteError(f"No hook point named {name!r} on this model (e.g. blocks.0.hook_resid_post).")
            handles.append(point.add_hook(fn, dir="fwd"))
        yield
    finally:
        for lens in handles:
            lens.hook.remove()
WRITABLE_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out")


class PositionTracker:
    """Tracks the absolute positions computed by each forward pass of a model's decoder stack.

    Use as a context manager; inside it ``positions(device)`` returns ``[seq]`` absolute indices of the
    current pass (``offset .. offset + seq - 1``, where ``offset`` is the KV cache length before the pass).
    """

    def __init__(self, handle: "ModelHandle") -> None:
        self.module = handle.base_model()
        self.offset = 0
        self.length = 0
        self._handle: Any = None

    def __enter__(self) -> "PositionTracker":
        self._handle = self.module.register_forward_pre_hook(self._before, with_kwargs=True)
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

    def positions(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Absolute positions ``[seq]`` of the pass in progress."""
        return torch.arange(self.offset, self.offset + self.length, device=device)


def position_mask(absolute: torch.Tensor, prompt_length: int, mode: PositionMode) -> torch.Tensor:
    """Boolean ``[seq]``: which absolute positions an intervention touches.

    ``last_prompt``: only ``prompt_length - 1`` (the paper's setting, once at prefill);
    ``from_last_prompt``: the last prompt token and every generated token; ``all``: every position.
    """
    if mode == "last_prompt":
        return absolute == prompt_length - 1
    if mode == "from_last_prompt":
        return absolute >= prompt_length - 1
    if mode == "all":
        return torch.ones_like(absolute, dtype=torch.bool)
    raise ValueError(f"Unknown position mode {mode!r}: use 'last_prompt', 'from_last_prompt' or 'all'.")


@contextmanager
def add_to_residual(
    handle: "ModelHandle",
    vectors: dict[int, torch.Tensor],
    prompt_length: int,
    mode: PositionMode = "last_prompt",
    site: str = "resid_post",
    relative: bool = False,
) -> Iterator[PositionTracker]:
    """Add ``vectors[layer]`` (``[d_model]``, or ``[batch, d_model]`` per row) at ``site`` of each layer.

    ``prompt_length`` is the padded prompt length ``T`` of the batch (``input_ids.shape[1]`` at prefill).
    With ``relative`` the vector is multiplied by the RMS of the activation it is added to (per row and position),
    so ``alpha * v`` with unit ``v`` adds ``alpha * rms(h) * v`` (METHOD.md's steering). Works for a single full
    forward, a cached prefill + decode loop, and ``hf_model.generate``. Yields the position tracker. Sites:
    ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` (added into the residual).
    """
    if site not in WRITABLE_SITES:
        raise ValueError(f"Cannot add to site {site!r}: use one of {', '.join(WRITABLE_SITES)} (resid_mid is read-only).")
    tracker = PositionTracker(handle)
    hooks = []
    for layer, vector in vectors.items():
        vec = vector.to(handle.device, handle.dtype)
        hooks.append((SITE_HOOKS[site].format(layer=layer), _adder(vec, tracker, prompt_length, mode, relative)))
    with tracker, attach_hooks(handle, hooks):
        yield tracker


def _adder(vector: torch.Tensor, tracker: PositionTracker, prompt_length: int, mode: PositionMode, relative: bool) -> Any:
    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        mask = position_mask(tracker.positions(), prompt_length, mode)  # on the CPU: no device sync
        if not bool(mask.any()):
            return act
        shaped = vector if vector.dim() == 1 else vector[:, None, :]
        if relative:
            shaped = shaped * act.float().pow(2).mean(-1, keepdim=True).sqrt().to(act.dtype)
        return act + mask.to(act.device, act.dtype)[None, :, None] * shaped
    return hook
