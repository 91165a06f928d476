"""Looking at components: attention patterns (circuitsvis, offline), a head's per-token contribution to a direction,
and a neuron's activations by emotion and valence with its top-activating prompts."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..hooks.attach import attach_hooks

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle
    from .activation_samples import ComponentSamples


@dataclass
class OfflineHTML:
    """HTML that notebooks display as is: circuitsvis output with its JavaScript inlined, so nothing is fetched
    (circuitsvis' own objects probe google.com to choose between inline and CDN scripts)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


@torch.inference_mode()
def _forward_reading(handle: "ModelHandle", prompt: str, names: Sequence[str]) -> tuple[list[str], dict[str, torch.Tensor]]:
    enc = handle.encode([prompt])
    seen: dict[str, torch.Tensor] = {}
    hooks = [(name, lambda act, hook, _n=name: seen.__setitem__(_n, act[0].float().cpu())) for name in names]
    with attach_hooks(handle, hooks):
        handle.hf_model(**enc, use_cache=False)
    tokens = [handle.tokenizer.decode([t]) for t in enc["input_ids"][0].tolist()]
    return tokens, seen


def attention_patterns(handle: "ModelHandle", prompt: str, layer: int, heads: Sequence[int] | None = None) -> OfflineHTML:
    """circuitsvis' attention-pattern viewer for the heads of ``layer`` on ``prompt``, rendered offline."""
    from circuitsvis.attention import attention_heads

    name = f"blocks.{layer}.attn.hook_pattern"
    tokens, seen = _forward_reading(handle, prompt, [name])
    pattern = seen[name]  # [H, T, T]
    chosen = list(heads) if heads is not None else list(range(pattern.shape[0]))
    rendered = attention_heads(attention=pattern[chosen], tokens=tokens, attention_head_names=[f"L{layer}H{h}" for h in chosen])
    return OfflineHTML(rendered.local_src)


def head_token_contributions(handle: "ModelHandle", prompt: str, layer: int, head: int, direction: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """How much each source token, through ``head``'s attention at the last position, writes onto ``direction``.

    Returns ``(tokens, contributions [T])``: ``A[last, s] * (v_s W_O[head]) . direction``; they sum to the head's
    direct contribution ``<z_head W_O[head], direction>`` at the last token.
    """
    names = [f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_v"]
    tokens, seen = _forward_reading(handle, prompt, names)
    pattern, values = seen[names[0]], seen[names[1]]  # [H, T, T], [T, n_kv, dh]
    group = handle.facts.n_heads // values.shape[1]
    v_head = values[:, head // group]  # [T, dh] (grouped-query attention shares one value head per group)
    write = v_head @ handle.W_O(layer)[head].detach().float().cpu()  # [T, D]
    return tokens, pattern[head, -1] * (write @ direction.float())


def colored_tokens(tokens: Sequence[str], values: Sequence[float], title: str = "") -> OfflineHTML:
    """Tokens as spans coloured by value (red positive, blue negative), with the value on hover."""
    peak = max((abs(float(v)) for v in values), default=1.0) or 1.0
    spans = []
    for token, value in zip(tokens, values):
        strength = min(1.0, abs(float(value)) / peak)
        color = f"rgba(213,94,0,{strength:.2f})" if value >= 0 else f"rgba(0,114,178,{strength:.2f})"  # palette: vermillion / blue
        shown = html.escape(token).replace("\n", "&#8629;<br>")
        spans.append(f"<span title='{float(value):.4f}' style='background:{color};padding:1px 0;border-radius:2px'>{shown}</span>")
    head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return OfflineHTML(f"{head}<div style='font-family:monospace;line-height:1.8'>{''.join(spans)}</div>")


def neuron_activations(samples: "ComponentSamples", layer: int, neuron: int) -> list[dict[str, Any]]:
    """Rows ``{group_id, valence, emotion, activation, prompt}``: the neuron's last-token activation on every prompt."""
    H = samples.acts["mlp_post"][:, :, layer, neuron]
    rows = []
    for g, group in enumerate(samples.groups):
        for e, emotion in enumerate(samples.emotions):
            rows.append({"group_id": group.group_id, "valence": group.valence, "emotion": emotion,
                         "activation": float(H[g, e]), "message": group.message})
    return rows


def top_activating(samples: "ComponentSamples", layer: int, neuron: int, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` prompts on which the neuron fires most (same rows as :func:`neuron_activations`)."""
    return sorted(neuron_activations(samples, layer, neuron), key=lambda r: -r["activation"])[:k]
