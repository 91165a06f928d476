"""Is an emotion direction the same across contexts? Tests that can fail (the paper's Q1, measured).

The six prompts of a group differ only in the instruction's emotion word, so directions from two halves of the
data agree almost perfectly by construction. These tests do not share that construction:

(a) across instruction wordings: directions from paraphrased templates (different words, same emotion);
(b) transfer: classify natural emotional texts that carry no instruction by their largest projection;
(c) across valences and theme halves, each against directions built from emotion labels shuffled within groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..hooks.capture import capture
from .directions import METHOD_SITES, EmotionDirections, capture_emotion_activations, directions_from_activations
from ..emotions import EMOTIONS
from .geometry import mean_cosine_between
from ..prompts import NEUTRAL_SYSTEM, PARAPHRASE_TEMPLATES

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sev import Group
    from ..model.handle import ModelHandle


def as_directions(acts: dict[str, torch.Tensor], emotions: Sequence[str] = EMOTIONS, **provenance: Any) -> EmotionDirections:
    """Directions from ``{site: [G, E, L, D]}`` activations."""
    dirs, cents, norms = {}, {}, {}
    for site, a in acts.items():
        dirs[site], cents[site], norms[site] = directions_from_activations(a)
    return EmotionDirections(list(emotions), dirs, cents, norms, dict(provenance))


def shuffle_emotions(acts: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``[G, E, L, D]`` with the emotion axis permuted independently in every group (a label-shuffled control)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(acts.shape[1], generator=generator) for _ in range(acts.shape[0])])
    return torch.gather(acts, 1, order[:, :, None, None].expand_as(acts))


def template_consistency(handle: "ModelHandle", groups: Sequence["Group"], templates: dict[str, str] = PARAPHRASE_TEMPLATES,
                         site: str = "mlp", progress: bool = True, known: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """(a) Directions from each instruction wording on the same groups, compared per layer.

    Returns ``{"templates", "pairs": {"a|b": {"same": [L], "other": [L]}}, "mean_same": [L], "mean_other": [L]}``:
    ``same`` is the mean over emotions of cos(v_a[e], v_b[e]); ``other`` of cos(v_a[e], v_b[f]) for e != f (what
    unrelated emotion directions score). ``known`` maps template names to activations already captured for these
    groups at ``site`` (``[G, E, L, D]``, e.g. the extraction's), which are then not captured again.
    """
    known = known or {}
    per_template = {name: as_directions({site: known[name]} if name in known else
                                        capture_emotion_activations(handle, groups, (site,), template, progress=progress))
                    for name, template in templates.items()}
    pairs = {f"{a}|{b}": mean_cosine_between(per_template[a], per_template[b], site) for a, b in combinations(per_template, 2)}
    same = np.mean([p["same"] for p in pairs.values()], axis=0)
    other = np.mean([p["other"] for p in pairs.values()], axis=0)
    return {"templates": templates, "pairs": pairs, "mean_same": same.tolist(), "mean_other": other.tolist(),
            "directions": per_template}


@dataclass
class LabelledSet:
    """Emotion-labelled natural texts (no instruction), with optional contexts they answer."""

    texts: list[str]
    emotions: list[str]
    source: str
    contexts: list[str] | None = None


def natural_texts(split: str = "heldout", goemotions: str | None = None, goemotions_per_emotion: int = 50,
                  seed: int = 0, replies_per_emotion: int | None = None) -> list[LabelledSet]:
    """The judge's labelled replies of ``split`` (``"heldout"``: the writers held out of the judge's training,
    ``"train"`` or ``"all"``), emotion rows only, and, when a GoEmotions folder is given, ``goemotions_per_emotion``
    single-label test comments per emotion (seeded sample). ``replies_per_emotion`` keeps a seeded sample of that many
    replies per emotion (all when None)."""
    from ..judge.labels import CLASSES, load_goemotions, read_replies

    rows = [r for r in read_replies() if r["emotion"] != "neutral" and (split == "all" or r["split"] == split)]
    if replies_per_emotion is not None:
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for emotion in EMOTIONS:
            idx = [i for i, r in enumerate(rows) if r["emotion"] == emotion]
            keep += sorted(rng.choice(idx, size=min(replies_per_emotion, len(idx)), replace=False).tolist())
        rows = [rows[i] for i in sorted(keep)]
    sets = [LabelledSet([r["text"] for r in rows], [r["emotion"] for r in rows], f"judge replies ({split})", [r["context"] for r in rows])]
    if goemotions:
        test = load_goemotions(goemotions, "test")
        rng = np.random.default_rng(seed)
        texts, emotions = [], []
        for k, emotion in enumerate(EMOTIONS):
            idx = [i for i, y in enumerate(test.labels) if y == k]
            for i in rng.choice(idx, size=min(goemotions_per_emotion, len(idx)), replace=False):
                texts.append(test.texts[int(i)])
                emotions.append(CLASSES[k])
        sets.append(LabelledSet(texts, emotions, "GoEmotions test"))
    return sets


def text_prompts(handle: "ModelHandle", data: LabelledSet, mode: str = "user") -> list[str]:
    """Prompts that carry the texts without any instruction about emotion.

    ``"user"``: the text is the user's message under the neutral system prompt, read at the last prompt token (the
    position the directions were taken at). ``"assistant"``: the text is the start of the assistant's reply to its
    context, read at the text's last token.
    """
    if mode == "user":
        return [handle.format_chat(t, NEUTRAL_SYSTEM) for t in data.texts]
    if mode == "assistant":
        contexts = data.contexts or ["Tell me about your day."] * len(data.texts)
        return [handle.format_chat(c, NEUTRAL_SYSTEM) + t for c, t in zip(contexts, data.texts)]
    raise ValueError("mode must be 'user' or 'assistant'")


def transfer_correct(acts: torch.Tensor, emotions: Sequence[str], directions: EmotionDirections, site: str = "mlp") -> torch.Tensor:
    """``[N, L]`` booleans: whether each text's largest projection (after centring over texts) at each layer is on its
    own emotion. ``acts`` ``[N, L, D]``."""
    v = directions.directions[site]  # [E, L, D]
    centred = acts - acts.mean(0, keepdim=True)
    scores = torch.einsum("nld,eld->nle", centred, v)
    truth = torch.tensor([directions.emotions.index(e) for e in emotions])
    return scores.argmax(-1) == truth[:, None]


def transfer_accuracy(acts: torch.Tensor, emotions: Sequence[str], directions: EmotionDirections, site: str = "mlp") -> list[float]:
    """Per layer: share of texts whose largest projection (after centring over texts) is on their own emotion.

    ``acts`` ``[N, L, D]``. Chance is 1/6.
    """
    return transfer_correct(acts, emotions, directions, site).float().mean(0).tolist()


def held_out_layer_choice(correct: torch.Tensor) -> dict[str, Any]:
    """The best layer chosen on the even-numbered texts and measured on the odd-numbered ones, so the reported
    accuracy is not inflated by the choice: ``{layer, accuracy, low, high, n}`` (95% bootstrap interval)."""
    from ..intervals import accuracy_summary

    chooser = torch.arange(correct.shape[0]) % 2 == 0
    layer = int(correct[chooser].float().mean(0).argmax())
    return {"layer": layer, **accuracy_summary(correct[~chooser, layer].numpy())}


def transfer(handle: "ModelHandle", directions: EmotionDirections, shuffled: EmotionDirections, data: LabelledSet,
             mode: str = "user", site: str = "mlp", progress: bool = True) -> dict[str, Any]:
    """(b) Transfer of the directions to natural text, against directions from label-shuffled activations.

    ``held_out_choice``: the best layer chosen on half the texts, its accuracy measured on the other half."""
    acts = capture(handle, text_prompts(handle, data, mode), METHOD_SITES[site], cache=True, progress=progress,
                   desc=f"transfer ({data.source})")[METHOD_SITES[site]]
    correct = transfer_correct(acts, data.emotions, directions, site)
    return {"source": data.source, "mode": mode, "n": len(data.texts), "chance": 1 / len(directions.emotions),
            "accuracy": correct.float().mean(0).tolist(),
            "shuffled": transfer_accuracy(acts, data.emotions, shuffled, site),
            "held_out_choice": held_out_layer_choice(correct)}


def split_consistency(acts: torch.Tensor, groups: Sequence["Group"], site: str = "mlp", seed: int = 0) -> dict[str, Any]:
    """(c) Directions from disjoint halves of the groups, compared per layer, with a label-shuffled control.

    Halves: positive vs negative valence, and the first vs the last half of the themes. ``acts`` ``[G, E, L, D]``
    of ``groups``. Returns ``{split name: {"same": [L], "shuffled": [L]}}``.
    """
    themes = list(dict.fromkeys(g.theme for g in groups))
    first = set(themes[: len(themes) // 2])
    splits = {
        "valence: positive vs negative": ([g.valence == "positive" for g in groups], [g.valence == "negative" for g in groups]),
        "themes: first vs second half": ([g.theme in first for g in groups], [g.theme not in first for g in groups]),
    }
    out = {}
    for name, (mask_a, mask_b) in splits.items():
        a, b = acts[torch.tensor(mask_a)], acts[torch.tensor(mask_b)]
        if len(a) == 0 or len(b) == 0:
            continue
        same = mean_cosine_between(as_directions({site: a}), as_directions({site: b}), site)["same"]
        shuffled = mean_cosine_between(as_directions({site: shuffle_emotions(a, seed)}),
                                       as_directions({site: shuffle_emotions(b, seed + 1)}), site)["same"]
        out[name] = {"same": same, "shuffled": shuffled, "n_groups": [len(a), len(b)]}
    return out
