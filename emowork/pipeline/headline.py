"""The findings summary that opens ``report.html``: the headline numbers of a run with their intervals, one
generated sentence each, and a small figure — all read from the run record (``run.json``)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from .. import plots
from ..emotions import EMOTIONS
from ..findings import judge_card
from ..verdicts import compare, interval, vs_reference

CHANCE = 1 / len(EMOTIONS)


def _summary(value: float | None, ci: list[float] | None) -> dict[str, float] | None:
    if value is None or ci is None:
        return None
    return {"accuracy": float(value), "low": float(ci[0]), "high": float(ci[1])}


def headline_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per headline number present in the run: ``{name, summary, n, sentence, stage}``.

    ``summary`` is ``{accuracy, low, high}`` (a 95% interval); rows of stages that did not run are left out.
    """
    rows: list[dict[str, Any]] = []
    elicitation, steering, judge = record.get("elicitation"), record.get("steering"), record.get("judge")
    prompted = _summary(elicitation.get("accuracy"), elicitation.get("accuracy_ci95")) if elicitation else None
    if prompted:
        rows.append({"name": "prompting", "summary": prompted, "n": elicitation["n_prompts"], "stage": "elicitation",
                     "sentence": f"Told \"Always reply in {{emotion}}.\", the model expressed the emotion in "
                                 f"{interval(prompted)} of its replies: {vs_reference(prompted, CHANCE)}."})
    if steering:
        steered = _summary(steering["accuracy"], steering["accuracy_ci95"])
        baseline = _summary(steering["baseline_accuracy"], steering["baseline_ci95"])
        rows.append({"name": "steering", "summary": steered, "n": steering["n_prompts"], "stage": "steering",
                     "sentence": f"Steered with the emotion directions (layers {steering['layers'][0]}-{steering['layers'][-1]}, "
                                 f"alpha {steering['alpha']:g}): " + compare(steered, baseline, "steering", "unsteered replies")
                                 + (f"; {compare(steered, prompted, 'steering', 'prompting')}" if prompted else "") + "."})
        rows.append({"name": "unsteered (baseline)", "summary": baseline, "n": steering["n_prompts"], "stage": "steering",
                     "sentence": f"Unsteered replies to the neutral prompt pass for a given target emotion in {interval(baseline)}: "
                                 f"{vs_reference(baseline, CHANCE)} (the judge may hear one emotion in all replies, so the "
                                 "baseline, not chance, is the control for steering)."})
    if judge and judge.get("heldout_accuracy_6way_measured"):
        measured = judge["heldout_accuracy_6way_measured"]
        card = judge.get("card_heldout_accuracy")
        summary = {"accuracy": measured["value"], "low": measured["low"], "high": measured["high"]}
        rows.append({"name": "judge, held-out writers", "summary": summary, "n": judge["n_emotion_replies"], "stage": "judge",
                     "sentence": f"The judge names the right emotion of held-out writers' replies in {interval(summary)}: "
                                 f"{judge_card(measured, card)}" + (f", where the card says {card['value']:.1%}." if card else ".")})
    directions = record.get("directions") or {}
    chosen = next((t for t in directions.get("transfers", []) if t.get("held_out_choice")), None)
    if chosen:
        choice, source, chance = chosen["held_out_choice"], chosen["source"], chosen.get("chance", CHANCE)
        rows.append({"name": "directions, natural text", "summary": _summary(choice["accuracy"], [choice["low"], choice["high"]]),
                     "n": choice["n"], "stage": "directions",
                     "sentence": f"Read through the emotion directions (layer {choice['layer']}, chosen on the other half of "
                                 f"the texts), {source} texts with no instruction are named correctly in {interval(choice)}: "
                                 f"{vs_reference(choice, chance)}."})
    circuits = record.get("circuits") or {}
    modulation = circuits.get("modulation_accuracy") or {}
    if modulation:
        summary = _summary(modulation["accuracy"], modulation["ci95"])
        control, unsteered = (_summary((circuits.get(key) or {}).get("accuracy"), (circuits.get(key) or {}).get("ci95"))
                              for key in ("random_accuracy", "baseline_accuracy"))
        parts = [compare(summary, c, "circuit modulation", name) for c, name in
                 ((unsteered, "unsteered replies"), (control, "random circuits of the same shape")) if c]
        rows.append({"name": "circuit modulation", "summary": summary, "n": modulation.get("n"), "stage": "circuits",
                     "sentence": "Editing only each emotion's circuit: " + ("; ".join(parts) if parts else
                                                                             f"{interval(summary)}") + "."})
    rows.append({"name": "chance", "summary": {"accuracy": CHANCE, "low": CHANCE, "high": CHANCE}, "n": None, "stage": None,
                 "sentence": f"A model that expressed one of the {len(EMOTIONS)} emotions at random would be accepted about "
                             f"{CHANCE:.1%} of the time by an accurate judge; a reply with no emotion is accepted at the judge's "
                             "style-neutral rate (judge stage), so the unsteered baseline is the control that counts."})
    return rows


def headline_figure(rows: list[dict[str, Any]], model: str) -> go.Figure:
    """Bars of the headline accuracies with their 95% intervals, chance as a line."""
    bars = {r["name"]: r["summary"] for r in rows if r["name"] not in ("chance", "judge, held-out writers", "directions, natural text")}
    return plots.accuracy_bars(bars or {"(no method ran)": {"accuracy": 0.0, "low": 0.0, "high": 0.0}},
                               f"Headline accuracies, {model} (95% intervals)", CHANCE, "chance (1/6)")
