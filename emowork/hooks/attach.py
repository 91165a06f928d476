"""Attaching functions to TransformerBridge hook points by name — the one way hooks go onto the bridge."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..errors import SiteError

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

BridgeHook = Callable[[Any, Any], Any]  # TransformerLens signature: fn(activation, hook) -> activation | None


@contextmanager
def attach_hooks(handle: "ModelHandle", hooks: Sequence[tuple[str, BridgeHook]]) -> Iterator[None]:
    """Attach ``fn(act, hook) -> act | None`` to bridge hook points by name for the duration of the context; removed
    on exit even after an error.

    Cheaper than ``bridge.hooks()`` (which rebuilds the alias table on every call), so it suits loops that run
    thousands of short forward passes. Raises :class:`~emowork.errors.SiteError` for an unknown hook name.
    """
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


class StopForward(Exception):
    """Raised from a hook once everything a pass was run for has been read: the rest of the forward is skipped."""
