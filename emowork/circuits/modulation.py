"""Circuit modulation and its comparison with the other ways of eliciting an emotion (docs/method.md section 7).

Every condition answers the same test groups with the same decoding configuration and is heard by the same judge;
each gets an accuracy with a 95% bootstrap interval over groups, per-emotion accuracies, the median perplexity of
its replies under the unedited model and the share of degenerate replies (the fluency rule of steering):

- ``unsteered``: the neutral prompt; ``prompting``: the emotion instruction; ``steering``: a direction-steering
  setting (the steering stage's best);
- ``circuit`` at each scale of a sweep, the chosen scale by the steering rule (most accurate among fluent scales),
  chosen on other groups than those reported when ``selection_groups`` are given;
- controls at the chosen scale: ``random`` circuits with the same per-block counts (one row per seed),
  ``neurons only``, ``heads only``, and circuits of other budgets per sublayer;
- necessity: the circuit (and a random one of the same shape) ablated at the last prompt token while prompting for the
  emotion (a weak test: the prompt's other positions and the generated tokens are untouched).

Replies are generated on the fast path (``choose_backend``: the unwrapped model with plain hooks when it supports the
edits) and cached per condition, so a repeated comparison reads them back.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..analysis.steering import SteeringSetting, steered_generate
from ..analysis.steering_sweep import MAX_DEGENERATE, MAX_PERPLEXITY_RATIO, summarise_replies
from ..generation.fluency import is_degenerate, reply_perplexity
from ..generation.generate import DecodingConfig, Generation
from ..generation.reply_cache import generate_cached
from ..hooks.executors import choose_backend
from ..hooks.intervention import Intervention
from ..intervals import accuracy_summary, bootstrap_ci
from ..prompts import EMOTION_SYSTEM, build_prompts
from .assembly import Circuit, random_circuit

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..data.sev import Group
    from ..judge import Judge
    from ..model.handle import ModelHandle

SCALES = (0.5, 1.0, 2.0, 4.0)
BUDGETS = (1, 2, 5, 10, 20)
RANDOM_SEEDS = 5


def circuit_edits(handle: "ModelHandle", circuit: Any, row_emotions: Sequence[str], scale: float,
                  when: Any = "last_prompt", ablate: bool = False) -> list[Intervention]:
    """The interventions for a batch whose row ``i`` is modulated towards ``row_emotions[i]`` (each emotion's edits
    limited to its rows, so a batch costs at most one edit per emotion, block and kind). ``ablate`` zeroes the
    circuit's units instead of adding ``scale * dmu``. ``circuit``: a :class:`Circuit` or anything with its
    ``modulate(handle, emotion, scale, when)``."""
    rows: dict[str, list[int]] = {}
    for row, emotion in enumerate(row_emotions):
        rows.setdefault(emotion, []).append(row)
    edits: list[Intervention] = []
    for emotion, chosen in rows.items():
        for edit in circuit.modulate(handle, emotion, scale, when):
            if ablate:
                edit = Intervention(edit.site, edit.layer, "ablate", units=edit.units, when=edit.when)
            edits.append(dataclasses.replace(edit, rows=tuple(chosen)))
    return edits


def circuit_generate(handle: "ModelHandle", prompts: Sequence[str], circuit: Circuit, emotions: Sequence[str], scale: float,
                     config: DecodingConfig, when: Any = "last_prompt", ablate: bool = False,
                     progress: bool = True) -> list[Generation]:
    """Replies to ``prompts`` with row ``i``'s circuit modulated towards ``emotions[i]`` (or ablated), cached per
    circuit, scale, positions and backend."""
    emotions = list(emotions)
    if len(emotions) != len(prompts):
        raise ValueError("one emotion per prompt")
    factory: Callable[[list[int]], list[Intervention]] = lambda idx: circuit_edits(  # noqa: E731
        handle, circuit, [emotions[i] for i in idx], scale, when, ablate)
    backend = choose_backend(handle, factory([0]))
    what = "ablate" if ablate else f"add{scale!r}"
    tag = f"circuit:{circuit.sha256[:16]}:{what}:{when}:{backend}"
    return generate_cached(handle, prompts, config, tag=tag, variants=emotions, intervention=factory, progress=progress,
                           desc=f"circuit {what}")


class Comparison:
    """Runs and summarises the conditions on one set of test groups; ``rows`` keeps every judged reply."""

    def __init__(self, handle: "ModelHandle", groups: Sequence["Group"], judge: "Judge", config: DecodingConfig,
                 emotions: Sequence[str], progress: bool = True) -> None:
        self.handle, self.judge, self.config, self.progress = handle, judge, config, progress
        self.groups = list(groups)
        self.emotions = list(emotions)
        self.items = [(g, e) for e in self.emotions for g in self.groups]  # every group x emotion
        self.neutral = build_prompts(handle, [g for g, _ in self.items], emotions=None).texts
        self.prompted = [build_prompts(handle, [g], [e]).texts[0] for g, e in self.items]
        self.rows: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}

    @property
    def item_emotions(self) -> list[str]:
        return [e for _, e in self.items]

    def judge_replies(self, name: str, prompts: Sequence[str], replies: Sequence[Generation]) -> dict[str, Any]:
        """Judge, score fluency, keep the rows and the summary under ``name``."""
        texts = [r.text for r in replies]
        _, accepted, predicted = self.judge.verdicts(texts, self.item_emotions)
        ppl = reply_perplexity(self.handle, list(prompts), texts)
        rows = [{"condition": name, "group_id": g.group_id, "valence": g.valence, "emotion": e, "reply": t,
                 "accepted": bool(a), "predicted": p, "perplexity": x, "degenerate": is_degenerate(t)}
                for (g, e), t, a, p, x in zip(self.items, texts, accepted, predicted, ppl)]
        self.rows += rows
        self.results[name] = summarise_replies(rows, self.emotions)
        return self.results[name]

    def drop(self, before: str, after: str) -> dict[str, float]:
        """``{mean, low, high, n}``: accuracy of condition ``before`` minus ``after`` on the same items, with a 95%
        bootstrap interval over groups (paired: each item's difference is resampled with its group)."""
        a = {(r["group_id"], r["emotion"]): r["accepted"] for r in self.rows if r["condition"] == before}
        b = {(r["group_id"], r["emotion"]): r["accepted"] for r in self.rows if r["condition"] == after}
        keys = [k for k in a if k in b]
        mean, low, high = bootstrap_ci([float(a[k]) - float(b[k]) for k in keys], [k[0] for k in keys])
        return {"mean": mean, "low": low, "high": high, "n": len(keys)}

    def unsteered(self) -> dict[str, Any]:
        replies = generate_cached(self.handle, self.neutral, self.config, tag="neutral", progress=self.progress, desc="unsteered")
        return self.judge_replies("unsteered", self.neutral, replies)

    def prompting(self) -> dict[str, Any]:
        replies = generate_cached(self.handle, self.prompted, self.config, tag=f"elicit:{EMOTION_SYSTEM}",
                                  progress=self.progress, desc="prompting")
        return self.judge_replies("prompting", self.prompted, replies)

    def steering(self, directions: "EmotionDirections", setting: SteeringSetting) -> dict[str, Any]:
        replies = steered_generate(self.handle, self.neutral, directions, self.item_emotions, setting, self.config, self.progress)
        return self.judge_replies("steering", self.neutral, replies)

    def circuit(self, name: str, circuit: Circuit, scale: float, when: Any = "last_prompt") -> dict[str, Any]:
        replies = circuit_generate(self.handle, self.neutral, circuit, self.item_emotions, scale, self.config, when,
                                   progress=self.progress)
        return self.judge_replies(name, self.neutral, replies)

    def ablated(self, name: str, circuit: Circuit) -> dict[str, Any]:
        """The circuit's units zeroed at the last prompt token while prompting for the emotion."""
        replies = circuit_generate(self.handle, self.prompted, circuit, self.item_emotions, 0.0, self.config, ablate=True,
                                   progress=self.progress)
        return self.judge_replies(name, self.prompted, replies)


def choose_scale(sweep: dict[float, dict[str, Any]], unsteered_perplexity: float) -> tuple[float, bool]:
    """The most accurate scale among those with at most :data:`MAX_DEGENERATE` degenerate replies and a median
    perplexity at most :data:`MAX_PERPLEXITY_RATIO` times the unsteered one (the steering rule); the most accurate
    of all when none is fluent. Returns ``(scale, passes_fluency)``."""
    limit = unsteered_perplexity * MAX_PERPLEXITY_RATIO
    fluent = {s: r for s, r in sweep.items() if r["degenerate"] <= MAX_DEGENERATE and r["perplexity"] <= limit}
    pool = fluent or sweep
    return max(pool, key=lambda s: pool[s]["accuracy"]), bool(fluent)


def compare_methods(handle: "ModelHandle", circuit: Circuit, groups: Sequence["Group"], judge: "Judge",
                    config: DecodingConfig, directions: "EmotionDirections | None" = None,
                    steering: SteeringSetting | None = None, scales: Sequence[float] = SCALES,
                    budgets: dict[int, Circuit] | None = None, random_seeds: int = RANDOM_SEEDS,
                    dmu: tuple[Any, Any] | None = None, dmu_emotions: Sequence[str] | None = None,
                    selection_groups: Sequence["Group"] | None = None, progress: bool = True) -> dict[str, Any]:
    """Every condition of the module doc on ``groups``; returns ``{"conditions": {name: summary}, "random_pooled"
    (every seed's replies in one summary, groups resampled together; None without seeds), "scale",
    "passes_fluency", "sweep", "random": [per seed], "budgets": {budget: summary}, "ablation_drop",
    "random_ablation_drop", "backend", "rows"}``.

    The scale is chosen by the steering rule on ``selection_groups`` (e.g. analysis groups: then the reported circuit
    accuracy is not the best of several tries on the items it is reported on, and the controls, measured at the same
    scale, are on an equal footing); without them, on ``groups`` themselves (``sweep`` then holds the test-item
    accuracies of every scale). ``dmu`` (neurons ``[E, L, d_mlp]``, heads ``[E, L, H, dh]``, in ``dmu_emotions`` order,
    default the circuit's) is needed for the random controls; ``budgets`` maps other budgets per sublayer to their
    circuits (the circuit itself may be one of them).
    """
    if random_seeds and dmu is None:
        raise ValueError("random circuits need the difference vectors: pass dmu=(neurons, heads).")
    order = list(dmu_emotions or circuit.emotions)
    run = Comparison(handle, groups, judge, config, circuit.emotions, progress)
    base = run.unsteered()
    prompted = run.prompting()
    if directions is not None and steering is not None:
        run.steering(directions, steering)
    chooser = run if selection_groups is None else Comparison(handle, selection_groups, judge, config, circuit.emotions, progress)
    chooser_base = base if selection_groups is None else chooser.unsteered()
    sweep = {float(s): chooser.circuit(f"circuit x{s!r}", circuit, float(s)) for s in scales}
    scale, fluent = choose_scale(sweep, chooser_base["perplexity"])
    if selection_groups is None:
        run.results["circuit"] = sweep[scale]
    else:
        run.circuit("circuit", circuit, scale)
    randoms = [run.circuit(f"random circuit (seed {seed})", random_circuit(circuit, *dmu, seed=seed, emotions=order), scale)  # type: ignore[misc]
               for seed in range(random_seeds)]
    run.circuit("neurons only", circuit.only("neuron"), scale)
    run.circuit("heads only", circuit.only("head"), scale)
    budget_curve = {}
    for budget, other in sorted((budgets or {}).items()):
        budget_curve[budget] = run.results["circuit"] if other.sha256 == circuit.sha256 else run.circuit(f"budget {budget}", other, scale)
    run.ablated("prompting, circuit ablated", circuit)
    if dmu is not None:
        run.ablated("prompting, random circuit ablated", random_circuit(circuit, *dmu, seed=0, emotions=order))
    backend = choose_backend(handle, circuit_edits(handle, circuit, circuit.emotions[:1], scale))
    pooled = [r for r in run.rows if r["condition"].startswith("random circuit (seed")]  # seeds share groups: resampled together
    random_pooled = accuracy_summary([r["accepted"] for r in pooled], [r["group_id"] for r in pooled]) if pooled else None
    return {"conditions": run.results, "random_pooled": random_pooled, "scale": scale, "passes_fluency": fluent, "sweep": {str(k): v for k, v in sweep.items()},
            "sweep_on": "selection groups" if selection_groups is not None else "the test groups",
            "random": randoms, "budgets": budget_curve, "ablation_drop": run.drop("prompting", "prompting, circuit ablated"),
            "random_ablation_drop": run.drop("prompting", "prompting, random circuit ablated") if dmu is not None else None,
            "backend": backend, "n_groups": len(run.groups), "rows": run.rows + (chooser.rows if chooser is not run else [])}
