"""Measure a judge against reference labels: ``judge.validate(judge, rows)`` and ``emowork judge validate FILE``.

A row is a reply, the emotion it was meant to express, and a reference verdict (1 = the reply's style expresses
that emotion, 0 = it does not) from an LLM judge or from people. Field names: ``text`` / ``emotion`` / ``label``;
also ``gen_text`` for the text and ``judge.match`` (a nested ``{"judge": {"match": 1}}`` or a flat ``"judge.match"``
key) for the label, as some published labelled outputs use; ``target`` / ``target_emotion`` for the emotion.

    rows = read_rows("labels.jsonl")
    report = validate(load_judge("default"), rows)
    print(report.table()); report.figure().show()

Every rate comes with a 95% percentile bootstrap interval over rows (2,000 resamples, seeded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..emotions import EMOTIONS
from ..errors import EmoworkError
from ..intervals import N_BOOT
from .base import Judge

TEXT_KEYS = ("text", "gen_text", "reply", "response")
EMOTION_KEYS = ("emotion", "target", "target_emotion")
LABEL_KEYS = ("label", "judge.match", "match", "reference")


class ValidationFileError(EmoworkError):
    """A labelled-replies file that cannot be read: says which line and what to fix."""


@dataclass(frozen=True)
class LabelledReply:
    """One reply with its target emotion and the reference verdict (True = expresses the emotion)."""

    text: str
    emotion: str
    label: bool


def _first(row: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
        if "." in key:  # nested, e.g. {"judge": {"match": 1}}
            outer, inner = key.split(".", 1)
            if isinstance(row.get(outer), dict) and inner in row[outer]:
                return row[outer][inner]
    return None


def _as_label(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", "yes", "no", "accept", "reject"):
        return value.strip().lower() in ("1", "true", "yes", "accept")
    return None


def parse_rows(records: Iterable[dict[str, Any]], source: str = "rows") -> list[LabelledReply]:
    """Check and convert dict records; raises :class:`ValidationFileError` listing every bad row (up to 10)."""
    rows, problems = [], []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            problems.append(f"{source} row {number}: not a JSON object")
            continue
        text, emotion, label = _first(record, TEXT_KEYS), _first(record, EMOTION_KEYS), _as_label(_first(record, LABEL_KEYS))
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{source} row {number}: no reply text (field 'text' or 'gen_text')")
            continue
        name = str(emotion).strip().lower() if emotion is not None else ""
        name = "happiness" if name in ("joy", "happy") else name
        if name not in EMOTIONS:
            problems.append(f"{source} row {number}: emotion {emotion!r} is not one of {', '.join(EMOTIONS)} "
                            "(field 'emotion')")
            continue
        if label is None:
            problems.append(f"{source} row {number}: reference label {_first(record, LABEL_KEYS)!r} must be 0 or 1 "
                            "(field 'label' or 'judge.match')")
            continue
        rows.append(LabelledReply(text, name, label))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValidationFileError("Cannot use these labelled replies:\n  " + "\n  ".join(problems[:10]) + more)
    if not rows:
        raise ValidationFileError(f"{source} has no labelled replies: each line needs text, emotion and label (0/1).")
    return rows


def read_rows(path: str | Path) -> list[LabelledReply]:
    """Read a JSONL file (or a JSON list) of labelled replies; clear errors name the line to fix."""
    path = Path(path)
    if not path.exists():
        raise ValidationFileError(f"{path} does not exist: give a JSONL file with text, emotion and label per line.")
    content = path.read_text(encoding="utf-8")
    if content.lstrip().startswith("["):
        try:
            return parse_rows(json.loads(content), str(path))
        except json.JSONDecodeError as exc:
            raise ValidationFileError(f"{path}: not valid JSON ({exc}).") from None
    records, problems = [], []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"{path} line {number}: malformed JSON ({exc.msg})")
    if problems:
        raise ValidationFileError("Cannot read the labelled replies:\n  " + "\n  ".join(problems[:10]))
    return parse_rows(records, str(path))


def _kappa_from_counts(both: np.ndarray, judge_only: np.ndarray, ref_only: np.ndarray, neither: np.ndarray) -> np.ndarray:
    """Cohen's kappa of two binary raters from the four cell counts (arrays broadcast); 1 when chance agreement is 1."""
    n = both + judge_only + ref_only + neither
    observed = (both + neither) / n
    p_judge, p_ref = (both + judge_only) / n, (both + ref_only) / n
    expected = p_judge * p_ref + (1 - p_judge) * (1 - p_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = (observed - expected) / (1 - expected)
    return np.where(expected >= 1, 1.0, kappa)


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.nanquantile(values, [0.025, 0.975])
    return float(low), float(high)


@dataclass
class Rate:
    """A statistic with its 95% bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _rates(judge_accept: np.ndarray, reference: np.ndarray, n_boot: int, seed: int) -> dict[str, Rate]:
    """Acceptance of both, agreement and kappa, each with a bootstrap interval over rows."""
    n = len(reference)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    j, r = judge_accept[draws], reference[draws]
    both, judge_only = (j & r).sum(1), (j & ~r).sum(1)
    ref_only, neither = (~j & r).sum(1), (~j & ~r).sum(1)
    boot = {"judge_accept": j.mean(1), "reference_accept": r.mean(1), "agreement": (j == r).mean(1),
            "kappa": _kappa_from_counts(both, judge_only, ref_only, neither)}
    point = {"judge_accept": judge_accept.mean(), "reference_accept": reference.mean(),
             "agreement": (judge_accept == reference).mean(),
             "kappa": _kappa_from_counts(*(np.array(float(v)) for v in (
                 (judge_accept & reference).sum(), (judge_accept & ~reference).sum(),
                 (~judge_accept & reference).sum(), (~judge_accept & ~reference).sum())))}
    return {k: Rate(float(point[k]), *_interval(boot[k])) for k in boot}


@dataclass
class JudgeValidation:
    """How a judge's accept/reject verdicts agree with reference labels (overall and per target emotion)."""

    judge: dict[str, Any]
    n: int
    overall: dict[str, Rate]
    by_emotion: dict[str, dict[str, Any]]
    confusion: list[list[int]]  # rows: reference accept / reject; columns: judge accept / reject
    heard_when_rejected: dict[str, dict[str, int]]  # target -> what the judge heard instead, on reference-accepted rows it rejected
    judge_accept: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))

    def as_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "n": self.n, "overall": {k: v.as_dict() for k, v in self.overall.items()},
                "by_emotion": {e: {k: (v.as_dict() if isinstance(v, Rate) else v) for k, v in d.items()}
                               for e, d in self.by_emotion.items()},
                "confusion": {"rows": ["reference accepts", "reference rejects"], "columns": ["judge accepts", "judge rejects"],
                              "counts": self.confusion},
                "heard_when_rejected": self.heard_when_rejected}

    def sentence(self) -> str:
        """One sentence stating the result, generated from the numbers."""
        o = self.overall
        gap = o["judge_accept"].value - o["reference_accept"].value
        return (f"On {self.n} labelled replies the judge {self.judge.get('name')} agrees with the reference on "
                f"{o['agreement'].value:.1%} (95% interval {o['agreement'].low:.1%}-{o['agreement'].high:.1%}; "
                f"Cohen's kappa {o['kappa'].value:.2f}); it accepts {o['judge_accept'].value:.1%} where the reference "
                f"accepts {o['reference_accept'].value:.1%} ({100 * gap:+.1f} points).")

    def table(self) -> str:
        """A plain-text report: overall rates, the 2x2 confusion, and per-emotion rows."""
        lines = [self.sentence(), "", f"{'':22}{'value':>8}  95% interval"]
        names = {"judge_accept": "judge accepts", "reference_accept": "reference accepts", "agreement": "agreement",
                 "kappa": "Cohen's kappa"}
        for key, label in names.items():
            rate = self.overall[key]
            lines.append(f"{label:22}{rate.value:8.3f}  [{rate.low:.3f}, {rate.high:.3f}]")
        (a, b), (c, d) = self.confusion
        lines += ["", f"{'':22}{'judge accepts':>14}{'judge rejects':>15}", f"{'reference accepts':22}{a:14d}{b:15d}",
                  f"{'reference rejects':22}{c:14d}{d:15d}", "",
                  f"{'emotion':10}{'n':>6}{'agreement':>11}{'  95% interval':16}{'judge acc.':>11}{'ref. acc.':>10}  judge hears instead (rejected, reference accepts)"]
        for emotion, row in self.by_emotion.items():
            agree = row["agreement"]
            heard = ", ".join(f"{k} {v}" for k, v in sorted(self.heard_when_rejected.get(emotion, {}).items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"{emotion:10}{row['n']:6d}{agree.value:11.3f}  [{agree.low:.3f}, {agree.high:.3f}]"
                         f"{row['judge_accept'].value:11.3f}{row['reference_accept'].value:10.3f}  {heard}")
        return "\n".join(lines)

    def figure(self) -> Any:
        """Plotly figure: per-emotion agreement with intervals, and both acceptance rates per emotion."""
        from ..plots import judge_validation_figure

        return judge_validation_figure(self)


def validate(judge: Judge, rows: Sequence[LabelledReply] | Sequence[dict[str, Any]], n_boot: int = N_BOOT,
             seed: int = 0) -> JudgeValidation:
    """Run ``judge`` on the rows' texts and compare its accept verdicts with the reference labels."""
    replies = [r for r in rows if isinstance(r, LabelledReply)]
    if len(replies) != len(rows):
        replies = parse_rows(rows)  # type: ignore[arg-type]
    texts, targets = [r.text for r in replies], [r.emotion for r in replies]
    reference = np.array([r.label for r in replies], dtype=bool)
    _, accepted, predicted = judge.verdicts(texts, targets)
    accepted = np.asarray(accepted, dtype=bool)
    overall = _rates(accepted, reference, n_boot, seed)
    by_emotion: dict[str, dict[str, Any]] = {}
    heard: dict[str, dict[str, int]] = {}
    target_array = np.array(targets)
    for emotion in EMOTIONS:
        sel = target_array == emotion
        if not sel.any():
            continue
        by_emotion[emotion] = {"n": int(sel.sum()), **_rates(accepted[sel], reference[sel], n_boot, seed)}
        missed = np.flatnonzero(sel & reference & ~accepted)
        counts: dict[str, int] = {}
        for i in missed:
            counts[predicted[i]] = counts.get(predicted[i], 0) + 1
        heard[emotion] = counts
    confusion = [[int((reference & accepted).sum()), int((reference & ~accepted).sum())],
                 [int((~reference & accepted).sum()), int((~reference & ~accepted).sum())]]
    return JudgeValidation(judge.describe(), len(replies), overall, by_emotion, confusion, heard, accepted)
