"""The emotion-word list (``emowork/resources/emotion_words.txt``) and a matcher that reports every hit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

SECTIONS = ("anger", "sadness", "happiness", "fear", "surprise", "disgust", "affect")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class WordHit:
    """One emotion word found in a text: the entry, its category and where it starts."""

    word: str
    category: str
    start: int
    matched: str


class EmotionWordMatcher:
    """Finds whole-word, case-insensitive occurrences of list entries (phrases included) in a text."""

    def __init__(self, entries: dict[str, str]) -> None:
        """``entries`` maps a lowercase word or phrase to its category."""
        if not entries:
            raise ValueError("empty emotion-word list")
        self.entries = dict(entries)
        ordered = sorted(self.entries, key=lambda e: (-len(e), e))  # longest first: phrases beat their words
        alternatives = "|".join(r"\s+".join(re.escape(part) for part in e.split()) for e in ordered)
        self._pattern = re.compile(rf"(?<![\w\-'])(?:{alternatives})(?![\w\-])", re.IGNORECASE)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, text: str) -> list[WordHit]:
        """Every hit in ``text`` (non-overlapping, left to right; a phrase is one hit)."""
        normalised = text.translate(_APOSTROPHES)
        hits = []
        for match in self._pattern.finditer(normalised):
            key = " ".join(match.group(0).lower().split())
            hits.append(WordHit(key, self.entries.get(key, "?"), match.start(), match.group(0)))
        return hits

    def counts_by_category(self) -> dict[str, int]:
        """Number of entries per category."""
        counts = {s: 0 for s in SECTIONS}
        for category in self.entries.values():
            counts[category] = counts.get(category, 0) + 1
        return counts


def parse_word_list(text: str, source: str = "<word list>") -> dict[str, str]:
    """Parse the word-list format (``[section]`` headers, one entry per line, ``#`` comments).

    Returns ``{entry: category}``. Raises ValueError naming the line for an entry outside a section, an unknown
    section or a duplicate entry.
    """
    entries: dict[str, str] = {}
    section = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            if section not in SECTIONS:
                raise ValueError(f"{source}:{number}: unknown section [{section}]; sections are {', '.join(SECTIONS)}")
            continue
        if section is None:
            raise ValueError(f"{source}:{number}: entry {line!r} before any [section] header")
        entry = " ".join(line.lower().split())
        if entry in entries:
            raise ValueError(f"{source}:{number}: {entry!r} is listed twice (also under [{entries[entry]}])")
        entries[entry] = section
    return entries


@lru_cache(maxsize=4)
def _load(path: str | None) -> EmotionWordMatcher:
    if path is None:
        text = resources.files("emowork").joinpath("resources/emotion_words.txt").read_text(encoding="utf-8")
        return EmotionWordMatcher(parse_word_list(text, "emotion_words.txt"))
    return EmotionWordMatcher(parse_word_list(Path(path).read_text(encoding="utf-8"), path))


def default_matcher(path: str | Path | None = None) -> EmotionWordMatcher:
    """The matcher for the project's word list (or the list at ``path``), parsed once and cached."""
    return _load(str(path) if path is not None else None)
