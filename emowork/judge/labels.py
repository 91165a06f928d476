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
    """Texts with a class index into :data:`CLASSES` each, and where they came from.

    ``groups``: what rows must not be split across folds by (the writer, for the project's replies);
    ``kinds``: ``in_register`` (an emotion reply) or ``style_neutral`` (emotional content, neutral style), when known.
    """

    texts: list[str]
    labels: list[int]
    source: str
    groups: list[str] | None = None
    kinds: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> "LabelledTexts":
        def pick(values: list[str] | None) -> list[str] | None:
            return [values[i] for i in keep] if values else None

        return LabelledTexts([self.texts[i] for i in keep], [self.labels[i] for i in keep], self.source,
                             pick(self.groups), pick(self.kinds))


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


def read_replies(path: str | Path | None = None) -> list[dict]:
    """Every row of the project's labelled replies (``data/judge/replies.jsonl``; see ``data/README.md``)."""
    path = Path(path) if path is not None else default_replies_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the judge's labelled replies live in data/judge/replies.jsonl of the "
                                "source tree (pass path= for another copy).")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_replies(split: str, path: str | Path | None = None) -> LabelledTexts:
    """The project's replies of ``split``: ``"train"`` (training writers), ``"heldout"`` (writers never used in
    training), or ``"all"``. ``groups`` are the writers, ``kinds`` the row kinds."""
    rows = [r for r in read_replies(path) if split == "all" or r["split"] == split]
    if not rows:
        raise ValueError(f"the judge's replies have no rows with split {split!r} (use train, heldout or all)")
    return LabelledTexts([r["text"] for r in rows], [CLASSES.index(r["emotion"]) for r in rows], f"replies-{split}",
                         [r["writer"] for r in rows], [r["kind"] for r in rows])


def default_replies_path() -> Path:
    """``data/judge/replies.jsonl`` of the source tree."""
    from ..data.sev import data_dir

    return data_dir() / "judge" / "replies.jsonl"
