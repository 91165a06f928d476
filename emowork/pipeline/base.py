"""What a pipeline stage is: a named step that turns a run context into key numbers, figures and sentences."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from ..model.handle import ModelHandle
    from .presets import Preset
    from .settings import RunSettings


@dataclass
class RunContext:
    """What every stage can use: the model, the settings, the run folder and earlier stages' numbers."""

    handle: "ModelHandle"
    settings: "RunSettings"
    out_dir: Path
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def preset(self) -> "Preset":
        """The run's sizes (fast, standard or full)."""
        from .presets import get_preset

        return get_preset(self.settings.preset)

    @property
    def artifacts_dir(self) -> Path:
        """Folder for a stage's data files (safetensors, JSON)."""
        path = self.out_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class StageOutput:
    """A finished stage: ``numbers`` go to ``run.json[stage.name]``; figures are written as HTML (to view) and plotly
    JSON (to export as SVG/PDF with ``emowork figures``), captioned by the stage's ``captions``."""

    numbers: dict[str, Any]
    figures: dict[str, "go.Figure"] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)  # {"title", "columns", "rows"}
    links: dict[str, str] = field(default_factory=dict)  # what it is -> a file the stage wrote, relative to the run folder


class Stage:
    """Base class. Subclasses set ``name``/``title``/``description`` and implement :meth:`run`."""

    name: str = ""
    title: str = ""
    description: str = ""
    captions: dict[str, str] = {}  # figure stem -> what to look at in it
    in_default: bool = True  # run without --stages; an opt-in stage runs only when named

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        """The settings that determine this stage's result (a finished stage is reused when they match)."""
        return {"preset": ctx.preset.as_dict()}

    def run(self, ctx: RunContext) -> StageOutput:  # pragma: no cover - abstract
        raise NotImplementedError
