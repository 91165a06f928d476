"""Validation of SEV files: every problem reported with its file, line, skeleton and field.

Kinds of problem: ``json`` (malformed line), ``missing`` / ``empty`` / ``type`` (fields), ``valence`` (an event
key other than positive/neutral/negative), ``duplicate_id``, ``duplicate_text`` (within a file),
``leakage`` (the same text in two splits), ``emotion_word`` (a word of the project's emotion-word list),
``unknown_field`` (a warning: extra keys are kept but ignored).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmoworkError
from .sev import VALENCES, RawRecord, Skeleton, read_records
from .words import EmotionWordMatcher, default_matcher

REQUIRED = ("skeleton_id", "theme", "scenario", "event")
TEXT_FIELDS = ("skeleton_id", "theme", "scenario")
FIX_HINTS = {
    "json": "each line of a JSONL file must be one complete JSON object",
    "missing": f"every record needs {', '.join(REQUIRED)} and event.{{{', '.join(VALENCES)}}}",
    "empty": "fields must be non-empty strings",
    "type": "scenario/theme/id are strings; event is an object {positive, neutral, negative}",
    "valence": f"event keys must be exactly {', '.join(VALENCES)}",
    "duplicate_id": "skeleton ids must be unique across all splits",
    "duplicate_text": "each scenario and event text must appear once",
    "leakage": "a text shared by two splits leaks test data into analysis: rewrite one of them",
    "emotion_word": "scenarios and events must not name emotions: rephrase as facts (or load with emotion_words='warn')",
}


class DatasetError(EmoworkError, ValueError):
    """A dataset file that failed validation; ``.report`` holds every problem."""

    def __init__(self, report: "ValidationReport") -> None:
        self.report = report
        super().__init__(report.error_message())


@dataclass(frozen=True)
class Problem:
    """One problem: where it is (file, line, skeleton, field), what it is, and whether it is an error."""

    kind: str
    file: str
    line: int
    skeleton_id: str
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        who = f" {self.skeleton_id}" if self.skeleton_id else ""
        fld = f" {self.field}:" if self.field else ""
        return f"{where}:{who}{fld} [{self.kind}] {self.message}"


@dataclass
class ValidationReport:
    """Every problem found in a set of files, plus how many records each had."""

    files: dict[str, str] = field(default_factory=dict)
    n_records: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def emotion_word_hits(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "emotion_word"]

    def by_kind(self) -> dict[str, int]:
        """Number of problems of each kind."""
        return dict(Counter(p.kind for p in self.problems))

    def summary(self) -> str:
        files = ", ".join(f"{name} ({self.n_records.get(name, 0)} records)" for name in self.files)
        if not self.problems:
            return f"Validated {files}: no problems."
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind().items()))
        return f"Validated {files}: {len(self.errors)} error(s), {len(self.warnings)} warning(s) ({kinds})."

    def __str__(self) -> str:
        return "\n".join([self.summary(), *(str(p) for p in self.problems)])

    def error_message(self, limit: int = 30) -> str:
        lines = [self.summary()]
        lines += [str(p) for p in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more (print the report for all of them)")
        kinds = sorted({p.kind for p in self.errors})
        lines.append("How to fix: " + "; ".join(f"{k}: {FIX_HINTS[k]}" for k in kinds if k in FIX_HINTS) + ".")
        return "\n".join(lines)

    def raise_if_errors(self) -> None:
        """Raise :class:`DatasetError` when there is any error."""
        if self.errors:
            raise DatasetError(self)

    def warn_if_any(self) -> None:
        """Issue one Python warning summarising the warnings, if any."""
        if self.warnings:
            shown = "\n".join(str(p) for p in self.warnings[:10])
            warnings.warn(f"{len(self.warnings)} dataset warning(s):\n{shown}", stacklevel=3)


def normalise_text(text: str) -> str:
    """Casefolded, whitespace-collapsed text without trailing punctuation (for duplicate detection)."""
    return re.sub(r"[\s.!?;:,]+$", "", " ".join(text.casefold().split()))


def validate_records(records: list[RawRecord], file: str, matcher: EmotionWordMatcher | None = None,
                     emotion_words: str = "error") -> tuple[list[Problem], list[Skeleton]]:
    """Validate one file's records. Returns ``(problems, skeletons)``; a record with an error yields no skeleton."""
    if emotion_words not in {"error", "warn", "ignore"}:
        raise ValueError("emotion_words must be 'error', 'warn' or 'ignore'")
    matcher = matcher or default_matcher()
    problems: list[Problem] = []
    skeletons: list[Skeleton] = []
    first_id_line: dict[str, int] = {}
    first_text_line: dict[str, tuple[int, str, str]] = {}
    for record in records:
        start = len(problems)

        def add(kind: str, sid: str, fld: str, message: str, severity: str = "error") -> None:
            problems.append(Problem(kind, file, record.line, sid, fld, message, severity))

        if record.data is None:
            add("json", "", "", record.error or "unreadable record")
            continue
        data = record.data
        sid = data.get("skeleton_id") if isinstance(data.get("skeleton_id"), str) else ""
        for key in REQUIRED:
            if key not in data:
                add("missing", sid, key, f"required field {key!r} is missing")
        for key in TEXT_FIELDS:
            if key in data:
                value = data[key]
                if not isinstance(value, str):
                    add("type", sid, key, f"expected a string, found {type(value).__name__}")
                elif not value.strip():
                    add("empty", sid, key, "is empty")
        for key in data:
            if key not in REQUIRED:
                add("unknown_field", sid, key, "unknown field (ignored)", "warning")
        event = data.get("event")
        if "event" in data and not isinstance(event, dict):
            add("type", sid, "event", f"expected an object with {', '.join(VALENCES)}, found {type(event).__name__}")
            event = None
        if isinstance(event, dict):
            for key in event:
                if key not in VALENCES:
                    add("valence", sid, f"event.{key}", f"unknown valence {key!r}; valences are {', '.join(VALENCES)}")
            for valence in VALENCES:
                if valence not in event:
                    add("missing", sid, f"event.{valence}", "event is missing")
                elif not isinstance(event[valence], str):
                    add("type", sid, f"event.{valence}", f"expected a string, found {type(event[valence]).__name__}")
                elif not event[valence].strip():
                    add("empty", sid, f"event.{valence}", "is empty")
        if sid:
            if sid in first_id_line:
                add("duplicate_id", sid, "skeleton_id", f"id already used on line {first_id_line[sid]}")
            else:
                first_id_line[sid] = record.line
        texts = _texts(data)
        for fld, text in texts:
            key = normalise_text(text)
            if key in first_text_line:
                line, other_id, other_field = first_text_line[key]
                add("duplicate_text", sid, fld, f"same text as {other_id} {other_field} (line {line})")
            else:
                first_text_line[key] = (record.line, sid, fld)
            if emotion_words != "ignore":
                for hit in matcher.find(text):
                    add("emotion_word", sid, fld, f"emotion word {hit.matched!r} ({hit.category})",
                        "error" if emotion_words == "error" else "warning")
        has_error = any(p.severity == "error" for p in problems[start:])
        if not has_error:
            skeletons.append(Skeleton(
                skeleton_id=sid, theme=data["theme"].strip(), scenario=data["scenario"].strip(),
                events=tuple((v, event[v].strip()) for v in VALENCES), source=file, line=record.line,
            ))
    return problems, skeletons


def _texts(data: dict[str, Any]) -> list[tuple[str, str]]:
    texts = []
    if isinstance(data.get("scenario"), str) and data["scenario"].strip():
        texts.append(("scenario", data["scenario"]))
    event = data.get("event")
    if isinstance(event, dict):
        texts += [(f"event.{v}", event[v]) for v in VALENCES if isinstance(event.get(v), str) and event[v].strip()]
    return texts


def validate_files(files: dict[str, str | Path], emotion_words: str = "error",
                   matcher: EmotionWordMatcher | None = None) -> tuple[ValidationReport, dict[str, list[Skeleton]]]:
    """Validate several files (``{split name: path}``), including ids and texts shared between them.

    A problem shared by two files (a reused id, a leaked text) is reported on the later file of ``files``.
    Returns ``(report, {split name: valid skeletons})``.
    """
    report = ValidationReport(files={name: str(path) for name, path in files.items()})
    skeletons: dict[str, list[Skeleton]] = {}
    raw: dict[str, list[RawRecord]] = {}
    for name, path in files.items():
        raw[name] = read_records(path)
        report.n_records[name] = len(raw[name])
        if not raw[name]:
            report.problems.append(Problem("empty_file", str(path), 0, "", "",
                                           "the file holds no rows: write one skeleton per line (JSONL), or rows of a CSV "
                                           "with a header, or a JSON list (see data/README.md for the fields)"))
        problems, skeletons[name] = validate_records(raw[name], str(path), matcher, emotion_words)
        report.problems += problems
    names = list(files)
    for i, first in enumerate(names):
        seen_ids = {r.data.get("skeleton_id"): r.line for r in raw[first] if r.data and isinstance(r.data.get("skeleton_id"), str)}
        seen_texts = {normalise_text(t): (r.line, r.data.get("skeleton_id", ""), f) for r in raw[first] if r.data for f, t in _texts(r.data)}
        for second in names[i + 1:]:
            for r in raw[second]:
                if not r.data:
                    continue
                sid = r.data.get("skeleton_id") if isinstance(r.data.get("skeleton_id"), str) else ""
                if sid and sid in seen_ids:
                    report.problems.append(Problem("duplicate_id", str(files[second]), r.line, sid, "skeleton_id",
                                                   f"id also used in {first} ({files[first]}:{seen_ids[sid]})"))
                for fld, text in _texts(r.data):
                    hit = seen_texts.get(normalise_text(text))
                    if hit:
                        report.problems.append(Problem("leakage", str(files[second]), r.line, sid, fld,
                                                       f"same text as {first} {hit[1]} {hit[2]} ({files[first]}:{hit[0]})"))
    # Skeletons involved in cross-file errors are dropped, like those with errors in their own file.
    bad = {(p.file, p.line) for p in report.errors}
    for name, path in files.items():
        skeletons[name] = [s for s in skeletons[name] if (str(path), s.line) not in bad]
    return report, skeletons
