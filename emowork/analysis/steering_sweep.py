"""Steering validation: a sweep over layer windows and strengths on the neutral prompt, judged, with fluency.

For each setting and emotion, every group's neutral prompt is answered with steering towards that emotion; the
judge decides whether the reply expresses it. The unsteered replies, judged against each target emotion, are the
baseline. Fluency: perplexity of each reply under the unsteered model, and the share of degenerate replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..emotions import EMOTIONS, check_emotions
from ..generation.fluency import is_degenerate, reply_perplexity
from ..generation.generate import DecodingConfig
from ..generation.reply_cache import generate_cached
from ..intervals import accuracy_summary
from ..prompts import build_prompts
from .steering import SteeringSetting, steered_generate

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sev import Group
    from .directions import EmotionDirections
    from ..model.handle import ModelHandle
    from ..judge import Judge

DEFAULT_SETTINGS = [SteeringSetting(a, b, alpha) for a, b in ((0.25, 0.5), (0.4, 0.7), (0.6, 0.9)) for alpha in (2.0, 4.0, 8.0)]
FAST_SETTINGS = [SteeringSetting(0.4, 0.7, 4.0), SteeringSetting(0.4, 0.7, 8.0), SteeringSetting(0.25, 0.5, 4.0)]
MAX_DEGENERATE = 0.2
MAX_PERPLEXITY_RATIO = 3.0
BEST_RULE = (f"highest accuracy among settings with at most {MAX_DEGENERATE:.0%} degenerate replies and a median "
             f"perplexity at most {MAX_PERPLEXITY_RATIO:g}x the unsteered replies'; if none qualifies, the highest accuracy")


def summarise_replies(rows: list[dict[str, Any]], emotions: Sequence[str]) -> dict[str, Any]:
    """Accuracy with its interval over groups, per emotion, median perplexity and degenerate share of judged ``rows``
    (each with ``emotion``, ``group_id``, ``accepted``, ``perplexity``, ``degenerate``)."""
    by_e = {}
    for e in emotions:
        sel = [r for r in rows if r["emotion"] == e]
        by_e[e] = accuracy_summary([r["accepted"] for r in sel], [r["group_id"] for r in sel])
    ppl = np.array([r["perplexity"] for r in rows], dtype=float)
    return {**accuracy_summary([r["accepted"] for r in rows], [r["group_id"] for r in rows]), "by_emotion": by_e,
            "perplexity": float(np.nanmedian(ppl)) if np.isfinite(ppl).any() else float("nan"),
            "degenerate": float(np.mean([r["degenerate"] for r in rows]))}


@dataclass
class SweepResult:
    """The unsteered baseline, one summary per setting, every reply, and the best setting with its rule."""

    baseline: dict[str, Any]
    settings: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    emotions: list[str] = field(default_factory=lambda: list(EMOTIONS))

    def best(self) -> dict[str, Any]:
        """The chosen setting (see :data:`BEST_RULE`), with ``"passes_fluency"``."""
        limit = self.baseline["perplexity"] * MAX_PERPLEXITY_RATIO
        fluent = [s for s in self.settings if s["degenerate"] <= MAX_DEGENERATE and s["perplexity"] <= limit]
        pool = fluent or self.settings
        chosen = max(pool, key=lambda s: s["accuracy"])
        return {**chosen, "passes_fluency": bool(fluent), "rule": BEST_RULE}


def run_sweep(handle: "ModelHandle", directions: "EmotionDirections", groups: Sequence["Group"], judge: "Judge",
              settings: Sequence[SteeringSetting] = DEFAULT_SETTINGS, config: DecodingConfig = DecodingConfig(),
              emotions: Sequence[str] | None = None, progress: bool = True) -> SweepResult:
    """Run every setting x emotion on the neutral prompts of ``groups``; returns a :class:`SweepResult`."""
    emotion_list = check_emotions(emotions)
    groups = list(groups)
    prompts = build_prompts(handle, groups, emotions=None).texts
    plain = generate_cached(handle, prompts, config, tag="neutral", progress=progress, desc="unsteered")
    plain_ppl = reply_perplexity(handle, prompts, [g.text for g in plain])
    rows: list[dict[str, Any]] = []
    base_rows = []
    for e in emotion_list:
        _, accepted, predicted = judge.verdicts([g.text for g in plain], [e] * len(plain))
        for i, (group, gen) in enumerate(zip(groups, plain)):
            base_rows.append({"setting": "unsteered", "group_id": group.group_id, "valence": group.valence, "emotion": e,
                              "reply": gen.text, "accepted": bool(accepted[i]), "predicted": predicted[i],
                              "perplexity": plain_ppl[i], "degenerate": is_degenerate(gen.text)})
    baseline = summarise_replies(base_rows, emotion_list)
    summaries = []
    items = [(g, p, e) for e in emotion_list for g, p in zip(groups, prompts)]  # every group x emotion, one batch
    item_prompts, item_emotions = [p for _, p, _ in items], [e for _, _, e in items]
    for setting in settings:
        replies = steered_generate(handle, item_prompts, directions, item_emotions, setting, config, progress=progress)
        texts = [g.text for g in replies]
        _, accepted, predicted = judge.verdicts(texts, item_emotions)
        ppl = reply_perplexity(handle, item_prompts, texts)
        setting_rows = []
        for i, ((group, _, e), text) in enumerate(zip(items, texts)):
            setting_rows.append({"setting": setting.label(handle.facts.n_layers), "group_id": group.group_id,
                                 "valence": group.valence, "emotion": e, "reply": text, "accepted": bool(accepted[i]),
                                 "predicted": predicted[i], "perplexity": ppl[i], "degenerate": is_degenerate(text)})
        summaries.append({"setting": setting.as_dict(), "label": setting.label(handle.facts.n_layers),
                          "layers": setting.layers(handle.facts.n_layers), **summarise_replies(setting_rows, emotion_list)})
        rows += setting_rows
    return SweepResult(baseline, summaries, base_rows + rows, emotion_list)
