"""Findings in words, generated from measured values: one function per kind of result, shared by the pipeline's
stages, the report and the notebooks (so the same measurement is always described by the same rule).

Each function takes the numbers an analysis returns and gives one sentence; thresholds are stated in the sentence
(see :mod:`emowork.verdicts` for the interval rules). Nothing here states a conclusion that the numbers do not carry.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .depth import STABLE_COSINE
from .verdicts import (compare, count_above, interval, layers_text, overlap, pct, point, relation, share_summary, vs_reference,
                       within)

PROBE_READABLE = 0.9  # probe accuracy from which the emotion counts as linearly readable


def prompting(overall: Mapping[str, Any], by_emotion: Mapping[str, Mapping[str, Any]], model: str, judge: str,
              chance: float) -> str:
    """Prompt-elicited accuracy against chance, with the best and worst emotion."""
    best = max(by_emotion, key=lambda e: by_emotion[e]["accuracy"])
    worst = min(by_emotion, key=lambda e: by_emotion[e]["accuracy"])
    return (f"Told to reply in an emotion, {model} did so in {interval(overall)} of {overall['n']} replies by the judge "
            f"{judge}: {vs_reference(overall, chance)}. Best for {best} ({pct(by_emotion[best]['accuracy'], 0)}), worst for "
            f"{worst} ({pct(by_emotion[worst]['accuracy'], 0)}).")


def verdict_spread(shares: np.ndarray, labels: Sequence[str], threshold: float = 0.25) -> str:
    """How much what the judge hears depends on the instruction (``shares``: instructed x judged, row-normalised): the
    largest total-variation distance between an instruction's row and the mean row, against ``threshold``."""
    shares = np.asarray(shares, float)
    if shares.size == 0 or not np.isfinite(shares).all():
        return "What the judge hears per instruction cannot be compared (no replies for some instruction)."
    mean = shares.mean(0)
    top = int(mean.argmax())
    distance = float((0.5 * np.abs(shares - mean).sum(1)).max())
    return (f"The most common verdict overall is {labels[top]} ({pct(mean[top], 0)} of replies; between "
            f"{pct(shares[:, top].min(), 0)} and {pct(shares[:, top].max(), 0)} per instruction). The instructions' "
            f"verdict distributions differ from their mean by at most {distance:.2f} (total variation; threshold "
            f"{threshold}): " + ("the rows look alike, so the replies sound much the same whatever emotion was asked for."
                                  if distance < threshold else "the rows differ, so the instruction changes what the judge hears."))


def template_consistency(same: Sequence[float], other: Sequence[float], halves: float | None = None,
                         margin: float = 0.05) -> str:
    """Directions from other instruction wordings: same-emotion cosine against different emotions (per layer, by more
    than ``margin``), and against the agreement of two halves of the data (the ceiling for one wording)."""
    same, other = np.asarray(same, float), np.asarray(other, float)
    above = count_above(same, other, margin)
    text = (f"Across instruction wordings, the same emotion's directions have a mean cosine of {same.mean():.2f} (highest "
            f"{same.max():.2f} at layer {int(same.argmax())}) against {other.mean():.2f} between different emotions; "
            f"same-emotion cosine is higher by more than {margin} at {len(above)} of {len(same)} layers")
    if len(above) == len(same):
        text += (", so an emotion's direction survives a change of wording (a weak test: the directions are centred "
                 "over the emotions, which pushes the different-emotion cosine below 0 by construction)")
    elif not above:
        text += ", so nothing of the emotion survives a change of wording"
    if halves is not None:
        ratio = same.mean() / halves if halves > 0 else float("nan")
        text += f". Two halves of the data (one wording) agree at {halves:.2f}; " + (
            "their agreement is not positive, so it gives no ceiling to compare with" if ratio != ratio else
            f"other wordings reach {ratio:.2f} times that, so " + (
                "most of a direction does not depend on the wording (threshold: half of the halves' agreement)"
                if ratio >= 0.5 else "much of a direction is the wording (threshold: half of the halves' agreement)"))
    return text + "."


def halves(splits: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Directions from halves of the data against their label-shuffled control."""
    if not splits:
        return "No halves of the data could be compared (too few groups)."
    parts, beaten = [], 0
    for name, v in splits.items():
        same, shuffled = np.asarray(v["same"], float), np.asarray(v["shuffled"], float)
        parts.append(f"{name} {same.mean():.2f} (shuffled {shuffled.mean():.2f})")
        beaten += len(count_above(same, shuffled)) == len(same)
    return (f"Directions from halves of the data agree at a mean cosine of {', '.join(parts)}; they beat their "
            f"label-shuffled control at every layer in {beaten} of {len(splits)} splits. Both halves measure the same "
            "one-word difference between prompts, so this agreement is expected by construction and is a check, not evidence.")


def transfer(result: Mapping[str, Any]) -> str:
    """Natural text read through the directions: accuracy at the best layer against chance and the shuffled control."""
    acc = list(result["accuracy"])
    best = int(np.argmax(acc))
    n = int(result["n"])
    summary = share_summary(int(round(acc[best] * n)), n)
    control = float(result["shuffled"][best])
    return (f"On {n} {result['source']} texts with no instruction, the largest projection names the text's emotion in "
            f"{interval(summary, digits=0)} at layer {best}, the best of {len(acc)} layers (the interval is not corrected for "
            f"that choice): {vs_reference(summary, result['chance'])}, and "
            + ("above" if relation(summary, control) == "above" else "not above")
            + f" the directions from label-shuffled activations ({pct(control, 0)} at that layer)."
            + (_held_out_choice(result["held_out_choice"], result["chance"]) if result.get("held_out_choice") else ""))


def _held_out_choice(choice: Mapping[str, Any], chance: float) -> str:
    return (f" Choosing the layer on half the texts and measuring on the other half (no selection bias): layer "
            f"{choice['layer']}, {interval(choice, digits=0)} of {choice['n']} texts: {vs_reference(choice, chance)}.")


def probe(accuracy: Sequence[float], chance: float) -> str:
    """When a linear probe reads the instructed emotion from one prompt."""
    first = next((i for i in range(len(accuracy)) if min(accuracy[i:]) >= PROBE_READABLE), None)  # and stays there
    return (f"A linear probe trained on half the themes reads the instructed emotion from one prompt's activation with "
            f"{pct(accuracy[0], 0)} held-out accuracy at layer 0 and {pct(max(accuracy), 0)} at best (layer "
            f"{int(np.argmax(accuracy))}; chance {pct(chance, 0)}); "
            + (f"from layer {first} on it is at least {PROBE_READABLE:.0%}." if first is not None else
               f"it does not stay at or above {PROBE_READABLE:.0%} up to the last layer."))


def stable_layers(adjacent_mean: Sequence[float]) -> list[int]:
    """Layers whose direction has a mean cosine of at least :data:`STABLE_COSINE` with the next layer's."""
    return [i for i, c in enumerate(adjacent_mean) if c >= STABLE_COSINE]


def stability(adjacent_mean: Sequence[float]) -> str:
    """Where the directions are carried unchanged from layer to layer."""
    stable = stable_layers(adjacent_mean)
    values = np.asarray(adjacent_mean, float)
    if values.size == 0:
        return "A one-layer model has no adjacent layers to compare."
    head = min(5, len(values))
    return (f"The mean adjacent-layer cosine of the directions is {values[:head].mean():.2f} in the first {head} layers and "
            f"{values[-head:].mean():.2f} in the last {head}; " +
            (f"it is at least {STABLE_COSINE} at layers {layers_text(stable)}." if stable else
             f"it never reaches {STABLE_COSINE} (at most {values.max():.2f})."))


def readout_in_segment(readout: int, segment: Sequence[int], reason: str) -> str:
    """Whether the dose-response read-out layer lies in the directions' stable segment."""
    return (f"The read-out layer {readout} is {'inside' if readout in segment else 'outside'} the directions' stable "
            f"segment, layers {segment[0]}-{segment[-1]} ({reason}).")


def window_in_stable(first: int, last: int, n_layers: int, adjacent_mean: Sequence[float], name: str = "The window") -> str:
    """How much of a steering window (layers ``first``-``last``) lies where the directions are stable."""
    stable = set(stable_layers(adjacent_mean))
    inside = [layer for layer in range(first, last + 1) if layer in stable]
    return (f"{name} is layers {first}-{last} of {n_layers}; "
            + (f"at {len(inside)} of its {last - first + 1} layers the direction has a cosine of at least "
               f"{STABLE_COSINE} with the next layer's." if stable else
               f"at no layer of this model does the direction reach a cosine of {STABLE_COSINE} with the next layer's."))


def site_similarity(labels: Sequence[str], sim: Any) -> str:
    """The site-similarity matrix in words: attn against mlp within a layer, and the first against the last layer."""
    at = {name: i for i, name in enumerate(labels)}
    layers = sorted({int(name[len(site):]) for name in labels for site in ("attn", "mlp") if name.startswith(site)})
    sim = np.asarray(sim, float)
    text = []
    if all(f"attn{L}" in at and f"mlp{L}" in at for L in layers):
        same = [sim[at[f"attn{L}"], at[f"mlp{L}"]] for L in layers]
        lo, hi = int(np.argmin(same)), int(np.argmax(same))
        text.append(f"Within one layer, an emotion's attn and mlp directions have a mean cosine of {np.mean(same):.2f} "
                    f"(lowest {same[lo]:.2f} at layer {layers[lo]}, highest {same[hi]:.2f} at layer {layers[hi]})")
    site = "mlp" if f"mlp{layers[0]}" in at else "attn"
    text.append(f"the {site} directions of the first and the last layer have a mean cosine of "
                f"{sim[at[f'{site}{layers[0]}'], at[f'{site}{layers[-1]}']]:.2f}")
    return "; ".join(text) + "."


def pca_shares(explained: Sequence[float], emotion_share: Sequence[float]) -> str:
    """The PCA view per layer: what the two plotted components explain, and how much of the plotted points' spread
    lies between the emotions' centres (:func:`emowork.analysis.geometry.between_emotion_share`)."""
    shares = np.asarray(emotion_share, float)
    if np.isnan(shares).all():
        return "The plotted points have no spread."
    peak = int(np.nanargmax(shares))
    return (f"The two plotted components explain {np.nanmin(explained):.0%} to {np.nanmax(explained):.0%} of the context-removed "
            f"variance, depending on the layer. The instructed emotion accounts for {shares[peak]:.0%} of the plotted "
            f"points' variance at layer {peak}, its largest share ({shares[0]:.0%} at layer 0, {shares[-1]:.0%} at layer "
            f"{len(shares) - 1}): the share between the six emotions' centres, 100% for six tight separate clusters and "
            "0% when the centres coincide.")


def steering_by_emotion(steered: Mapping[str, Mapping[str, Any]], others: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Per emotion, steered accuracy against each other method (``others``: name -> emotion -> summary); one line per
    emotion with the intervals, then one sentence per method sorting the emotions into higher / lower / not
    distinguishable (different only when the 95% intervals do not overlap)."""
    lines = [f"{e}: steered {interval(s, digits=0)}, " + ", ".join(f"{name} {interval(by[e], digits=0)}" for name, by in others.items())
             for e, s in steered.items()]
    for name, by in others.items():
        groups: dict[str, list[str]] = {"higher": [], "lower": [], "not distinguishable": []}
        for e, s in steered.items():
            groups["not distinguishable" if overlap(s, by[e]) else "higher" if point(s) > point(by[e]) else "lower"].append(e)
        lines.append(f"Steered against {name}, emotion by emotion (different only when the 95% intervals do not overlap): "
                     + "; ".join(f"{word} for {', '.join(es)}" for word, es in groups.items() if es) + ".")
    return lines


def steering(best: Mapping[str, Any], baseline: Mapping[str, Any], prompted: Mapping[str, Any] | None) -> str:
    """The chosen steering setting against unsteered replies and prompting."""
    text = f"Steering ({best['label']}): " + compare(best, baseline, "steering", "the unsteered baseline")
    if prompted is not None and prompted.get("low") is not None:
        text += "; " + compare(best, prompted, "steering", "prompting")
    return text + "."


def dose(curves: Mapping[str, Mapping[str, Mapping[Any, Mapping[str, float]]]], panel: str) -> str:
    """A dose-response panel (e.g. ``'neuron ablate'``): top-k against random-k at the largest k. Ablation is expected
    to lower the projection (negative effect), enhancement to raise it; an effect is "larger than random" only in that
    direction, with non-overlapping 95% intervals."""
    top, rand = curves[panel]["top"], curves[panel]["random"]
    kmax = max(top, key=float)
    t, r = top[kmax], rand[kmax]
    expected = -1.0 if panel.endswith("ablate") else 1.0
    text = (f"{panel.capitalize()}, top {kmax} against random {kmax}: {interval(t, percent=False, digits=2)} against "
            f"{interval(r, percent=False, digits=2)} of the emotion's signal: ")
    if overlap(t, r):
        return text + "not distinguishable (the 95% intervals overlap)."
    if (t["mean"] - r["mean"]) * expected > 0:
        return text + ("a larger reduction" if expected < 0 else "a larger increase") + " than random components (the 95% intervals do not overlap)."
    return text + ("a smaller reduction than random components, or a change in the other direction" if expected < 0 else
                   "a smaller increase than random components, or a change in the other direction") + " (the 95% intervals do not overlap)."


def heads_check(rel_gap: float, tolerance: float, speedup: float | None, n_layers: int, n_heads: int) -> str:
    """Whether the exact one-pass head importance matches the per-head masking loop, and how much faster it is."""
    agree = (f"matches the per-head masking loop (largest relative gap {rel_gap:.1e}, within the tolerance {tolerance:.0e})"
             if rel_gap <= tolerance else
             f"DIFFERS from the per-head masking loop (largest relative gap {rel_gap:.1e}, above the tolerance {tolerance:.0e})")
    text = f"Head importance: the exact one-pass computation {agree} on {n_layers} layers x {n_heads} heads (one sample)"
    if speedup is None:
        return text + "."
    speed = (f"{speedup:.0f}x faster" if speedup >= 1.5 else
             f"{speedup:.1f}x the speed" if speedup >= 1 / 1.5 else f"{1 / speedup:.1f}x slower")
    return text + f" and, its capture pass included, is {speed} on the same work."


def judged_edits(conditions: Mapping[str, Mapping[str, Any]]) -> str:
    """Judged replies with top-k component edits against random edits and unedited replies."""
    c = conditions
    return ("Judged replies: ablating the top neurons on the elicited prompt: " + compare(c["ablate-top"], c["ablate-random"],
            "top", "random") + " (unedited: " + pct(c["none (elicited)"]["accuracy"], 0) + "); enhancing them on the "
            "neutral prompt: " + compare(c["enhance-top"], c["enhance-random"], "top", "random") + " (unedited: "
            + pct(c["none (neutral)"]["accuracy"], 0) + ").")


def influence(values: Mapping[str, Mapping[str, Sequence[float]]], peak_interval: Mapping[str, float] | None = None) -> str:
    """Where sublayer influence (``values[emotion][site][layer]``) is largest, and how the two halves of the network
    compare (mean over emotions). ``peak_interval``: the 95% interval of the peak cell (``{mean, low, high, n}``)."""
    sites = list(next(iter(values.values())))
    mean = {p: np.mean([values[e][p] for e in values], axis=0) for p in sites}  # [L] per site
    n = len(next(iter(mean.values())))
    site, layer = max(((p, int(np.argmax(mean[p]))) for p in sites), key=lambda x: mean[x[0]][x[1]])
    text = (f"Averaged over emotions, influence is largest at layer {layer}'s {site} sublayer ({100 * layer / max(n - 1, 1):.0f}% "
            f"of depth; I = {mean[site][layer]:+.2f}")
    if peak_interval is not None:
        text += f", 95% interval {peak_interval['low']:+.2f} to {peak_interval['high']:+.2f} over {peak_interval['n']} prompts"
    half = n // 2
    early = np.mean([mean[p][:half] for p in sites]) if half else float("nan")
    late = np.mean([mean[p][half:] for p in sites])
    return text + (f"). The mean over both sublayers is {early:+.2f} in the first {half} layers and {late:+.2f} in the last "
                   f"{n - half}.")


def circuits(result: Mapping[str, Any]) -> list[str]:
    """Circuit modulation against its controls and the other methods, the smallest working budget and the necessity
    test. ``result``: ``conditions`` (summaries by name: ``circuit``, ``unsteered``, ``prompting``, optionally
    ``steering``, ``random (pooled)``, ``neurons only``, ``heads only``), ``budgets`` ``{budget: summary}``,
    ``ablation_drop`` and ``random_ablation_drop`` (``{mean, low, high}``: accuracy lost, in shares), ``scale``, ``passes_fluency``, ``size``."""
    c = result["conditions"]
    circuit = c["circuit"]
    head = (f"Circuit modulation ({result['size']} components per emotion, scale {result['scale']:g}"
            + ("" if result.get("passes_fluency", True) else "; no scale met the fluency bar") + "): ")
    parts = [compare(circuit, c["unsteered"], "the circuit", "unsteered replies")]
    if "random (pooled)" in c:
        parts.append(compare(circuit, c["random (pooled)"], "the circuit", "random circuits of the same shape"))
    for other in ("prompting", "steering"):
        if other in c:
            parts.append(compare(circuit, c[other], "the circuit", other))
    out = [head + "; ".join(parts) + "."]
    halves = [compare(c[k], circuit, k, "the whole circuit") for k in ("neurons only", "heads only") if k in c]
    if halves:
        out.append("Parts: " + "; ".join(halves) + ".")
    budgets = result.get("budgets") or {}
    if budgets:
        working = [b for b in sorted(budgets, key=float) if budgets[b]["low"] > c["unsteered"]["high"]]
        out.append(f"Budgets {', '.join(str(b) for b in sorted(budgets, key=float))} per sublayer: " +
                   (f"the smallest whose accuracy is above the unsteered replies' (non-overlapping 95% intervals) is {working[0]}."
                    if working else "none is distinguishable from the unsteered replies (their 95% intervals overlap)."))
    drop = result.get("ablation_drop")
    if drop:
        text = ("Necessity: prompted accuracy minus prompted accuracy with the circuit ablated at the last prompt token is "
                f"{interval(drop, digits=1)}, " + vs_reference(drop, 0.0, "no drop"))
        rand = result.get("random_ablation_drop")
        if rand:
            text += "; " + compare(drop, rand, "the circuit's drop", "a random circuit's drop")
        out.append(text + ".")
    return out


def judge_card(measured: Mapping[str, Any], card: Mapping[str, Any] | None) -> str:
    """The re-measured held-out accuracy against the judge's model card."""
    if card is None:
        return "this judge has no model card to compare with"
    return (("within" if within(measured["value"], card) else "OUTSIDE") + f" its model card's 95% interval ({pct(card['low'])}-{pct(card['high'])})")


def graphs(by_emotion: Mapping[str, Mapping[str, Any]], n_prompts: int) -> list[str]:
    """Attribution graphs: per emotion, what the circuit's nodes write directly onto the emotion's reference direction
    at the last token, against random circuits of the same shape. ``by_emotion[e]``: ``direct`` (``{mean, low, high}``
    over prompts), ``random_direct`` (over random circuits x prompts), ``share`` (``{mean, low, high}``: the circuit
    nodes' share of the target's absolute direct input)."""
    out = []
    for emotion, row in by_emotion.items():
        text = (f"{emotion}: over {n_prompts} neutral prompts the circuit's neurons and heads write "
                f"{interval(row['direct'], percent=False, digits=2)} onto the reference direction at the last token "
                f"({interval(row['share'])} of the target's absolute direct input); "
                + compare(row["direct"], row["random_direct"], "the circuit", "random circuits of the same shape", percent=False))
        out.append(text + ".")
    return out
