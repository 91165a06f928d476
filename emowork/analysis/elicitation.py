"""The prompt-elicited run: every group x emotion is generated with the emotion instruction and judged.

Its accuracy is the baseline every control method is compared with, and its complete groups (all six emotions
accepted) are the input of the direction analysis (docs/method.md, sections 2-3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..data.sev import VALENCES, Group
from ..emotions import EMOTIONS, check_emotions
from ..generation.generate import DecodingConfig
from ..generation.reply_cache import generate_cached
from ..intervals import accuracy_summary
from ..prompts import EMOTION_SYSTEM, build_prompts
from ..storage import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle
    from ..judge import Judge


@dataclass
class ElicitationResult:
    """One row per (group, emotion) prompt, plus how it was made.

    Row keys: ``group_id``, ``skeleton_id``, ``theme``, ``valence``, ``emotion``, ``reply``, ``n_tokens``,
    ``finished``, ``accepted``, ``predicted`` (the judge's label), ``scores`` (six probabilities).
    """

    rows: list[dict[str, Any]]
    judge: dict[str, Any]
    decoding: dict[str, Any]
    model: dict[str, Any]
    template: str = EMOTION_SYSTEM
    emotions: list[str] = field(default_factory=lambda: list(EMOTIONS))

    def __len__(self) -> int:
        return len(self.rows)

    def _ci(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        return accuracy_summary([r["accepted"] for r in rows], [r["group_id"] for r in rows])

    @property
    def accuracy(self) -> float:
        """Share of accepted replies over all prompts."""
        return float(np.mean([r["accepted"] for r in self.rows])) if self.rows else float("nan")

    def overall(self) -> dict[str, float]:
        """Accuracy with its 95% bootstrap interval (groups resampled)."""
        return self._ci(self.rows)

    def by_emotion(self) -> dict[str, dict[str, float]]:
        """``{emotion: {accuracy, low, high, n}}``."""
        return {e: self._ci([r for r in self.rows if r["emotion"] == e]) for e in self.emotions}

    def by_emotion_valence(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{emotion: {valence: {accuracy, low, high, n}}}``."""
        return {e: {v: self._ci([r for r in self.rows if r["emotion"] == e and r["valence"] == v]) for v in VALENCES}
                for e in self.emotions}

    def complete_groups(self) -> list[str]:
        """Group ids whose replies were accepted for every emotion of the run."""
        by_group: dict[str, list[bool]] = {}
        for r in self.rows:
            by_group.setdefault(r["group_id"], []).append(bool(r["accepted"]))
        return [g for g, acc in by_group.items() if len(acc) == len(self.emotions) and all(acc)]

    def confusion(self) -> tuple[list[str], list[str], np.ndarray]:
        """``(targets, predicted labels, counts [6, 7])``: what the judge thinks each instructed reply expresses."""
        labels = [*EMOTIONS, "neutral"]
        matrix = np.zeros((len(self.emotions), len(labels)), dtype=int)
        for r in self.rows:
            matrix[self.emotions.index(r["emotion"]), labels.index(r["predicted"])] += 1
        return list(self.emotions), labels, matrix

    def summary(self) -> dict[str, Any]:
        """The numbers ``run.json["elicitation"]`` holds."""
        overall = self.overall()
        by_e = self.by_emotion()
        return {
            "accuracy": overall["accuracy"],
            "accuracy_ci95": [overall["low"], overall["high"]],
            "accuracy_by_emotion": {e: v["accuracy"] for e, v in by_e.items()},
            "accuracy_by_emotion_ci95": {e: [v["low"], v["high"]] for e, v in by_e.items()},
            "accuracy_by_emotion_valence": {e: {v: c["accuracy"] for v, c in cells.items()}
                                            for e, cells in self.by_emotion_valence().items()},
            "n_prompts": len(self.rows),
            "n_groups": len({r["group_id"] for r in self.rows}),
            "complete_groups": self.complete_groups(),
            "mean_reply_tokens": float(np.mean([r["n_tokens"] for r in self.rows])) if self.rows else float("nan"),
            "finished_share": float(np.mean([r["finished"] for r in self.rows])) if self.rows else float("nan"),
            "judge": self.judge,
            "decoding": self.decoding,
        }

    def save(self, path: str | Path) -> None:
        """Write every row plus a header line (model, judge, decoding) as JSONL, atomically."""
        header = {"model": self.model, "judge": self.judge, "decoding": self.decoding, "template": self.template,
                  "emotions": self.emotions}
        lines = [json.dumps({"header": header})] + [json.dumps(r, ensure_ascii=False) for r in self.rows]
        atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ElicitationResult":
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])["header"]
        rows = [json.loads(line) for line in lines[1:] if line.strip()]
        return cls(rows, header["judge"], header["decoding"], header["model"], header["template"], header["emotions"])


def run_elicitation(handle: "ModelHandle", groups: Sequence[Group], judge: "Judge",
                    config: DecodingConfig = DecodingConfig(), emotions: Sequence[str] | None = None,
                    template: str = EMOTION_SYSTEM, progress: bool = True) -> ElicitationResult:
    """Generate a reply for every (group, emotion) with the emotion-elicited prompt, then judge each.

    Replies are cached per model and decoding config (an interrupted run resumes where it stopped); judging is
    redone each time (it is fast, and the judge may change).
    """
    chosen = check_emotions(emotions)
    batch = build_prompts(handle, list(groups), chosen, template)
    replies = generate_cached(handle, batch.texts, config, tag=f"elicit:{template}", progress=progress, desc="elicitation")
    texts = [r.text for r in replies]
    scores, accepted, predicted = judge.verdicts(texts, batch.emotions)  # type: ignore[arg-type]
    rows = []
    for i, (group, emotion, reply) in enumerate(zip(batch.groups, batch.emotions, replies)):
        rows.append({
            "group_id": group.group_id, "skeleton_id": group.skeleton.skeleton_id, "theme": group.theme,
            "valence": group.valence, "emotion": emotion, "reply": reply.text, "n_tokens": reply.n_tokens,
            "finished": reply.finished, "accepted": bool(accepted[i]), "predicted": predicted[i],
            "scores": [round(float(s), 4) for s in scores[i]],
        })
    return ElicitationResult(rows, judge.describe(), config.as_dict(), handle.describe(), template, chosen)
