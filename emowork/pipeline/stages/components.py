"""The local-components stage: neurons and heads that write the directions, and whether editing them matters."""

from __future__ import annotations

import json
import time
from typing import Any

from ... import findings, plots
from ...components import (collect_samples, head_importance, head_importance_masking_loop, judged_edits, masking_loop_tolerance, neuron_contributions,
                           run_dose_response, target_layers)
from ...circuits import stable_segment
from ...components.dose_response import readout_layer
from ...data import load_sev
from ...analysis.directions import EmotionDirections
from ...judge import load_judge
from ...storage import atomic_write_json
from ..presets import GRAPH_FIELDS
from ..base import RunContext, Stage, StageOutput
from .preparation import analysis_split
from .judging import decoding



class ComponentsStage(Stage):
    """Neuron contributions, head importance (fast exact path checked against the masking loop), ablation and
    enhancement dose-response with random controls, and judged generation for a few edits."""

    name = "components"
    captions = {
        'components_dose_response': (
            'the top-k curves (vermillion) against the random-k controls (grey): an effect counts only where the '
            'intervals separate; a curve that flattens early means a few components carry the effect.'),
        'components_heads': (
            'which layers hold heads whose silencing moves the state along the emotion directions (sign: blue '
            'pushes away, vermillion towards).'),
        'components_neurons': (
            'the layers and emotions with the strongest single neuron writer; compare rows to see whether '
            'emotions share the same depth.'),
    }
    title = "Local components: neurons and heads"
    description = (
        "For each emotion and layer, every MLP neuron's contribution c = H * (W_out v) to the direction and every "
        "head's importance (the paper's masked definition, computed exactly for all heads from one pass; checked "
        "against the explicit per-head masking loop). Then the top-k neurons or heads of a layer are zeroed or "
        "enhanced by the emotion's mean difference vector at the last prompt token, for k = 1, 2, 4, ..., against "
        "random-k controls over 5 seeds; the score is the change of the projection onto the emotion's direction at a "
        "read-out layer at 85% of depth, relative to the emotion's own signal there."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        path = ctx.artifacts_dir / "directions" / "directions.json"
        return {"preset": ctx.preset.as_dict(without=GRAPH_FIELDS), "directions": json.loads(path.read_text())["provenance"]["groups"] if path.exists() else None,
                "judge": load_judge(ctx.settings.judge).describe(), "decoding": decoding(ctx).as_dict()}

    def run(self, ctx: RunContext) -> StageOutput:
        handle = ctx.handle
        f = handle.facts
        directions = EmotionDirections.load(ctx.artifacts_dir / "directions")
        dataset = analysis_split(ctx)
        groups = [dataset.group(g) for g in directions.provenance["groups"]][:ctx.preset.sample_groups]
        samples = collect_samples(handle, groups)
        neurons = neuron_contributions(handle, directions, samples)
        heads = head_importance(handle, directions, samples, "masked")

        readout = readout_layer(f.n_layers)
        layers = target_layers(f.n_layers, readout)
        check_layers = layers
        start = time.perf_counter()
        reference = head_importance_masking_loop(handle, directions, samples.prompts[0][:1], samples.emotions[0], check_layers)
        loop_s = time.perf_counter() - start
        start = time.perf_counter()  # the fast path pays for its capture pass too (no disk cache)
        one = collect_samples(handle, samples.groups[:1], emotions=samples.emotions[:1], progress=False, cache=False)
        fast = head_importance(handle, directions, one, "masked")
        fast_s = time.perf_counter() - start
        diff = float((fast.per_sample[0, 0, check_layers] - reference[0]).abs().max())
        rel_gap = diff / max(float(reference[0].abs().max()), 1e-12)
        gap_tolerance = masking_loop_tolerance(handle.dtype)

        dose_layers = layers if ctx.preset.dose_all_layers else [layers[len(layers) // 2]]
        dose = run_dose_response(handle, directions, samples, neurons, heads, layers=dose_layers, readout=readout)
        curves = {f"{kind} {op}": {sel: dose.curve(kind, op, sel) for sel in ("top", "random")}
                  for kind in ("neuron", "head") for op in ("ablate", "enhance")}

        test = load_sev("test")
        judge_groups = [g for g in test.select(per_theme=1).groups if g.valence == "neutral"]
        judge_groups = judge_groups[:ctx.preset.judged_groups] if ctx.preset.judged_groups else judge_groups
        k_judged = ctx.preset.judged_k
        judged = judged_edits(handle, samples, neurons, load_judge(ctx.settings.judge), judge_groups, layers[len(layers) // 2], k_judged, decoding(ctx))
        atomic_write_json(ctx.artifacts_dir / "components_dose_response.json", {"readout": readout, "rows": dose.rows})

        top = curves["neuron ablate"]["top"]
        rand = curves["neuron ablate"]["random"]
        numbers = {
            "n_sample_groups": len(groups), "readout_layer": readout, "target_layers": layers, "dose_layers": dose_layers,
            "heads_fast_vs_masked_max_abs_diff": diff, "heads_fast_vs_masked_rel_gap": rel_gap,
            "heads_gap_tolerance": gap_tolerance, "heads_speedup": loop_s / max(fast_s, 1e-9),
            "heads_check": {"layers": check_layers, "loop_seconds": loop_s, "fast_seconds": fast_s, "samples": 1},
            "topk_effect": {str(k): v["mean"] for k, v in top.items()},
            "random_effect": {str(k): v["mean"] for k, v in rand.items()},
            "curves": {panel: {sel: {str(k): v for k, v in pts.items()} for sel, pts in sels.items()} for panel, sels in curves.items()},
            "saturation_k": {panel: dose.saturation_k(*panel.split()) for panel in curves},
            "top_neurons": neurons.table(3, layers=layers),
            "top_heads": [{"emotion": e, "layer": L, "heads": heads.top(e, L, 3)[0].tolist(),
                           "importance": [round(float(x), 4) for x in heads.top(e, L, 3)[1]]} for e in samples.emotions for L in layers],
            "judged_edits": {k: v for k, v in judged.items() if k != "examples"},
        }
        mid = layers[len(layers) // 2]  # the layer of the judged edits (and of the dose-response unless pooled)
        where = f"layer {mid}" if dose_layers == [mid] else f"layers {', '.join(map(str, dose_layers))} (pooled)"
        kmax = max(top)
        summary = [
            findings.heads_check(rel_gap, gap_tolerance, numbers["heads_speedup"], len(check_layers), f.n_heads),
            f"Ablating the top-k neurons of {where} (for each emotion, at the last prompt token) moves the projection at "
            f"layer {readout} by {top[1]['mean']:+.2f} (k=1), {top[min(4, kmax)]['mean']:+.2f} (k={min(4, kmax)}) and "
            f"{top[kmax]['mean']:+.2f} (k={kmax}) of the emotion's signal; random-k: {rand[kmax]['mean']:+.2f} at k={kmax}. "
            f"Top-k effects reach 80% of their k={kmax} value by k={numbers['saturation_k']['neuron ablate']}. "
            + findings.dose(curves, "neuron ablate") + " " + findings.readout_in_segment(readout, *stable_segment(directions)),
            findings.dose(curves, "head ablate"),
            findings.dose(curves, "neuron enhance"),
            findings.dose(curves, "head enhance"),
            f"({k_judged} neurons of layer {mid}, {len(judge_groups)} test groups x 6 emotions) " + findings.judged_edits(judged["conditions"]),
        ]
        figures = {
            "components_dose_response": plots.dose_response(curves, f"Editing the top-k vs random-k components of {where}", readout),
            "components_heads": plots.component_heatmap(heads.mean.mean(0).tolist(), range(f.n_heads), range(f.n_layers),
                                                        "Head importance (masked), mean over emotions", "head", "layer", "importance"),
            "components_neurons": plots.component_heatmap(
                neurons.mean.topk(1, dim=-1).values[..., 0].tolist(), range(f.n_layers), samples.emotions,
                "Largest mean neuron contribution per emotion and layer", "layer", "emotion", "contribution"),
        }
        tables = [{"title": "Top neurons (mean contribution to the direction)", "columns": ["emotion", "layer", "rank", "neuron", "mean c", "std"],
                   "rows": [[r["emotion"], r["layer"], r["rank"], r["neuron"], f"{r['mean_contribution']:.3f}", f"{r['std']:.3f}"]
                            for r in numbers["top_neurons"] if r["rank"] == 1]},
                  {"title": "Judged edits", "columns": ["condition", "accuracy", "95% interval", "n"],
                   "rows": [[n, f"{c['accuracy']:.3f}", f"{c['low']:.3f}-{c['high']:.3f}", c["n"]] for n, c in judged["conditions"].items()]}]
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables)
