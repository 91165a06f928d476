"""The settings of one ``emowork run`` (what the command line gives the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunSettings:
    """Settings of one ``emowork run``."""

    model: str = "embedded"
    preset: str = "standard"  # run size: fast, standard or full (emowork.pipeline.presets)
    out: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    force: bool = False
    stages: tuple[str, ...] | None = None
    judge: str = "default"
    goemotions: str | None = None  # folder of the GoEmotions Ekman mapping: adds it to the transfer test
    gpus: int = 1  # CUDA devices the model's blocks are split over (device_map); 1: one device

    def __post_init__(self) -> None:
        from .presets import get_preset

        get_preset(self.preset)  # an unknown size fails here, before the model is loaded

    @property
    def fast(self) -> bool:
        return self.preset == "fast"

    def out_dir(self) -> Path:
        """The run folder: ``--out`` or ``runs/<model>[-fast|-full]`` (the standard size has no suffix)."""
        if self.out:
            return Path(self.out)
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model.split("/")[-1])
        return Path("runs") / (slug + ("" if self.preset == "standard" else f"-{self.preset}"))
