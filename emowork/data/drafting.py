"""Drafting new skeletons with a loaded model, parsing what comes back, and validating each draft.

Any model can draft; small ones mostly fail. ``draft_skeletons`` always returns every draft with the reason it
was rejected, and says how many passed, so a human reviews the rest (``widgets.draft_review``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..generation.generate import DecodingConfig, generate
from .sev import VALENCES, RawRecord, SEVDataset, Skeleton
from .validate import Problem, normalise_text, validate_records

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

THEME_PREFIXES = {
    "Work/Job": "work", "School/Education": "school", "Relationships": "relationships",
    "Shopping/Customer Service": "shopping", "Public Administration": "admin", "Health": "health",
    "Housing": "housing", "Travel": "travel",
}
DRAFT_SYSTEM = "You write short, factual data records. Reply with one JSON object only."
DRAFT_INSTRUCTION = (
    "Write a new record for the theme \"{theme}\". The scenario is a neutral first-person situation in one or two "
    "sentences. The three events are one sentence each and differ only in outcome: positive (good for me), neutral "
    "(nothing happens), negative (bad for me). Use no emotion words. Use the same keys as this example:\n{example}"
)
DRAFT_DECODING = DecodingConfig(max_new_tokens=160, do_sample=True, temperature=0.8, top_p=0.95, seed=0)


@dataclass
class Draft:
    """One drafted skeleton: the model's raw text, the parsed record (or None) and its problems."""

    raw: str
    record: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.record is not None and not any(p.severity == "error" for p in self.problems)

    def reasons(self) -> list[str]:
        """Why the draft was rejected (empty when it passed)."""
        if self.record is None:
            return ["no record could be parsed from the reply"]
        return [f"{p.field}: {p.message}" for p in self.problems if p.severity == "error"]


@dataclass
class DraftResult:
    """All drafts of one call and how many passed validation."""

    theme: str
    drafts: list[Draft]

    @property
    def passed(self) -> list[Draft]:
        return [d for d in self.drafts if d.ok]

    @property
    def n_passed(self) -> int:
        return len(self.passed)

    def summary(self) -> str:
        parsed = sum(d.record is not None for d in self.drafts)
        return (f"{self.n_passed} of {len(self.drafts)} drafts for {self.theme!r} passed validation "
                f"({parsed} could be parsed into a record).")

    def __repr__(self) -> str:
        return f"DraftResult({self.summary()})"


def parse_draft(text: str) -> dict[str, Any] | None:
    """Extract ``{"scenario", "event": {positive, neutral, negative}}`` from a model reply, or None.

    Tries, in order: each balanced ``{...}`` block as JSON (also with trailing commas removed and single quotes
    turned into double quotes), then ``Scenario: ...`` / ``Positive: ...`` lines. Flat keys
    (``positive``...) and an ``event`` object are both accepted.
    """
    for block in _json_blocks(text):
        for candidate in (block, re.sub(r",\s*([}\]])", r"\1", block), block.replace("'", '"')):
            try:
                data = json.loads(candidate)
            except json.JSONDecodeError:
                continue
            record = _normalise(data)
            if record is not None:
                return record
    return _parse_lines(text)


def _json_blocks(text: str) -> list[str]:
    blocks, depth, start = [], 0, None
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                blocks.append(text[start:i + 1])
    return blocks


def _normalise(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    lower = {str(k).strip().lower(): v for k, v in data.items()}
    event = lower.get("event") if isinstance(lower.get("event"), dict) else {k: lower[k] for k in VALENCES if k in lower}
    event = {str(k).strip().lower(): v for k, v in event.items()}
    scenario = lower.get("scenario")
    if not isinstance(scenario, str) or not any(v in event for v in VALENCES):
        return None
    return {"scenario": scenario, "event": {v: event[v] for v in event}}


def _parse_lines(text: str) -> dict[str, Any] | None:
    found: dict[str, str] = {}
    for key in ("scenario", *VALENCES):
        match = re.search(rf"(?im)^\W*(?:an?\s+)?{key}(?:\s+(?:outcome|event))?\W*\s*[:=-]\s*(.+)$", text)
        if match:
            found[key] = match.group(1).strip().strip('",')
    if "scenario" not in found or not any(v in found for v in VALENCES):
        return None
    return {"scenario": found["scenario"], "event": {v: found[v] for v in VALENCES if v in found}}


def draft_skeletons(handle: "ModelHandle", theme: str, n: int = 4, existing: SEVDataset | None = None,
                    config: DecodingConfig = DRAFT_DECODING, progress: bool = False) -> DraftResult:
    """Ask ``handle``'s model for ``n`` new skeletons of ``theme`` and validate each.

    The prompt shows one skeleton of that theme from ``existing`` (default: the analysis split) as the format
    example. Each draft gets an id ``<prefix>_draft<k>``, theme ``theme``, and is checked for missing/empty
    fields, emotion words, and texts already in ``existing``. Returns a :class:`DraftResult`.
    """
    from .loading import load_sev

    if n < 1:
        raise ValueError("n must be >= 1")
    existing = existing if existing is not None else load_sev("analysis")
    examples = [s for s in existing if s.theme == theme]
    if not examples:
        raise ValueError(f"Unknown theme {theme!r}; themes: {', '.join(existing.themes)}")
    example = json.dumps({"scenario": examples[0].scenario, **dict(examples[0].events)}, ensure_ascii=False)
    prompt = handle.format_chat(DRAFT_INSTRUCTION.format(theme=theme, example=example), DRAFT_SYSTEM)
    replies = generate(handle, [prompt] * n, config, batch_size=1 if config.do_sample else "auto", progress=progress,
                       desc=f"drafting {theme}")
    # The n prompts are identical; generate() seeds each with config.seed + its index, so the drafts differ.
    prefix = THEME_PREFIXES.get(theme, re.sub(r"\W+", "_", theme.lower()).strip("_"))
    known = {normalise_text(t) for s in existing for t in (s.scenario, *(e for _, e in s.events))}
    drafts = []
    for k, reply in enumerate(replies):
        record = parse_draft(reply.text)
        if record is None:
            drafts.append(Draft(reply.text, None))
            continue
        full = {"skeleton_id": f"{prefix}_draft{k}", "theme": theme, **record}
        problems, _ = validate_records([RawRecord(k + 1, full)], "<draft>")
        for fld, text in [("scenario", full["scenario"])] + [(f"event.{v}", t) for v, t in full["event"].items() if isinstance(t, str)]:
            if normalise_text(text) in known:
                problems.append(Problem("leakage", "<draft>", k + 1, full["skeleton_id"], fld, "text already in the dataset"))
        drafts.append(Draft(reply.text, full, problems))
    return DraftResult(theme, drafts)


def skeleton_from_record(record: dict[str, Any]) -> Skeleton:
    """A :class:`Skeleton` from a validated record dict."""
    return Skeleton(record["skeleton_id"], record["theme"], record["scenario"],
                    tuple((v, record["event"][v]) for v in VALENCES))
