"""Interventions on the residual stream that stay correct with a KV cache.

During generation with a KV cache each forward pass computes only the new tokens, so "the last prompt
token" is index ``T-1`` in the first (prefill) pass and absent afterwards. :class:`PositionTracker` reads,
before every pass of the decoder stack, how many tokens the cache already holds, which gives the absolute
(left-padded) positions the pass computes. :func:`add_to_residual` uses it to add vectors at the chosen
absolute positions through TransformerBridge hook points, which fire whether the forward is the bridge's
or the wrapped Hugging Face model's own (``hf_model.generate``), and, for the residual-stream sites, through plain
forward hooks on the unwrapped model (:mod:`emowork.unwrapped`) that fast generation runs.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
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

    def __init__(self, handle: "ModelHandle", unwrapped: bool = False) -> None:
        self.modules = [handle.base_model()]
        if unwrapped:
            from .unwrapped import base_model

            self.modules.append(base_model(handle))
        self.offset = 0
        self.length = 0
        self.plain_ready = False  # set by add_to_residual when the unwrapped model's hooks are attached too
        self._handles: list[Any] = []

    def __enter__(self) -> "PositionTracker":
        self._handles = [module.register_forward_pre_hook(self._before, with_kwargs=True) for module in self.modules]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

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
    so ``alpha * v`` with unit ``v`` adds ``alpha * rms(h) * v`` (the steering of docs/method.md section 5). Works for a single full
    forward, a cached prefill + decode loop, and ``hf_model.generate``. Yields the position tracker. Sites:
    ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` (added into the residual). For ``resid_pre`` and
    ``resid_post`` the same additions are hooked into the unwrapped model as well (``tracker.plain_ready`` is then
    True), so fast generation (:func:`emowork.generate.generation_model`) applies them too.
    """
    if site not in WRITABLE_SITES:
        raise ValueError(f"Cannot add to site {site!r}: use one of {', '.join(WRITABLE_SITES)} (resid_mid is read-only).")
    plain = site in PLAIN_SITES and handle.fast_generation
    tracker = PositionTracker(handle, unwrapped=plain)
    hooks = []
    adders = {}
    for layer, vector in vectors.items():
        vec = vector.to(handle.device, handle.dtype)
        adders[layer] = _adder(vec, tracker, prompt_length, mode, relative)
        hooks.append((SITE_HOOKS[site].format(layer=layer), adders[layer]))
    with tracker, attach_hooks(handle, hooks), attach_plain_hooks(handle, site, adders) if plain else nullcontext():
        tracker.plain_ready = plain
        yield tracker


PLAIN_SITES = ("resid_pre", "resid_post")


@contextmanager
def attach_plain_hooks(handle: "ModelHandle", site: str, hooks: dict[int, Any]) -> Iterator[None]:
    """Attach ``fn(act, hook) -> act | None`` (TransformerLens signature; ``hook`` is None) to the unwrapped model's
    decoder layers: ``resid_pre`` is a layer's input, ``resid_post`` its output. Removed on exit."""
    from .unwrapped import decoder_layer

    if site not in PLAIN_SITES:
        raise ValueError(f"the unwrapped model has hooks for {PLAIN_SITES} only, not {site!r}")
    handles = []
    try:
        for layer, fn in hooks.items():
            module = decoder_layer(handle, layer)
            if site == "resid_post":
                handles.append(module.register_forward_hook(_output_hook(fn)))
            else:
                handles.append(module.register_forward_pre_hook(_input_hook(fn), with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def _output_hook(fn: Any) -> Any:
    def hook(module: torch.nn.Module, args: tuple, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        new = fn(hidden, None)
        if new is None or new is hidden:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new
    return hook


def _input_hook(fn: Any) -> Any:
    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        if args:
            new = fn(args[0], None)
            return None if new is None or new is args[0] else ((new, *args[1:]), kwargs)
        new = fn(kwargs["hidden_states"], None)
        return None if new is None else (args, {**kwargs, "hidden_states": new})
    return hook


def residual_rms(act: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension, kept as ``[..., 1]`` in ``act``'s dtype (computed in float32)."""
    return act.float().pow(2).mean(-1, keepdim=True).sqrt().to(act.dtype)


def _adder(vector: torch.Tensor, tracker: PositionTracker, prompt_length: int, mode: PositionMode, relative: bool) -> Any:
    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        mask = position_mask(tracker.positions(), prompt_length, mode)  # on the CPU: no device sync
        if not bool(mask.any()):
            return act
        shaped = vector if vector.dim() == 1 else vector[:, None, :]
        if relative:
            shaped = shaped * residual_rms(act)
        return act + mask.to(act.device, act.dtype)[None, :, None] * shaped
    return hook
