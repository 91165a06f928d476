"""Stages that judge replies: the judge itself and the prompt-elicited run."""

from __future__ import annotations

from typing import Any

from ... import plots
from ...elicitation import run_elicitation
from ...generate import DecodingConfig
from ...judge import load_judge
from ...judge.labels import CLASSES, default_in_domain_path, load_in_domain
from ..base import RunContext, Stage, StageOutput
from .basics import analysis_split


def decoding(ctx: RunContext) -> DecodingConfig:
    """The one decoding configuration of the run (greedy; fewer new tokens with --fast)."""
    return DecodingConfig(max_new_tokens=ctx.settings.fast_max_new_tokens if ctx.settings.fast else 100)


class JudgeStage(Stage):
    """Load the judge and re-measure it on the in-domain held-out replies (must match its model card)."""

    name = "judge"
    title = "Emotion judge"
    description = (
        "Every accuracy in this report is a judge's verdict on whether a reply's STYLE (tone, attitude; not the "
        "content's valence) expresses the target emotion. The default judge is a sentence embedder shipped in a wheel "
        "plus a linear head trained by this project on GoEmotions and in-domain assistant replies; here it is "
        "re-measured on the held-out in-domain replies, which must reproduce its model card."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        judge = load_judge(ctx.settings.judge)
        return {"judge": judge.describe()}

    def run(self, ctx: RunContext) -> StageOutput:
        judge = load_judge(ctx.settings.judge)
        heldout = load_in_domain(default_in_domain_path(), "heldout")
        predicted = judge.predict(heldout.texts)
        truth = [CLASSES[y] for y in heldout.labels]
        emo = [i for i, t in enumerate(truth) if t != "neutral"]
        six = judge.scores(heldout.texts).argmax(1)
        acc6 = float(sum(CLASSES[six[i]] == truth[i] for i in emo) / len(emo))
        acc7 = float(sum(p == t for p, t in zip(predicted, truth)) / len(truth))
        from ...judge.metrics import confusion_matrix

        matrix = confusion_matrix([CLASSES.index(t) for t in truth], [CLASSES.index(p) for p in predicted], len(CLASSES))
        numbers = {**judge.describe(), "in_domain_heldout_accuracy_6way_measured": acc6,
                   "in_domain_heldout_accuracy_7way_measured": acc7}
        card = numbers.get("in_domain_heldout_accuracy")
        summary = [
            f"Judge {judge.name} ({judge.version}), acceptance threshold {judge.threshold}. On the {len(emo)} held-out "
            f"in-domain emotional replies it names the right emotion {acc6:.1%} of the time (six-way; chance 16.7%)"
            + (f", as its model card states ({card:.1%})" if card is not None else "")
            + f"; seven-way with neutral replies, {acc7:.1%}."
            + (f" Its GoEmotions test macro-F1 (six-way) is {numbers['macro_f1']:.3f}." if numbers.get("macro_f1") is not None else ""),
        ]
        return StageOutput(numbers=numbers, summary=summary, figures={
            "judge_confusion": plots.confusion_heatmap(matrix, CLASSES, CLASSES, f"{judge.name}: in-domain held-out replies",
                                                       "written as", "judged as")})


class ElicitationStage(Stage):
    """Prompt-elicited emotion: generate with "Always reply in {emotion}." for every group and judge the replies."""

    name = "elicitation"
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
        best = max(by_e, key=lambda e: by_e[e]["accuracy"])
        worst = min(by_e, key=lambda e: by_e[e]["accuracy"])
        targets, labels, matrix = result.confusion()
        summary = [
            f"{ctx.handle.name} expressed the instructed emotion in {overall['accuracy']:.1%} of {len(result)} replies "
            f"(95% interval {overall['low']:.1%}-{overall['high']:.1%}), judged by {judge.name}; best for {best} "
            f"({by_e[best]['accuracy']:.0%}), worst for {worst} ({by_e[worst]['accuracy']:.0%}). "
            f"{numbers['n_complete_groups']} of {numbers['n_groups']} groups had all six replies accepted.",
            f"Replies average {numbers['mean_reply_tokens']:.0f} tokens and {numbers['finished_share']:.0%} ended "
            f"before the {decoding(ctx).max_new_tokens}-token limit. The paper reports 98.96% for Llama-3.2-3B with "
            "GPT-4o-mini as judge; read this number as this model with this judge.",
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


