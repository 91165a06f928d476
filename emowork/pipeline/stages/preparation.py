"""Stages that check the model and describe the data: check, data, profile."""

from __future__ import annotations

import time
from typing import Any

import torch

from ... import plots
from ...hooks.capture import capture
from ...data import load_sev, stats, validate_files
from ...data.sev import SPLITS, split_path
from ...errors import CheckFailedError
from ...prompts import build_prompts
from ..base import RunContext, Stage, StageOutput


class CheckStage(Stage):
    """Hook self-check: stops the run with a clear message when an identity fails."""

    name = "check"
    captions = {
        'check_errors': (
            'every bar must sit below its tolerance mark; a bar above it is a hook that does not read or write '
            'what it claims.'),
    }
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
    """The analysis split the run uses: all of it (``full``), or a theme-balanced subset (``fast``, ``standard``)."""
    dataset = load_sev("analysis")
    per_theme = ctx.preset.analysis_per_theme
    return dataset.select(per_theme=per_theme) if per_theme else dataset


class DataStage(Stage):
    """Validate both SEV splits (including leakage between them) and describe them."""

    name = "data"
    captions = {
        'dataset_counts': (
            'the balance of themes in each split (each skeleton gives three groups: positive, neutral, negative '
            'outcome).'),
        'dataset_lengths': (
            'whether the three outcomes have similar lengths (a length difference would be a confound of '
            'valence).'),
    }
    title = "SEV dataset"
    description = (
        "The controlled dataset: neutral first-person scenarios, each with a positive, a neutral and a negative "
        "outcome that differ only in the outcome. Every (skeleton, valence) group is later prompted once per "
        "emotion, so activations differ only by the emotion instruction. Both splits are validated together "
        "(fields, duplicate ids and texts, train/test leakage, emotion words)."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"preset": ctx.preset.name, "splits": {s: load_sev(s).sha256 for s in SPLITS}}

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
                              "max_prompt_tokens": st.as_dict()["max_tokens"]["prompt"], "n_themes": len(ds.themes)}
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
            f"and the test split {numbers['test']['n_skeletons']} ({numbers['test']['n_groups']} groups), over {numbers['analysis']['n_themes']} themes "
            f"(analysis) and {numbers['test']['n_themes']} (test); "
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
    captions = {
        'residual_profile': (
            'how the residual stream grows with depth and where attention and MLP write the most; steering '
            'strengths are set relative to this size.'),
    }
    title = "Residual-stream profile"
    description = (
        "RMS of the last-prompt-token activation at every layer for neutral prompts: the residual after "
        "attention (resid_mid, the 'attn' site of docs/method.md section 3), after the block (resid_post, the 'mlp' site) and the "
        "two sublayer outputs. Steering strengths are multiples of these RMS values, so this is the scale "
        "every later intervention is measured in."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"preset": ctx.preset.name, "data": analysis_split(ctx).sha256}

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
            f"The residual stream's RMS at the last prompt token {'grows' if growth >= 1 else 'shrinks'} "
            f"{growth if growth >= 1 else 1 / growth:.1f}x from layer 0 to layer "
            f"{len(post) - 1}; the largest attention write is at layer {peak_attn} and the largest MLP write at "
            f"layer {peak_mlp} ({len(prompts)} neutral prompts, {numbers['prompts_per_s']:.1f} prompts/s).",
        ]
        return StageOutput(numbers=numbers, figures={"residual_profile": plots.residual_profile(rms, handle.name)}, summary=summary)


