"""Do component edits change what the model says? Judge replies generated with the top-k (or random-k) neurons of a
layer ablated on the emotion-elicited prompt, or enhanced on the neutral prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import hashlib

import torch

from ..generation.generate import DecodingConfig
from ..generation.reply_cache import generate_cached
from ..intervals import accuracy_summary
from ..prompts import EMOTION_SYSTEM, build_prompts
from ..hooks.executors import choose_backend
from .editing import component_edit
from .activation_samples import difference_vectors

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sev import Group
    from ..model.handle import ModelHandle
    from ..judge import Judge
    from .neurons import NeuronContributions
    from .activation_samples import ComponentSamples


def judged_edits(handle: "ModelHandle", samples: "ComponentSamples", neurons: "NeuronContributions", judge: "Judge",
                 groups: Sequence["Group"], layer: int, k: int, config: DecodingConfig, seed: int = 0,
                 progress: bool = True) -> dict[str, Any]:
    """Acceptance of replies for each condition (``ablate-top``, ``ablate-random`` on e-elicited prompts; ``enhance-top``,
    ``enhance-random`` on neutral prompts; and both unedited), pooled over the six emotions, with 95% intervals.
    Each condition is one batched generation over all groups x emotions (rows carry their own emotion's edit)."""
    groups = list(groups)
    emotions = list(samples.emotions)
    dmu = difference_vectors(samples.acts["mlp_post"])[:, layer]  # [E, d_mlp]
    generator = torch.Generator().manual_seed(seed)
    top = {e: tuple(int(i) for i in neurons.mean[ei, layer].topk(k).indices) for ei, e in enumerate(emotions)}
    rand = {e: tuple(int(i) for i in torch.randperm(handle.facts.d_mlp, generator=generator)[:k]) for e in emotions}
    items = [(g, e) for e in emotions for g in groups]
    elicited = [build_prompts(handle, [g], [e]).texts[0] for g, e in items]
    neutral = build_prompts(handle, [g for g, _ in items], emotions=None).texts
    conditions = {
        "ablate-top": (elicited, lambda e, ei: ("ablate", top[e], None)),
        "ablate-random": (elicited, lambda e, ei: ("ablate", rand[e], None)),
        "none (elicited)": (elicited, None),
        "enhance-top": (neutral, lambda e, ei: ("enhance", top[e], dmu[ei])),
        "enhance-random": (neutral, lambda e, ei: ("enhance", rand[e], dmu[ei])),
        "none (neutral)": (neutral, None),
    }
    out: dict[str, Any] = {"layer": layer, "k": k, "conditions": {}, "examples": {}}
    for name, (prompts, make) in conditions.items():
        if make is None:  # the same tags as the elicitation run and the unsteered sweep: their replies are reused
            replies = generate_cached(handle, prompts, config, tag=f"elicit:{EMOTION_SYSTEM}" if "elicited" in name else "neutral",
                                      progress=progress, desc=name)
        else:
            row_edits = [make(e, emotions.index(e)) for _, e in items]  # (operation, neurons, delta) per row
            chosen = hashlib.sha256(repr([(layer, units, op) for op, units, _ in row_edits]).encode()).hexdigest()[:12]
            factory = lambda idx, _m=make: _edits_by_emotion(layer, [items[i][1] for i in idx], emotions, _m)  # noqa: E731
            backend = choose_backend(handle, factory([0]))  # replies of different backends are cached apart
            replies = generate_cached(handle, prompts, config, tag=f"edit:{name}:{chosen}:{backend}", variants=[e for _, e in items],
                                      intervention=factory, progress=progress, desc=name)
        accepted = judge.accept([r.text for r in replies], [e for _, e in items])
        out["conditions"][name] = accuracy_summary(accepted.tolist(), [g.group_id for g, _ in items])
        out["examples"][name] = [(r.text, e, g.group_id) for r, (g, e) in list(zip(replies, items))[:: max(1, len(groups))]]
    return out


def _edits_by_emotion(layer: int, row_emotions: list[str], emotions: Sequence[str], make: Any) -> list[Any]:
    """One edit per emotion present in the batch, applied to that emotion's rows (so a batch costs at most six edits
    per pass, not one per row). ``make(emotion, index)`` gives ``(operation, neurons, delta)``."""
    rows: dict[str, list[int]] = {}
    for row, emotion in enumerate(row_emotions):
        rows.setdefault(emotion, []).append(row)
    edits = []
    for emotion, chosen in rows.items():
        operation, units, delta = make(emotion, emotions.index(emotion))
        edits.append(component_edit("neuron", layer, units, operation, delta, rows=tuple(chosen)))
    return edits
