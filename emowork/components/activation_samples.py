"""The activations every component analysis reads: the emotion-elicited prompts of some groups, at the last token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from ..hooks.capture import capture
from ..emotions import check_emotions
from ..prompts import EMOTION_SYSTEM, build_prompts

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sev import Group
    from ..model.handle import ModelHandle

SAMPLE_SITES = ("resid_mid", "resid_post", "mlp_post", "z")


@dataclass
class ComponentSamples:
    """Last-token activations of every (group, emotion) emotion-elicited prompt.

    ``acts[site]`` is ``[G, E, n_layers, width]`` (float32, CPU) for ``resid_mid``, ``resid_post``, ``mlp_post``
    (width d_mlp) and ``z`` (width n_heads * d_head); ``prompts[g][e]`` is the prompt text.
    """

    groups: list["Group"]
    emotions: list[str]
    prompts: list[list[str]]
    acts: dict[str, torch.Tensor]

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    def prompts_of(self, emotion: str) -> list[str]:
        """The G prompts instructed with ``emotion``."""
        k = self.emotions.index(emotion)
        return [row[k] for row in self.prompts]

    def z_heads(self, n_heads: int) -> torch.Tensor:
        """``z`` reshaped to ``[G, E, L, n_heads, d_head]``."""
        z = self.acts["z"]
        return z.reshape(*z.shape[:3], n_heads, -1)


def collect_samples(handle: "ModelHandle", groups: Sequence["Group"], emotions: Sequence[str] | None = None,
                    template: str = EMOTION_SYSTEM, progress: bool = True, cache: bool = True) -> ComponentSamples:
    """Capture the four sites at the last prompt token for every group x emotion (cached on disk unless ``cache``
    is False)."""
    chosen = check_emotions(emotions)
    groups = list(groups)
    batch = build_prompts(handle, groups, chosen, template)
    acts = capture(handle, batch.texts, list(SAMPLE_SITES), cache=cache, progress=progress, desc="component samples")
    G, E = len(groups), len(chosen)
    shaped = {site: t.reshape(G, E, *t.shape[1:]) for site, t in acts.items()}
    prompts = [batch.texts[g * E:(g + 1) * E] for g in range(G)]
    return ComponentSamples(groups, chosen, prompts, shaped)


def difference_vectors(acts: torch.Tensor) -> torch.Tensor:
    """docs/method.md section 4: ``dmu[e, L] = mean_g (a[g, e, L] - mean_e' a[g, e', L])`` from ``acts`` ``[G, E, L, W]``;
    returns ``[E, L, W]`` (not normalised)."""
    return (acts - acts.mean(1, keepdim=True)).mean(0)
