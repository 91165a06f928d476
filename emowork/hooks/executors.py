"""Executors: apply a list of :class:`~emowork.hooks.intervention.Intervention` on one backend, and the one rule that
chooses the backend.

=========  =================================================  ==========================================================
backend    where the edits go                                 supports
=========  =================================================  ==========================================================
bridge     TransformerBridge hook points (``SITE_HOOKS``);     every site and operation; reads every hook point
           the wrapped Hugging Face model runs
unwrapped  plain forward hooks on the unwrapped model          every site and operation where the module is found: the
           (:mod:`emowork.model.unwrapped`): decoder layer in/out,   decoder layer, attention and MLP modules, the MLP's
           attention and MLP outputs, the MLP down-projection  down-projection (input = ``mlp_post``) and the attention
           input (neurons), the attention output-projection    output projection (input = ``z``) as ``nn.Linear`` of the
           input (heads' z)                                    site's width; else it says why
static     fixed "slots" on the unwrapped model's decoder      ``add`` in RMS units at ``resid_post``, all at ``last_prompt`` or all
           layers, filled in place, so a compiled decoding      at ``from_last_prompt``, every row, at most one per layer
           step with a static KV cache never re-traces
=========  =================================================  ==========================================================

:func:`choose_backend` is the only place that picks one: ``static`` for a streamed batch-1 reply when
``handle.static_cache`` and ``handle.use_unwrapped`` are on and the static slots support every intervention; else ``unwrapped`` when
``handle.use_unwrapped`` is on and the unwrapped model supports every intervention; else ``bridge``. Analyses that
read bridge hook points (capture, attribution) ask for ``bridge`` explicitly. The bridge and unwrapped executors apply the
same affine map (:func:`apply_prepared`; the static slots the equivalent addition) at the positions :func:`~emowork.hooks.intervention.position_mask` selects, so the
backends agree to the last bit of their arithmetic (the tests compare logits and greedy text on every backend).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import torch

from ..errors import SiteError
from .sites import SITE_HOOKS
from .attach import attach_hooks
from .intervention import Intervention, When, check_all, position_mask
from .positions import PositionTracker

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

Backend = Literal["bridge", "unwrapped", "static"]
BACKENDS: tuple[str, ...] = ("bridge", "unwrapped", "static")
Reader = Callable[[torch.Tensor], None]  # receives the activation [batch, seq, width] of the pass


def residual_rms(act: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension, kept as ``[..., 1]`` in ``act``'s dtype (computed in float32)."""
    return act.float().pow(2).mean(-1, keepdim=True).sqrt().to(act.dtype)


@dataclass
class PreparedEdit:
    """One intervention as tensors on the model's input device: ``gain``/``bias`` ``[width]`` or ``[rows, width]``."""

    gain: torch.Tensor
    bias: torch.Tensor
    adds_only: bool
    rms_units: bool
    when: When
    rows: tuple[int, ...] | None
    _full: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # per batch size and device

    def for_batch(self, batch: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gain, bias)`` shaped ``[width]`` or ``[batch, width]`` for a batch of ``batch`` rows, on ``device`` (default:
        where they were compiled; a split model hands a block's input over from the previous block's device), built
        once per size and device."""
        device = self.gain.device if device is None else device
        if (batch, device) in self._full:
            return self._full[(batch, device)]
        gain, bias = self.gain.to(device), self.bias.to(device)
        if self.rows is None:
            if gain.dim() == 2 and gain.shape[0] not in (1, batch) or bias.dim() == 2 and bias.shape[0] not in (1, batch):
                raise ValueError(f"a per-row value has {max(gain.shape[0], bias.shape[0])} rows for a batch of {batch}.")
            if device != self.gain.device:
                self._full[(batch, device)] = (gain, bias)
            return gain, bias
        if max(self.rows) >= batch:
            raise ValueError(f"rows {list(self.rows)} do not exist in a batch of {batch}.")
        width = gain.shape[-1]
        full_gain = torch.ones(batch, width, device=gain.device, dtype=gain.dtype)
        full_bias = torch.zeros(batch, width, device=bias.device, dtype=bias.dtype)
        index = torch.tensor(self.rows, dtype=torch.long, device=gain.device)
        full_gain[index] = gain if gain.dim() == 2 else gain.expand(len(self.rows), width)
        full_bias[index] = bias if bias.dim() == 2 else bias.expand(len(self.rows), width)
        self._full[(batch, device)] = (full_gain, full_bias)
        return full_gain, full_bias


Prepared = dict[tuple[str, int], list[PreparedEdit]]


def prepare(handle: "ModelHandle", interventions: Sequence[Intervention]) -> Prepared:
    """Check ``interventions`` against the model and turn them into tensors on the model's input device (on a model
    split over devices, :meth:`PreparedEdit.for_batch` copies them once to the device each activation arrives on),
    grouped by ``(site, layer)`` in order."""
    prepared: Prepared = {}
    for item in check_all(interventions, handle.facts):
        gain, bias = item.affine(handle.facts, handle.device, handle.dtype)
        prepared.setdefault((item.site, item.layer), []).append(
            PreparedEdit(gain, bias, item.op == "add", item.rms_units, item.when, item.rows))
    return prepared


def apply_prepared(act: torch.Tensor, edits: Sequence[PreparedEdit], positions: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """``act`` ``[batch, seq, width]`` with ``edits`` applied, in order, at the positions of this pass they select.

    ``positions`` ``[seq]`` are the pass's absolute positions (CPU); untouched positions keep their exact values.
    """
    for edit in edits:
        chosen = position_mask(positions, prompt_length, edit.when)
        if not bool(chosen.any()):
            continue
        at = chosen.to(act.device)[None, :, None]  # [1, seq, 1] bool
        gain, bias = edit.for_batch(act.shape[0], act.device)
        gain = gain if gain.dim() == 1 else gain[:, None, :]
        bias = bias if bias.dim() == 1 else bias[:, None, :]
        if edit.rms_units:
            bias = bias * residual_rms(act)
        act = torch.where(at, act + bias if edit.adds_only else act * gain + bias, act)
    return act


# ---------------------------------------------------------------------------------------------------------- bridge
class BridgeExecutor:
    """Edits through TransformerBridge hook points; runs the wrapped model (:attr:`model`)."""

    name = "bridge"

    def __init__(self, handle: "ModelHandle") -> None:
        self.handle = handle
        self.model = handle.hf_model
        self.stack = handle.hf_model.base_model

    def unsupported(self, item: Intervention) -> str | None:
        """Why this backend cannot apply ``item`` (None: it can)."""
        return None

    def _hook(self, site: str, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Callable[[torch.Tensor, Any], Any]:
        def hook(act: torch.Tensor, hook: Any) -> Any:
            if site == "z":  # [batch, seq, heads, d_head] <-> [batch, seq, heads * d_head]
                new = fn(act.reshape(*act.shape[:2], -1))
                return None if new is None else new.reshape(act.shape)
            return fn(act)
        return hook

    @contextmanager
    def attach(self, prepared: Prepared, tracker: PositionTracker, prompt_length: int) -> Iterator[None]:
        hooks = [(SITE_HOOKS[site].format(layer=layer),
                  self._hook(site, lambda act, _e=edits: apply_prepared(act, _e, tracker.positions(), prompt_length)))
                 for (site, layer), edits in prepared.items()]
        with attach_hooks(self.handle, hooks):
            yield

    @contextmanager
    def reading(self, site: str, layer: int, reader: Reader) -> Iterator[None]:
        """Call ``reader(act)`` with the activation ``[batch, seq, width]`` of ``site`` at ``layer`` on every pass."""
        def fn(act: torch.Tensor) -> None:
            reader(act)
        with attach_hooks(self.handle, [(SITE_HOOKS[site].format(layer=layer), self._hook(site, fn))]):
            yield


# ---------------------------------------------------------------------------------------------------------- unwrapped
class UnwrappedExecutor:
    """Edits through plain forward hooks on the unwrapped model's modules; runs the unwrapped model."""

    name = "unwrapped"

    def __init__(self, handle: "ModelHandle") -> None:
        from ..model.unwrapped import unwrapped_model

        self.handle = handle
        self.model = unwrapped_model(handle)
        self.stack = self.model.base_model

    def unsupported(self, item: Intervention) -> str | None:
        from ..model.unwrapped import site_module

        try:
            site_module(self.handle, item.site, item.layer)
        except SiteError as error:
            return str(error)
        return None

    @contextmanager
    def _hooked(self, site: str, layer: int, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        from ..model.unwrapped import site_module

        module, side = site_module(self.handle, site, layer)
        if side == "output":
            def after(mod: torch.nn.Module, args: tuple, output: Any) -> Any:
                hidden = output[0] if isinstance(output, tuple) else output
                new = fn(hidden)
                if new is None or new is hidden:
                    return None
                return (new, *output[1:]) if isinstance(output, tuple) else new
            hook = module.register_forward_hook(after)
        else:
            def before(mod: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
                if args:
                    new = fn(args[0])
                    return None if new is None or new is args[0] else ((new, *args[1:]), kwargs)
                new = fn(kwargs["hidden_states"])
                return None if new is None else (args, {**kwargs, "hidden_states": new})
            hook = module.register_forward_pre_hook(before, with_kwargs=True)
        try:
            yield
        finally:
            hook.remove()

    @contextmanager
    def attach(self, prepared: Prepared, tracker: PositionTracker, prompt_length: int) -> Iterator[None]:
        with ExitStack() as stack:
            for (site, layer), edits in prepared.items():
                stack.enter_context(self._hooked(site, layer, lambda act, _e=edits: apply_prepared(act, _e, tracker.positions(), prompt_length)))
            yield

    @contextmanager
    def reading(self, site: str, layer: int, reader: Reader) -> Iterator[None]:
        """Call ``reader(act)`` with the activation ``[batch, seq, width]`` of ``site`` at ``layer`` on every pass."""
        def fn(act: torch.Tensor) -> None:
            reader(act)
        with self._hooked(site, layer, fn):
            yield


# ---------------------------------------------------------------------------------------------------------- static
class StaticSlots:
    """Persistent steering slots on every decoder layer of the unwrapped model, for decoding with a static KV cache.

    A compiled decoding step cannot run Python that reads tensor values, nor can its hooks change between calls
    without re-tracing; so every layer's output hook is attached once, for the handle's lifetime, and adds
    ``rms(h) * vectors[L]`` (steering in RMS units, the only addition the slots hold): during the prefill pass at its last position
    (the last prompt token: the static path decodes one unpadded prompt), and during each decoded token when
    ``every_token`` is 1. The prefill pass is recognised by a flag that :meth:`load` sets and the first pass clears (not
    by its length, which is also 1 for a one-token prompt). Loading copies values in place; all-zero slots change
    nothing.
    """

    def __init__(self, handle: "ModelHandle") -> None:
        from ..model.unwrapped import decoder_layer, unwrapped_model

        f = handle.facts
        devices = [handle.layer_device(layer) for layer in range(f.n_layers)]  # each layer's slot on its own device
        self.vectors = [torch.zeros(f.d_model, device=d, dtype=handle.dtype) for d in devices]  # L x [D]
        self.every_token = [torch.zeros((), device=d, dtype=handle.dtype) for d in devices]
        self.pending_prefill = False
        self._handles = [decoder_layer(handle, layer).register_forward_hook(self._hook(layer)) for layer in range(f.n_layers)]
        self._handles.append(unwrapped_model(handle).base_model.register_forward_hook(self._pass_done))

    def _pass_done(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        self.pending_prefill = False

    def _hook(self, layer: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output  # [batch, seq, d_model]
            if self.pending_prefill:  # the last prompt token only
                last = hidden[:, -1:]
                new = torch.cat([hidden[:, :-1], last + residual_rms(last) * self.vectors[layer]], dim=1)
            else:  # one decoded token
                new = hidden + self.every_token[layer] * residual_rms(hidden) * self.vectors[layer]
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return hook

    @staticmethod
    def unsupported(item: Intervention) -> str | None:
        """Why the slots cannot hold ``item`` (None: they can)."""
        if item.site != "resid_post" or item.op != "add" or not item.rms_units:
            return f"the static slots only add to resid_post in RMS units (not {item.op} at {item.site})"
        if item.when not in ("last_prompt", "from_last_prompt"):
            return f"the static slots apply at last_prompt or from_last_prompt, not {item.when!r}"
        if item.rows is not None or isinstance(item.value, torch.Tensor) and item.value.dim() == 2:
            return "the static slots decode one reply: no per-row values"
        return None

    def load(self, interventions: Sequence[Intervention]) -> None:
        """Fill the slots with ``interventions`` (empty: all zero), in place; the next pass is the prefill."""
        for vector, flag in zip(self.vectors, self.every_token):
            vector.zero_()
            flag.zero_()
        self.pending_prefill = True
        layers = [item.layer for item in interventions]
        whens = {item.when for item in interventions}
        if len(set(layers)) != len(layers) or len(whens) > 1:
            raise ValueError("the static slots hold one addition per layer, all with the same position rule")
        for item in interventions:
            reason = self.unsupported(item)
            if reason:
                raise ValueError(reason)
            slot = self.vectors[item.layer]
            slot.copy_(torch.as_tensor(item.value).to(slot.device, slot.dtype))
        if whens == {"from_last_prompt"}:
            for flag in self.every_token:
                flag.fill_(1.0)

    def remove(self) -> None:
        """Detach the hooks (the handle then needs new slots for static decoding)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def static_slots(handle: "ModelHandle") -> StaticSlots:
    """The handle's :class:`StaticSlots`, created (and hooked in) on first use."""
    if handle.caches.static_slots is None:
        handle.caches.static_slots = StaticSlots(handle)
    return handle.caches.static_slots


class StaticExecutor(UnwrappedExecutor):
    """Edits through the handle's :class:`StaticSlots`; runs the unwrapped model (with a static cache)."""

    name = "static"

    def unsupported(self, item: Intervention) -> str | None:
        return StaticSlots.unsupported(item)


# ---------------------------------------------------------------------------------------------------------- the rule
EXECUTORS = {"bridge": BridgeExecutor, "unwrapped": UnwrappedExecutor, "static": StaticExecutor}


def choose_backend(handle: "ModelHandle", interventions: Sequence[Intervention] = (), streaming: bool = False) -> str:
    """The backend a generation runs on (the module docstring's rule)."""
    items = list(interventions)
    if streaming and handle.static_cache and handle.use_unwrapped and not handle.split:
        layers = [i.layer for i in items]
        if all(StaticSlots.unsupported(i) is None for i in items) and len(set(layers)) == len(layers) and len({i.when for i in items}) <= 1:
            return "static"
    if handle.use_unwrapped:
        executor = UnwrappedExecutor(handle)
        if all(executor.unsupported(i) is None for i in items):
            return "unwrapped"
    return "bridge"


@dataclass
class Run:
    """What :func:`intervene` yields: the ``model`` to call (``forward`` or ``generate``), the ``backend`` name, and
    ``reading(site, layer, reader)`` to read a site during the run on the same backend."""

    backend: str
    model: torch.nn.Module
    executor: Any

    def reading(self, site: str, layer: int, reader: Reader) -> Any:
        return self.executor.reading(site, layer, reader)


@contextmanager
def intervene(handle: "ModelHandle", interventions: Sequence[Intervention], prompt_length: int,
              backend: str = "auto", streaming: bool = False) -> Iterator[Run]:
    """Context: while active, forward passes of ``run.model`` apply ``interventions`` (removed on exit).

    ``prompt_length`` is the padded prompt length ``T`` of the batch (``input_ids.shape[1]`` at prefill), which
    ``last_prompt`` and the other position rules refer to. ``backend="auto"`` asks :func:`choose_backend`; a named
    backend that cannot apply an intervention raises a :class:`~emowork.errors.SiteError` saying why. Works for a
    single forward, a cached prefill + decode loop, and ``generate``.
    """
    items = check_all(interventions, handle.facts)
    name = choose_backend(handle, items, streaming) if backend == "auto" else backend
    if name not in EXECUTORS:
        raise ValueError(f"backend={backend!r}: use 'auto' or one of {', '.join(BACKENDS)}.")
    executor = EXECUTORS[name](handle)
    for item in items:
        reason = executor.unsupported(item)
        if reason:
            raise SiteError(f"the {name} backend cannot apply {item.op} at {item.site} of layer {item.layer}: {reason}")
    if name == "static":
        slots = static_slots(handle)
        slots.load(items)
        try:
            yield Run(name, executor.model, executor)
        finally:
            slots.load(())
            slots.pending_prefill = False
        return
    prepared = prepare(handle, items)
    with PositionTracker(executor.stack) as tracker, executor.attach(prepared, tracker, prompt_length):
        yield Run(name, executor.model, executor)
