"""Ablation and enhancement of neurons and heads at the last prompt token, and their effect on a direction.

Editing components at the last token changes nothing at earlier positions, so the prompt minus its last token is
prefilled once into a KV cache and every variant runs only the last token through the model (exactly equal to a full
forward with the edit; the hook self-check tests the cache path). One variant costs one token per sample.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import torch

from ..interventions import attach_hooks

if TYPE_CHECKING:  # pragma: no cover
    from ..handle import ModelHandle

Kind = Literal["neuron", "head"]
Operation = Literal["ablate", "enhance"]


@dataclass(frozen=True)
class Edit:
    """Zero (``ablate``) or add ``delta`` to (``enhance``) the given neurons or heads of one layer."""

    kind: Kind
    layer: int
    indices: tuple[int, ...]
    operation: Operation
    delta: torch.Tensor | None = None  # enhance: [d_mlp] for neurons, [n_heads, d_head] for heads (full vector)

    def hook_name(self) -> str:
        return f"blocks.{self.layer}.mlp.hook_post" if self.kind == "neuron" else f"blocks.{self.layer}.attn.hook_z"

    def apply(self, act: torch.Tensor, positions: torch.Tensor | slice) -> torch.Tensor:
        """``act`` with the edit applied at ``positions`` (``[batch, seq, d_mlp]`` or ``[batch, seq, heads, d_head]``)."""
        act = act.clone()
        idx = torch.tensor(self.indices, dtype=torch.long, device=act.device)
        chosen = [positions] if isinstance(positions, slice) else [int(p) for p in positions.tolist()]
        for pos in chosen:
            view = act[:, pos]  # [batch, (seq,) units, ...]
            if self.operation == "ablate":
                view.index_fill_(view.dim() - (2 if self.kind == "head" else 1), idx, 0)
            else:
                if self.delta is None:
                    raise ValueError("enhance needs a delta (the emotion's mean difference vector)")
                dim = view.dim() - (2 if self.kind == "head" else 1)
                view.index_add_(dim, idx, self.delta.to(act.device, act.dtype).index_select(0, idx).expand_as(view.index_select(dim, idx)))
        return act


class _Done(Exception):
    """Raised once every requested activation has been read."""


def _rollback(cache: Any, n_tokens: int) -> None:
    """Drop the last ``n_tokens`` from a HF cache (``crop`` takes a negative count in recent transformers)."""
    try:
        cache.crop(-n_tokens)
    except (ValueError, TypeError):
        cache.crop(cache.get_seq_length() - n_tokens)


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
    def run(self, edits: Sequence[Edit], read: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the last token with ``edits``; returns ``{hook name: [batch, width]}`` float32 CPU for ``read`` hooks.

        The pass stops once every ``read`` hook has fired (no later layers, no unembedding).
        """
        seen: dict[str, torch.Tensor] = {}
        hooks: list[tuple[str, Callable]] = []
        for edit in edits:
            hooks.append((edit.hook_name(), lambda act, hook, _e=edit: _e.apply(act, slice(None))))

        def reader(act: torch.Tensor, hook: Any, _name: str) -> None:
            seen[_name] = act[:, -1].float().cpu().reshape(act.shape[0], -1)
            if len(seen) == len(read):
                raise _Done

        for name in read:
            hooks.append((name, lambda act, hook, _n=name: reader(act, hook, _n)))
        try:
            with attach_hooks(self.handle, hooks):
                self.handle.hf_model(input_ids=self.ids[:, -1:], attention_mask=self.mask, position_ids=self.positions[:, -1:],
                                     past_key_values=self.cache, use_cache=True)
        except _Done:
            pass
        finally:
            _rollback(self.cache, 1)
        return seen


@contextmanager
def edits_at_prompt_end(handle: "ModelHandle", edits: Sequence[Edit] | Sequence[Sequence[Edit]], prompt_length: int) -> Iterator[None]:
    """Apply edits at the last prompt token during generation (KV-cache safe, like steering).

    ``edits`` is one list for every row, or one list per batch row (rows edited differently in one batch).
    """
    from ..interventions import PositionTracker, position_mask

    tracker = PositionTracker(handle)
    per_row = bool(edits) and not isinstance(edits[0], Edit)
    rows: list[Sequence[Edit]] = list(edits) if per_row else []  # type: ignore[arg-type]
    shared: Sequence[Edit] = [] if per_row else edits  # type: ignore[assignment]
    names = sorted({e.hook_name() for row in (rows or [shared]) for e in row})

    def hook_for(name: str) -> Callable:
        def hook(act: torch.Tensor, hook: object) -> torch.Tensor:
            mask = position_mask(tracker.positions(), prompt_length, "last_prompt")
            if not bool(mask.any()):
                return act
            where = mask.nonzero()[:, 0].to(act.device)
            if not per_row:
                for edit in shared:
                    if edit.hook_name() == name:
                        act = edit.apply(act, where)
                return act
            act = act.clone()
            for i, row_edits in enumerate(rows):
                for edit in row_edits:
                    if edit.hook_name() == name:
                        act[i:i + 1] = edit.apply(act[i:i + 1], where)
            return act
        return hook

    with tracker, attach_hooks(handle, [(name, hook_for(name)) for name in names]):
        yield
