"""Ablation and enhancement of neurons and heads at the last prompt token, and their effect on a direction.

An edit is an :class:`~emowork.hooks.intervention.Intervention` on ``mlp_post`` (neurons) or ``z`` (heads):
:func:`component_edit` builds it. Editing components at the last token changes nothing at earlier positions, so
:class:`LastTokenRunner` prefills the prompt minus its last token once into a KV cache and every variant runs only the
last token through the model (exactly equal to a full forward with the edit; the hook self-check tests the cache path).
One variant costs one token per sample, and :meth:`LastTokenRunner.run_many` stacks several variants into one pass
(a one-token pass over a few rows is bound by reading the weights, so more rows per pass cost little more;
``benchmarks/circuits.py`` measures the stacked path against one full forward per variant).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import torch

from ..hooks.attach import StopForward, attach_hooks
from ..hooks.executors import intervene
from ..hooks.intervention import Intervention

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

Kind = Literal["neuron", "head"]
Operation = Literal["ablate", "enhance"]
KIND_SITES = {"neuron": "mlp_post", "head": "z"}
ROWS_PER_PASS = {"cpu": 96, "cuda": 1024}  # rows of one stacked pass (run_many); other devices use the CPU value


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
        self._stacked: dict[int, Any] = {}  # copies of the cache with every row repeated n times (run_many)

    @property
    def n_prompts(self) -> int:
        return int(self.ids.shape[0])

    @torch.inference_mode()
    def run(self, edits: Sequence[Intervention], read: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the last token with ``edits`` (at ``last_prompt``); returns ``{hook name: [batch, width]}`` float32 CPU
        for the bridge hook names in ``read``. The pass stops once every ``read`` hook has fired."""
        return self._pass(self.cache, 1, edits, read)

    @torch.inference_mode()
    def run_many(self, variants: Sequence[Sequence[Intervention]], read: Sequence[str], rows_per_pass: int | None = None,
                 advance: Callable[[int], Any] | None = None) -> list[dict[str, torch.Tensor]]:
        """``[self.run(edits, read) for edits in variants]``, with several variants stacked into each pass.

        A pass holds ``n = rows_per_pass // n_prompts`` variants (at least one; default from :data:`ROWS_PER_PASS`):
        every prompt's row is repeated ``n`` times (row ``g * n + v`` is prompt ``g`` under variant ``v``) and each
        variant's edits are limited to its rows. Equal to one pass per variant up to float rounding (the batched
        matrix products sum in another order). ``advance(k)`` is called after each pass with its number of variants.
        """
        per_pass = max(1, (rows_per_pass or ROWS_PER_PASS.get(self.handle.device.type, ROWS_PER_PASS["cpu"])) // self.n_prompts)
        results: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(variants), per_pass):
            chunk = variants[start:start + per_pass]
            n = len(chunk)
            edits = [_on_copy(edit, v, n, self.n_prompts) for v, items in enumerate(chunk) for edit in items]
            seen = self._pass(self._repeated(n), n, edits, read)
            results += [{name: act.reshape(self.n_prompts, n, -1)[:, v] for name, act in seen.items()} for v in range(n)]
            if advance is not None:
                advance(n)
        return results

    def _repeated(self, n: int) -> Any:
        """The prefilled cache with every row repeated ``n`` times (kept for reuse; at most a few sizes occur)."""
        if n == 1:
            return self.cache
        if n not in self._stacked:
            stacked = copy.deepcopy(self.cache)
            stacked.batch_repeat_interleave(n)
            self._stacked[n] = stacked
        return self._stacked[n]

    def _pass(self, cache: Any, n: int, edits: Sequence[Intervention], read: Sequence[str]) -> dict[str, torch.Tensor]:
        """One last-token pass over ``cache`` (every prompt's row repeated ``n`` times), rolled back afterwards."""
        seen: dict[str, torch.Tensor] = {}

        def reader(act: torch.Tensor, hook: Any, _name: str) -> None:
            seen[_name] = act[:, -1].float().cpu().reshape(act.shape[0], -1)
            if len(seen) == len(read):
                raise StopForward

        hooks = [(name, lambda act, hook, _n=name: reader(act, hook, _n)) for name in read]
        ids, mask, positions = (t.repeat_interleave(n, dim=0) if n > 1 else t
                                for t in (self.ids[:, -1:], self.mask, self.positions[:, -1:]))
        with intervene(self.handle, edits, int(self.ids.shape[1]), backend="bridge"), attach_hooks(self.handle, hooks):
            # entered before the pass, so a bad edit raises before the cache grows
            length = cache.get_seq_length()
            try:
                self.handle.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
            except StopForward:
                pass
            finally:
                _rollback(cache, length)
        return seen


def _on_copy(edit: Intervention, copy_index: int, copies: int, n_prompts: int) -> Intervention:
    """``edit`` moved to copy ``copy_index`` of a batch whose ``n_prompts`` rows are each repeated ``copies`` times."""
    if copies == 1:
        return edit
    rows = edit.rows if edit.rows is not None else range(n_prompts)
    return dataclasses.replace(edit, rows=tuple(r * copies + copy_index for r in rows))
