"""Stages on emotion directions: extraction, geometry and consistency; steering validation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ... import findings, plots
from ...analysis.consistency import as_directions, natural_texts, shuffle_emotions, split_consistency, template_consistency, transfer
from ...data import load_sev
from ...analysis.directions import EmotionDirections, extract
from ...analysis.elicitation import ElicitationResult
from ...analysis.geometry import adjacent_layer_cosine, emotion_cosines, pca_coordinates, probe_accuracy_by_layer, site_similarity
from ...judge import load_judge
from ...prompts import PARAPHRASE_TEMPLATES
from ...analysis.steering_sweep import run_sweep
from ...storage import atomic_write_text
from ..presets import GRAPH_FIELDS
from ..base import RunContext, Stage, StageOutput
from .preparation import analysis_split
from .judging import decoding


def _elicitation(ctx: RunContext) -> ElicitationResult | None:
    path = ctx.artifacts_dir / "elicitation.jsonl"
    return ElicitationResult.load(path) if path.exists() else None


class DirectionsStage(Stage):
    """Extract the directions, describe their geometry and test their consistency against controls."""

    name = "directions"
    captions = {
        'directions_cosines': (
            'move the slider through the layers: which emotion pairs point the same way; directions are centred '
            'over emotions, so some negative cosines are forced.'),
        'directions_adjacent': (
            'where the lines stay near 1 the direction is carried unchanged from layer to layer (the stable '
            'segment).'),
        'directions_sites': (
            'the same emotion read after attention (attn) and after the MLP (mlp) at each layer: bright blocks '
            'are depths where the directions agree.'),
        'directions_pca': (
            "at each layer, whether the prompts of one emotion cluster once their group's shared content is removed."),
        'consistency_templates': (
            'the solid line (same emotion, other wording) must sit above the dashed one (different emotions) for '
            'the direction to be about the emotion rather than the word.'),
        'consistency_transfer': (
            'each solid line against the dashed shuffled-label control and the chance line: transfer to natural '
            'text counts only where it clears both.'),
        'consistency_halves': (
            'halves of the data against their shuffled controls; high agreement is expected by construction (a '
            'check, not evidence).'),
        'directions_probe': (
            'the first layer at which the probe reaches high held-out accuracy: where the instructed emotion '
            'becomes linearly readable.'),
    }
    title = "Context-agnostic emotion directions"
    description = (
        "The last prompt token of every emotion-elicited prompt is read at resid_mid ('attn') and resid_post ('mlp') "
        "of every layer; per group the mean over the six emotions is removed (the shared content), the rest is "
        "averaged over groups, centred over emotions and normalised (docs/method.md section 3). Consistency is measured "
        "with tests that can fail: other instruction wordings, transfer to natural emotional text without any "
        "instruction, and halves of the data against label-shuffled controls."
    )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        elicitation = _elicitation(ctx)
        return {"data": analysis_split(ctx).sha256, "complete": elicitation.complete_groups() if elicitation else None,
                "goemotions": ctx.settings.goemotions, "transfer_per_emotion": ctx.preset.transfer_per_emotion}

    def run(self, ctx: RunContext) -> StageOutput:
        handle = ctx.handle
        dataset = analysis_split(ctx)
        directions, acts = extract(handle, dataset, groups="auto", elicitation=_elicitation(ctx), return_activations=True)
        directions.save(ctx.artifacts_dir / "directions")
        used = [dataset.group(g) for g in directions.provenance["groups"]]
        mlp = acts["mlp"]
        L = directions.n_layers
        cos = emotion_cosines(directions)
        adjacent = adjacent_layer_cosine(directions)
        labels, sim = site_similarity(directions)
        themes = [g.theme for g in used]
        all_themes = list(dict.fromkeys(themes))
        probe = probe_accuracy_by_layer(mlp, themes, all_themes[: len(all_themes) // 2]) if len(all_themes) > 1 else []
        templates = template_consistency(handle, used, known={name: mlp for name, text in PARAPHRASE_TEMPLATES.items()
                                                               if text == directions.provenance["template"]})
        shuffled = as_directions({"mlp": shuffle_emotions(mlp)})
        transfers = [transfer(handle, directions, shuffled, data) for data in natural_texts(
            "heldout", ctx.settings.goemotions, replies_per_emotion=ctx.preset.transfer_per_emotion)]
        splits = split_consistency(mlp, used)
        pcs = [pca_coordinates(mlp, layer) for layer in range(L)]
        emotion_labels = [e for _ in used for e in directions.emotions]

        main = transfers[0]
        numbers = {
            "groups_used": directions.provenance["n_groups"], "group_policy": directions.provenance["group_policy"],
            "group_reason": directions.provenance["group_reason"], "directions_sha256": directions.sha256,
            "template_consistency_by_layer": templates["mean_same"], "template_other_by_layer": templates["mean_other"],
            "transfer_accuracy_by_layer": main["accuracy"], "transfer_shuffled_by_layer": main["shuffled"],
            "transfer_chance": main["chance"], "transfer_source": main["source"], "transfer_mode": main["mode"],
            "transfer_n": main["n"], "transfers": [{k: v for k, v in t.items()} for t in transfers],
            "split_consistency": splits, "probe_accuracy_by_layer": probe,
            "adjacent_layer_cosine_by_layer": adjacent.mean(0).tolist(),
            "centroid_norm_by_layer": directions.norms["mlp"].mean(0).tolist(),
        }
        halves_mean = float(np.mean([np.mean(v["same"]) for v in splits.values()])) if splits else None
        numbers["stable_layers"] = findings.stable_layers(numbers["adjacent_layer_cosine_by_layer"])
        summary = [
            f"Directions from {numbers['groups_used']} groups ({numbers['group_reason']}).",
            "(a) " + findings.template_consistency(templates["mean_same"], templates["mean_other"], halves_mean),
            "(b) " + findings.transfer(main),
            "(c) " + findings.halves(splits),
            findings.probe(probe, 1 / len(directions.emotions)) if probe else "",
            findings.stability(numbers["adjacent_layer_cosine_by_layer"]),
        ]
        figures = {
            "directions_cosines": plots.emotion_cosine_slider(cos.tolist(), directions.emotions, "Cosine between emotion directions (mlp site)"),
            "directions_adjacent": plots.layer_lines({e: adjacent[i].tolist() for i, e in enumerate(directions.emotions)},
                                                     "Cosine of each direction with the next layer's", "cosine"),
            "directions_sites": plots.similarity_heatmap(labels, sim.tolist(), "Mean same-emotion cosine between sites"),
            "directions_pca": plots.pca_slider([c for c, _ in pcs], [e for _, e in pcs], emotion_labels,
                                               "PCA of context-removed activations (mlp site)"),
            "consistency_templates": plots.layer_lines({"same emotion, other wording": templates["mean_same"],
                                                        "different emotions": templates["mean_other"]},
                                                       "(a) Directions across instruction wordings", "mean cosine",
                                                       dashed=["different emotions"]),
            "consistency_transfer": plots.layer_lines({**{f"{t['source']}": t["accuracy"] for t in transfers},
                                                       **{f"{t['source']}, shuffled labels": t["shuffled"] for t in transfers}},
                                                      "(b) Classifying natural emotional text by its largest projection",
                                                      "accuracy", main["chance"], "chance (1/6)",
                                                      dashed=[f"{t['source']}, shuffled labels" for t in transfers]),
            "consistency_halves": plots.layer_lines({**{k: v["same"] for k, v in splits.items()},
                                                     **{f"{k}, shuffled": v["shuffled"] for k, v in splits.items()}},
                                                    "(c) Directions from halves of the data", "mean cosine",
                                                    dashed=[f"{k}, shuffled" for k in splits]),
        }
        if probe:
            figures["directions_probe"] = plots.layer_lines({"held-out themes": probe}, "Linear probe: emotion from one prompt",
                                                            "accuracy", 1 / len(directions.emotions), "chance")
        return StageOutput(numbers=numbers, figures=figures, summary=[s for s in summary if s])


class SteeringStage(Stage):
    """Steer the neutral prompt with the directions: a sweep of layer windows and strengths, judged, with fluency."""

    name = "steering"
    captions = {
        'steering_tradeoff': (
            'good settings sit top-left (accurate and fluent); the unsteered cross and the prompt-elicited line '
            'are the references; colour shows the share of degenerate replies.'),
        'steering_by_emotion': (
            "per emotion, whether the steered bar's interval clears the unsteered one; the judge's bias shows as unsteered bars far from chance."),
    }
    title = "Steering with emotion directions"
    description = (
        "alpha x rms(h) x v[e, L] is added to resid_post of a window of layers (fractions of depth, so settings transfer "
        "across models) at the last prompt token of the neutral prompt; the replies (same decoding as every method) "
        "are judged for the target emotion. Fluency: median perplexity of the reply under the unsteered model and the "
        "share of degenerate replies. The unsteered replies judged against each emotion are the baseline."
    )

    def _groups(self, ctx: RunContext) -> tuple[list, list]:
        """The sweep's test groups and those the chosen setting is finally measured on (the same unless ``full``)."""
        test = load_sev("test")
        preset = ctx.preset
        sweep = [g for g in test.select(per_theme=preset.sweep_per_theme).groups
                 if not preset.sweep_neutral_only or g.valence == "neutral"]
        return sweep, (test.groups if preset.final_on_all_test else sweep)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        path = ctx.artifacts_dir / "directions" / "directions.json"
        elicited = ctx.results.get("elicitation", {})
        return {"preset": ctx.preset.as_dict(without=GRAPH_FIELDS), "directions": json.loads(path.read_text())["provenance"]["groups"] if path.exists() else None,
                "decoding": decoding(ctx).as_dict(), "judge": load_judge(ctx.settings.judge).describe(),
                "prompting": [elicited.get("accuracy"), elicited.get("accuracy_ci95")]}  # the summary compares with it

    def run(self, ctx: RunContext) -> StageOutput:
        handle = ctx.handle
        directions = EmotionDirections.load(ctx.artifacts_dir / "directions")
        judge = load_judge(ctx.settings.judge)
        sweep_groups, final_groups = self._groups(ctx)
        settings = list(ctx.preset.sweep)
        result = run_sweep(handle, directions, sweep_groups, judge, settings, decoding(ctx))
        best = result.best()
        final = result
        if final_groups is not sweep_groups:  # measure the chosen setting on the whole test split
            from ...analysis.steering import SteeringSetting

            final = run_sweep(handle, directions, final_groups, judge, [SteeringSetting(**best["setting"])], decoding(ctx))
            best = {**final.settings[0], "passes_fluency": best["passes_fluency"], "rule": best["rule"]}
        prompt_elicited = ctx.results.get("elicitation", {})
        numbers = {
            "layers": best["layers"], "alpha": best["setting"]["alpha"], "window": [best["setting"]["start"], best["setting"]["stop"]],
            "mode": best["setting"]["mode"], "accuracy": best["accuracy"], "accuracy_ci95": [best["low"], best["high"]],
            "accuracy_by_emotion": {e: v["accuracy"] for e, v in best["by_emotion"].items()},
            "perplexity": best["perplexity"], "degenerate": best["degenerate"], "passes_fluency": best["passes_fluency"],
            "rule": best["rule"], "n_prompts": best["n"],
            "baseline_accuracy": final.baseline["accuracy"], "baseline_ci95": [final.baseline["low"], final.baseline["high"]],
            "baseline_accuracy_by_emotion": {e: v["accuracy"] for e, v in final.baseline["by_emotion"].items()},
            "baseline_perplexity": final.baseline["perplexity"],
            "prompt_elicited_accuracy": prompt_elicited.get("accuracy"),
            "sweep": [{k: v for k, v in s.items() if k != "by_emotion"} for s in result.settings],
            "sweep_groups": len(sweep_groups), "final_groups": len(final_groups),
        }
        atomic_write_text(ctx.artifacts_dir / "steering.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False, default=float) + "\n" for r in result.rows + (final.rows if final is not result else [])))
        elicited = ctx.results.get("elicitation", {})
        prompted = ({"accuracy": elicited["accuracy"], "low": elicited["accuracy_ci95"][0], "high": elicited["accuracy_ci95"][1]}
                    if "accuracy_ci95" in elicited else None)
        numbers["prompt_elicited_ci95"] = [prompted["low"], prompted["high"]] if prompted else None
        summary = [
            f"Best setting by the rule ({best['rule']}): {best['label']}: accuracy {best['accuracy']:.1%} "
            f"(95% interval {best['low']:.1%}-{best['high']:.1%}) on {best['n']} steered replies, median perplexity "
            f"{best['perplexity']:.1f}, {best['degenerate']:.0%} degenerate"
            + ("" if best["passes_fluency"] else " (no setting met the fluency bar)") + ".",
            findings.steering(best, final.baseline, prompted)
            + f" Unsteered replies have a median perplexity of {final.baseline['perplexity']:.1f}.",
            f"Across the {len(result.settings)} settings of the sweep ({len(sweep_groups)} groups each), accuracy ranges "
            f"{min(s['accuracy'] for s in result.settings):.0%}-{max(s['accuracy'] for s in result.settings):.0%} and "
            f"the share of degenerate replies {min(s['degenerate'] for s in result.settings):.0%}-"
            f"{max(s['degenerate'] for s in result.settings):.0%}.",
        ]
        methods = {"steered (best)": best["by_emotion"], "unsteered": final.baseline["by_emotion"]}
        figures = {
            "steering_tradeoff": plots.steering_tradeoff(result.settings, result.baseline, "Steering: accuracy against fluency",
                                                         prompt_elicited.get("accuracy"), "prompt-elicited"),
            "steering_by_emotion": plots.grouped_accuracy(methods, "Steered (best setting) and unsteered accuracy by emotion"),
        }
        tables = [{"title": "Sweep", "columns": ["setting", "accuracy", "95% interval", "median perplexity", "degenerate"],
                   "rows": [[s["label"], f"{s['accuracy']:.3f}", f"{s['low']:.3f}-{s['high']:.3f}", f"{s['perplexity']:.1f}",
                             f"{s['degenerate']:.0%}"] for s in result.settings]}]
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables)
