"""The stages of ``emowork run``, in order. Each later analysis adds its stage here."""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import plots
from ..activations import capture
from ..demo_prompts import DEMO_MESSAGES, NEUTRAL_SYSTEM
from ..errors import CheckFailedError
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

    def run(self, ctx: RunContext) -> StageOutput:
        handle = ctx.handle
        messages = DEMO_MESSAGES[:4] if ctx.settings.fast else DEMO_MESSAGES
        prompts = [handle.format_chat(m, NEUTRAL_SYSTEM) for m in messages]
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


STAGES: list[Stage] = [CheckStage(), ProfileStage()]
