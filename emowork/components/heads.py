"""Attention-head importance for the emotion directions (docs/method.md section 4), computed without a forward pass per head.

``masked`` (the paper's definition): s = <LN2_L(resid_mid_L), v_attn[e, L]>, the state after the MLP-input norm of
layer L; importance(L, h) = s - s with head h's slice of hook_z zeroed. Zeroing z_h changes layer L's last-token
resid_mid by exactly -z_h W_O[h] and nothing else that is read at layer L, so every head's masked state is
LN2(resid_mid - z_h W_O[h]): one forward pass gives all heads exactly (the norm is applied to n_heads variants).

``linear``: the variant read at resid_mid, where the effect is linear: importance = <z_h W_O[h], v_attn[e, L]>.

:func:`head_importance_masking_loop` is the explicit reference: one forward per (sample, layer, head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import torch

from ..hooks.attach import StopForward, attach_hooks
from ..hooks.sites import SITE_HOOKS

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..model.handle import ModelHandle
    from .activation_samples import ComponentSamples


@dataclass
class HeadImportance:
    """Importance of every head: ``per_sample`` ``[G, E, L, n_heads]``, ``mean`` ``[E, L, n_heads]``."""

    emotions: list[str]
    method: str
    per_sample: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.per_sample.mean(0)

    def top(self, emotion: str, layer: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(head indices, mean importance)`` of the ``k`` most important heads of ``layer`` for ``emotion``."""
        values, indices = self.mean[self.emotions.index(emotion), layer].topk(k)
        return indices, values


def ln2_module(handle: "ModelHandle", layer: int) -> torch.nn.Module:
    """The MLP-input norm of ``layer`` as the model's own module (no hooks)."""
    norm = handle.bridge.blocks[layer].ln2
    return getattr(norm, "original_component", norm)


@torch.inference_mode()
def head_importance(handle: "ModelHandle", directions: "EmotionDirections", samples: "ComponentSamples",
                    method: Literal["masked", "linear"] = "masked", site: str = "attn") -> HeadImportance:
    """Importance of every head of every layer for every emotion's samples; see the module doc. Returns float32 CPU."""
    f = handle.facts
    z = samples.z_heads(f.n_heads)  # [G, E, L, H, dh]
    G, E, L = z.shape[:3]
    V = directions.directions[site][[directions.emotions.index(e) for e in samples.emotions]]  # [E, L, D]
    out = torch.empty(G, E, L, f.n_heads)
    for layer in range(L):
        W_O = handle.W_O(layer).detach().float().cpu()  # [H, dh, D]
        writes = torch.einsum("gehk,hkd->gehd", z[:, :, layer], W_O)  # [G, E, H, D]: each head's write
        v = V[:, layer]  # [E, D]
        if method == "linear":
            out[:, :, layer] = torch.einsum("gehd,ed->geh", writes, v)
            continue
        if method != "masked":
            raise ValueError("method must be 'masked' or 'linear'")
        mid = samples.acts["resid_mid"][:, :, layer]  # [G, E, D]
        variants = torch.cat([mid.unsqueeze(2), mid.unsqueeze(2) - writes], dim=2)  # [G, E, 1 + H, D]
        norm = ln2_module(handle, layer)
        param = next(norm.parameters(), None)
        dtype = param.dtype if param is not None else handle.dtype
        normed = norm(variants.to(param.device if param is not None else handle.layer_device(layer), dtype)).float().cpu()
        s = torch.einsum("gend,ed->gen", normed, v)
        out[:, :, layer] = s[:, :, :1] - s[:, :, 1:]
    return HeadImportance(list(samples.emotions), method, out)


@torch.inference_mode()
def masking_loop_tolerance(dtype: torch.dtype) -> float:
    """The largest relative gap allowed between :func:`head_importance` and :func:`head_importance_masking_loop`:
    1e-3 in float32; 5e-2 in half precision, where every masked pass rounds on its own."""
    return 1e-3 if dtype == torch.float32 else 5e-2


def head_importance_masking_loop(handle: "ModelHandle", directions: "EmotionDirections", prompts: Sequence[str],
                                 emotion: str, layers: Sequence[int], method: Literal["masked", "linear"] = "masked",
                                 site: str = "attn") -> torch.Tensor:
    """Reference: one forward pass per (prompt, layer, head) with that head's hook_z zeroed. Returns ``[N, len(layers), H]``.

    ``masked`` reads the last token after the MLP-input norm (``blocks.L.ln2.hook_out``), ``linear`` at resid_mid.
    Hooks are registered once per layer and each pass stops after layer L, so the loop pays for its forwards, not
    for hook bookkeeping: a fair baseline for the closed form.
    """
    f = handle.facts
    e = directions.emotions.index(emotion)
    read = SITE_HOOKS["mlp_in" if method == "masked" else "resid_mid"]
    out = torch.empty(len(prompts), len(layers), f.n_heads)
    state: dict[str, object] = {}

    def zero(act: torch.Tensor, hook: object) -> torch.Tensor:
        head = state["mask"]
        if head is None:
            return act
        act = act.clone()
        act[:, :, head] = 0
        return act

    def reader(act: torch.Tensor, hook: object) -> None:
        state["s"] = float(act[0, -1].float() @ state["v"])  # type: ignore[operator]
        raise StopForward

    for j, layer in enumerate(layers):
        state["v"] = directions.directions[site][e, layer].to(handle.layer_device(layer)).float()
        hooks = [(SITE_HOOKS["z"].format(layer=layer), zero), (read.format(layer=layer), reader)]
        with attach_hooks(handle, hooks):
            for i, prompt in enumerate(prompts):
                enc = handle.encode([prompt])
                scores = []
                for head in [None, *range(f.n_heads)]:
                    state["mask"] = head
                    try:
                        handle.hf_model(**enc, use_cache=False)
                    except StopForward:
                        pass
                    scores.append(state["s"])
                out[i, j] = scores[0] - torch.tensor(scores[1:])
    return out
