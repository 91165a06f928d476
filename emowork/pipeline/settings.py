"""The settings of one ``emowork run`` (what the command line gives the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunSettings:
    """Settings of one ``emowork run``."""

    model: str = "embedded"
    fast: bool = False
    out: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    force: bool = False
    stages: tuple[str, ...] | None = None
    fast_per_theme: int = 1  # with --fast: skeletons per theme of the analysis split
    fast_max_new_tokens: int = 48  # with --fast: the decoding limit (100 otherwise, as in docs/method.md section 2)
    judge: str = "default"
    goemotions: str | None = None  # folder of the GoEmotions Ekman mapping: adds it to the transfer test

    def out_dir(self) -> Path:
        """The run folder: ``--out`` or ``runs/<model>[-fast]``."""
        if self.out:
            return Path(self.out)
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model.split("/")[-1])
        return Path("runs") / (slug + ("-fast" if self.fast else ""))
