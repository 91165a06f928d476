"""Words from numbers: the verdict rules, findings that change their words when the numbers change, and the
report's findings summary read from a run record."""

import numpy as np
import pytest

from emowork import findings, verdicts
from emowork.pipeline.headline import CHANCE, headline_rows


def s(value, low, high):
    return {"accuracy": value, "low": low, "high": high, "n": 100}


@pytest.mark.parametrize("summary, expected", [
    (s(0.40, 0.31, 0.48), "above chance: the 95% interval (31.0%-48.0%) excludes 16.7%"),
    (s(0.05, 0.02, 0.09), "below chance: the 95% interval (2.0%-9.0%) excludes 16.7%"),
    (s(0.20, 0.12, 0.27), "not distinguishable from chance: the 95% interval (12.0%-27.0%) contains 16.7%"),
])
def test_vs_reference_states_the_rule(summary, expected):
    assert verdicts.vs_reference(summary, 1 / 6) == expected


def test_compare_says_higher_only_when_intervals_separate():
    high, low, mid = s(0.6, 0.5, 0.7), s(0.2, 0.1, 0.3), s(0.45, 0.28, 0.55)
    assert "is higher than" in verdicts.compare(high, low, "a", "b")
    assert "is lower than" in verdicts.compare(low, high, "a", "b")
    assert "not distinguishable" in verdicts.compare(high, mid, "a", "b")
    assert verdicts.overlap(high, mid) and not verdicts.overlap(high, low)


def test_layers_text_and_point():
    assert verdicts.layers_text([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert verdicts.layers_text([]) == "none"
    assert verdicts.point({"mean": 0.5, "low": 0, "high": 1}) == 0.5
    with pytest.raises(KeyError, match="accuracy"):
        verdicts.point({"low": 0, "high": 1})


def test_share_summary_contains_its_point():
    summary = verdicts.share_summary(30, 100)
    assert summary["low"] <= summary["accuracy"] <= summary["high"] and summary["accuracy"] == pytest.approx(0.3)


def test_template_finding_changes_its_words_with_the_numbers():
    recognisable = findings.template_consistency([0.5, 0.6], [0.0, 0.1], halves=0.9)
    lost = findings.template_consistency([0.0, 0.05], [0.1, 0.2], halves=0.9)
    barely = findings.template_consistency([0.30, 0.30], [0.29, 0.29], halves=0.9)
    assert "an emotion's direction survives" not in barely, "a difference within the stated margin is not enough"
    assert "no ceiling" in findings.template_consistency([0.3], [0.0], halves=-0.1)
    assert "too few groups" in findings.halves({})
    assert "an emotion's direction survives" in recognisable and "does not depend on the wording" in recognisable
    assert "nothing of the emotion survives" in lost and "much of a direction is the wording" in lost


def test_transfer_finding_compares_chance_and_control():
    good = findings.transfer({"accuracy": [0.2, 0.6], "shuffled": [0.15, 0.18], "chance": 1 / 6, "n": 300, "source": "x"})
    weak = findings.transfer({"accuracy": [0.17, 0.18], "shuffled": [0.18, 0.17], "chance": 1 / 6, "n": 300, "source": "x"})
    assert "above chance" in good and ", and above the directions" in good and "layer 1" in good
    assert "not distinguishable from chance" in weak and "not above" in weak
    held = findings.transfer({"accuracy": [0.2, 0.6], "shuffled": [0.15, 0.18], "chance": 1 / 6, "n": 300, "source": "x",
                              "held_out_choice": {"layer": 1, "accuracy": 0.55, "low": 0.47, "high": 0.63, "n": 150}})
    assert "other half (no selection bias): layer 1" in held and held.count("above chance") == 2


def test_stability_and_probe_thresholds():
    assert "at layers 2-3" in findings.stability([0.5, 0.8, 0.95, 0.97])
    assert "never reaches 0.9" in findings.stability([0.5, 0.6])
    assert "from layer 1 on" in findings.probe([0.2, 0.95, 0.97], 1 / 6)
    assert "from layer 3 on" in findings.probe([0.2, 0.95, 0.5, 0.96], 1 / 6), "a dip after a high layer does not count"
    assert "does not stay at or above 90%" in findings.probe([0.2, 0.3], 1 / 6)
    assert "no adjacent layers" in findings.stability([])


def test_verdict_spread_reads_the_confusion():
    alike = np.array([[0.1, 0.9], [0.12, 0.88]])
    differ = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert "the rows look alike" in findings.verdict_spread(alike, ["a", "b"])
    assert "the rows differ" in findings.verdict_spread(differ, ["a", "b"])
    # a common column that is constant while the rest differs: the rows still differ
    diagonal = np.array([[0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0.5, 0, 0, 0.5]])
    assert "the rows differ" in findings.verdict_spread(diagonal, ["n", "a", "b", "c"])
    assert "cannot be compared" in findings.verdict_spread(np.array([[np.nan, np.nan]]), ["a", "b"])


def test_dose_and_judged_edit_findings():
    sep = {"neuron ablate": {"top": {1: {"mean": -1.0, "low": -1.2, "high": -0.8}},
                             "random": {1: {"mean": -0.1, "low": -0.2, "high": 0.0}}}}
    same = {"neuron ablate": {"top": {1: {"mean": -0.1, "low": -0.3, "high": 0.1}},
                              "random": {1: {"mean": -0.1, "low": -0.2, "high": 0.0}}}}
    assert "a larger reduction than random" in findings.dose(sep, "neuron ablate")
    assert "not distinguishable" in findings.dose(same, "neuron ablate")
    wrong_way = {"neuron ablate": {"top": {1: {"mean": 0.3, "low": 0.2, "high": 0.4}},
                                   "random": {1: {"mean": -0.05, "low": -0.1, "high": 0.0}}}}
    assert "other direction" in findings.dose(wrong_way, "neuron ablate"), "ablation that raises the projection is not 'larger'"
    up = {"neuron enhance": {"top": {1: {"mean": 0.5, "low": 0.4, "high": 0.6}}, "random": {1: {"mean": 0.1, "low": 0.0, "high": 0.2}}}}
    assert "a larger increase" in findings.dose(up, "neuron enhance")
    conditions = {k: s(0.3, 0.2, 0.4) for k in ("ablate-top", "ablate-random", "none (elicited)", "enhance-top",
                                                 "enhance-random", "none (neutral)")}
    assert findings.judged_edits(conditions).count("not distinguishable") == 2


def test_judge_card_verdict():
    card = {"value": 0.91, "low": 0.89, "high": 0.93}
    assert findings.judge_card({"value": 0.9}, card).startswith("within")
    assert findings.judge_card({"value": 0.8}, card).startswith("OUTSIDE")
    assert "no model card" in findings.judge_card({"value": 0.8}, None)


def test_headline_rows_come_from_the_record():
    record = {"elicitation": {"accuracy": 0.4, "accuracy_ci95": [0.3, 0.5], "n_prompts": 144},
              "steering": {"accuracy": 0.2, "accuracy_ci95": [0.1, 0.3], "baseline_accuracy": 0.17,
                           "baseline_ci95": [0.15, 0.2], "n_prompts": 48, "layers": [2, 3], "alpha": 8.0}}
    rows = {r["name"]: r for r in headline_rows(record)}
    assert set(rows) == {"prompting", "steering", "unsteered (baseline)", "chance"}
    assert rows["prompting"]["summary"] == {"accuracy": 0.4, "low": 0.3, "high": 0.5}
    assert "above chance" in rows["prompting"]["sentence"]
    assert "not distinguishable" in rows["steering"]["sentence"] and "lower than prompting" not in rows["steering"]["sentence"]
    assert rows["chance"]["summary"]["accuracy"] == pytest.approx(CHANCE)
    record["steering"]["accuracy_ci95"] = [0.55, 0.7]
    record["steering"]["accuracy"] = 0.6
    assert "is higher than unsteered" in {r["name"]: r for r in headline_rows(record)}["steering"]["sentence"]
    assert [r["name"] for r in headline_rows({})] == ["chance"]


def test_headline_rows_cover_the_judge_directions_and_circuits():
    record = {"judge": {"heldout_accuracy_6way_measured": {"value": 0.8, "low": 0.75, "high": 0.85}, "n_emotion_replies": 600,
                        "card_heldout_accuracy": {"value": 0.95, "low": 0.93, "high": 0.97}},
              "directions": {"transfers": [{"source": "held-out writers", "held_out_choice":
                                            {"layer": 5, "accuracy": 0.5, "low": 0.4, "high": 0.6, "n": 100}}]},
              "circuits": {"modulation_accuracy": {"accuracy": 0.3, "ci95": [0.25, 0.35], "n": 96},
                           "random_accuracy": {"accuracy": 0.1, "ci95": [0.05, 0.15]},
                           "baseline_accuracy": {"accuracy": 0.28, "ci95": [0.2, 0.33]}}}
    rows = {r["name"]: r for r in headline_rows(record)}
    assert "OUTSIDE its model card" in rows["judge, held-out writers"]["sentence"], "the judge row compares with the card"
    assert rows["directions, natural text"]["summary"] == {"accuracy": 0.5, "low": 0.4, "high": 0.6}
    assert "above chance" in rows["directions, natural text"]["sentence"] and "layer 5" in rows["directions, natural text"]["sentence"]
    sentence = rows["circuit modulation"]["sentence"]
    assert "not distinguishable" in sentence and "higher than random circuits" in sentence, sentence
    record["judge"]["heldout_accuracy_6way_measured"] = {"value": 0.95, "low": 0.93, "high": 0.97}
    assert "within its model card" in {r["name"]: r for r in headline_rows(record)}["judge, held-out writers"]["sentence"]


def test_heads_check_words_follow_the_numbers():
    assert "matches" in findings.heads_check(1e-6, 1e-3, 100.0, 3, 9) and "100x faster" in findings.heads_check(1e-6, 1e-3, 100.0, 3, 9)
    assert "DIFFERS" in findings.heads_check(1e-2, 1e-3, 100.0, 3, 9)
    assert "slower" in findings.heads_check(1e-6, 1e-3, 0.2, 3, 9) and "faster" not in findings.heads_check(1e-6, 1e-3, 0.2, 3, 9)


def test_time_sentence_adds_reused_stages():
    from emowork.pipeline.report import _time_sentence, _timing_lines

    fresh = {"timings": {"load_model": 2.0, "check": 3.0, "data": 1.0, "total": 7.0}, "reused": []}
    assert _time_sentence(fresh) == "this invocation took 7 s."
    resumed = {"timings": {"load_model": 2.0, "check": 30.0, "data": 100.0, "total": 104.0}, "reused": ["check"]}
    assert "add up to 130 s" in _time_sentence(resumed) and "(check) was reused" in _time_sentence(resumed)
    assert "30 (reused)" in _timing_lines(resumed)[2]


def test_held_out_layer_choice_measures_on_the_other_half():
    import torch

    from emowork.analysis.consistency import held_out_layer_choice

    correct = torch.zeros(10, 3, dtype=torch.bool)
    correct[::2, 0] = True          # layer 0 looks perfect on the choosing half only
    correct[1::2, 0] = False
    correct[:, 2] = True
    correct[::2, 2] = False          # layer 2 is right on the measuring half only
    choice = held_out_layer_choice(correct)
    assert choice["layer"] == 0 and choice["accuracy"] == 0.0 and choice["n"] == 5, "measured where it was not chosen"


def test_circuit_findings_follow_the_numbers():
    def s(acc, low, high):
        return {"accuracy": acc, "low": low, "high": high}

    result = {"conditions": {"circuit": s(0.6, 0.5, 0.7), "unsteered": s(0.17, 0.1, 0.25), "prompting": s(0.3, 0.2, 0.4),
                             "random (pooled)": s(0.2, 0.15, 0.25), "neurons only": s(0.55, 0.45, 0.65)},
              "budgets": {1: s(0.2, 0.1, 0.3), 5: s(0.5, 0.4, 0.6), 10: s(0.6, 0.5, 0.7)},
              "ablation_drop": {"mean": 0.2, "low": 0.1, "high": 0.3}, "random_ablation_drop": {"mean": 0.0, "low": -0.05, "high": 0.05},
              "scale": 2.0, "passes_fluency": True, "size": 600}
    text = " ".join(findings.circuits(result))
    assert "the circuit at 60.0%" in text and "is higher than unsteered replies" in text and "is higher than random circuits" in text
    assert "the smallest whose accuracy is above the unsteered replies' (non-overlapping 95% intervals) is 5" in text
    assert "above no drop" in text and "neurons only at 55.0%" in text and "not distinguishable" in text
    weak = {**result, "conditions": {**result["conditions"], "circuit": s(0.2, 0.12, 0.28)},
            "budgets": {1: s(0.2, 0.1, 0.3)}, "ablation_drop": {"mean": 0.01, "low": -0.05, "high": 0.07}, "passes_fluency": False}
    text = " ".join(findings.circuits(weak))
    assert "no scale met the fluency bar" in text and "none is distinguishable from the unsteered replies" in text
    assert "not distinguishable from no drop" in text and "is higher than unsteered" not in text


def test_influence_finding_names_the_peak_and_the_halves():
    values = {"anger": {"attn": [0.0, 0.1, 0.2, 0.1], "mlp": [0.0, 0.0, 0.9, 0.3]},
              "fear": {"attn": [0.0, 0.1, 0.0, 0.1], "mlp": [0.1, 0.0, 0.5, 0.2]}}
    text = findings.influence(values, {"mean": 0.7, "low": 0.5, "high": 0.9, "n": 8})
    assert "layer 2's mlp sublayer (67% of depth; I = +0.70, 95% interval +0.50 to +0.90 over 8 prompts)" in text
    assert "+0.04 in the first 2 layers and +0.29 in the last 2" in text
    flipped = {e: {p: v[::-1] for p, v in sites.items()} for e, sites in values.items()}
    assert "layer 1's mlp" in findings.influence(flipped)


def test_notebook_sentences_follow_the_numbers():
    import numpy as np

    from emowork.analysis.geometry import between_emotion_share
    from emowork.verdicts import against_range

    assert [against_range(x, -0.1, 0.1) for x in (0.5, -0.5, 0.0)] == ["above", "below", "within"]
    assert "inside" in findings.readout_in_segment(8, [6, 7, 8, 9], "longest run") and \
        "outside" in findings.readout_in_segment(2, [6, 7], "the last quarter")
    adjacent = [0.5, 0.95, 0.95, 0.5]
    assert "at 2 of its 3 layers" in findings.window_in_stable(0, 2, 5, adjacent)
    assert "at no layer" in findings.window_in_stable(0, 2, 5, [0.1] * 4)
    sim = np.array([[1, 0.8, 0.5, 0.4], [0.8, 1, 0.3, 0.2], [0.5, 0.3, 1, 0.6], [0.4, 0.2, 0.6, 1]])
    text = findings.site_similarity(["attn0", "mlp0", "attn1", "mlp1"], sim)
    assert "mean cosine of 0.70 (lowest 0.60 at layer 1, highest 0.80 at layer 0)" in text and "last layer have a mean cosine of 0.20" in text
    labels = ["a", "a", "b", "b"]
    assert between_emotion_share(np.array([[0.0, 0], [0, 0], [1, 1], [1, 1]]), labels) == 1.0, "tight separate clusters"
    assert between_emotion_share(np.array([[0.0, 0], [1, 1], [0, 0], [1, 1]]), labels) == 0.0, "same centres"
    assert np.isnan(between_emotion_share(np.zeros((4, 2)), labels))
    assert "accounts for 100% of the plotted points' variance at layer 1" in findings.pca_shares([0.3, 0.5], [0.2, 1.0])
    s = lambda a, lo, hi: {"accuracy": a, "low": lo, "high": hi}
    lines = findings.steering_by_emotion({"anger": s(0.5, 0.4, 0.6), "fear": s(0.1, 0.0, 0.2)},
                                         {"unsteered": {"anger": s(0.1, 0.0, 0.2), "fear": s(0.15, 0.05, 0.25)}})
    assert len(lines) == 3 and "higher for anger; not distinguishable for fear" in lines[-1], lines
