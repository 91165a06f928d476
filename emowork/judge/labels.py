"""The judge's classes and the labelled data it is trained and evaluated on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..emotions import EMOTIONS

CLASSES: tuple[str, ...] = (*EMOTIONS, "neutral")  # the head's 7 outputs; scores() returns the first six
GOEMOTIONS_NAMES = {"joy": "happiness"}  # GoEmotions' Ekman mapping calls happiness "joy"


@dataclass
class LabelledTexts:
    """Texts with a class index into :data:`CLASSES` each, and where they came from."""

    texts: list[str]
    labels: list[int]
    source: str
    groups: list[str] | None = None  # e.g. the situation a reply answers (for grouped cross-validation)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> "LabelledTexts":
        return LabelledTexts([self.texts[i] for i in keep], [self.labels[i] for i in keep], self.source,
                             [self.groups[i] for i in keep] if self.groups else None)


def load_goemotions(folder: str | Path, split: str) -> LabelledTexts:
    """Single-label rows of GoEmotions (Ekman mapping) ``split`` (train/dev/test) from ``folder``.

    ``folder`` holds ``labels.txt`` and ``<split>.tsv`` (text, comma-separated label ids, comment id). Rows with
    several labels are dropped (the judge is single-label). Raises FileNotFoundError naming what is missing.
    """
    folder = Path(folder)
    names_file, rows_file = folder / "labels.txt", folder / f"{split}.tsv"
    for needed in (names_file, rows_file):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} not found: give the folder of the GoEmotions Ekman mapping "
                                    "(labels.txt, train.tsv, dev.tsv, test.tsv).")
    names = [GOEMOTIONS_NAMES.get(n.strip(), n.strip()) for n in names_file.read_text().splitlines() if n.strip()]
    texts, labels = [], []
    for line in rows_file.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or "," in parts[1]:
            continue
        name = names[int(parts[1])]
        texts.append(parts[0])
        labels.append(CLASSES.index(name))
    return LabelledTexts(texts, labels, f"goemotions-{split}")


def load_in_domain(path: str | Path, split: str) -> LabelledTexts:
    """The project's in-domain replies (``data/judge/in_domain.jsonl``), ``split`` = train or heldout."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] == split]
    if not rows:
        raise ValueError(f"{path} has no rows with split {split!r}")
    return LabelledTexts([r["text"] for r in rows], [CLASSES.index(r["emotion"]) for r in rows], f"in-domain-{split}",
                         [r["id"].rsplit("_", 1)[1] for r in rows])


def default_in_domain_path() -> Path:
    """``data/judge/in_domain.jsonl`` of the source tree."""
    from ..data.sev import data_dir

    return data_dir() / "judge" / "in_domain.jsonl"
