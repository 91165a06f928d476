"""``emowork compare runs/A runs/B [...]``: models side by side, from their finished runs (nothing is recomputed).

* headline numbers with their 95% intervals (prompting, steering, unsteered baseline, the directions on natural text, circuit modulation, the judge);
* sublayer-influence profiles (the circuits stage), mean over emotions, on a relative-depth axis (layer / (L - 1));
* emotion geometry: each model's 6x6 cosine matrix of its directions (mean over its late third of layers), and for
  each pair of models the correlation of their 15 off-diagonal cosines with a 95% bootstrap interval over the pairs
  and, as the control, the range the correlation takes when one model's emotion labels are permuted (all 720
  permutations: the null of "same geometry by chance");
* where directions stabilise (mean adjacent-layer cosine per relative depth; the stable layers);
* circuit sizes.

Writes ``compare.json`` (every number), the figures (HTML + plotly JSON, so ``emowork figures`` exports them) and
``compare.html``, which leads with the generated findings.
"""

from __future__ import annotations

import html
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import plots
from ..errors import EmoworkError
from ..intervals import N_BOOT
from ..storage import atomic_write_json, atomic_write_text
from ..verdicts import against_range, compare as compare_words
from .headline import headline_rows

LATE_START = 2 / 3  # the geometry is read over the last third of the layers (relative depth >= 2/3)


class CompareError(EmoworkError):
    """A run folder that cannot be compared (missing or unreadable). An unfinished run is compared with a finding
    that says so."""


@dataclass
class RunForComparison:
    """One finished run: its folder, ``run.json`` record, a short label and (when the directions stage ran) its
    directions' per-layer 6x6 cosine matrices ``[L, 6, 6]`` with their emotion order."""

    folder: Path
    record: dict[str, Any]
    label: str
    cosines: np.ndarray | None
    emotions: list[str]

    @property
    def n_layers(self) -> int:
        return int(self.record["model"]["facts"]["n_layers"])


def load_for_comparison(folder: str | Path) -> RunForComparison:
    """Read a run folder; a clear error when it is not one."""
    folder = Path(folder)
    path = folder / "run.json"
    if not path.is_file():
        raise CompareError(f"{folder} has no run.json: give folders written by `emowork run` (runs/NAME).")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path} is not valid JSON ({exc}); run `emowork run --out {folder}` again to rewrite it.") from None
    cosines, emotions = None, []
    if (folder / "artifacts" / "directions").is_dir():
        from ..analysis.directions import EmotionDirections
        from ..analysis.geometry import emotion_cosines

        directions = EmotionDirections.load(folder / "artifacts" / "directions")
        cosines, emotions = emotion_cosines(directions).double().numpy(), list(directions.emotions)
    model = str(record["model"]["name"])
    label = folder.name if Path(model).name in folder.name else f"{Path(model).name} ({folder.name})"
    return RunForComparison(folder, record, label, cosines, emotions)


def late_geometry(run: RunForComparison) -> np.ndarray:
    """The run's 6x6 emotion cosine matrix, averaged over layers at relative depth >= 2/3."""
    assert run.cosines is not None
    L = run.cosines.shape[0]
    start = min(L - 1, int(np.ceil(LATE_START * (L - 1))))
    return run.cosines[start:].mean(0)


def geometry_similarity(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Pearson correlation of two 6x6 cosine matrices' off-diagonal entries (same emotion order), a 95% bootstrap
    interval over the 15 pairs, and the control: the 2.5-97.5% range of the correlation over every permutation of
    ``b``'s emotion labels (exact: 720 permutations)."""
    n = a.shape[0]
    iu = np.triu_indices(n, 1)
    x, y = a[iu], b[iu]
    r = float(np.corrcoef(x, y)[0, 1])
    pick = np.random.default_rng(seed).integers(0, len(x), (N_BOOT, len(x)))  # [B, pairs]
    boots = _row_correlations(x[pick], y[pick])
    boots = boots[np.isfinite(boots)]  # a resample with one repeated pair has no correlation
    perms = np.array(list(itertools.permutations(range(n))))  # [720, n]
    permuted = b[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]]  # [720, pairs]
    null = _row_correlations(np.broadcast_to(x, permuted.shape), permuted)
    return {"r": r, "low": float(np.percentile(boots, 2.5)), "high": float(np.percentile(boots, 97.5)), "n_pairs": int(len(x)),
            "null_low": float(np.percentile(null, 2.5)), "null_high": float(np.percentile(null, 97.5)),
            "null_share_at_least": float(np.mean(null >= r - 1e-12))}


def _row_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (``[R, n]`` each; NaN for a constant row)."""
    xc = x - x.mean(1, keepdims=True)
    yc = y - y.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(1) / np.sqrt((xc ** 2).sum(1) * (yc ** 2).sum(1))


def _rows(run: RunForComparison) -> dict[str, dict[str, Any]]:
    """Headline numbers by name: ``{accuracy, low, high, n}``, circuit modulation included when it ran."""
    return {r["name"]: {**r["summary"], "n": r["n"]} for r in headline_rows(run.record) if r["name"] != "chance"}  # a constant


def comparison(runs: Sequence[RunForComparison]) -> dict[str, Any]:
    """Every number of the comparison (what ``compare.json`` holds)."""
    out: dict[str, Any] = {"runs": [{"label": r.label, "folder": str(r.folder), "model": r.record["model"]["name"],
                                     "facts": r.record["model"]["facts"], "preset": r.record["settings"].get("preset"),
                                     "stages": r.record["stages"], "complete": r.record.get("complete", False)} for r in runs]}
    out["headline"] = {r.label: _rows(r) for r in runs}
    out["influence"] = {}
    out["stability"] = {}
    out["circuit_size"] = {}
    for r in runs:
        circuits = r.record.get("circuits") or {}
        if circuits.get("influence"):
            per = circuits["influence"]
            out["influence"][r.label] = {site: np.mean([per[e][site] for e in per], axis=0).tolist() for site in ("attn", "mlp")}
            out["circuit_size"][r.label] = {"per_emotion": circuits.get("size"), "stable_layers": circuits.get("stable_layers")}
        directions = r.record.get("directions") or {}
        if directions.get("adjacent_layer_cosine_by_layer") is not None:
            out["stability"][r.label] = {"adjacent_cosine": directions["adjacent_layer_cosine_by_layer"],
                                         "stable_layers": directions.get("stable_layers", []), "n_layers": r.n_layers}
    with_geometry = [r for r in runs if r.cosines is not None]
    out["geometry"] = {"emotions": with_geometry[0].emotions if with_geometry else [],
                       "matrices": {r.label: late_geometry(r).tolist() for r in with_geometry}, "pairs": []}
    for a, b in itertools.combinations(with_geometry, 2):
        if a.emotions != b.emotions:
            raise CompareError(f"{a.label} and {b.label} list the emotions in different orders; compare runs of one dataset.")
        out["geometry"]["pairs"].append({"a": a.label, "b": b.label, **geometry_similarity(late_geometry(a), late_geometry(b))})
    out["findings"] = comparison_findings(out)
    return out


def comparison_findings(data: dict[str, Any]) -> list[str]:
    """Sentences generated from the comparison's numbers."""
    sentences = []
    labels = [r["label"] for r in data["runs"]]
    names = sorted({name for rows in data["headline"].values() for name in rows})
    for name in names:
        have = [(label, data["headline"][label][name]) for label in labels if name in data["headline"][label]]
        for (la, a), (lb, b) in itertools.combinations(have, 2):
            sentences.append(f"{name}: " + compare_words(a, b, la, lb) + ".")
    for pair in data["geometry"]["pairs"]:
        where = against_range(pair["r"], pair["null_low"], pair["null_high"])
        verdict = {"above": "share more of their geometry than labels matched at random",
                   "below": "are arranged less alike than labels matched at random",
                   "within": "are not shown to share a geometry"}[where]
        sentences.append(
            f"Emotion geometry (late layers): the cosines between emotions of {pair['a']} and {pair['b']} correlate at "
            f"r = {pair['r']:+.2f} (95% interval {pair['low']:+.2f} to {pair['high']:+.2f}, {pair['n_pairs']} emotion pairs); "
            f"{where} the middle 95% of what permuted emotion labels give ({pair['null_low']:+.2f} to {pair['null_high']:+.2f}), "
            f"so the two models {verdict}.")
    for run in data["runs"]:
        if not run["complete"]:
            sentences.append(f"{run['label']}: the run did not finish; its numbers are those of the stages that did.")
    for label, s in data["stability"].items():
        L = s["n_layers"]
        stable = s["stable_layers"]
        where = (f"from relative depth {stable[0] / max(1, L - 1):.2f} ({len(stable)} of {L - 1} layer pairs)" if stable
                 else "nowhere (no adjacent-layer cosine reaches the threshold)")
        sentences.append(f"{label}: directions are stable {where}.")
    return sentences


def write_comparison(folders: Sequence[str | Path], out: str | Path) -> Path:
    """Compare the runs in ``folders`` and write ``out/compare.json``, ``out/figures/`` and ``out/compare.html``."""
    if len(folders) < 2:
        raise CompareError("compare needs at least two run folders.")
    runs = [load_for_comparison(f) for f in folders]
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        raise CompareError(f"two runs have the same label {labels} (labels come from the folder names): rename or copy "
                           "one of the folders so that the names differ.")
    data = comparison(runs)
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", data)
    figures: dict[str, tuple[Any, str]] = {}
    if any(data["headline"].values()):
        figures["compare_headline"] = (plots.compare_headline(data["headline"], "Headline numbers by model (95% intervals)"),
                                       "each bar with its interval; compare models only where intervals do not overlap.")
    if data["influence"]:
        figures["compare_influence"] = (plots.compare_profiles(data["influence"], "Sublayer influence (mean over emotions)"),
                                        "where along the depth each model's sublayers pass the emotion on to the last layer.")
    if data["geometry"]["matrices"]:
        figures["compare_geometry"] = (plots.compare_geometry(data["geometry"]["matrices"], data["geometry"]["emotions"],
                                                              "Cosines between emotion directions (late layers)"),
                                       "the same pattern of light and dark cells means the models arrange emotions alike.")
    if data["stability"]:
        figures["compare_stability"] = (plots.compare_stability(data["stability"], "Where directions stabilise"),
                                        "the depth at which each curve rises above the threshold line.")
    for stem, (fig, _) in figures.items():
        plots.save_figure(fig, out / "figures" / f"{stem}.html")
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>emowork comparison</title>"
             "<style>body{font-family:sans-serif;max-width:1100px;margin:20px auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}iframe{width:100%;height:520px;border:0}</style></head><body>",
             "<h1>emowork comparison</h1><h2>Findings</h2><ul>"
             + "".join(f"<li>{html.escape(s)}</li>" for s in data["findings"]) + "</ul>",
             "<h2>Runs</h2><table><tr><th>run</th><th>layers</th><th>d_model</th><th>params</th><th>size</th><th>stages</th></tr>"
             + "".join(f"<tr><td>{html.escape(r['label'])}</td><td>{r['facts']['n_layers']}</td><td>{r['facts']['d_model']}</td>"
                       f"<td>{r['facts']['n_params'] / 1e6:.1f}M</td><td>{html.escape(str(r['preset']))}</td>"
                       f"<td>{html.escape(', '.join(r['stages']))}</td></tr>" for r in data["runs"]) + "</table>"]
    for stem, (_, caption) in figures.items():
        parts.append(f"<h2>{html.escape(stem.replace('compare_', ''))}</h2><iframe src='figures/{stem}.html' loading='lazy'></iframe>"
                     f"<p><b>What to look at:</b> {html.escape(caption)}</p>")
    parts.append("</body></html>")
    atomic_write_text(out / "compare.html", "\n".join(parts))
    return out / "compare.html"
