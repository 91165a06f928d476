"""Ablation and enhancement of neurons and heads at the last prompt token, and their effect on a direction.

An edit is an :class:`~emowork.hooks.intervention.Intervention` on ``mlp_post`` (neurons) or ``z`` (heads):
:func:`component_edit` builds it. Editing components at the last token changes nothing at earlier positions, so
:class:`LastTokenRunner` prefills the prompt minus its last token once into a KV cache and every variant runs only the
last token through the model (exactly equal to a full forward with the edit; the hook self-check tests the cache path).
One variant costs one token per sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import torch

from ..hooks.attach import StopForward, attach_hooks
from ..hooks.executors import intervene
from ..hooks.intervention import Intervention

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

Kind = Literal["neuron", "head"]
Operation = Literal["ablate", "enhance"]
KIND_SITES = {"neuron": "mlp_post", "head": "z"}


def component_edit(kind: Kind, layer: int, indices: Sequence[int], operation: Operation,
                   delta: torch.Tensor | None = None, rows: tuple[int, ...] | None = None,
                   when: Any = "last_prompt") -> Intervention:
    """Zero (``ablate``) or add ``delta`` to (``enhance``) the given neurons or heads of one layer.

    ``delta``: ``[d_mlp]`` for neurons, ``[n_heads, d_head]`` (or flat) for heads — the full vector; only the chosen
    units' entries are added. ``rows`` limits the edit to those batch rows.
    """
    if kind not in KIND_SITES:
        raise ValueError(f"kind={kind!r}: use 'neuron' or 'head'.")
    units = tuple(int(i) for i in indices)
    if operation == "ablate":
        return Intervention(KIND_SITES[kind], layer, "ablate", units=units, when=when, rows=rows)
    if operation != "enhance":
        raise ValueError(f"operation={operation!r}: use 'ablate' or 'enhance'.")
    if delta is None:
        raise ValueError("enhance needs a delta (the emotion's mean difference vector)")
    return Intervention(KIND_SITES[kind], layer, "add", delta.reshape(-1), units=units, when=when, rows=rows)


def _rollback(cache: Any, length: int) -> None:
    """Cut every layer of a HF cache back to its first ``length`` tokens. Layer by layer: a pass stopped early
    (:class:`~emowork.hooks.attach.StopForward`) grew only the layers it reached, and ``crop(-n)`` would cut ``n``
    tokens from every layer, real prompt tokens included."""
    for layer in cache.layers:
        extra = int(layer.get_seq_length()) - length
        if extra > 0:
            layer.crop(-extra)


class LastTokenRunner:
    """Prefills every prompt but its last token once; then runs the last token under any edits and reads sites."""

    def __init__(self, handle: "ModelHandle", prompts: Sequence[str]) -> None:
        self.handle = handle
        enc = handle.encode(list(prompts))
        self.ids, self.mask, self.positions = enc["input_ids"], enc["attention_mask"], enc["position_ids"]
        with torch.inference_mode():
            out = handle.hf_model(input_ids=self.ids[:, :-1], attention_mask=self.mask[:, :-1],
                                  position_ids=self.positions[:, :-1], use_cache=True)
        self.cache = out.past_key_values

    @torch.inference_mode()
    def run(self, edits: Sequence[Intervention], read: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the last token with ``edits`` (at ``last_prompt``); returns ``{hook name: [batch, width]}`` float32 CPU
        for the bridge hook names in ``read``. The pass stops once every ``read`` hook has fired."""
        seen: dict[str, torch.Tensor] = {}

        def reader(act: torch.Tensor, hook: Any, _name: str) -> None:
            seen[_name] = act[:, -1].float().cpu().reshape(act.shape[0], -1)
            if len(seen) == len(read):
                raise StopForward

        hooks = [(name, lambda act, hook, _n=name: reader(act, hook, _n)) for name in read]
        with intervene(self.handle, edits, int(self.ids.shape[1]), backend="bridge"), attach_hooks(self.handle, hooks):
            # entered before the pass, so a bad edit raises before the cache grows
            length = self.cache.get_seq_length()
            try:
                self.handle.hf_model(input_ids=self.ids[:, -1:], attention_mask=self.mask, position_ids=self.positions[:, -1:],
                                     past_key_values=self.cache, use_cache=True)
            except StopForward:
                pass
            finally:
                _rollback(self.cache, length)
        return seen
