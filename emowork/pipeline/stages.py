"""The stages of ``emowork run``, in order. Each later analysis adds its stage here."""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import plots
from ..activations import capture
from ..data import load_sev, stats, validate_files
from ..data.sev import SPLITS, split_path
from ..errors import CheckFailedError
from ..elicitation import run_elicitation
from ..generate import DecodingConfig
from ..judge import load_judge
from ..judge.labels import CLASSES, default_in_domain_path, load_in_domain
from ..prompts import build_prompts
from .base import RunContext, Stage, StageOutput


class CheckStage(Stage):
    """Hook self-check: stops the run with a clear message when an identity fails."""

    name = "check"
    title = "Hook self-check"
    description = (
        "Identities that must hold if every hook reads what its name says: residual bookkeeping, per-head "
        "outputs through W_O, neurons through W_out, steering with and without the KV cache, and batched "
        "(left-padded) against one-at-a-time activations."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {}

    def run(self, ctx: RunContext) -> StageOutput:
        report = ctx.handle.check()
        print(report, flush=True)
        numbers = report.as_dict()
        output = StageOutput(
            numbers=numbers,
            figures={"check_errors": plots.check_errors(report)},
            summary=[
                f"{sum(r.ok for r in report.results)} of {len(report.results)} checks pass on {report.model} "
                f"({report.dtype}, {report.device}); the largest relative error among the identities is "
                f"{max(r.max_rel_error for r in report.results if 'changes' not in r.name):.1e}."
            ],
            tables=[{
                "title": "Checks",
                "columns": ["check", "result", "max abs err", "max rel err", "tolerance", "detail"],
                "rows": [[r.name, "pass" if r.ok else "FAIL", f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}",
                          f"{r.tolerance:.0e}", r.detail] for r in report.results],
            }],
        )
        if not report.ok:
            failed = ", ".join(r.name for r in report.failed)
            raise CheckFailedError(
                f"The hook self-check failed for {report.model} ({failed}), so no analysis would be trustworthy; "
                "the run stopped here.\n" + str(report) + "\nA failing KV-cache check usually means transformers and "
                "transformer-lens disagree on the attention cache argument: reinstall with `make install` (it pins "
                "transformers<5.24). Otherwise please report the table above."
            )
        return output


def analysis_split(ctx: RunContext):
    """The analysis split the run uses: all of it, or a theme-balanced subset with --fast."""
    dataset = load_sev("analysis")
    return dataset.select(per_theme=ctx.settings.fast_per_theme) if ctx.settings.fast else dataset


class DataStage(Stage):
    """Validate both SEV splits (including leakage between them) and describe them."""

    name = "data"
    title = "SEV dataset"
    description = (
        "The controlled dataset: neutral first-person scenarios, each with a positive, a neutral and a negative "
        "outcome that differ only in the outcome. Every (skeleton, valence) group is later prompted once per "
        "emotion, so activations differ only by the emotion instruction. Both splits are validated together "
        "(fields, duplicate ids and texts, train/test leakage, emotion words)."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"fast": ctx.settings.fast, "splits": {s: load_sev(s).sha256 for s in SPLITS}}

    def run(self, ctx: RunContext) -> StageOutput:
        report, _ = validate_files({s: split_path(s) for s in SPLITS})
        report.raise_if_errors()
        numbers: dict[str, Any] = {"problems": len(report.problems), "emotion_word_hits": len(report.emotion_word_hits)}
        figures = {}
        tables = []
        for split in SPLITS:
            ds = load_sev(split)
            st = stats(ds, ctx.handle)
            numbers[split] = {"n_skeletons": st.n_skeletons, "n_groups": st.n_groups, "sha256": st.sha256,
                              "mean_prompt_tokens": st.as_dict()["mean_tokens"]["prompt"],
                              "max_prompt_tokens": st.as_dict()["max_tokens"]["prompt"]}
            tables.append({"title": f"{split} split", "columns": list(st.table()[0]),
                           "rows": [list(row.values()) for row in st.table()]})
            if split == "analysis":
                figures["dataset_counts"] = plots.dataset_counts(st.table(), f"SEV {split} split: skeletons per theme")
                assert st.lengths_tokens is not None
                figures["dataset_lengths"] = plots.length_histograms(
                    {k: st.lengths_tokens[k] for k in ("scenario", "event.positive", "event.neutral", "event.negative")},
                    f"tokens ({ctx.handle.name})", f"SEV {split} split: text lengths")
        used = analysis_split(ctx)
        numbers["used_by_run"] = {"name": used.name, "n_skeletons": len(used), "n_groups": len(used.groups)}
        summary = [
            f"The analysis split has {numbers['analysis']['n_skeletons']} skeletons ({numbers['analysis']['n_groups']} groups) "
            f"and the test split {numbers['test']['n_skeletons']} ({numbers['test']['n_groups']} groups), over 8 themes; "
            f"validation found {len(report.problems)} problems, including {len(report.emotion_word_hits)} emotion words "
            f"and no text shared between the splits." if report.ok else report.summary(),
            f"A neutral prompt is {numbers['analysis']['mean_prompt_tokens']:.0f} tokens on average "
            f"(at most {numbers['analysis']['max_prompt_tokens']}) with this model's chat template. This run uses "
            f"{len(used)} skeletons ({len(used.groups)} groups) of the analysis split.",
        ]
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables)


class ProfileStage(Stage):
    """Residual-stream profile: how large the residual and each sublayer's write are, layer by layer."""

    name = "profile"
    title = "Residual-stream profile"
    description = (
        "RMS of the last-prompt-token activation at every layer for neutral prompts: the residual after "
        "attention (resid_mid, the METHOD 'attn' site), after the block (resid_post, the 'mlp' site) and the "
        "two sublayer outputs. Steering strengths are multiples of these RMS values, so this is the scale "
        "every later intervention is measured in."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"fast": ctx.settings.fast, "data": analysis_split(ctx).sha256}

    def run(self, ctx: RunContext) -> StageOutput:
        handle = ctx.handle
        prompts = build_prompts(handle, analysis_split(ctx).groups, emotions=None).texts
        sites = ["resid_mid", "resid_post", "attn_out", "mlp_out"]
        start = time.perf_counter()
        acts = capture(handle, prompts, sites, cache=False, desc="profile")
        elapsed = time.perf_counter() - start
        rms = {site: acts[site].pow(2).mean(-1).sqrt().mean(0).tolist() for site in sites}  # [n_layers]
        post = torch.tensor(rms["resid_post"])
        growth = float(post[-1] / post[0])
        peak_attn = int(torch.tensor(rms["attn_out"]).argmax())
        peak_mlp = int(torch.tensor(rms["mlp_out"]).argmax())
        numbers = {
            "n_prompts": len(prompts),
            "prompts_per_s": len(prompts) / elapsed,
            "rms_by_layer": rms,
            "resid_post_growth": growth,
            "largest_attn_write_layer": peak_attn,
            "largest_mlp_write_layer": peak_mlp,
        }
        summary = [
            f"The residual stream's RMS at the last prompt token grows {growth:.1f}x from layer 0 to layer "
            f"{len(post) - 1}; the largest attention write is at layer {peak_attn} and the largest MLP write at "
            f"layer {peak_mlp} ({len(prompts)} neutral prompts, {numbers['prompts_per_s']:.1f} prompts/s).",
        ]
        return StageOutput(numbers=numbers, figures={"residual_profile": plots.residual_profile(rms, handle.name)}, summary=summary)


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
        from ..judge.metrics import confusion_matrix

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


STAGES: list[Stage] = [CheckStage(), DataStage(), ProfileStage(), JudgeStage(), ElicitationStage()]
