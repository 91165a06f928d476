"""SEV data (Scenario, Event, Valence): loading, validation, statistics and drafting new skeletons.

    from emowork import data
    ds = data.load_sev("analysis")           # or "test", or a path to a JSONL / CSV / JSON file
    ds.groups                                   # (skeleton, valence) pairs: the unit prompted once per emotion
    small = ds.select(per_theme=2)              # deterministic, theme-balanced subset for FAST runs
    print(data.validate_files({"analysis": path_a, "test": path_b}))   # every problem, with file and line
"""

from .drafting import Draft, DraftResult, draft_skeletons, parse_draft
from .loading import load_sev
from .sev import VALENCES, Group, SEVDataset, Skeleton, data_dir, split_path
from .stats import DatasetStats, stats
from .validate import DatasetError, Problem, ValidationReport, validate_files, validate_records
from .words import EmotionWordMatcher, default_matcher

__all__ = [
    "VALENCES", "Skeleton", "Group", "SEVDataset", "load_sev", "split_path", "data_dir",
    "DatasetError", "Problem", "ValidationReport", "validate_files", "validate_records",
    "EmotionWordMatcher", "default_matcher", "DatasetStats", "stats",
    "Draft", "DraftResult", "draft_skeletons", "parse_draft",
]
