"""The stages of ``emowork run``, in pipeline order. Each later analysis adds its stage here."""

from ..base import Stage
from .preparation import CheckStage, DataStage, ProfileStage, analysis_split
from .components import ComponentsStage
from .circuits import CircuitsStage
from .graphs import GraphsStage
from .directions import DirectionsStage, SteeringStage
from .judging import ElicitationStage, JudgeStage, decoding

STAGES: list[Stage] = [CheckStage(), DataStage(), ProfileStage(), JudgeStage(), ElicitationStage(), DirectionsStage(),
                       SteeringStage(), ComponentsStage(), CircuitsStage(), GraphsStage()]

__all__ = ["STAGES", "analysis_split", "decoding", "CheckStage", "DataStage", "ProfileStage", "JudgeStage",
           "ElicitationStage", "DirectionsStage", "SteeringStage", "ComponentsStage",
           "CircuitsStage", "GraphsStage"]
