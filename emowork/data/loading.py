"""Loading a SEV dataset: read a built-in split or a file, validate it against the other split, return the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .sev import SPLITS, SEVDataset, split_path
from .validate import validate_files


def load_sev(source: str | Path = "analysis", check_against: Sequence[str | Path] | None = None,
             emotion_words: str = "error") -> SEVDataset:
    """Load and validate a SEV dataset: a built-in split name (``"analysis"``, ``"test"``) or a file path.

    Built-in splits are checked for texts shared with the other split; for a file, pass ``check_against``
    (paths or split names) to check leakage. ``emotion_words``: ``"error"`` (default), ``"warn"`` or
    ``"ignore"`` for texts containing words of the emotion-word list. Raises
    :class:`~emowork.data.validate.DatasetError` listing every problem with its file and line.
    """
    if str(source) in SPLITS:
        name = str(source)
        files = {s: split_path(s) for s in SPLITS}
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"Dataset file {path} not found (built-in splits: {', '.join(SPLITS)}).")
        name = path.stem
        files = {}
        for other in check_against or []:  # reference files first: shared texts are reported on the new file
            other_path = split_path(str(other)) if str(other) in SPLITS else Path(other)
            files[str(other) if str(other) in SPLITS else other_path.stem] = other_path
        if name in files:
            name = f"{name} (checked)"
        files[name] = path
    report, skeletons = validate_files(files, emotion_words=emotion_words)
    report.raise_if_errors()
    report.warn_if_any()
    return SEVDataset(name, skeletons[name], str(files[name]))
