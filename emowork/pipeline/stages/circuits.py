"""The circuits stage: sublayer influence, one circuit per emotion, and circuit modulation against prompting,
steering, unsteered replies and random circuits of the same shape (docs/method.md section 7)."""

from __future__ import annotations

import json
from typing import Any

from ... import findings, plots
from ...analysis.directions import EmotionDirections
from ...analysis.steering import SteeringSetting
from ...circuits import assemble, compare_methods, sublayer_influence
from ...circuits.assembly import NEURON_SHARE
from ...components import collect_samples, head_importance, neuron_contributions
from ...components.activation_samples import difference_vectors
from ...data import load_sev
from ...judge import load_judge
from ...prompts import build_prompts
from ...storage import atomic_write_text
from ..presets import GRAPH_FIELDS
from ..base import RunContext, Stage, StageOutput
from .judging import decoding
from .preparation import analysis_split

# What the paper reports for Llama-3.2-3B-Instruct on its test split (docs/method.md section 8): drawn as reference
# marks, labelled as another model's numbers, never compared with ours in words.
PAPER_LLAMA_3B = {"prompting": 0.9896, "steering": 0.9122, "circuit": 0.9965}
MAIN_BUDGET = 10


class CircuitsStage(Stage):
    """Influence, assembly, and the comparison of circuit modulation with every other method and its controls."""

    name = "circuits"
    title = "Emotion circuits"
    in_default = False  # opt-in (--stages ...,circuits) until its sizes fit the standard run's 20 minutes on 2 CPU cores
    description = (
        "Sublayer influence: a push along an emotion's local direction at each block's attention or MLP output (last "
        "token of the neutral prompt, four strengths in units of the residual's RMS there) and how much it moves the "
        "last layer's state along the emotion's reference direction (the mean direction over the stable segment). "
        f"Each emotion's circuit spends {MAIN_BUDGET} components per sublayer, {NEURON_SHARE:.0%} neurons and "
        f"{1 - NEURON_SHARE:.0%} heads, with a floor per block "
        "and the rest in proportion to positive influence; inside a block the top-ranked neurons and heads. "
        "Modulation adds scale x (the emotion's mean activation minus the six emotions' mean) on exactly those "
        "components at the last prompt token of the neutral prompt. It is compared on the same test groups, decoding "
        "and judge with unsteered replies, prompting, the steering stage's best setting, random circuits of the same "
        "per-block counts, its neurons or heads alone, other budgets, and, for necessity, prompting with the circuit "
        "ablated."
    )
    captions = {
        "circuits_influence": (
            "where pushing along the emotion's direction reaches the output: vermillion blocks pass it on, blue ones "
            "work against it; the black box is the stable segment the reference direction comes from."),
        "circuits_composition": "how each emotion's budget is spread over the layers (neurons solid, heads hatched).",
        "circuits_comparison": (
            "every method on the same test items: the circuit's bar must clear the grey random circuits and the "
            "unsteered bar to count; black diamonds are another model's published numbers, for orientation only."),
        "circuits_budget": "how small a circuit can be and still work: the curve against the dashed unsteered and random lines.",
        "circuits_overlap": "how many components the emotions' circuits share (numbers) and their Jaccard index (colour).",
    }

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        path = ctx.artifacts_dir / "directions" / "directions.json"
        steering = ctx.results.get("steering", {})
        return {"preset": ctx.preset.as_dict(without=GRAPH_FIELDS), "directions": json.loads(path.read_text())["provenance"]["groups"] if path.exists() else None,
                "judge": load_judge(ctx.settings.judge).describe(), "decoding": decoding(ctx).as_dict(),
                "steering": [steering.get("window"), steering.get("alpha"), steering.get("mode")]}

    def run(self, ctx: RunContext) -> StageOutput:
        handle, preset = ctx.handle, ctx.preset
        directions = EmotionDirections.load(ctx.artifacts_dir / "directions")
        dataset = analysis_split(ctx)
        used = [dataset.group(g) for g in directions.provenance["groups"]]
        samples = collect_samples(handle, used[:preset.sample_groups])  # the components stage's capture (cached)
        neurons = neuron_contributions(handle, directions, samples)
        heads = head_importance(handle, directions, samples, "masked")
        dmu = (difference_vectors(samples.acts["mlp_post"]), difference_vectors(samples.z_heads(handle.facts.n_heads)))

        neutral = build_prompts(handle, used[:preset.influence_groups], emotions=None).texts
        influence = sublayer_influence(handle, directions, neutral)
        circuit = assemble(influence, neurons, heads, *dmu, budget_per_sublayer=MAIN_BUDGET)
        circuit.save(ctx.artifacts_dir / "circuits")
        budgets = {b: circuit if b == MAIN_BUDGET else assemble(influence, neurons, heads, *dmu, budget_per_sublayer=b)
                   for b in preset.circuit_budgets}

        test = [g for g in load_sev("test").select(per_theme=1).groups if g.valence == "neutral"]
        groups = test[:preset.circuit_groups] if preset.circuit_groups else load_sev("test").groups
        steering = ctx.results.get("steering", {})
        setting = (SteeringSetting(steering["window"][0], steering["window"][1], steering["alpha"], steering.get("mode", "last_prompt"))
                   if "window" in steering else None)
        selection = used[:preset.circuit_groups or len(used)]  # the scale is chosen on analysis groups, measured on test ones
        result = compare_methods(handle, circuit, groups, load_judge(ctx.settings.judge), decoding(ctx), directions, setting,
                                 scales=preset.circuit_scales, budgets=budgets, random_seeds=preset.random_seeds, dmu=dmu,
                                 dmu_emotions=samples.emotions, selection_groups=selection)
        rows = result.pop("rows")
        atomic_write_text(ctx.artifacts_dir / "circuits.jsonl", "".join(json.dumps(r, ensure_ascii=False, default=float) + "\n" for r in rows))
        c = result["conditions"]
        c["random (pooled)"] = result["random_pooled"]

        def pair(name: str) -> dict[str, Any]:
            return {"accuracy": c[name]["accuracy"], "ci95": [c[name]["low"], c[name]["high"]], "n": c[name]["n"]} if name in c else {}

        numbers = {
            "influence": influence.as_dict()["influence"], "sigma": influence.as_dict()["sigma"],
            "stable_layers": influence.stable_layers, "stable_reason": influence.stable_reason,
            "size": circuit.size(), "counts": {e: circuit.counts(e) for e in circuit.emotions}, "overlap": circuit.overlap(),
            "modulation_scale": result["scale"], "passes_fluency": result["passes_fluency"],
            "modulation_accuracy": pair("circuit"),
            "modulation_accuracy_by_emotion": {e: v["accuracy"] for e, v in c["circuit"]["by_emotion"].items()},
            "random_accuracy": {**pair("random (pooled)"), "per_seed": [r["accuracy"] for r in result["random"]]},
            "neurons_only_accuracy": pair("neurons only"), "heads_only_accuracy": pair("heads only"),
            "budget_curve": {str(b): {"accuracy": s["accuracy"], "ci95": [s["low"], s["high"]]} for b, s in result["budgets"].items()},
            "ablation_drop": result["ablation_drop"], "random_ablation_drop": result["random_ablation_drop"],
            "prompting_accuracy": pair("prompting"), "steering_accuracy": pair("steering"), "baseline_accuracy": pair("unsteered"),
            "scale_sweep": {k: {"accuracy": v["accuracy"], "ci95": [v["low"], v["high"]], "perplexity": v["perplexity"],
                                "degenerate": v["degenerate"]} for k, v in result["sweep"].items()},
            "scale_chosen_on": f"neutral prompts of {len(selection)} analysis groups", "backend": result["backend"],
            "n_test_groups": result["n_groups"], "n_influence_prompts": len(neutral),
        }
        summary = [
            f"Influence from {len(neutral)} neutral analysis prompts; stable segment: layers "
            f"{influence.stable_layers[0]}-{influence.stable_layers[-1]} ({influence.stable_reason}). The modulation scale "
            f"was chosen on the neutral prompts of {len(selection)} analysis groups and then measured on the test groups.",
            findings.influence(numbers["influence"], _peak_interval(influence)),
            *findings.circuits({**result, "conditions": c, "size": circuit.size()}),
        ]
        shown = ["unsteered", "prompting", "steering", "circuit", "random (pooled)", "neurons only", "heads only"]
        figures = {
            "circuits_influence": plots.influence_heatmap(numbers["influence"], influence.stable_layers,
                                                          "Sublayer influence I[e, layer, site]"),
            "circuits_composition": plots.circuit_composition(numbers["counts"], "Circuit composition per layer"),
            "circuits_comparison": plots.method_comparison({k: c[k] for k in shown if k in c},
                                                           f"Methods on the same {len(groups)} test groups x {len(circuit.emotions)} emotions",
                                                           PAPER_LLAMA_3B, "Llama-3.2-3B-Instruct (the paper; another model)"),
            "circuits_budget": plots.budget_curve(result["budgets"], "Accuracy against circuit size", c["random (pooled)"], c["unsteered"]),
            "circuits_overlap": plots.overlap_matrix(circuit.emotions, numbers["overlap"]["jaccard"], numbers["overlap"]["shared"],
                                                     "Overlap between emotions' circuits"),
        }
        tables = [{"title": "Conditions", "columns": ["condition", "accuracy", "95% interval", "median perplexity", "degenerate", "n"],
                   "rows": [[k, f"{v['accuracy']:.3f}", f"{v['low']:.3f}-{v['high']:.3f}", f"{v.get('perplexity', float('nan')):.1f}",
                             f"{v.get('degenerate', float('nan')):.0%}", v["n"]] for k, v in c.items()]}]
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables)


def _peak_interval(influence: Any) -> dict[str, float]:
    """The 95% interval, over prompts, of the emotion-averaged influence at its largest cell."""
    from ...intervals import bootstrap_ci

    per = influence.per_sample.mean(1)  # [G, L, 2]: averaged over emotions
    flat = int(per.mean(0).argmax())
    layer, site = divmod(flat, per.shape[-1])
    mean, low, high = bootstrap_ci(per[:, layer, site].numpy())
    return {"mean": mean, "low": low, "high": high, "n": int(per.shape[0])}

