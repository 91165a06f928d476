"""The main job, ``emowork run``: pipeline stages, the run record (run.json) and the HTML report."""

from .runner import RunSettings, run_pipeline
from .stages import STAGES

__all__ = ["RunSettings", "run_pipeline", "STAGES"]
