"""Measuring a judge: decision rules, `judge.validate` / `emowork judge validate`, the rating panel, the local LLM judge."""

import json

import numpy as np
import pytest

from emowork.cli import main as cli_main
from emowork.emotions import EMOTIONS
from emowork.judge import Judge, LocalLLMJudge, load_judge, read_rows, validate
from emowork.judge.rules import AcceptRule, fit_rule, pair_rates
from emowork.judge.validate import ValidationFileError, parse_rows
from .conftest import load_tiny
from widgets import RatingPanel


class KeywordJudge(Judge):
    """Accepts a reply for an emotion when the emotion's name appears in it (a judge whose verdicts we know)."""

    name, version, threshold = "keyword", "1", 0.5

    def scores(self, texts):
        out = np.zeros((len(texts), 6))
        for i, text in enumerate(texts):
            for k, emotion in enumerate(EMOTIONS):
                if emotion in text:
                    out[i, k] = 0.9
        return out


ROWS = [{"text": "pure anger here", "emotion": "anger", "label": 1},        # both accept
        {"text": "pure anger here too", "emotion": "fear", "label": 1},     # reference accepts, judge rejects (hears anger)
        {"text": "a calm note about fear", "emotion": "fear", "label": 0},  # judge accepts, reference rejects
        {"text": "nothing at all", "emotion": "sadness", "label": 0}]       # both reject


# ----------------------------------------------------------------------------- rules
def test_rules_decide_as_documented():
    scores = np.array([[0.6, 0.1, 0, 0, 0, 0], [0.45, 0.2, 0, 0, 0, 0], [0.2, 0.1, 0, 0, 0, 0]])  # row 2: neutral 0.7 wins
    targets = np.array([0, 0, 0])
    assert AcceptRule("global", 0.25).accept(scores, targets).tolist() == [True, True, False]
    assert AcceptRule("argmax", None).accept(scores, targets).tolist() == [True, True, False]
    per = AcceptRule("per_emotion", 0.5, {e: (0.5 if e == "anger" else 0.1) for e in EMOTIONS})
    assert per.accept(scores, targets).tolist() == [True, False, False]
    assert per.accept(scores, np.array([1, 1, 1])).tolist() == [True, True, True]
    with pytest.raises(ValueError, match="unknown rule"):
        AcceptRule("vote")
    with pytest.raises(ValueError, match="one threshold for each"):
        AcceptRule("per_emotion", 0.5, {"anger": 0.5})
    assert AcceptRule.from_dict(per.as_dict()).thresholds == per.thresholds


def test_fit_rule_separates_own_from_neutral():
    rng = np.random.default_rng(0)
    probs, labels = [], []
    for k in range(7):  # own class gets 0.6, the rest shared; neutral rows are diffuse
        for _ in range(20):
            p = np.full(7, 0.4 / 6)
            p[k] = 0.6
            probs.append(p + rng.uniform(0, 0.01, 7))
            labels.append(k)
    probs, labels = np.array(probs), np.array(labels)
    for kind in ("global", "per_emotion", "argmax"):
        rates = pair_rates(fit_rule(kind, probs, labels), probs, labels)
        assert rates["own"] == 1.0 and rates["neutral"] == 0.0 and rates["other"] == 0.0, (kind, rates)


# ----------------------------------------------------------------------------- validate
def test_validate_counts_and_intervals():
    report = validate(KeywordJudge(), parse_rows(ROWS))
    assert report.confusion == [[1, 1], [1, 1]] and report.n == 4
    o = report.overall
    assert o["agreement"].value == 0.5 and o["judge_accept"].value == 0.5 and o["reference_accept"].value == 0.5
    for rate in o.values():
        assert rate.low <= rate.value <= rate.high or np.isnan(rate.value)
    assert abs(o["kappa"].value) < 1e-12  # 50% agreement with both raters at 50% is chance
    assert report.by_emotion["fear"]["n"] == 2 and report.heard_when_rejected["fear"] == {"anger": 1}
    assert "agrees with the reference on 50.0%" in report.sentence()
    table = report.table()
    assert "Cohen's kappa" in table and "fear" in table
    fig = report.figure()
    assert len(fig.data) == 3 and list(fig.data[0].x)[-1] == "all"
    assert json.loads(json.dumps(report.as_dict()))["confusion"]["counts"] == [[1, 1], [1, 1]]


def test_perfect_judge_agrees_fully():
    rows = [{"text": f"so much {e}", "emotion": e, "label": 1} for e in EMOTIONS]
    rows += [{"text": "plain text", "emotion": e, "label": 0} for e in EMOTIONS]
    report = validate(KeywordJudge(), rows)
    assert report.overall["agreement"].value == 1.0 and report.overall["kappa"].value == 1.0
    assert report.overall["agreement"].low == 1.0


def test_read_rows_accepts_published_field_names(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"gen_text": "a", "emotion": "joy", "judge": {"match": 1}},
        {"gen_text": "b", "target_emotion": "Anger", "judge.match": "0"},
        {"text": "c", "emotion": "fear", "label": True}]) + "\n")
    rows = read_rows(path)
    assert [(r.text, r.emotion, r.label) for r in rows] == [("a", "happiness", True), ("b", "anger", False), ("c", "fear", True)]


@pytest.mark.parametrize("content, message", [
    ('{"text": "a", "emotion": "anger", "label": 1}\n{not json\n', "line 2: malformed JSON"),
    ('{"text": "a", "emotion": "rage", "label": 1}\n', "emotion 'rage' is not one of"),
    ('{"text": "a", "emotion": "anger", "label": 2}\n', "must be 0 or 1"),
    ('{"emotion": "anger", "label": 1}\n', "no reply text"),
    ("\n", "no labelled replies"),
])
def test_read_rows_says_what_to_fix(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValidationFileError, match=message):
        read_rows(path)
    with pytest.raises(ValidationFileError, match="does not exist"):
        read_rows(tmp_path / "missing.jsonl")


def test_cli_judge_validate(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "Are you KIDDING me? They did that to you and expect a thank-you? Outrageous.", "emotion": "anger", "label": 1},
        {"text": "Your appointment is on Tuesday at ten; bring the form and your card.", "emotion": "anger", "label": 0},
        {"text": "Oh, this is wonderful news, I'm so delighted for you!", "emotion": "happiness", "label": 1}]))
    out = tmp_path / "report"
    assert cli_main(["judge", "validate", str(rows), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "agreement" in printed and "Cohen's kappa" in printed
    saved = json.loads((out / "validation.json").read_text())
    assert saved["n"] == 3 and (out / "validation.html").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "emotion": "rage", "label": 1}\n')
    assert cli_main(["judge", "validate", str(bad)]) == 2
    assert "rage" in capsys.readouterr().err


# ----------------------------------------------------------------------------- rating panel
def _replies():
    return [{"id": f"r{i}", "text": f"reply {i} with {e}", "emotion": e} for i, e in enumerate(EMOTIONS)]


def test_rating_panel_records_resumes_and_feeds_validate(tmp_path):
    path = tmp_path / "ratings.jsonl"
    panel = RatingPanel(_replies(), path, show_target=True, rater="t1")
    first = panel.current()
    panel.accept()
    panel.reject()
    panel.skip()
    panel.undo()  # undoes the skip only
    assert len(panel.ratings) == 2 and panel.current()["id"] != first["id"]
    panel.undo()  # removes the reject from the file
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(saved) == 1 and saved[0]["label"] == 1 and saved[0]["rater"] == "t1" and saved[0]["id"] == first["id"]
    panel.reject()
    reopened = RatingPanel(_replies(), path)
    assert len(reopened.queue) == 4 and first["id"] not in {item["id"] for item in reopened.queue}
    rows = read_rows(path)
    assert len(rows) == 2 and {r.label for r in rows} == {True, False}
    report = reopened.validation(KeywordJudge())
    assert report.n == 2


def test_rating_panel_blind_mode(tmp_path):
    panel = RatingPanel(_replies(), tmp_path / "blind.jsonl", show_target=False, shuffle_seed=None)
    panel.rate_heard("anger")  # first reply's target is anger
    panel.rate_heard("none")
    saved = [json.loads(line) for line in (tmp_path / "blind.jsonl").read_text().splitlines()]
    assert [(r["heard"], r["label"]) for r in saved] == [("anger", 1), ("none", 0)]
    with pytest.raises(ValueError, match="unknown emotion"):
        panel.rate_heard("rage")
    while not panel.done:
        panel.skip()
    with pytest.raises(IndexError):
        panel.accept()
    with pytest.raises(ValueError, match="needs a non-empty 'text'"):
        RatingPanel([{"text": "", "emotion": "anger"}], tmp_path / "x.jsonl")


def test_rating_panel_widget_builds(tmp_path):
    panel = RatingPanel(_replies(), tmp_path / "w.jsonl", show_target=False)
    ui = panel._build()
    buttons = {b.description: b for b in panel._buttons}
    assert set(EMOTIONS) <= set(buttons)
    buttons[panel.current()["emotion"]].click()
    assert panel.ratings[0]["label"] == 1 and "1 rated" in panel._text.value
    assert ui is panel._ui


# ----------------------------------------------------------------------------- local LLM judge
def test_load_judge_hf_prefix_errors():
    with pytest.raises(ValueError, match="needs a model after 'hf:'"):
        load_judge("hf:")


def test_local_llm_judge_mechanics_on_a_tiny_model():
    judge = LocalLLMJudge(load_tiny("tiny-llama"), batch_size=3)
    assert isinstance(load_judge("hf:tiny-llama"), LocalLLMJudge)
    assert isinstance(judge, LocalLLMJudge)
    texts = ["Are you kidding me?", "How lovely!", "The bus leaves at nine.", "Gross."]
    targets = ["anger", "happiness", "fear", "disgust"]
    p_yes = judge.match_probabilities(texts, targets)
    assert p_yes.shape == (4,) and ((p_yes > 0) & (p_yes < 1)).all()
    # batching and order do not change a row's answer
    alone = np.array([judge.match_probabilities([t], [e])[0] for t, e in zip(texts, targets)])
    np.testing.assert_allclose(alone, p_yes, atol=1e-5)
    assert (judge.accept(texts, targets) == (p_yes >= judge.threshold)).all()
    scores = judge.scores(texts)
    assert scores.shape == (4, 6) and np.allclose(scores.sum(1), 1, atol=1e-5)
    assert judge.describe()["model"] == "tiny-llama"


def test_local_llm_judge_on_the_embedded_model(embedded):
    judge = LocalLLMJudge(embedded)
    texts = ["This is OUTRAGEOUS! How dare they treat you like that?!", "The meeting is at three in room four."]
    report = validate(judge, [{"text": texts[0], "emotion": "anger", "label": 1},
                              {"text": texts[1], "emotion": "anger", "label": 0}])
    assert report.n == 2 and report.judge["name"].startswith("local-llm-")
    p = judge.match_probabilities(texts, ["anger", "anger"])
    assert ((p >= 0) & (p <= 1)).all()


def test_judge_scores_are_cached_per_judge_and_texts_and_damage_is_recomputed(tmp_path, monkeypatch):
    import warnings as _warnings

    monkeypatch.setenv("EMOWORK_CACHE_DIR", str(tmp_path / "own-cache"))  # this test damages files: not the shared ones

    from emowork.judge.score_cache import cached_scores, scores_folder
    from .helpers import LengthJudge

    class Counting(LengthJudge):
        text_only_scores = True
        calls = 0

        def scores(self, texts):
            Counting.calls += 1
            return super().scores(texts).astype(np.float32)

    texts = ["calm", "a longer reply", "x"]
    first = cached_scores(Counting(), texts)
    again = cached_scores(Counting(), texts)
    assert Counting.calls == 1 and np.array_equal(first, again) and again.shape == (3, 6)
    other = Counting()
    other.version = "retrained"
    cached_scores(other, texts)  # another head: computed, not read
    cached_scores(Counting(), texts[:2])  # other texts: computed
    assert Counting.calls == 3
    for path in scores_folder().glob("*.safetensors"):
        path.write_bytes(b"damaged")
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        assert np.array_equal(cached_scores(Counting(), texts), first)
    assert Counting.calls == 4 and any("damaged" in str(w.message) for w in caught)
    head = Counting()
    head.head = type("Head", (), {"weight": np.ones((7, 4)), "bias": np.zeros(7)})()
    other_head = Counting()
    other_head.head = type("Head", (), {"weight": np.full((7, 4), 2.0), "bias": np.zeros(7)})()
    cached_scores(head, texts)
    cached_scores(other_head, texts)  # same name and version, other head weights: computed again
    assert Counting.calls == 6
    files = sorted(scores_folder().iterdir())
    volatile = LengthJudge()  # text_only_scores False (LLM judges, ensembles): always asked, nothing stored
    assert cached_scores(volatile, ["new text"]).shape == (1, 6) and sorted(scores_folder().iterdir()) == files
