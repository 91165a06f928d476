"""Run sizes: ``fast`` (a smoke run of every stage: minutes on a laptop CPU; short replies, small samples, wide
intervals), ``standard`` (the default of ``emowork run``: every stage and figure
in under 20 minutes on 2 CPU cores with the embedded model) and ``full`` (the paper-size analysis: every analysis and
test group; hours on a CPU, minutes on a GPU).

On 2 CPU cores the embedded model writes about one 48-token reply per second, and replies dominate the time, so
``standard`` doubles what the analysis rests on (48 analysis groups: the elicitation interval, the directions, the
component samples) and keeps the fast sweep (3 settings on the 8 neutral test groups, 48 replies each).

Every size a stage uses is read from the run's :class:`Preset`, so the three differ only here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..analysis.steering_sweep import DEFAULT_SETTINGS, FAST_SETTINGS

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.steering import SteeringSetting



@dataclass(frozen=True)
class Preset:
    """The sizes of one run.

    ``analysis_per_theme``: analysis skeletons per theme (None: all); ``max_new_tokens``: the one decoding limit;
    ``transfer_per_emotion``: natural texts per emotion in the transfer test (None: all); ``sweep_per_theme``: test
    skeletons per theme for the steering sweep (None: every test group); ``sweep_neutral_only``: sweep on the neutral
    outcome's groups only; ``final_on_all_test``: re-measure the chosen setting on every test group;
    ``sample_groups``: analysis groups for component samples; ``dose_all_layers``: dose-response at every target layer
    (else the middle one); ``judged_groups``: neutral test groups for judged edits (None: one per theme);
    ``judged_k``: neurons edited in judged edits; ``influence_groups``: analysis groups whose neutral prompts measure
    sublayer influence; ``circuit_groups``: neutral test groups (one skeleton per theme) of the circuit comparison
    (None: every test group); ``circuit_scales``: the modulation scale sweep; ``circuit_budgets``: components per
    sublayer of the budget curve; ``random_seeds``: random circuits (the control); ``graph_prompts``: neutral
    analysis prompts per emotion's attribution graph; ``graph_positions``: last tokens that carry circuit nodes.
    """

    name: str
    analysis_per_theme: int | None
    max_new_tokens: int
    transfer_per_emotion: int | None
    sweep: tuple["SteeringSetting", ...]
    sweep_per_theme: int
    sweep_neutral_only: bool
    final_on_all_test: bool
    sample_groups: int
    dose_all_layers: bool
    judged_groups: int | None
    judged_k: int
    influence_groups: int
    circuit_groups: int | None
    circuit_scales: tuple[float, ...]
    circuit_budgets: tuple[int, ...]
    random_seeds: int
    graph_prompts: int
    graph_positions: int

    def as_dict(self, without: tuple[str, ...] = ()) -> dict[str, Any]:
        """The sizes as a dict; a stage's settings leave ``without`` the fields only later stages read
        (:data:`GRAPH_FIELDS`), so adding them did not make finished earlier stages run again."""
        return {k: v for k, v in asdict(self).items() if k not in without}


GRAPH_FIELDS = ("graph_prompts", "graph_positions")  # read by the graphs stage only

PRESETS = {
    "fast": Preset("fast", analysis_per_theme=1, max_new_tokens=32, transfer_per_emotion=10, sweep=tuple(FAST_SETTINGS),
                   sweep_per_theme=1, sweep_neutral_only=True, final_on_all_test=False, sample_groups=8,
                   dose_all_layers=False, judged_groups=2, judged_k=16,
                   influence_groups=4, circuit_groups=2, circuit_scales=(1.0, 4.0), circuit_budgets=(1, 10), random_seeds=5,
                   graph_prompts=2, graph_positions=4),
    "standard": Preset("standard", analysis_per_theme=2, max_new_tokens=48, transfer_per_emotion=25,
                       sweep=tuple(FAST_SETTINGS), sweep_per_theme=1, sweep_neutral_only=True, final_on_all_test=False,
                       sample_groups=24, dose_all_layers=False, judged_groups=4, judged_k=16,
                       influence_groups=8, circuit_groups=4, circuit_scales=(0.5, 1.0, 2.0, 4.0), circuit_budgets=(1, 2, 5, 10, 20),
                       random_seeds=5, graph_prompts=3, graph_positions=8),
    "full": Preset("full", analysis_per_theme=None, max_new_tokens=100, transfer_per_emotion=None,
                   sweep=tuple(DEFAULT_SETTINGS), sweep_per_theme=2, sweep_neutral_only=False, final_on_all_test=True,
                   sample_groups=96, dose_all_layers=True, judged_groups=None, judged_k=64,
                   influence_groups=48, circuit_groups=None, circuit_scales=(0.5, 1.0, 2.0, 4.0), circuit_budgets=(1, 2, 5, 10, 20),
                   random_seeds=5, graph_prompts=16, graph_positions=16),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error names the three."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown run size {name!r}: choose fast, standard (the default) or full.") from None
