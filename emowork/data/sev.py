"""SEV records: reading JSONL / CSV / JSON files, the Skeleton and Group types, and ``load_sev``."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

VALENCES: tuple[str, ...] = ("positive", "neutral", "negative")
SPLITS = ("analysis", "test")
DATA_ENV = "EMOWORK_DATA_DIR"


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a file: its line number and either the parsed dict or the parse error."""

    line: int
    data: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True)
class Skeleton:
    """A neutral first-person scenario with three outcome events (positive, neutral, negative)."""

    skeleton_id: str
    theme: str
    scenario: str
    events: tuple[tuple[str, str], ...]  # ((valence, text), ...) in VALENCES order
    source: str = ""
    line: int = 0

    def event(self, valence: str) -> str:
        """The event text of ``valence``."""
        for key, text in self.events:
            if key == valence:
                return text
        raise KeyError(f"{self.skeleton_id} has no {valence!r} event; valences are {', '.join(VALENCES)}")

    def message(self, valence: str) -> str:
        """The user message of docs/method.md section 2: ``"{scenario}\\n{event}"``."""
        return f"{self.scenario}\n{self.event(valence)}"

    def to_record(self) -> dict[str, Any]:
        """The paper's record format."""
        return {"skeleton_id": self.skeleton_id, "theme": self.theme, "scenario": self.scenario,
                "event": dict(self.events)}


@dataclass(frozen=True)
class Group:
    """One (skeleton, valence) pair: prompted once per emotion in the emotion-elicited design."""

    skeleton: Skeleton
    valence: str

    @property
    def group_id(self) -> str:
        """``"<skeleton_id>/<valence>"``."""
        return f"{self.skeleton.skeleton_id}/{self.valence}"

    @property
    def theme(self) -> str:
        return self.skeleton.theme

    @property
    def message(self) -> str:
        """The user message ``"{scenario}\\n{event}"``."""
        return self.skeleton.message(self.valence)


class SEVDataset:
    """A list of skeletons with its groups, themes, a content hash and deterministic subsets."""

    def __init__(self, name: str, skeletons: Sequence[Skeleton], path: str | None = None) -> None:
        self.name = name
        self.path = path
        self.skeletons: list[Skeleton] = list(skeletons)
        self._by_id = {s.skeleton_id: s for s in self.skeletons}

    def __len__(self) -> int:
        return len(self.skeletons)

    def __iter__(self) -> Iterator[Skeleton]:
        return iter(self.skeletons)

    def __getitem__(self, skeleton_id: str) -> Skeleton:
        return self._by_id[skeleton_id]

    def __repr__(self) -> str:
        return f"SEVDataset({self.name!r}: {len(self)} skeletons, {len(self.groups)} groups, {len(self.themes)} themes)"

    @property
    def themes(self) -> list[str]:
        """Themes in order of first appearance."""
        return list(dict.fromkeys(s.theme for s in self.skeletons))

    @property
    def groups(self) -> list[Group]:
        """Every (skeleton, valence) pair, skeleton-major, valences in VALENCES order."""
        return [Group(s, v) for s in self.skeletons for v, _ in s.events]

    def group(self, group_id: str) -> Group:
        """The group ``"<skeleton_id>/<valence>"``."""
        skeleton_id, _, valence = group_id.rpartition("/")
        return Group(self[skeleton_id], valence)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the records' content (order-sensitive; independent of file format)."""
        blob = json.dumps([s.to_record() for s in self.skeletons], sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def select(self, themes: Sequence[str] | None = None, per_theme: int | None = None, n: int | None = None) -> "SEVDataset":
        """A deterministic, theme-balanced subset.

        ``themes`` keeps only those themes; ``per_theme=k`` keeps the first k skeletons of each theme (file
        order); ``n`` keeps n skeletons taken round-robin over themes. Returns a new dataset.
        """
        chosen = self.skeletons
        if themes is not None:
            unknown = [t for t in themes if t not in self.themes]
            if unknown:
                raise ValueError(f"Unknown theme(s) {unknown}; themes of {self.name}: {', '.join(self.themes)}")
            chosen = [s for s in chosen if s.theme in themes]
        by_theme: dict[str, list[Skeleton]] = {}
        for s in chosen:
            by_theme.setdefault(s.theme, []).append(s)
        if per_theme is not None:
            if per_theme < 1:
                raise ValueError("per_theme must be >= 1")
            by_theme = {t: items[:per_theme] for t, items in by_theme.items()}
        if n is not None:
            if n < 1:
                raise ValueError("n must be >= 1")
            picked: list[Skeleton] = []
            depth = 0
            while len(picked) < n and any(depth < len(items) for items in by_theme.values()):
                picked += [items[depth] for items in by_theme.values() if depth < len(items)][: n - len(picked)]
                depth += 1
            keep = {s.skeleton_id for s in picked}
        else:
            keep = {s.skeleton_id for items in by_theme.values() for s in items}
        parts = [f"themes={list(themes)}" if themes else "", f"per_theme={per_theme}" if per_theme else "", f"n={n}" if n else ""]
        label = ",".join(p for p in parts if p)
        return SEVDataset(f"{self.name}[{label}]" if label else self.name, [s for s in self.skeletons if s.skeleton_id in keep], self.path)


def data_dir() -> Path:
    """The project's data folder: ``$EMOWORK_DATA_DIR`` or ``data/`` of the source tree."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def split_path(split: str) -> Path:
    """Path of a built-in split (``"analysis"`` or ``"test"``)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: built-in splits are {', '.join(SPLITS)}; or pass a file path.")
    path = data_dir() / "sev" / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found. Set {DATA_ENV} to the folder holding sev/{split}.jsonl, or pass a file path.")
    return path


def read_records(path: str | Path) -> list[RawRecord]:
    """Read a JSONL, CSV or JSON (list) file into raw records with line numbers; parse errors are kept."""
    path = Path(path)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        return _read_csv(text)
    if suffix == ".json":
        return _read_json_list(text)
    return _read_jsonl(text)


def _read_jsonl(text: str) -> list[RawRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append(RawRecord(number, None, f"malformed JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            records.append(RawRecord(number, None, f"expected a JSON object, found {type(data).__name__}"))
            continue
        records.append(RawRecord(number, data))
    return records


def _read_json_list(text: str) -> list[RawRecord]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        return [RawRecord(exc.lineno, None, f"malformed JSON ({exc.msg} at column {exc.colno})")]
    if not isinstance(items, list):
        return [RawRecord(1, None, "a .json file must hold a list of records (or use JSONL: one object per line)")]
    return [RawRecord(i + 1, item if isinstance(item, dict) else None,
                      None if isinstance(item, dict) else f"item {i + 1} is not an object") for i, item in enumerate(items)]


def _read_csv(text: str) -> list[RawRecord]:
    """CSV columns: skeleton_id, theme, scenario and the events as ``positive``/``neutral``/``negative``
    (or ``event.positive``, ``event_positive``; any other ``event.X`` column is kept so validation names it)."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    records = []
    for row in reader:
        record: dict[str, Any] = {}
        event: dict[str, Any] = {}
        for key, value in row.items():
            key = (key or "").strip()
            if not key:
                continue
            if key in VALENCES:
                event[key] = value
            elif key.startswith(("event.", "event_")):
                event[key[len("event."):]] = value
            else:
                record[key] = value
        record["event"] = event
        records.append(RawRecord(reader.line_num, record))
    return records
